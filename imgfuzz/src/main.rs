//! `novars-imgfuzz`: hostile images of a base image, for the kernel's VM
//! fuzz (`xtests/guest/fuzzimg.py`).
//!
//! ```text
//! novars-imgfuzz cases SEED COUNT      the named regressions, then SEED:0 .. SEED:COUNT-1
//! novars-imgfuzz write BASE CASE OUT   the image of CASE written over OUT (a file or
//!                                      a block device), synced; prints what CASE did
//! ```
//!
//! Exit status: 0 done, 1 an error (a bad base image, an unwritable OUT),
//! 2 usage.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use novars_imgfuzz::{Base, Case, Image};

#[derive(Parser)]
#[command(name = "novars-imgfuzz", about = "Hostile images of a novars base image")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Lists the cases of a run, one a line: the named regressions, then
    /// COUNT random cases of SEED.
    Cases { seed: u64, count: u64 },
    /// Writes the image of CASE (a name or SEED:INDEX) of BASE over OUT.
    Write {
        base: PathBuf,
        #[arg(value_parser = |s: &str| s.parse::<Case>())]
        case: Case,
        out: PathBuf,
    },
}

fn write(base: &PathBuf, case: Case, out: &PathBuf) -> Result<String, String> {
    let bytes = std::fs::read(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let base = Base::new(bytes).map_err(|e| format!("{}: {e}", base.display()))?;
    let mut img = Image::new(base.bytes());
    let what = base.mutate(case, &mut img);
    let show = out.display();
    // No truncation: OUT may be the block device the guest mounts.
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(out)
        .map_err(|e| format!("{show}: {e}"))?;
    f.write_all_at(img.bytes(), 0).map_err(|e| format!("{show}: {e}"))?;
    f.sync_all().map_err(|e| format!("{show}: {e}"))?;
    Ok(what)
}

fn main() -> ExitCode {
    match Args::parse().cmd {
        Cmd::Cases { seed, count } => {
            for c in Case::all(seed, count) {
                println!("{c}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Write { base, case, out } => match write(&base, case, &out) {
            Ok(what) => {
                println!("{case}: {what}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("novars-imgfuzz: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
