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
    // On a block device (the guest's pmem), only the blocks that differ
    // from what is there: writing and syncing all 8 MiB through the page
    // cache was most of an image's time under TCG.
    if let Ok(true) = write_changed(out, img.bytes()) {
        return Ok(what);
    }
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

/// Writes the 4 KiB blocks of `bytes` that differ from what `out` holds,
/// with O_DIRECT (no page cache: what the kernel maps through DAX and what
/// fsck reads agree). Ok(false): `out` is no block device or has no
/// O_DIRECT; the caller writes it all.
fn write_changed(out: &PathBuf, bytes: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    const BS: usize = 4096;
    if !std::fs::metadata(out)?.file_type().is_block_device() || !bytes.len().is_multiple_of(BS) {
        return Ok(false);
    }
    let f = match OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(out) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(e) => return Err(e),
    };
    // O_DIRECT wants block-aligned buffers.
    let layout =
        std::alloc::Layout::from_size_align(bytes.len(), BS).map_err(std::io::Error::other)?;
    struct Aligned(*mut u8, std::alloc::Layout);
    impl Drop for Aligned {
        fn drop(&mut self) {
            // SAFETY: allocated below with this layout, freed once.
            unsafe { std::alloc::dealloc(self.0, self.1) }
        }
    }
    // SAFETY: a non-zero size (a file system image), checked for null.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return Err(std::io::ErrorKind::OutOfMemory.into());
    }
    let buf = Aligned(p, layout);
    // SAFETY: `buf` owns `bytes.len()` initialized (zeroed) bytes at `p`.
    let cur = unsafe { std::slice::from_raw_parts_mut(buf.0, bytes.len()) };
    f.read_exact_at(cur, 0)?;
    for (i, (have, want)) in cur.chunks_exact_mut(BS).zip(bytes.chunks_exact(BS)).enumerate() {
        if have != want {
            have.copy_from_slice(want);
            f.write_all_at(have, (i * BS) as u64)?;
        }
    }
    f.sync_all()?;
    Ok(true)
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
