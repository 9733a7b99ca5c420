//! `cargo xt bench`: the benchmark suite (issue 6). One VM boot runs every
//! case of `xtests/bench/cases.txt` on ext4 `-o dax`, xfs `-o dax` and
//! novars (each formatted fresh on the same emulated NVDIMM, in turn, in
//! every run) and the fio cases on the raw `/dev/pmem0` too; the guest side
//! is `xtests/bench/suite.sh`, the measuring programs fio and
//! `xtests/guest/fsbench.c`.
//! Absolute times under TCG drift, so the output is medians and ratios from
//! the same boot: a table on stdout, `target/bench/results.csv` (and `.md`), the raw
//! samples `target/bench/samples.txt` and a chart `target/bench/ratios.svg`.
//! Ratios say how many times faster novars is (above 1: novars faster),
//! whatever the unit's direction.

use crate::util::{repo_root, status, target_dir};
use crate::vm::{self, VmConfig};
use crate::{kernel::Flavour, module, say};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Every case briefly, with scaled-down sizes: checks that each case
    /// produces a number for every file system (the numbers are not for
    /// reading).
    #[arg(long)]
    quick: bool,
    /// Runs per case (default 5; 1 with --quick).
    #[arg(long)]
    runs: Option<u32>,
    /// No VM: redo the table, CSV and chart from a samples file of an
    /// earlier run (e.g. target/bench/samples.txt).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["quick", "runs"])]
    from: Option<PathBuf>,
    /// Only the cases whose name contains PATTERN (repeatable or
    /// comma-separated), e.g. `--filter fault-4k,fsync-1-dirty`; the guest
    /// then runs only what those cases need.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    filter: Vec<String>,
}

/// The file systems compared, in column order; `raw` is the device itself.
pub const FILE_SYSTEMS: [&str; 4] = ["ext4", "xfs", "novars", "raw"];

/// One line of `cases.txt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub unit: String,
    pub fss: Vec<String>,
    /// Needs shared mmap with MAP_SYNC: a file system without it may say n/a.
    pub mmap: bool,
    pub about: String,
}

/// The cases whose name contains one of `patterns` (all without any).
pub fn select(cases: Vec<Case>, patterns: &[String]) -> Result<Vec<Case>> {
    if patterns.is_empty() {
        return Ok(cases);
    }
    let all: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    let picked: Vec<Case> = cases
        .into_iter()
        .filter(|c| patterns.iter().any(|p| c.name.contains(p.as_str())))
        .collect();
    if picked.is_empty() {
        bail!("--filter {}: no case matches; the cases are: {}", patterns.join(","), all.join(" "));
    }
    Ok(picked)
}

/// Lower values are better (latencies, times, memory).
pub fn lower_is_better(unit: &str) -> bool {
    matches!(unit, "us" | "ms" | "s" | "MiB")
}

pub fn parse_cases(text: &str) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut w = line.split_whitespace();
        let (Some(name), Some(unit), Some(fss), Some(flags)) =
            (w.next(), w.next(), w.next(), w.next())
        else {
            bail!("cases.txt line {}: want `case unit fs,fs flags description`", i + 1);
        };
        if !matches!(unit, "us" | "ms" | "s" | "MiB" | "ops/s" | "MiB/s") {
            bail!("cases.txt line {}: unknown unit {unit:?}", i + 1);
        }
        cases.push(Case {
            name: name.to_string(),
            unit: unit.to_string(),
            fss: fss.split(',').map(str::to_string).collect(),
            mmap: flags.split(',').any(|f| f == "mmap"),
            about: w.collect::<Vec<_>>().join(" "),
        });
    }
    Ok(cases)
}

/// What the guest reported (see suite.sh): samples per (case, fs), n/a
/// reasons and failures.
#[derive(Debug, Default)]
pub struct Samples {
    pub values: BTreeMap<(String, String), Vec<f64>>,
    pub units: BTreeMap<String, String>,
    pub na: BTreeMap<(String, String), String>,
    pub errors: Vec<String>,
}

