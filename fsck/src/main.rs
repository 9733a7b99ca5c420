//! `fsck.novars [-n|-p|-a|-y] [-f] [-t[t]] [--json] DEVICE|IMAGE`
//!
//! Exit status as fsck(8), the sum of: 0 no errors, 1 errors corrected,
//! 4 errors left uncorrected, 8 operational error, 16 usage error,
//! 32 cancelled by the user.
//!
//! Without `-n`, `-p`/`-a` or `-y`, fsck asks about every problem when
//! stdin is a terminal; without a terminal it checks read-only and says so.
//! An open journal transaction is rolled back (in memory with `-n`) as the
//! kernel would at mount; that and freeing orphans are notes, not errors:
//! they do not change the exit status.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use layout::inode::Timespec;
use novars_fsck::check::exit;
use novars_fsck::device::{is_mounted, Device};
use novars_fsck::direct::ReadBlocks;
use novars_fsck::{check_with_reader, Answer, Events, Mode, Options, Outcome, Problem};
use serde_json::json;

/// Check and repair a novars file system.
#[derive(Parser, Debug)]
#[command(
    name = "fsck.novars",
    version,
    about = "Check and repair a novars persistent-memory file system"
)]
struct Args {
    /// Check only: open read-only, change nothing, answer no.
    #[arg(short = 'n', conflicts_with_all = ["preen", "auto", "yes"])]
    no: bool,
    /// Repair what is safe without asking (preen).
    #[arg(short = 'p', conflicts_with = "yes")]
    preen: bool,
    /// Same as -p.
    #[arg(short = 'a', conflicts_with = "yes")]
    auto: bool,
    /// Repair everything, answering yes.
    #[arg(short = 'y')]
    yes: bool,
    /// Check fully even if the file system is clean.
    #[arg(short = 'f')]
    force: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Print timing and peak memory at the end (as e2fsck -t); twice: per
    /// pass too.
    #[arg(short = 't', action = clap::ArgAction::Count)]
    timing: u8,
    /// Block device or image file.
    device: PathBuf,
}

/// Prints problems (text mode), asks (interactive), shows progress on a
/// terminal stderr.
struct Cli {
    json: bool,
    progress: bool,
    asked: bool,
    pass_name: String,
    last_pct: u64,
    shown: bool,
}

