//! `cargo xt test`: formatting and clippy checks, every crate's unit tests,
//! then every VM test.
//!
//! VM tests are the shell scripts in `xtests/vm-tests/NAME.sh`: adding a file
//! adds a test. Header comments configure it:
//! ```text
//! #!/bin/sh
//! # The first comment line says what the test proves.
//! # flavours: normal debug      (kernels to run on; default: normal)
//! # nvdimms: 1                  (default 1)
//! # size: 1G                    (per NVDIMM; default 1G; a sparse host
//! #                              file, e.g. 256G: see `vm::BIG_IMAGE_MIB`)
//! # memory: 1G                  (guest RAM besides the NVDIMMs; default 1G)
//! # fresh: yes                  (recreate the images first; default no)
//! # timeout: 300                (seconds; default 300)
//! # crash: 20                   (a crash test: N iterations, see below)
//! # panics: TEXT                (the test ends in a kernel panic whose
//!                                message contains TEXT: it passes if that
//!                                panic comes and the log before it is
//!                                clean; a boot of its own)
//! # cost: 60 200                (seconds it takes on the normal and the debug
//! #                              kernel in a two-lane run on 2 cores, for
//! #                              scheduling; default 30, debug three times
//! #                              the normal; a crash series costs a boot
//! #                              per iteration, or its largest `cost:`)
//! ```
//! A value may be `${NAME:-DEFAULT}`: the host's environment variable
//! NAME if it is set and not empty, else DEFAULT (a test's long mode, e.g.
//! `# size: ${NOVARS_BIG_SIZE:-160G}`).
//! A crash test runs, per iteration I, `sh NAME.sh crash I`, which is
//! killed with SIGKILL (qemu, i.e. power loss with every executed store
//! durable) a pseudo-random 0.2-3 s after the guest prints `@@crash-armed`;
//! the next boot, on the same NVDIMM image, first runs
//! `sh NAME.sh verify I`, which must exit 0, then the workload of I+1. All
//! crash tests of a flavour share these boots, side by side, each on its
//! own NVDIMM seen as /dev/pmem0 and with its own /tmp
//! (`xtests/guest/crashseries.sh`), so N iterations take N+1 boots
//! whatever the number of crash tests (crash tests of another NVDIMM size
//! or RAM form a series of their own). `verify` must unmount what it
//! mounted; the files the workload wrote to `$NOVARS_OUT` are at
//! `$NOVARS_CRASH_DIR` in the next boot. `NOVARS_CRASH_ITERATIONS` overrides N
//! (the long mode).
//! The other tests of a flavour share one boot per NVDIMM setup
//! (`xtests/guest/batch.sh`; on the debug kernel a `fresh: yes` test runs
//! first in a boot on new images, one a boot; on the normal kernel it has
//! a boot of its own), because a
//! debug-kernel boot alone takes over a minute under TCG. Between tests the
//! batch unmounts what the test mounted under /tmp and unloads novars.ko;
//! each test has its own section of the kernel log, so a warning is pinned on
//! the test that caused it (one outside every section fails them all).
//! Tests run as root with `$NOVARS_*` set (see `xtests/guest/lib.sh`). Exit 0
//! passes, 77 skips, anything else fails; a finding in the guest kernel log
//! fails the test whatever it returned.
//!
//! Boots run in parallel lanes (`--lanes`, default one per host CPU), each
//! boot on a free NVDIMM image set of a pool (`target/vm/lane<K>/`; the
//! images of `cargo xt vm`/`shell`/`demo` stay apart): the boot groups
//! are split to balance the lanes by the tests' `cost:` (a debug-kernel test
//! counts three times), and the lanes take the jobs longest first. A lane's
//! guest output is printed when its boot ends.

use crate::kernel::Flavour;
use crate::logscan::{self, Finding};
use crate::util::{repo_root, show, Timer};
use crate::vm::{self, VmConfig};
use crate::{module, say};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Exit status with which a VM test says "cannot run here yet".
pub const SKIP_STATUS: i32 = 77;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Only the crates' unit tests.
    #[arg(long, conflicts_with = "vm_only")]
    unit_only: bool,
    /// Only the VM tests.
    #[arg(long)]
    vm_only: bool,
    /// Only VM tests on this kernel flavour: every selected test, also those
    /// whose header does not list it.
    #[arg(long, value_enum)]
    flavour: Option<Flavour>,
    /// Only VM tests whose name contains this (or one of these, separated
    /// by commas: `--filter fs_ops,mmap_ops`).
    #[arg(long)]
    filter: Option<String>,
    /// VMs to run at once (default: $NOVARS_TEST_LANES, else one per host
    /// CPU). 1 runs one boot after the other with the guest output live.
    #[arg(long)]
    lanes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmTest {
    pub name: String,
    pub path: PathBuf,
    pub about: String,
    pub flavours: Vec<Flavour>,
    pub nvdimms: u32,
    pub size_mib: u64,
    pub ram_mib: u64,
    pub fresh: bool,
    pub timeout: Duration,
    /// Crash test: iterations.
    pub crash: Option<u32>,
    /// Seconds it takes on an idle host on the normal kernel, and on the
    /// debug kernel if known (scheduling).
    pub cost: u64,
    pub cost_debug: Option<u64>,
    /// Runs the tracing build of novars.ko (`# module: trace`).
    pub trace: bool,
    /// Ends in a kernel panic with this text (`# panics: TEXT`).
    pub panics: Option<String>,
}