pub fn parse_samples(text: &str) -> Samples {
    let mut s = Samples::default();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["R", fs, _run, case, value, unit] => match value.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    s.values.entry((case.to_string(), fs.to_string())).or_default().push(v);
                    s.units.insert(case.to_string(), unit.to_string());
                }
                _ => s.errors.push(format!("{case} on {fs}: not a number: {value}")),
            },
            ["NA", fs, case, reason @ ..] => {
                s.na.insert((case.to_string(), fs.to_string()), reason.join(" "));
            }
            ["ERR", ..] => s.errors.push(w[1..].join(" ")),
            _ => {}
        }
    }
    s
}

/// Every case has a number for every file system it lists, or (mmap cases
/// only) an n/a; no case failed. Returns the problems.
pub fn completeness(cases: &[Case], s: &Samples) -> Vec<String> {
    let mut problems: Vec<String> = s.errors.iter().map(|e| format!("failed: {e}")).collect();
    for c in cases {
        for fs in &c.fss {
            let key = (c.name.clone(), fs.clone());
            if s.values.get(&key).is_some_and(|v| !v.is_empty()) {
                continue;
            }
            match s.na.get(&key) {
                Some(_) if c.mmap => {}
                Some(why) => problems
                    .push(format!("{} on {fs}: n/a ({why}) but it is not an mmap case", c.name)),
                None => problems.push(format!("{} on {fs}: no number", c.name)),
            }
        }
        if let Some(u) = s.units.get(&c.name) {
            if *u != c.unit {
                problems.push(format!("{}: reported in {u}, cases.txt says {}", c.name, c.unit));
            }
        }
    }
    problems
}

/// Median, min and max of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(v: &[f64]) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
        Some(Stat { median, min: s[0], max: s[n - 1], n })
    }

    /// Half the min-max range as a percentage of the median.
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median.abs() * 100.0
        }
    }
}

/// How many times faster novars is than `other`: above 1, novars is faster.
pub fn speedup(unit: &str, novars: f64, other: f64) -> Option<f64> {
    let r = if lower_is_better(unit) { other / novars } else { novars / other };
    r.is_finite().then_some(r).filter(|r| *r > 0.0)
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub unit: String,
    pub about: String,
    /// Per FILE_SYSTEMS entry: the stats, or why there are none.
    pub cells: Vec<Result<Stat, String>>,
}

impl Row {
    fn stat(&self, fs: &str) -> Option<Stat> {
        let i = FILE_SYSTEMS.iter().position(|f| *f == fs)?;
        self.cells[i].as_ref().ok().copied()
    }

    /// novars against `fs`, above 1: novars faster.
    pub fn ratio(&self, fs: &str) -> Option<f64> {
        speedup(&self.unit, self.stat("novars")?.median, self.stat(fs)?.median)
    }
}

/// Rows that compare what each file system needs for the same guarantee:
/// novars's plain append is durable when write() returns; ext4 and xfs
/// need the fsync.
const DURABLE: [(&str, &str, &str); 3] = [
    ("durable-append-1k", "append-1k", "append-1k+fsync"),
    ("durable-append-4k", "append-4k", "append-4k+fsync"),
    ("durable-append-16k", "append-16k", "append-16k+fsync"),
];

