//! The `novars-crashcheck` command line.
//!
//! ```text
//! novars-crashcheck --base BEFORE.img --trace TRACE.bin [--max-random N] [--seed S] [--json]
//!                   [--only ID [--dump FILE]] [--max-findings N]
//! ```
//!
//! Exit status: 0 no violation; 1 violations found (or, with `--only`, that
//! image violates); 8 the inputs cannot be checked (unreadable files,
//! malformed or overflowed trace); 16 usage error.

use std::path::PathBuf;

use clap::Parser;

use crate::replay::{self, Config, DEFAULT_SEED};
use crate::trace;

/// Exit statuses.
pub mod exit {
    pub const OK: i32 = 0;
    pub const VIOLATIONS: i32 = 1;
    pub const OPERATIONAL: i32 = 8;
    pub const USAGE: i32 = 16;
}

/// Checks every crash image a persistence trace of novars can leave.
#[derive(Parser, Debug)]
#[command(name = "novars-crashcheck", version)]
pub struct Args {
    /// The device image as it was before the traced workload.
    #[arg(long, value_name = "BEFORE.img")]
    pub base: PathBuf,
    /// The persistence trace (layout::trace format).
    #[arg(long, value_name = "TRACE.bin")]
    pub trace: PathBuf,
    /// Random crash states per crash point, beyond the systematic ones.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_random: usize,
    /// Seed of the random crash states.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check only the crash image with this id (from a report).
    #[arg(long, value_name = "ID")]
    pub only: Option<u64>,
    /// With --only: write that crash image (before recovery) to FILE, for
    /// mounting in the VM.
    #[arg(long, value_name = "FILE", requires = "only")]
    pub dump: Option<PathBuf>,
    /// Violations described in full (all are counted).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_findings: usize,
}

/// Runs the command; returns the exit status.
pub fn main_with(args: Args) -> i32 {
    let fail = |msg: String| {
        eprintln!("novars-crashcheck: {msg}");
        exit::OPERATIONAL
    };
    let base = match std::fs::read(&args.base) {
        Ok(b) => b,
        Err(e) => return fail(format!("{}: {e}", args.base.display())),
    };
    let bytes = match std::fs::read(&args.trace) {
        Ok(b) => b,
        Err(e) => return fail(format!("{}: {e}", args.trace.display())),
    };
    let t = match trace::parse(&bytes) {
        Ok(t) => t,
        Err(e) => return fail(format!("{}: {e}", args.trace.display())),
    };
    let cfg = Config {
        max_random: args.max_random,
        seed: args.seed,
        only: args.only,
        dump: args.dump.is_some(),
        max_findings: args.max_findings,
    };
    let out = match replay::run(base, &t, &cfg) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let repro = |id: u64| {
        format!(
            "novars-crashcheck --base {} --trace {} --seed {} --max-random {} --only {id} --dump crash-{id}.img",
            args.base.display(),
            args.trace.display(),
            args.seed,
            args.max_random
        )
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out.report.json(&repro)).unwrap_or_default());
    } else {
        print!("{}", out.report.text(&repro));
    }
    if let (Some(path), Some(img)) = (&args.dump, &out.image) {
        if let Err(e) = std::fs::write(path, img) {
            return fail(format!("{}: {e}", path.display()));
        }
        if !args.json {
            println!("image {} written to {}", args.only.unwrap_or(0), path.display());
        }
    }
    if out.report.violations > 0 {
        exit::VIOLATIONS
    } else {
        exit::OK
    }
}

/// Parses the process arguments and runs.
pub fn main() -> i32 {
    match Args::try_parse() {
        Ok(a) => main_with(a),
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            code
        }
    }
}