/// Read a test's header comments.
pub fn parse_test(name: &str, path: &Path, text: &str) -> Result<VmTest> {
    let mut t = VmTest {
        name: name.to_string(),
        path: path.to_path_buf(),
        about: String::new(),
        flavours: vec![Flavour::Normal],
        nvdimms: 1,
        size_mib: 1024,
        ram_mib: vm::GUEST_RAM_MIB,
        fresh: false,
        timeout: Duration::from_secs(300),
        crash: None,
        cost: 30,
        cost_debug: None,
        trace: false,
        panics: None,
    };
    for line in text.lines().skip_while(|l| l.starts_with("#!")) {
        let Some(c) = line.strip_prefix('#') else { break };
        let c = c.trim();
        let (key, value) = c.split_once(':').map(|(k, v)| (k.trim(), v.trim())).unwrap_or(("", ""));
        let expanded = header_value(value);
        let value = expanded.as_str();
        match key {
            "flavours" => {
                t.flavours = value
                    .split_whitespace()
                    .map(|f| {
                        Flavour::parse(f).with_context(|| format!("{name}: unknown flavour {f:?}"))
                    })
                    .collect::<Result<_>>()?;
            }
            "nvdimms" => {
                t.nvdimms = value.parse().with_context(|| format!("{name}: bad nvdimms"))?
            }
            "size" => t.size_mib = vm::parse_size_mib(value)?,
            "memory" => t.ram_mib = vm::parse_size_mib(value)?,
            "fresh" => t.fresh = matches!(value, "yes" | "true" | "1"),
            "panics" if !value.is_empty() => t.panics = Some(value.to_string()),
            "module" => match value {
                "trace" => t.trace = true,
                "normal" => t.trace = false,
                _ => bail!("{name}: `# module:` is `normal` or `trace`, not {value:?}"),
            },
            "timeout" => {
                t.timeout = Duration::from_secs(
                    value.parse().with_context(|| format!("{name}: bad timeout"))?,
                )
            }
            "crash" => {
                t.crash =
                    Some(value.parse().with_context(|| format!("{name}: bad crash iterations"))?)
            }
            "cost" => {
                let mut it = value.split_whitespace().map(|n| {
                    n.parse::<u64>().with_context(|| format!("{name}: bad cost {value:?}"))
                });
                t.cost = it.next().unwrap_or(Ok(30))?;
                t.cost_debug = it.next().transpose()?;
            }
            _ if t.about.is_empty() && !c.is_empty() => t.about = c.to_string(),
            _ => {}
        }
    }
    if t.flavours.is_empty() {
        bail!("{name}: `# flavours:` lists no flavour");
    }
    Ok(t)
}

/// A header value: `${NAME:-DEFAULT}` is the environment variable NAME if
/// set and not empty, else DEFAULT; anything else is itself.
fn header_value(value: &str) -> String {
    let expand = |name: &str, default: &str| {
        std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
    };
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(inner) => match inner.split_once(":-") {
            Some((name, default)) => expand(name, default),
            None => expand(inner, ""),
        },
        None => value.to_string(),
    }
}

/// Every test in `xtests/vm-tests`, sorted by name.
pub fn registry() -> Result<Vec<VmTest>> {
    let dir = repo_root().join("xtests/vm-tests");
    let mut tests = Vec::new();
    for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        let Some(name) =
            path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".sh"))
        else {
            continue;
        };
        let text = fs::read_to_string(&path)?;
        tests.push(parse_test(name, &path, &text)?);
    }
    // Long modes (e.g. NOVARS_ACE_SEQ2=all) outlast the headers' timeouts:
    // NOVARS_TEST_TIMEOUT=SECS raises every test's to at least SECS.
    if let Some(secs) = std::env::var("NOVARS_TEST_TIMEOUT").ok().and_then(|s| s.parse().ok()) {
        for t in &mut tests {
            t.timeout = t.timeout.max(Duration::from_secs(secs));
        }
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tests)
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, label: &str, why: String) {
        self.failed += 1;
        println!("FAIL  {label}: {why}");
        self.failures.push(format!("{label}: {why}"));
    }
}

pub fn test(args: &TestArgs) -> Result<i32> {
    let timer = Timer::start();
    let mut t = Tally::default();
    if !args.vm_only {
        static_checks(&mut t)?;
        unit_tests(&mut t)?;
    }
    if !args.unit_only {
        vm_tests(args, &mut t)?;
    }
    println!();
    println!("== summary ({}) ==", timer.took());
    for f in &t.failures {
        println!("FAILED: {f}");
    }
    println!("{} passed, {} failed, {} skipped", t.passed, t.failed, t.skipped);
    Ok(if t.failed == 0 { 0 } else { 1 })
}