impl Cli {
    fn clear_progress(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

impl Events for Cli {
    fn pass(&mut self, pass: u8, name: &str) {
        self.pass_name = format!("Pass {pass}: {name}");
        self.last_pct = u64::MAX;
        if self.progress {
            eprint!("\r\x1b[K{}", self.pass_name);
            self.shown = true;
        }
    }

    fn progress(&mut self, _pass: u8, done: u64, total: u64) {
        if !self.progress || total == 0 {
            return;
        }
        let pct = done.saturating_mul(100) / total;
        if pct != self.last_pct {
            self.last_pct = pct;
            eprint!("\r\x1b[K{} {pct:3}%", self.pass_name);
            self.shown = true;
        }
    }

    fn ask(&mut self, p: &Problem) -> Answer {
        self.clear_progress();
        let stdin = io::stdin();
        loop {
            print!("{} Repair: {}. Fix<y>? ", p.headline(), p.action);
            let _ = io::stdout().flush();
            let mut line = String::new();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => {
                    println!();
                    self.asked = true;
                    return Answer::Quit;
                }
                Ok(_) => {}
            }
            self.asked = true;
            match line.trim().to_ascii_lowercase().as_str() {
                "" | "y" | "yes" => return Answer::Yes,
                "n" | "no" => return Answer::No,
                "a" | "all" => return Answer::All,
                "q" | "quit" => return Answer::Quit,
                _ => println!(
                    "Answer y(es), n(o), a(ll: yes to everything) or q(uit, writing nothing)."
                ),
            }
        }
    }

    fn problem(&mut self, p: &Problem) {
        if self.json {
            return;
        }
        self.clear_progress();
        if std::mem::take(&mut self.asked) {
            println!("  {}", p.outcome());
        } else {
            println!("{p}");
        }
    }

    fn info(&mut self, msg: &str) {
        if self.json {
            return;
        }
        self.clear_progress();
        println!("{msg}");
    }
}

fn now() -> Timespec {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec::new(d.as_secs() as i64, d.subsec_nanos())
}

/// One malloc arena that grows in big steps. The check's threads each
/// allocate a record per inode; glibc gives every thread an arena of its
/// own that grows by an `mprotect` per page-sized step (a fifth of a
/// 100,000-file check's time went to `sysmalloc`, `mprotect` and their
/// faults). The main arena grows by `brk`, padded by `M_TOP_PAD`.
fn tune_malloc() {
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets allocator parameters; called first thing
    // in main, before any thread exists. A refused value changes nothing.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    ExitCode::from(run(&args) as u8)
}

fn run(args: &Args) -> i32 {
    let dev_name = args.device.display().to_string();
    let mut note = None;
    let mode = if args.no {
        Mode::ReadOnly
    } else if args.yes {
        Mode::Yes
    } else if args.preen || args.auto {
        Mode::Preen
    } else if io::stdin().is_terminal() && !args.json {
        Mode::Interactive
    } else {
        note = Some("no terminal to ask on and no -p or -y given: checking read-only (as -n)");
        Mode::ReadOnly
    };
    let t0 = Instant::now();
    let fail = |msg: String, mode: Mode| -> i32 {
        if args.json {
            let v = json!({
                "device": dev_name, "mode": mode.name(), "passes": [], "problems": [],
                "error": msg, "exit_code": exit::OPERATIONAL,
            });
            println!("{v}");
        } else {
            eprintln!("fsck.novars: {msg}");
        }
        exit::OPERATIONAL
    };
    if is_mounted(&args.device) {
        if mode.writes() {
            return fail(format!("{dev_name} is mounted; refusing to repair it"), mode);
        }
        if !args.json {
            eprintln!("fsck.novars: warning: {dev_name} is mounted; the check may report problems that are not there");
        }
    }
    let dev = match Device::open(&args.device, mode.writes()) {
        Ok(d) => d,
        Err(e) => return fail(e, mode),
    };
    if let (Some(n), false) = (note, args.json) {
        println!("fsck.novars: {n}");
    }
    let mut cli = Cli {
        json: args.json,
        progress: io::stderr().is_terminal() && !args.json,
        asked: false,
        pass_name: String::new(),
        last_pct: u64::MAX,
        shown: false,
    };
    // NOVARS_FSCK_THREADS=N: threads for the parallel parts (0 or unset:
    // automatic); for measurements, the result never depends on it.
    let threads =
        std::env::var("NOVARS_FSCK_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let opts = Options { mode, force: args.force, now: now(), threads };
    let direct = dev.direct_reader();
    let reader = direct.as_ref().map(|r| r as &dyn ReadBlocks);
    let mut out = check_with_reader(dev.bytes(), reader, &opts, &mut cli);
    cli.clear_progress();
    let mut write_error = None;
    if !out.writes.is_empty() && mode.writes() && !out.cancelled {
        if let Err(e) = dev.write_back(&out.writes) {
            write_error = Some(format!("writing repairs to {dev_name} failed: {e}"));
            out.exit_code |= exit::OPERATIONAL;
        }
    }
    let elapsed = t0.elapsed();
    let usage = Usage::now();
    if args.json {
        print_json(&dev_name, mode, &out, write_error.as_deref(), elapsed.as_secs_f64(), &usage);
    } else {
        print_text(&dev_name, &out, write_error.as_deref());
        if args.timing > 1 {
            for p in &out.passes {
                println!("Pass {} ({}): time {:.3} s", p.pass, p.name, p.millis as f64 / 1000.0);
            }
        }
        if args.timing > 0 {
            // e2fsck -t: "Memory used: ..., time: real/user/sys".
            println!(
                "Memory used: {}k peak RSS ({}k heap), time: {:5.2}/{:5.2}/{:5.2}",
                usage.max_rss_kib,
                usage.heap_kib,
                elapsed.as_secs_f64(),
                usage.user_secs,
                usage.sys_secs
            );
        }
    }
    out.exit_code
}

/// Resources the process has used so far (getrusage).
struct Usage {
    /// Peak resident set size, KiB (mapped image pages included).
    max_rss_kib: u64,
    /// Resident anonymous memory now (the heap: the model fsck built;
    /// not the mapped image), KiB; 0 if /proc is not there.
    heap_kib: u64,
    user_secs: f64,
    sys_secs: f64,
}

impl Usage {
    #[allow(unsafe_code)]
    fn now() -> Self {
        // SAFETY: an all-zero `rusage` is a valid value of the plain C
        // struct; getrusage only writes into the struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is valid.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
        let heap_kib = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let l = s.lines().find(|l| l.starts_with("RssAnon:"))?;
                l.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        if !ok {
            return Self { max_rss_kib: 0, heap_kib, user_secs: 0.0, sys_secs: 0.0 };
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Self {
            max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
            heap_kib,
            user_secs: secs(ru.ru_utime),
            sys_secs: secs(ru.ru_stime),
        }
    }
}

fn print_text(dev: &str, out: &Outcome, write_error: Option<&str>) {
    if let Some(f) = &out.fatal {
        eprintln!("fsck.novars: {dev}: {f}");
    }
    if let Some(e) = write_error {
        eprintln!("fsck.novars: {e}");
    }
    if out.fatal.is_some() {
        return;
    }
    let c = &out.counts;
    if out.quick_clean {
        println!(
            "{dev}: clean, {}/{} files, {}/{} blocks",
            c.inodes_used, c.inodes_total, c.blocks_used, c.blocks_total
        );
        return;
    }
    if out.cancelled {
        println!("{dev}: check cancelled; nothing written");
        return;
    }
    if out.exit_code & exit::CORRECTED != 0 || (!out.writes.is_empty() && write_error.is_none()) {
        println!("\n{dev}: ***** FILE SYSTEM WAS MODIFIED *****");
    }
    if out.exit_code & exit::UNCORRECTED != 0 {
        println!("\n{dev}: ********** WARNING: file system still has errors **********");
    }
    println!(
        "{dev}: {}/{} files, {}/{} blocks",
        c.inodes_used, c.inodes_total, c.blocks_used, c.blocks_total
    );
}

fn print_json(
    dev: &str,
    mode: Mode,
    out: &Outcome,
    write_error: Option<&str>,
    secs: f64,
    usage: &Usage,
) {
    let passes: Vec<_> = out
        .passes
        .iter()
        .map(|p| json!({"pass": p.pass, "name": p.name, "problems": p.problems, "millis": p.millis as u64}))
        .collect();
    let problems: Vec<_> = out
        .problems
        .iter()
        .map(|p| {
            json!({
                "code": p.code.name(), "pass": p.pass, "subject": p.subject, "message": p.message,
                "action": p.action, "note": p.is_note(), "fixed": p.fixed(), "outcome": p.outcome(),
            })
        })
        .collect();
    let c = &out.counts;
    let v = json!({
        "device": dev,
        "mode": mode.name(),
        "clean": out.quick_clean,
        "passes": passes,
        "problems": problems,
        "summary": {
            "errors": out.errors(),
            "fixed": out.fixed(),
            "notes": out.problems.iter().filter(|p| p.is_note()).count(),
            "inodes_used": c.inodes_used, "inodes_total": c.inodes_total,
            "blocks_used": c.blocks_used, "blocks_total": c.blocks_total,
            "blocks_written": out.writes.len(),
            "seconds": secs,
            "user_seconds": usage.user_secs,
            "sys_seconds": usage.sys_secs,
            "peak_rss_kib": usage.max_rss_kib,
            "heap_kib": usage.heap_kib,
        },
        "error": out.fatal.clone().or(write_error.map(str::to_string)),
        "cancelled": out.cancelled,
        "exit_code": out.exit_code,
    });
    println!("{v}");
}