pub fn rows(cases: &[Case], s: &Samples) -> Vec<Row> {
    let cell = |case: &str, fs: &str, listed: bool| -> Result<Stat, String> {
        let key = (case.to_string(), fs.to_string());
        if !listed {
            return Err(String::new());
        }
        if let Some(st) = s.values.get(&key).and_then(|v| Stat::of(v)) {
            return Ok(st);
        }
        Err(s.na.get(&key).cloned().unwrap_or_else(|| "missing".into()))
    };
    let mut out = Vec::new();
    for c in cases {
        out.push(Row {
            name: c.name.clone(),
            unit: c.unit.clone(),
            about: c.about.clone(),
            cells: FILE_SYSTEMS
                .iter()
                .map(|fs| cell(&c.name, fs, c.fss.iter().any(|f| f == fs)))
                .collect(),
        });
        if c.name == "rmdir" {
            for (name, plain, synced) in DURABLE {
                out.push(Row {
                    name: name.into(),
                    unit: "us".into(),
                    about: format!("novars {plain} (durable on return) against ext4/xfs {synced}"),
                    cells: FILE_SYSTEMS
                        .iter()
                        .map(|fs| match *fs {
                            "novars" => cell(plain, fs, true),
                            "raw" => Err(String::new()),
                            _ => cell(synced, fs, true),
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

/// Issue 5's targets, each file system against itself: (case, over case,
/// the range novars's ratio must be in).
pub const SELF_TARGETS: [(&str, &str, f64, f64); 2] = [
    ("fault-4k+MAP_SYNC", "fault-4k", 0.0, 1.2),
    ("fsync-1-dirty-of-1g", "fsync-1-dirty-of-4m", 0.5, 2.0),
];

/// The targets of issue 6: (row, against, at least).
pub const TARGETS: [(&str, &str, f64); 7] = [
    ("durable-append-1k", "ext4", 3.0),
    ("creat", "ext4", 2.0),
    ("mkdir", "ext4", 2.0),
    ("unlink", "ext4", 2.0),
    ("rename", "ext4", 2.0),
    ("read-4k", "ext4", 1.0),
    ("fio-seq-write-1m-j1", "raw", 0.9),
];

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell_text(c: &Result<Stat, String>) -> String {
    match c {
        Ok(s) if s.n > 1 => format!("{} ±{:.0}%", num(s.median), s.spread_pct()),
        Ok(s) => num(s.median),
        Err(e) if e.is_empty() => "-".into(),
        Err(_) => "n/a".into(),
    }
}

pub fn table(rows: &[Row], runs: u32, quick: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "median of {runs} run(s), ±: half the min-max range; vs X: how many times faster novars is than X (above 1: novars faster){}",
        if quick { "; QUICK MODE: scaled-down sizes, numbers not comparable with a full run" } else { "" }
    );
    let _ = writeln!(
        t,
        "{:26} {:>5} {:>15} {:>15} {:>15} {:>15} {:>7} {:>7} {:>7}",
        "case", "unit", "ext4-DAX", "xfs-DAX", "novars", "raw pmem", "vs ext4", "vs xfs", "vs raw"
    );
    for r in rows {
        let ratio = |fs| r.ratio(fs).map_or("-".to_string(), |x| format!("{x:.2}"));
        let _ = writeln!(
            t,
            "{:26} {:>5} {:>15} {:>15} {:>15} {:>15} {:>7} {:>7} {:>7}",
            r.name,
            r.unit,
            cell_text(&r.cells[0]),
            cell_text(&r.cells[1]),
            cell_text(&r.cells[2]),
            cell_text(&r.cells[3]),
            ratio("ext4"),
            ratio("xfs"),
            ratio("raw")
        );
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.cells.iter().zip(FILE_SYSTEMS).filter_map(move |(c, fs)| match c {
                Err(e) if !e.is_empty() => Some(format!("{} on {fs}: {e}", r.name)),
                _ => None,
            })
        })
        .collect();
    for n in notes {
        let _ = writeln!(t, "  {n}");
    }
    if TARGETS.iter().any(|(name, _, _)| rows.iter().any(|r| r.name == *name)) {
        let _ = writeln!(t, "targets (issue 6):");
    }
    for (name, against, want) in TARGETS {
        let Some(row) = rows.iter().find(|r| r.name == name) else { continue };
        let got = row.ratio(against);
        let _ = match got {
            Some(g) => writeln!(
                t,
                "  {name} vs {against}: {g:.2} (target >= {want}) {}",
                if g >= want {
                    "met".to_string()
                } else {
                    format!("MISSED by {:.0}%", (1.0 - g / want) * 100.0)
                }
            ),
            None => writeln!(t, "  {name} vs {against}: no number"),
        };
    }
    let mut header = false;
    for (num, den, lo, hi) in SELF_TARGETS {
        let (Some(n), Some(d)) =
            (rows.iter().find(|r| r.name == num), rows.iter().find(|r| r.name == den))
        else {
            continue;
        };
        if !header {
            let _ = writeln!(t, "targets (issue 5, each file system against itself):");
            header = true;
        }
        let ratio =
            |fs: &str| Some(n.stat(fs)?.median / d.stat(fs)?.median).filter(|r| r.is_finite());
        let per: Vec<String> = ["ext4", "xfs", "novars"]
            .iter()
            .map(|fs| format!("{fs} {}", ratio(fs).map_or("-".into(), |r| format!("{r:.2}"))))
            .collect();
        let want =
            if lo > 0.0 { format!("novars within {lo}..{hi}") } else { format!("novars <= {hi}") };
        let verdict = match ratio("novars") {
            Some(r) if r >= lo && r <= hi => "met",
            Some(_) => "MISSED",
            None => "no number",
        };
        let _ = writeln!(t, "  {num} / {den}: {} (target: {want}) {verdict}", per.join(", "));
    }
    t
}

pub fn csv(rows: &[Row]) -> String {
    let mut t = String::from("case,unit");
    for fs in FILE_SYSTEMS {
        let _ = write!(t, ",{fs}_median,{fs}_min,{fs}_max,{fs}_runs");
    }
    t.push_str(",novars_vs_ext4,novars_vs_xfs,novars_vs_raw,description\n");
    for r in rows {
        let _ = write!(t, "{},{}", r.name, r.unit);
        for c in &r.cells {
            match c {
                Ok(s) => {
                    let _ = write!(t, ",{},{},{},{}", s.median, s.min, s.max, s.n);
                }
                Err(e) if e.is_empty() => t.push_str(",,,,"),
                Err(_) => t.push_str(",n/a,,,0"),
            }
        }
        for fs in ["ext4", "xfs", "raw"] {
            let _ = write!(t, ",{}", r.ratio(fs).map_or(String::new(), |x| format!("{x:.3}")));
        }
        let _ = writeln!(t, ",\"{}\"", r.about.replace('"', "'"));
    }
    t
}

/// The table as Markdown (for README's "Performance").
pub fn markdown(rows: &[Row]) -> String {
    let mut t = String::from("| case | unit | ext4-DAX | xfs-DAX | novars | raw pmem | vs ext4 | vs xfs | vs raw |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let ratio = |fs| r.ratio(fs).map_or("".to_string(), |x| format!("{x:.2}"));
        let cell = |c: &Result<Stat, String>| match c {
            Err(e) if e.is_empty() => String::new(),
            c => cell_text(c),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.unit,
            cell(&r.cells[0]),
            cell(&r.cells[1]),
            cell(&r.cells[2]),
            cell(&r.cells[3]),
            ratio("ext4"),
            ratio("xfs"),
            ratio("raw")
        );
    }
    t
}

/// Horizontal bars of the novars/ext4 and novars/xfs speedups per case on a
/// log axis, with the line at 1 (equal speed).
pub fn chart(rows: &[Row], path: &Path, title: &str) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let rows: Vec<&Row> =
        rows.iter().filter(|r| r.ratio("ext4").is_some() || r.ratio("xfs").is_some()).collect();
    let n = rows.len().max(1);
    let height = 120 + 22 * n as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [r.ratio("ext4"), r.ratio("xfs")])
        .flatten()
        .fold((0.5f64, 2.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .margin_left(230)
        .x_label_area_size(40)
        .build_cartesian_2d((lo / 1.5..hi * 1.5).log_scale(), 0f64..n as f64)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("speedup of novars (log scale; above 1: novars faster)")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let colours = [("ext4", RGBColor(0x1f, 0x77, 0xb4)), ("xfs", RGBColor(0xff, 0x7f, 0x0e))];
    for (k, &(fs, colour)) in colours.iter().enumerate() {
        let bars = rows.iter().enumerate().filter_map(|(i, r)| {
            let x = r.ratio(fs)?;
            let y = (n - 1 - i) as f64 + 0.1 + 0.4 * k as f64;
            Some(Rectangle::new([(1.0, y), (x, y + 0.38)], colour.filled()))
        });
        chart
            .draw_series(bars)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(format!("vs {fs}-DAX"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, r) in rows.iter().enumerate() {
        let (_, y) = chart.backend_coord(&(lo / 1.5, (n - 1 - i) as f64 + 0.5));
        root.draw(&Text::new(r.name.clone(), (220, y), style.clone()))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn bench_dir() -> PathBuf {
    target_dir().join("bench")
}

/// `gcc -O2 -Wall -pthread` of `xtests/guest/fsbench.c` into
/// `target/bench/bin/fsbench` when the source is newer (the guest sees the
/// host read-only, and compiling under TCG takes about 7 s).
pub fn build_programs() -> Result<PathBuf> {
    let src = repo_root().join("xtests/guest/fsbench.c");
    let out = bench_dir().join("bin");
    fs::create_dir_all(&out)?;
    let bin = out.join("fsbench");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&bin).is_some_and(|b| mtime(&src).is_some_and(|s| b >= s)) {
        return Ok(bin);
    }
    let mut c = Command::new("gcc");
    c.args(["-O2", "-Wall", "-Werror", "-pthread", "-o"]).arg(&bin).arg(&src).stdin(Stdio::null());
    let st = status(&mut c)?;
    if !st.success() {
        bail!("gcc {} failed ({st}); the compiler's message is above", src.display());
    }
    Ok(bin)
}

pub fn bench(args: &BenchArgs) -> Result<i32> {
    let cases = parse_cases(&fs::read_to_string(repo_root().join("xtests/bench/cases.txt"))?)?;
    let cases = select(cases, &args.filter)?;
    if let Some(from) = &args.from {
        let raw =
            fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
        let runs = raw
            .lines()
            .filter_map(|l| l.strip_prefix("R ")?.split_whitespace().nth(1)?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        let quick = raw.lines().any(|l| l == "# mode quick");
        return report(&cases, &raw, runs, quick).map(|problems| i32::from(!problems.is_empty()));
    }
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    crate::bins::build()?;
    build_programs()?;
    let ko = module::ensure(Flavour::Normal).context("novars.ko must build for the benchmark")?;
    let mode = if args.quick { "quick" } else { "full" };
    // Full run, 5 runs: about 12 minutes of guest time.
    let timeout = if args.quick { 300 } else { 600 + 240 * u64::from(runs) };
    let cfg = VmConfig {
        flavour: Flavour::Normal,
        nvdimms: 1,
        size_mib: 1024,
        fresh: false,
        timeout: Duration::from_secs(timeout),
        echo: true,
        module: Some(ko),
        // Every file system and the raw device write to host memory, as
        // on real pmem (see `VmConfig::resident`).
        resident: true,
        ..VmConfig::default()
    };
    let suite = repo_root().join("xtests/bench/suite.sh");
    let mut cmd = format!("sh {} {mode} {runs}", vm::sh_quote(&suite.display().to_string()));
    if !args.filter.is_empty() {
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        say!("bench: {} case(s): {}", names.len(), names.join(" "));
        cmd = format!("env BENCH_CASES={} {cmd}", vm::sh_quote(&names.join(" ")));
    }
    let out = vm::run(&cfg, &format!("bench-{mode}"), &cmd, None)?;
    let raw = fs::read_to_string(out.log_dir.join("bench.txt")).unwrap_or_default();
    let dir = bench_dir();
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("samples.txt"), &raw)?;
    let problems = report(&cases, &raw, runs, args.quick)?;
    let vm_ok = out.status == Some(0) && out.clean_log() && !out.timed_out;
    if !vm_ok {
        println!("PROBLEM: the benchmark boot: {}", out.describe());
    }
    Ok(if problems.is_empty() && vm_ok { 0 } else { 1 })
}

/// Table on stdout, CSV and chart under target/bench; returns the
/// completeness problems (also printed).
fn report(cases: &[Case], raw: &str, runs: u32, quick: bool) -> Result<Vec<String>> {
    let samples = parse_samples(raw);
    let rows = rows(cases, &samples);
    let dir = bench_dir();
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("results.csv"), csv(&rows))?;
    fs::write(dir.join("results.md"), markdown(&rows))?;
    let mode = if quick { "quick mode, not for reading" } else { "full run" };
    let title =
        format!("novars speedup vs ext4-DAX / xfs-DAX ({mode}, median of {runs}, qemu TCG)");
    if let Err(e) = chart(&rows, &dir.join("ratios.svg"), &title) {
        say!("bench: the chart could not be drawn: {e:#}");
    }
    println!();
    print!("{}", table(&rows, runs, quick));
    say!("bench: wrote {0}/results.csv, {0}/results.md and {0}/ratios.svg (samples: {0}/samples.txt)", dir.display());
    let problems = completeness(cases, &samples);
    for p in &problems {
        println!("PROBLEM: {p}");
    }
    Ok(problems)
}

#[cfg(test)]
mod unit {
    use super::*;

    const CASES: &str = "# comment\nappend-1k us ext4,xfs,novars - write 1k\nappend-1k+fsync us ext4,xfs,novars - w+f\n\
        rmdir us ext4,xfs,novars - rmdir\nfio-seq-write-1m-j1 MiB/s ext4,xfs,novars,raw - seq\nfault-4k us ext4,xfs,novars mmap fault\n";

    #[test]
    fn cases_file_parses_and_names_are_unique() {
        let text = fs::read_to_string(repo_root().join("xtests/bench/cases.txt")).unwrap();
        let cases = parse_cases(&text).unwrap();
        assert!(cases.len() > 40, "{}", cases.len());
        let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), cases.len(), "duplicate case names");
        for (t, against, _) in TARGETS {
            assert!(
                t.starts_with("durable-")
                    || cases.iter().any(|c| c.name == t && c.fss.iter().any(|f| f == against)),
                "target {t}"
            );
        }
        assert!(parse_cases("x furlongs ext4 - y\n").is_err());
        assert!(parse_cases("x us\n").is_err());
    }

    #[test]
    fn stats_and_direction() {
        let s = Stat::of(&[5.0, 1.0, 3.0, 100.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (4.0, 1.0, 100.0, 4));
        assert_eq!(Stat::of(&[2.0, 9.0, 4.0]).unwrap().median, 4.0);
        assert!(Stat::of(&[]).is_none());
        assert_eq!(Stat::of(&[10.0, 12.0, 8.0]).unwrap().spread_pct(), 20.0);
        // Latency: novars 10 us vs 30 us is 3x faster; bandwidth: 50 vs 100 MiB/s is 0.5x.
        assert_eq!(speedup("us", 10.0, 30.0), Some(3.0));
        assert_eq!(speedup("MiB/s", 50.0, 100.0), Some(0.5));
        assert_eq!(speedup("ops/s", 0.0, 100.0), None);
    }

    #[test]
    fn completeness_finds_every_hole() {
        let cases = parse_cases(CASES).unwrap();
        let mut text = String::new();
        for fs in ["ext4", "xfs", "novars"] {
            for c in ["append-1k", "append-1k+fsync", "rmdir", "fio-seq-write-1m-j1"] {
                text.push_str(&format!(
                    "R {fs} 1 {c} 10 {}\n",
                    if c.starts_with("fio") { "MiB/s" } else { "us" }
                ));
            }
        }
        text.push_str(
            "R raw 1 fio-seq-write-1m-j1 20 MiB/s\nR ext4 1 fault-4k 3 us\nR xfs 1 fault-4k 3 us\n",
        );
        text.push_str("NA novars fault-4k n/a: mmap not supported\n");
        let s = parse_samples(&text);
        assert_eq!(completeness(&cases, &s), Vec::<String>::new());
        // A missing number, an n/a on a non-mmap case, a failure, a wrong unit.
        let holes = parse_samples(&text.replace("R xfs 1 rmdir 10 us\n", "").replace(
            "R raw 1 fio-seq-write-1m-j1 20 MiB/s",
            "R raw 1 fio-seq-write-1m-j1 20 ops/s",
        ));
        let mut s2 = holes;
        s2.na.insert(("append-1k".into(), "novars".into()), "nope".into());
        s2.values.remove(&("append-1k".to_string(), "novars".to_string()));
        s2.errors.push("novars mail mount failed".into());
        let p = completeness(&cases, &s2);
        assert!(p.iter().any(|x| x.contains("rmdir on xfs: no number")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("append-1k on novars: n/a")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("failed: novars mail")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("reported in ops/s")), "{p:?}");
        assert!(parse_samples("R ext4 1 x NaN us\n").errors.len() == 1);
    }

    #[test]
    fn rows_ratios_and_durable_appends() {
        let cases = parse_cases(CASES).unwrap();
        let mut text = String::new();
        for (fs, plain, synced) in
            [("ext4", 20.0, 300.0), ("xfs", 15.0, 200.0), ("novars", 10.0, 11.0)]
        {
            for run in 1..=3 {
                text.push_str(&format!("R {fs} {run} append-1k {plain} us\nR {fs} {run} append-1k+fsync {synced} us\nR {fs} {run} rmdir 5 us\n"));
            }
        }
        text.push_str(
            "R novars 1 fio-seq-write-1m-j1 900 MiB/s\nR raw 1 fio-seq-write-1m-j1 1000 MiB/s\n",
        );
        let rows = rows(&cases, &parse_samples(&text));
        let row = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
        assert_eq!(row("append-1k").ratio("ext4"), Some(2.0));
        // novars's plain append against ext4's append + fsync: 300 / 10.
        assert_eq!(row("durable-append-1k").ratio("ext4"), Some(30.0));
        assert_eq!(row("durable-append-1k").ratio("xfs"), Some(20.0));
        assert_eq!(row("fio-seq-write-1m-j1").ratio("raw"), Some(0.9));
        assert_eq!(row("fio-seq-write-1m-j1").ratio("ext4"), None);
        let t = table(&rows, 3, false);
        assert!(t.contains("durable-append-1k vs ext4: 30.00 (target >= 3) met"), "{t}");
        assert!(t.contains("fio-seq-write-1m-j1 vs raw: 0.90 (target >= 0.9) met"), "{t}");
        assert!(!t.contains("creat vs ext4"), "a target without its row is left out: {t}");
        let md = markdown(&rows);
        assert!(
            md.contains(
                "| durable-append-1k | us | 300 ±0% | 200 ±0% | 10.0 ±0% |  | 30.00 | 20.00 |  |"
            ),
            "{md}"
        );
        let c = csv(&rows);
        assert!(c.lines().any(|l| l.starts_with("durable-append-1k,us,300,300,300,3,200,")), "{c}");
    }

    #[test]
    fn filter_and_self_ratios() {
        let cases = parse_cases(CASES).unwrap();
        let picked = select(cases.clone(), &["append".into(), "fault".into()]).unwrap();
        let names: Vec<&str> = picked.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["append-1k", "append-1k+fsync", "fault-4k"]);
        assert_eq!(select(cases.clone(), &[]).unwrap().len(), cases.len());
        assert!(select(cases, &["nothing-like-it".into()]).is_err());
        let two = parse_cases(
            "fault-4k us ext4,xfs,novars mmap f\nfault-4k+MAP_SYNC us ext4,xfs,novars mmap s\n\
             fsync-1-dirty-of-4m us ext4,xfs,novars mmap a\nfsync-1-dirty-of-1g us ext4,xfs,novars mmap b\n",
        )
        .unwrap();
        let mut text = String::new();
        for (fs, f, fs_, a, b) in [
            ("ext4", 60.0, 480.0, 20.0, 22.0),
            ("xfs", 100.0, 500.0, 20.0, 30.0),
            ("novars", 20.0, 18.0, 10.0, 25.0),
        ] {
            text.push_str(&format!(
                "R {fs} 1 fault-4k {f} us\nR {fs} 1 fault-4k+MAP_SYNC {fs_} us\n"
            ));
            text.push_str(&format!(
                "R {fs} 1 fsync-1-dirty-of-4m {a} us\nR {fs} 1 fsync-1-dirty-of-1g {b} us\n"
            ));
        }
        let t = table(&rows(&two, &parse_samples(&text)), 1, false);
        assert!(t.contains("fault-4k+MAP_SYNC / fault-4k: ext4 8.00, xfs 5.00, novars 0.90 (target: novars <= 1.2) met"), "{t}");
        assert!(t.contains("fsync-1-dirty-of-1g / fsync-1-dirty-of-4m: ext4 1.10, xfs 1.50, novars 2.50 (target: novars within 0.5..2) MISSED"), "{t}");
        assert!(!t.contains("targets (issue 6)"), "no issue-6 row, no heading: {t}");
    }

    #[test]
    fn chart_is_an_svg_with_every_case() {
        let cases = parse_cases(CASES).unwrap();
        let text = "R ext4 1 rmdir 20 us\nR xfs 1 rmdir 5 us\nR novars 1 rmdir 10 us\n";
        let rows = rows(&cases, &parse_samples(text));
        let dir = std::env::temp_dir().join(format!("xt-chart-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.svg");
        chart(&rows, &p, "test").unwrap();
        let svg = fs::read_to_string(&p).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("rmdir") && svg.contains("vs ext4-DAX"),
            "{svg}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