/// Formatting and lints, each counted as one test: `cargo fmt --all --check`;
/// rustfmt on the module's files (`novafs-kmod/*.rs` is no cargo crate; the
/// repository's rustfmt.toml applies, the edition is the kernel's); clippy on
/// every crate and target with warnings as errors.
fn static_checks(t: &mut Tally) -> Result<()> {
    say!("test: formatting and clippy");
    let root = repo_root();
    let kmod_dir = root.join("novafs-kmod");
    let mut kmod: Vec<PathBuf> = fs::read_dir(&kmod_dir)
        .with_context(|| format!("reading {}", kmod_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    kmod.sort();
    let cargo = env!("CARGO");
    let mut fmt = Command::new(cargo);
    fmt.args(["fmt", "--all", "--check"]);
    let mut fmt_kmod = Command::new("rustfmt");
    fmt_kmod.args(["--edition", "2021", "--check"]).args(&kmod);
    let mut clippy = Command::new(cargo);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--color",
        "never",
        "--",
        "-D",
        "warnings",
    ]);
    for (label, mut c) in [
        ("check:fmt (cargo fmt --all --check)", fmt),
        ("check:fmt-kmod (rustfmt --check novafs-kmod/*.rs)", fmt_kmod),
        ("check:clippy (cargo clippy --workspace --all-targets -D warnings)", clippy),
    ] {
        c.current_dir(&root).stdin(Stdio::null());
        eprintln!("+ {}", show(&c));
        match c.status() {
            Ok(s) if s.success() => {
                t.passed += 1;
                println!("PASS  {label}");
            }
            Ok(s) => t.fail(label, format!("{s} (output above)")),
            Err(e) => t.fail(label, format!("could not run: {e}")),
        }
    }
    Ok(())
}

/// `cargo test --workspace --no-fail-fast` (every crate runs even after a
/// failure), counted from libtest's "test result:" lines. Its longest test
/// is the host fuzz of hostile images (`imgfuzz/tests/hostile.rs`: 100,000
/// images, about 100 s on two idle cores; `NOVARS_HOSTILE_CASES` for more
/// or fewer), which the phase's time budget must leave room for.
fn unit_tests(t: &mut Tally) -> Result<()> {
    say!("test: unit tests of every crate");
    let mut c = Command::new(env!("CARGO"));
    c.args(["test", "--workspace", "--no-fail-fast", "--color", "never"])
        .current_dir(repo_root())
        .stdin(Stdio::null());
    c.stdout(Stdio::piped());
    eprintln!("+ {}", show(&c));
    let mut child = c.spawn().context("could not run cargo test")?;
    // Echo libtest's output as it comes, and keep it for counting.
    let mut text = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait()?;
    let (p, f, s) = count_libtest(&text);
    t.passed += p;
    t.failed += f;
    t.skipped += s;
    if f > 0 {
        t.failures.push(format!("{f} unit test(s) in `cargo test --workspace` (output above)"));
    }
    if !status.success() && f == 0 {
        t.failed += 1;
        t.failures.push("`cargo test --workspace` did not build or run (output above)".into());
    }
    Ok(())
}

/// Sum libtest summaries: `test result: ok. 3 passed; 1 failed; 2 ignored; ...`.
fn count_libtest(text: &str) -> (usize, usize, usize) {
    let (mut p, mut f, mut s) = (0, 0, 0);
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else { continue };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else { continue };
            let Ok(n) = n.parse::<usize>() else { continue };
            match what {
                "passed" => p += n,
                "failed" => f += n,
                "ignored" => s += n,
                _ => {}
            }
        }
    }
    (p, f, s)
}

fn vm_tests(args: &TestArgs, t: &mut Tally) -> Result<()> {
    say!("test: building the workspace's release binaries for the guest");
    if let Err(e) = crate::bins::build() {
        t.failed += 1;
        t.failures.push(format!("{e:#}"));
    }
    let tests: Vec<VmTest> = registry()?
        .into_iter()
        .filter(|v| match &args.filter {
            Some(f) => f.split(',').filter(|p| !p.is_empty()).any(|p| v.name.contains(p)),
            None => true,
        })
        .collect();
    let lanes = args
        .lanes
        .or_else(|| std::env::var("NOVARS_TEST_LANES").ok().and_then(|s| s.parse().ok()))
        .unwrap_or_else(crate::util::ncpus)
        .max(1);
    let mut jobs: Vec<Job> = Vec::new();
    for flavour in [Flavour::Normal, Flavour::Debug] {
        if args.flavour.is_some_and(|f| f != flavour) {
            continue;
        }
        // An explicit --flavour runs every selected test on it, declared or not.
        let forced = args.flavour == Some(flavour);
        let mine: Vec<&VmTest> =
            tests.iter().filter(|v| forced || v.flavours.contains(&flavour)).collect();
        if mine.is_empty() {
            continue;
        }
        // Build the module once per flavour, before the boots; a compile
        // error is one failure, and the tests then run without $NOVARS_KO.
        let ko = match module::ensure(flavour) {
            Ok(ko) => Some(ko),
            Err(e) => {
                say!("test: novars.ko ({flavour}) does not build: {e:#}");
                t.failed += 1;
                t.failures.push(format!("novars.ko does not build for the {flavour} kernel"));
                None
            }
        };
        // Tests with `# module: trace` run the tracing build (module.rs).
        if ko.is_some() && mine.iter().any(|v| v.trace) {
            if let Err(e) = module::ensure_trace(flavour) {
                say!("test: the tracing build of novars.ko ({flavour}) does not build: {e:#}");
                t.failed += 1;
                t.failures
                    .push(format!("the tracing novars.ko does not build for the {flavour} kernel"));
            }
        }
        let (crash, plain): (Vec<&VmTest>, Vec<&VmTest>) =
            mine.into_iter().partition(|v| v.crash.is_some());
        for group in boot_groups(&plain, flavour) {
            for chunk in split_group(&group, flavour, lanes) {
                jobs.push(Job { flavour, ko: ko.clone(), tests: chunk, crash: false });
            }
        }
        // One series per NVDIMM size and RAM: every NVDIMM of a boot has
        // the same size, and a big one makes every boot slower (a 256 GiB
        // fsdax namespace takes about 20 s of memmap set-up under TCG).
        let mut series: Vec<Vec<&VmTest>> = Vec::new();
        for v in crash {
            match series
                .iter_mut()
                .find(|s| s[0].size_mib == v.size_mib && s[0].ram_mib == v.ram_mib)
            {
                Some(s) => s.push(v),
                None => series.push(vec![v]),
            }
        }
        for tests in series {
            jobs.push(Job { flavour, ko: ko.clone(), tests, crash: true });
        }
    }
    run_jobs(jobs, lanes, t);
    Ok(())
}

/// One boot group or crash series, run by whichever lane is free.
struct Job<'a> {
    flavour: Flavour,
    ko: Option<PathBuf>,
    tests: Vec<&'a VmTest>,
    crash: bool,
}

/// Boot overhead in seconds, as measured with two lanes on 2 cores
/// (session 4: a debug boot took 280 s to reach its first test).
fn boot_cost(flavour: Flavour) -> u64 {
    match flavour {
        Flavour::Normal => 20,
        Flavour::Debug => 300,
    }
}

/// A test's expected seconds on `flavour` (the debug kernel is about three
/// times slower).
fn test_cost(v: &VmTest, flavour: Flavour) -> u64 {
    match flavour {
        Flavour::Normal => v.cost,
        Flavour::Debug => v.cost_debug.unwrap_or(v.cost.saturating_mul(3)),
    }
}

impl Job<'_> {
    fn cost(&self) -> u64 {
        if self.crash {
            // A boot per iteration: boot, verify, workload, kill; or what a
            // test of the series declares, if more (a series of one big
            // test: its two boots are long).
            let n = self.tests.iter().filter_map(|v| v.crash).max().unwrap_or(0) as u64 + 1;
            let declared = self.tests.iter().map(|v| test_cost(v, self.flavour)).max();
            n.saturating_mul(boot_cost(self.flavour) + 10).max(declared.unwrap_or(0))
        } else {
            boot_cost(self.flavour)
                + self.tests.iter().map(|v| test_cost(v, self.flavour)).sum::<u64>()
        }
    }
}

/// Split a boot group into up to `lanes` boots of about equal cost (longest
/// test first into the lightest boot), when it is long enough that a second
/// boot pays for itself; each boot keeps the tests in name order, a
/// `fresh: yes` test first (it needs the new images untouched).
fn split_group<'a>(group: &[&'a VmTest], flavour: Flavour, lanes: usize) -> Vec<Vec<&'a VmTest>> {
    let total: u64 = group.iter().map(|v| test_cost(v, flavour)).sum();
    // Split when the work a second boot takes over is at least six boots'
    // worth (a debug boot is about a minute).
    let worth = (total / (boot_cost(flavour) * 6).max(1)).max(1) as usize;
    let k = lanes.min(worth).min(group.len()).max(1);
    let boot_order = |c: &mut Vec<&VmTest>| {
        c.sort_by(|a, b| (!a.fresh, &a.name).cmp(&(!b.fresh, &b.name)));
    };
    if k == 1 {
        let mut one = group.to_vec();
        boot_order(&mut one);
        return vec![one];
    }
    let mut order: Vec<&VmTest> = group.to_vec();
    order.sort_by_key(|v| std::cmp::Reverse(test_cost(v, flavour)));
    let mut chunks: Vec<(u64, Vec<&VmTest>)> = vec![(0, Vec::new()); k];
    for v in order {
        if let Some(c) = chunks.iter_mut().min_by_key(|c| c.0) {
            c.0 += test_cost(v, flavour);
            c.1.push(v);
        }
    }
    chunks
        .into_iter()
        .map(|(_, mut c)| {
            boot_order(&mut c);
            c
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Run the jobs on `lanes` parallel lanes, longest first, each boot on a
/// free image set of the pool `target/vm/lane<K>/` (one lane: output live).
fn run_jobs(mut jobs: Vec<Job>, lanes: usize, t: &mut Tally) {
    jobs.sort_by_key(|j| std::cmp::Reverse(j.cost()));
    let lanes = lanes.min(jobs.len()).max(1);
    if lanes > 1 {
        let plan: Vec<String> = jobs
            .iter()
            .map(|j| {
                format!(
                    "{}[{}] ~{} s",
                    j.tests.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(","),
                    j.flavour,
                    j.cost()
                )
            })
            .collect();
        say!("test: {} boots on {lanes} lanes, longest first: {}", jobs.len(), plan.join("; "));
    }
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(jobs));
    let total = std::sync::Mutex::new(std::mem::take(t));
    std::thread::scope(|s| {
        for _ in 0..lanes {
            let (queue, total) = (&queue, &total);
            // The guard is taken by the closure: the queue is unlocked
            // before the job runs.
            s.spawn(move || {
                while let Some(job) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let lane_cfg =
                        Lane { images: Some(vm::ANY_LANE.to_string()), echo: lanes == 1 };
                    let mut mine = Tally::default();
                    if job.crash {
                        crash_series(
                            &job.tests,
                            job.flavour,
                            job.ko.as_deref(),
                            &lane_cfg,
                            &mut mine,
                        );
                    } else {
                        shared_boot(
                            &job.tests,
                            job.flavour,
                            job.ko.as_deref(),
                            &lane_cfg,
                            &mut mine,
                        );
                    }
                    if let Ok(mut tot) = total.lock() {
                        tot.passed += mine.passed;
                        tot.failed += mine.failed;
                        tot.skipped += mine.skipped;
                        tot.failures.extend(mine.failures);
                    }
                }
            });
        }
    });
    *t = total.into_inner().unwrap_or_default();
}

/// Where a job runs: an image set (a free one of the lane pool) and
/// whether the guest's output is echoed live (only with a single lane).
struct Lane {
    images: Option<String>,
    echo: bool,
}

/// Tests that can share a boot: same NVDIMM setup and, on the debug
/// kernel, at most one `fresh: yes` test, which runs first in its boot on
/// new images (see [`split_group`] and [`shared_boot`]): a debug boot
/// costs two to four minutes under TCG. On the normal kernel (a boot of
/// about twenty seconds) a fresh test keeps a boot of its own, a job the
/// lanes can balance with.
fn boot_groups<'a>(tests: &[&'a VmTest], flavour: Flavour) -> Vec<Vec<&'a VmTest>> {
    let share_fresh = flavour == Flavour::Debug;
    let mut groups: Vec<Vec<&VmTest>> = Vec::new();
    for &v in tests {
        let joins = |g: &Vec<&VmTest>| {
            let fresh_there = g.iter().any(|t| t.fresh);
            // A fresh test joins only on debug, and one a boot.
            let fresh_ok = if v.fresh || fresh_there {
                share_fresh && !(v.fresh && fresh_there)
            } else {
                true
            };
            fresh_ok
                && v.panics.is_none()
                && g[0].panics.is_none()
                && g[0].nvdimms == v.nvdimms
                && g[0].size_mib == v.size_mib
                && g[0].ram_mib == v.ram_mib
        };
        match groups.iter_mut().find(|g| joins(g)) {
            Some(g) => g.push(v),
            None => groups.push(vec![v]),
        }
    }
    groups
}

/// Run `group` in one boot (`xtests/guest/batch.sh`) and judge each test by
/// its own exit status and its own section of the kernel log. Findings
/// outside every test's section (boot, shutdown) fail them all.
fn shared_boot(group: &[&VmTest], flavour: Flavour, ko: Option<&Path>, lane: &Lane, t: &mut Tally) {
    let label = |v: &VmTest| format!("vm:{}[{flavour}]", v.name);
    for v in group {
        say!("test: {}: {}", label(v), v.about);
    }
    let cfg = VmConfig {
        flavour,
        nvdimms: group[0].nvdimms,
        size_mib: group[0].size_mib,
        ram_mib: group[0].ram_mib,
        // New images for the boot of a `fresh: yes` test (first in it).
        fresh: group.iter().any(|v| v.fresh),
        timeout: group.iter().map(|v| v.timeout).sum(),
        echo: lane.echo,
        module: ko.map(Path::to_path_buf),
        images: lane.images.clone(),
        resident: false,
    };
    let specs: Vec<String> =
        group.iter().map(|v| vm::sh_quote(&format!("{}={}", v.name, v.path.display()))).collect();
    let cmd =
        format!("sh {} {}", repo_root().join("xtests/guest/batch.sh").display(), specs.join(" "));
    let run_name = match group {
        [one] => format!("{}-{flavour}", one.name),
        _ => format!("tests-{flavour}"),
    };
    let out = vm::run(&cfg, &run_name, &cmd, None);
    vm::drop_big_images(&cfg);
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            for v in group {
                t.fail(&label(v), format!("{e:#}"));
            }
            return;
        }
    };
    if !lane.echo {
        let names: Vec<&str> = group.iter().map(|v| v.name.as_str()).collect();
        print!("---- guest output of {} [{flavour}] ----\n{}", names.join(", "), out.output);
    }
    let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
    let console = read(out.log_dir.join("console.log"));
    if let [v @ VmTest { panics: Some(text), .. }] = group {
        let logs = format!("logs: {}", out.log_dir.display());
        let problem = match logscan::before_panic(&console, text) {
            None => Some(format!("no kernel panic with {text:?}: {} ({logs})", out.describe())),
            Some(before) => {
                let findings = logscan::scan(before);
                (!findings.is_empty()).then(|| {
                    format!("kernel log before the panic: {}", logscan::report(&findings, 5))
                })
            }
        };
        match problem {
            Some(p) => t.fail(&label(v), p),
            None => {
                t.passed += 1;
                println!("PASS  {} (the kernel panicked as it must)", label(v));
            }
        }
        return;
    }
    let (mut sections, mut outside) = logscan::scan_sections(&console);
    let (more_sections, more_outside) =
        logscan::scan_sections(&read(out.log_dir.join("dmesg.txt")));
    merge_findings(&mut outside, more_outside);
    for (name, findings) in more_sections {
        match sections.iter_mut().find(|(n, _)| *n == name) {
            Some((_, mine)) => merge_findings(mine, findings),
            None => sections.push((name, findings)),
        }
    }
    let mut ran_out = false;
    for v in group {
        let dir = out.log_dir.join("tests").join(&v.name);
        let status = read(dir.join("status")).trim().parse::<i32>().ok();
        let mut findings: Vec<Finding> =
            sections.iter().filter(|(n, _)| *n == v.name).flat_map(|(_, f)| f.clone()).collect();
        findings.extend(outside.iter().cloned());
        let cleanup = read(dir.join("cleanup"));
        let secs = read(dir.join("seconds")).trim().to_string();
        let logs = format!("logs: {}", dir.display());
        let problem = if !findings.is_empty() {
            Some(format!(
                "kernel log: {} finding(s), first: {} ({logs})",
                findings.len(),
                findings[0].line.trim()
            ))
        } else if let Some(s) = status {
            match s {
                0 | SKIP_STATUS if !cleanup.is_empty() => {
                    Some(format!("left the guest unclean: {} ({logs})", cleanup.trim()))
                }
                0 | SKIP_STATUS => None,
                s => Some(format!("exit {s} ({logs})")),
            }
        } else if !ran_out {
            ran_out = true;
            Some(format!("did not finish: {} ({logs})", out.describe()))
        } else {
            Some("did not run: the shared boot ended in an earlier test".to_string())
        };
        match problem {
            Some(p) => t.fail(&label(v), p),
            None if status == Some(SKIP_STATUS) => {
                t.skipped += 1;
                println!("SKIP  {}", label(v));
            }
            None => {
                t.passed += 1;
                println!("PASS  {} ({secs} s)", label(v));
            }
        }
    }
    if !outside.is_empty() {
        say!(
            "test: the kernel log outside any test shows problems:\n{}",
            logscan::report(&outside, 10)
        );
    }
}

fn merge_findings(into: &mut Vec<Finding>, more: Vec<Finding>) {
    for f in more {
        if !into.iter().any(|g| g.line == f.line) {
            into.push(f);
        }
    }
}

/// A pseudo-random kill delay for iteration `i` (0.2-3 s), different in
/// every run but printed, so a failure names its delay.
fn crash_delay(i: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = (nanos as u64) ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    Duration::from_millis(200 + x % 2800)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Where a crash test stands in its series.
struct CrashState<'a> {
    test: &'a VmTest,
    label: String,
    /// Iterations to run.
    n: u32,
    /// The next workload to run.
    next: u32,
    /// The workload whose result the next boot must verify.
    verify: Option<u32>,
    /// The kill delay of that workload, for the report.
    delay: Option<Duration>,
    failed: Option<String>,
}

impl CrashState<'_> {
    fn active(&self) -> bool {
        self.failed.is_none() && (self.verify.is_some() || self.next < self.n)
    }
}

/// Runs every crash test of a flavour as one series of boots (see
/// `xtests/guest/crashseries.sh`), each test on its own NVDIMM of a
/// private image set: boot `i` verifies what each test's workload `i - 1`
/// left, then runs workload `i` of every test at once, and qemu is killed
/// a pseudo-random 0.2-3 s after all are armed. N iterations of any number
/// of tests take N + 1 boots (a boot costs about 10 s under TCG).
fn crash_series(
    tests: &[&VmTest],
    flavour: Flavour,
    ko: Option<&Path>,
    lane: &Lane,
    t: &mut Tally,
) {
    let forced = std::env::var("NOVARS_CRASH_ITERATIONS").ok().and_then(|s| s.parse().ok());
    let mut st: Vec<CrashState> = tests
        .iter()
        .map(|&v| CrashState {
            test: v,
            label: format!("vm:{}[{flavour}]", v.name),
            n: forced.unwrap_or(v.crash.unwrap_or(0)),
            next: 0,
            verify: None,
            delay: None,
            failed: None,
        })
        .collect();
    for s in &st {
        say!(
            "test: {}: {} ({} crashes, in the {flavour} crash series)",
            s.label,
            s.test.about,
            s.n
        );
    }
    let size_mib = tests.iter().map(|v| v.size_mib).max().unwrap_or(1024);
    let ram_mib = tests.iter().map(|v| v.ram_mib).max().unwrap_or(vm::GUEST_RAM_MIB);
    // The usual series (1 GiB NVDIMMs, default RAM) keeps its old name.
    let set = if size_mib == 1024 && ram_mib == vm::GUEST_RAM_MIB {
        format!("crash-{flavour}")
    } else {
        format!("crash-{flavour}-{size_mib}M-{ram_mib}M")
    };
    let cfg = VmConfig {
        flavour,
        nvdimms: st.len() as u32,
        size_mib,
        ram_mib,
        fresh: false,
        timeout: tests.iter().map(|v| v.timeout).max().unwrap_or(Duration::from_secs(300)),
        echo: lane.echo,
        module: ko.map(Path::to_path_buf),
        // Its own images: they must carry over from boot to boot.
        images: Some(set.clone()),
        resident: false,
    };
    let handoff = crate::util::target_dir().join("vm").join(format!("{set}-handoff"));
    let series = repo_root().join("xtests/guest/crashseries.sh");
    let total = st.iter().map(|s| s.n).max().unwrap_or(0) + 1;
    let mut boot = 0u32;
    while st.iter().any(CrashState::active) {
        boot += 1;
        // A failed verify costs its test a boot without a workload; more
        // boots than this mean the series is stuck.
        if boot > total.saturating_mul(2) {
            for s in st.iter_mut().filter(|s| s.active()) {
                s.failed = Some("the crash series did not finish".into());
            }
            break;
        }
        let delay = crash_delay(boot);
        let mut specs = Vec::new();
        let mut crashing = Vec::new();
        for (j, s) in st.iter().enumerate() {
            if !s.active() {
                continue;
            }
            let v = s.verify.map_or("-".to_string(), |v| v.to_string());
            let c = if s.next < s.n { s.next.to_string() } else { "-".to_string() };
            if c != "-" {
                crashing.push(j);
            }
            specs.push(vm::sh_quote(&format!(
                "{}:/dev/pmem{j}:{}:{v}:{c}",
                s.test.name,
                s.test.path.display()
            )));
        }
        let crash =
            (!crashing.is_empty()).then(|| vm::Crash { marker: "@@crash-armed".into(), delay });
        let what = if crashing.is_empty() {
            "verify only".to_string()
        } else {
            format!("kill {} ms after the workloads are armed", delay.as_millis())
        };
        say!("test: crash series [{flavour}]: boot {boot} (of about {total}): {what}");
        let cmd = format!(
            "sh {} {} {}",
            series.display(),
            vm::sh_quote(&handoff.display().to_string()),
            specs.join(" ")
        );
        let out = match vm::run(&cfg, &format!("crash-{flavour}-{boot}"), &cmd, crash.as_ref()) {
            Ok(o) => o,
            Err(e) => {
                for s in st.iter_mut().filter(|s| s.active()) {
                    s.failed = Some(format!("boot {boot}: {e:#}"));
                }
                break;
            }
        };
        let console = fs::read_to_string(out.log_dir.join("console.log")).unwrap_or_default();
        let printed = |line: &str| {
            out.output.lines().chain(console.lines()).any(|l| l.trim_end().ends_with(line))
        };
        let logs = out.log_dir.display().to_string();
        let mut verify_failed = false;
        for s in st.iter_mut().filter(|s| s.active()) {
            let Some(v) = s.verify else { continue };
            if printed(&format!("@@crash-verified {} {v}", s.test.name)) {
                s.verify = None;
            } else {
                verify_failed = true;
                let delay = s
                    .delay
                    .map_or(String::new(), |d| format!(" (kill after {} ms)", d.as_millis()));
                s.failed = Some(format!(
                    "iteration {v}{delay}: verify failed: {} (logs: {logs})",
                    out.describe()
                ));
            }
        }
        if !out.clean_log() || out.timed_out {
            for s in st.iter_mut().filter(|s| s.active()) {
                s.failed = Some(format!("boot {boot}: {} (logs: {logs})", out.describe()));
            }
            break;
        }
        if verify_failed {
            continue; // the workloads did not start; the others rerun theirs
        }
        if !out.crashed && out.status != Some(0) {
            for &j in &crashing {
                let s = &mut st[j];
                if printed(&format!("@@crash-workload-failed {}", s.test.name))
                    || crashing.len() == 1
                {
                    s.failed = Some(format!(
                        "iteration {}: workload: {} (logs: {logs})",
                        s.next,
                        out.describe()
                    ));
                }
            }
            if st.iter().filter(|s| s.active()).all(|s| s.verify.is_none() && s.next >= s.n) {
                break;
            }
        }
        // Hand each workload's files to the next boot.
        for &j in &crashing {
            let s = &mut st[j];
            if s.failed.is_some() {
                continue;
            }
            let to = handoff.join(&s.test.name);
            let _ = fs::remove_dir_all(&to);
            if let Err(e) = copy_dir(&out.log_dir.join(&s.test.name), &to) {
                s.failed = Some(format!("boot {boot}: saving the workload's files: {e:#}"));
                continue;
            }
            s.verify = Some(s.next);
            s.delay = Some(delay);
            s.next += 1;
        }
    }
    vm::drop_big_images(&cfg);
    for s in st {
        match s.failed {
            None => {
                t.passed += 1;
                println!("PASS  {} ({} crashes)", s.label, s.n);
            }
            Some(f) => {
                t.failed += 1;
                println!("FAIL  {}: {f}", s.label);
                t.failures.push(format!("{}: {f}", s.label));
            }
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn libtest_counts() {
        let out = "running 3 tests\n\
                   test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                   test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(count_libtest(out), (5, 1, 1));
    }

    #[test]
    fn header_parsing() {
        let text = "#!/bin/sh\n# Loads and unloads novars.ko.\n# flavours: normal debug\n# nvdimms: 2\n# size: 512M\n# fresh: yes\n# timeout: 60\n# cost: 40 100\nset -e\n# flavours: ignored after code\n";
        let t = parse_test("x", Path::new("/x.sh"), text).unwrap();
        assert_eq!(t.about, "Loads and unloads novars.ko.");
        assert_eq!(t.flavours, vec![Flavour::Normal, Flavour::Debug]);
        assert_eq!((t.nvdimms, t.size_mib, t.fresh), (2, 512, true));
        assert_eq!(t.timeout, Duration::from_secs(60));
        assert_eq!((t.cost, t.cost_debug), (40, Some(100)));
        assert_eq!(test_cost(&t, Flavour::Debug), 100);
        let t = parse_test("z", Path::new("/z.sh"), "# z\n# cost: 20\n").unwrap();
        assert_eq!((test_cost(&t, Flavour::Normal), test_cost(&t, Flavour::Debug)), (20, 60));
        assert!(parse_test("y", Path::new("/y.sh"), "# flavours: fast\n").is_err());
    }

    #[test]
    fn header_values_from_the_environment() {
        assert_eq!(header_value("160G"), "160G");
        assert_eq!(header_value("${NOVARS_XT_UNSET_FOR_TEST:-160G}"), "160G");
        std::env::set_var("NOVARS_XT_SET_FOR_TEST", "256G");
        assert_eq!(header_value("${NOVARS_XT_SET_FOR_TEST:-160G}"), "256G");
        let t = parse_test(
            "b",
            Path::new("/b.sh"),
            "# b\n# size: ${NOVARS_XT_SET_FOR_TEST:-160G}\n# memory: 2G\n",
        )
        .unwrap();
        assert_eq!((t.size_mib, t.ram_mib), (256 * 1024, 2048));
    }

    #[test]
    fn groups_split_to_balance_lanes() {
        let mk = |name: &str, cost: u64| {
            let mut t = parse_test(name, Path::new("/t.sh"), "# t\n").unwrap();
            t.cost = cost;
            t
        };
        let tests = [mk("a", 300), mk("b", 200), mk("c", 150), mk("d", 100), mk("e", 50)];
        let group: Vec<&VmTest> = tests.iter().collect();
        let chunks = split_group(&group, Flavour::Normal, 2);
        assert_eq!(chunks.len(), 2);
        let load = |c: &Vec<&VmTest>| c.iter().map(|v| v.cost).sum::<u64>();
        assert_eq!((load(&chunks[0]), load(&chunks[1])), (400, 400), "{chunks:?}");
        assert!(
            chunks.iter().all(|c| c.windows(2).all(|w| w[0].name < w[1].name)),
            "name order kept"
        );
        // One lane, or too little work for a second boot: one group.
        assert_eq!(split_group(&group, Flavour::Normal, 1).len(), 1);
        let small = [mk("f", 20), mk("g", 20)];
        let small: Vec<&VmTest> = small.iter().collect();
        assert_eq!(split_group(&small, Flavour::Normal, 2).len(), 1);
        // A debug boot costs five minutes: 40 minutes of debug work stay
        // in one boot, an hour is worth two.
        assert_eq!(split_group(&group, Flavour::Debug, 2).len(), 1);
        let big = [mk("h", 600), mk("i", 600)];
        let big: Vec<&VmTest> = big.iter().collect();
        assert_eq!(split_group(&big, Flavour::Debug, 2).len(), 2);
    }

    #[test]
    fn a_fresh_test_shares_a_boot_and_runs_first() {
        let mk = |name: &str, fresh: bool| {
            let mut t = parse_test(name, Path::new("/t.sh"), "# t\n").unwrap();
            (t.cost, t.fresh) = (100, fresh);
            t
        };
        let tests = [mk("a", false), mk("b", false), mk("z", true), mk("y", true)];
        let all: Vec<&VmTest> = tests.iter().collect();
        // On debug, at most one fresh test a boot: y gets a boot of its own.
        let groups = boot_groups(&all, Flavour::Debug);
        let names: Vec<Vec<String>> =
            groups.iter().map(|g| g.iter().map(|v| v.name.clone()).collect()).collect();
        assert_eq!(names, [vec!["a", "b", "z"], vec!["y"]]);
        // In its boot the fresh test comes first, whatever its name.
        for lanes in [1, 2] {
            let chunks = split_group(&groups[0], Flavour::Debug, lanes);
            let with_z = chunks.iter().find(|c| c.iter().any(|v| v.fresh)).unwrap();
            assert_eq!(with_z[0].name, "z", "{lanes} lanes: {chunks:?}");
        }
        // On normal, every fresh test has a boot of its own.
        let groups = boot_groups(&all, Flavour::Normal);
        assert_eq!(groups.len(), 3, "{groups:?}");
    }

    #[test]
    fn registry_parses_every_test() {
        let tests = registry().unwrap();
        assert!(tests.iter().any(|t| t.name == "module_load"), "{tests:?}");
        for t in &tests {
            assert!(!t.about.is_empty(), "{}: first comment line must say what it proves", t.name);
        }
    }
}
