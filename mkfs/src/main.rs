//! `mkfs.novars`: create a novars file system on a pmem device or an image
//! file, after erasing what other file systems left there (`wipe`). Exit
//! status: 0 success, 1 failure or refusal (as mke2fs).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use layout::inode::Timespec;
use layout::sb::{Geometry, Superblock, INODES_PER_BLOCK, MAX_LANES};
use layout::BLOCK_SIZE_U64;
use novars_mkfs::populate::populate_dir;
use novars_mkfs::wipe::{self, Signature};
use novars_mkfs::{parse_size, Builder, Options};

/// Create a novars file system.
#[derive(Parser, Debug)]
#[command(name = "mkfs.novars", version, about = "Create a novars persistent-memory file system")]
struct Args {
    /// Volume label (at most 63 bytes).
    #[arg(short = 'L', long = "label")]
    label: Option<String>,
    /// Volume UUID (8-4-4-4-12 hex), `random` (default) or `clear`.
    #[arg(short = 'U', long = "uuid")]
    uuid: Option<String>,
    /// Lanes: per-CPU journals and inode tables, fixed for the life of the
    /// file system (any CPU count works at mount). Default: online CPUs.
    #[arg(short = 'l', long = "lanes")]
    lanes: Option<u32>,
    /// Initial number of inodes: the size of each lane's inode-table
    /// segments (the module adds segments as files are created).
    /// Default: one per 16 KiB.
    #[arg(short = 'N', long = "inodes")]
    inodes: Option<u64>,
    /// Features, comma-separated, `^` to turn one off (as mke2fs):
    /// `slot_log` (on by default) keeps a small file's first log entries in
    /// its inode record; `^slot_log` makes an image older modules mount.
    #[arg(short = 'O', long = "features")]
    features: Option<String>,
    /// Overwrite an existing file system without asking. Every other file
    /// system's superblocks, backups and mirrors are erased in any case.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Dry run: print what would be created and erased, write nothing.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Quiet: print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Copy the contents of this directory into the new file system.
    #[arg(short = 'd', long = "root-directory")]
    root_dir: Option<PathBuf>,
    /// Block device or image file.
    device: PathBuf,
    /// Size (bytes, or with k/M/G/T suffix). Required to create an image
    /// file; resizes an existing one; may shrink a device's use.
    size: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("mkfs.novars: {msg}");
            ExitCode::from(1)
        }
    }
}

fn now() -> Timespec {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec::new(d.as_secs() as i64, d.subsec_nanos())
}

fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    match s {
        "random" | "time" => return random_uuid(),
        "clear" | "null" => return Ok([0; 16]),
        _ => {}
    }
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return Err(format!("invalid UUID '{s}'"));
    }
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("invalid UUID '{s}'"))?;
    }
    Ok(u)
}

fn random_uuid() -> Result<[u8; 16], String> {
    let mut u = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut u))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

/// Formats a UUID the usual way.
fn uuid_str(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    )
}

/// What an existing signature at the start of the device says.
fn probe_signature(f: &File, size: u64) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 0x10100.min(size as usize)];
    let n = f.read_at(&mut buf, 0).ok()?;
    let buf = &buf[..n];
    if Superblock::has_magic(buf) {
        let label = buf
            .get(..4096)
            .and_then(Superblock::decode)
            .and_then(|sb| {
                sb.label_str().filter(|l| !l.is_empty()).map(|l| format!(" labelled '{l}'"))
            })
            .unwrap_or_default();
        return Some(format!("a novars file system{label}"));
    }
    layout::sb::foreign_signature(buf).map(String::from)
}

/// Whether `dev` is mounted according to /proc/mounts.
fn is_mounted(dev: &Path) -> bool {
    let Ok(canon) = dev.canonicalize() else { return false };
    let Ok(m) = std::fs::read_to_string("/proc/mounts") else { return false };
    m.lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|src| Path::new(src).canonicalize().ok().as_deref() == Some(canon.as_path()))
}

fn ask_proceed() -> bool {
    eprint!("Proceed anyway? (y,N) ");
    let _ = io::stderr().flush();
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => {
            eprintln!("(no answer)");
            false
        }
        Ok(_) => line.trim_start().starts_with(['y', 'Y']),
    }
}

fn device_size(f: &File) -> Result<u64, String> {
    let mut size: u64 = 0;
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    // SAFETY: the ioctl writes one u64 into `size`, which outlives the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if r < 0 {
        return Err(format!("cannot get device size: {}", io::Error::last_os_error()));
    }
    Ok(size)
}

fn run(a: &Args) -> Result<(), String> {
    let dev = &a.device;
    let want = match &a.size {
        Some(s) => Some(parse_size(s).ok_or_else(|| format!("invalid size '{s}'"))?),
        None => None,
    };
    let md = std::fs::metadata(dev);
    let is_blk = md.as_ref().is_ok_and(|m| m.file_type().is_block_device());
    if md.is_err() && want.is_none() {
        return Err(format!(
            "{}: no such device or file; give a SIZE to create an image file",
            dev.display()
        ));
    }
    if is_blk && is_mounted(dev) {
        return Err(format!("{} is mounted; will not make a file system here!", dev.display()));
    }
    let mut oo = OpenOptions::new();
    oo.read(true).write(!a.dry_run);
    if is_blk {
        oo.custom_flags(libc::O_EXCL);
    } else if !a.dry_run {
        oo.create(true);
    }
    let f = oo.open(dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    let have =
        if is_blk { device_size(&f)? } else { f.metadata().map_err(|e| e.to_string())?.len() };
    let size = match want {
        Some(w) if is_blk && w > have => {
            return Err(format!(
                "{}: requested size {w} is larger than the device ({have} bytes)",
                dev.display()
            ))
        }
        Some(w) => w,
        None => have,
    };
    let blocks = size / BLOCK_SIZE_U64;
    // Every foreign signature where it can be, up to where the new file
    // system's device or image ends (an image shrunk loses the rest).
    let wipe_len = if is_blk { have } else { have.min(size) };
    let foreign = wipe::find(&f, wipe_len);
    let existing = probe_signature(&f, have)
        .or_else(|| foreign.iter().find(|s| s.is_primary()).map(|s| s.to_string()));
    if let Some(sig) = existing {
        if !a.force && !a.dry_run {
            eprintln!("{} appears to contain {sig}", dev.display());
            if !ask_proceed() {
                return Err("not overwriting the existing file system (use -f to force)".into());
            }
        }
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let lanes = a.lanes.unwrap_or(cpus.min(MAX_LANES));
    if lanes == 0 || lanes > MAX_LANES {
        return Err(format!("lanes must be 1..={MAX_LANES}"));
    }
    let mut opts = Options::defaults(blocks, lanes);
    if let Some(n) = a.inodes {
        let per =
            n.div_ceil(lanes as u64).div_ceil(INODES_PER_BLOCK as u64) * INODES_PER_BLOCK as u64;
        opts.seg_inodes =
            per.clamp(layout::sb::MIN_SEG_INODES as u64, layout::sb::MAX_SEG_INODES as u64) as u32;
    }
    opts.label = a.label.clone().unwrap_or_default();
    if opts.label.len() > 63 {
        return Err("label longer than 63 bytes".into());
    }
    opts.uuid = match &a.uuid {
        Some(u) => parse_uuid(u)?,
        None => random_uuid()?,
    };
    opts.now = now();
    for f in a.features.iter().flat_map(|f| f.split(',')).filter(|f| !f.is_empty()) {
        match f {
            "slot_log" => opts.slot_logs = true,
            "^slot_log" => opts.slot_logs = false,
            _ => return Err(format!("unknown feature '{f}' (known: slot_log)")),
        }
    }
    let mut geo = Geometry::plan(blocks, opts.lanes, opts.seg_inodes).map_err(|e| match e {
        layout::SbError::DeviceTooSmall { need, .. } => {
            format!(
                "{}: too small: {} bytes, need at least {} bytes",
                dev.display(),
                size,
                need * BLOCK_SIZE_U64
            )
        }
        e => format!("impossible geometry: {}", e.describe()),
    })?;
    geo.slot_logs = opts.slot_logs;
    if !a.quiet {
        print_geometry(dev, &geo, &opts);
    }
    if a.dry_run {
        if !a.quiet {
            report_erased(&foreign, "Would erase");
            println!("Dry run (-n): nothing written.");
        }
        return Ok(());
    }
    if !is_blk && have != size {
        f.set_len(size).map_err(|e| format!("{}: cannot resize to {size}: {e}", dev.display()))?;
    }
    // Before the format writes anything: a stale backup superblock of
    // another file system would otherwise outlive it, for e2fsck or
    // xfs_repair to "repair" novars with.
    wipe::erase(&f, wipe_len, &foreign)
        .map_err(|e| format!("{}: erasing old signatures: {e}", dev.display()))?;
    if !a.quiet {
        report_erased(&foreign, "Erased");
    }
    let t0 = Instant::now();
    let len = (blocks * BLOCK_SIZE_U64) as usize;
    // SAFETY: we own the only handle to this image; mkfs refuses mounted
    // devices (and opens them O_EXCL), so nothing else changes the mapping
    // while the builder writes it.
    let mut map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&f) }
        .map_err(|e| format!("{}: mmap: {e}", dev.display()))?;
    let mut b = Builder::format(&mut map, opts).map_err(|e| e.to_string())?;
    if let Some(d) = &a.root_dir {
        let c = populate_dir(&mut b, d).map_err(|e| format!("copying {}: {e}", d.display()))?;
        if !a.quiet {
            println!(
                "Copied from {}: {} files, {} directories, {} symlinks, {} hard links, {} special files, {} bytes, {} extended attributes",
                d.display(),
                c.files,
                c.dirs,
                c.symlinks,
                c.hardlinks,
                c.special,
                c.bytes,
                c.xattrs
            );
            if c.xattrs_skipped > 0 {
                println!(
                    "Not copied: {} extended attributes of namespaces novars does not keep",
                    c.xattrs_skipped
                );
            }
        }
    }
    let sum = b.finish().map_err(|e| e.to_string())?;
    map.flush().map_err(|e| format!("{}: flush: {e}", dev.display()))?;
    drop(map);
    f.sync_all().map_err(|e| format!("{}: sync: {e}", dev.display()))?;
    if !a.quiet {
        println!(
            "Writing superblocks and allocator record: done ({} of {} inodes used, {} blocks free, {:.3} s)",
            sum.inodes_used,
            sum.inodes_total,
            sum.blocks_free,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn report_erased(sigs: &[Signature], verb: &str) {
    for s in sigs {
        println!("{verb} {s}");
    }
}

fn print_geometry(dev: &Path, g: &Geometry, o: &Options) {
    let inodes = g.seg_inodes as u64 * g.lanes as u64;
    println!(
        "Creating novars file system on {} with {} 4k blocks ({} MiB) and {} inodes",
        dev.display(),
        g.blocks_count,
        g.blocks_count / 256,
        inodes
    );
    println!("Filesystem UUID: {}", uuid_str(&o.uuid));
    if !o.label.is_empty() {
        println!("Label: {}", o.label);
    }
    println!(
        "Lanes: {} (journal + inode table each); inode table: {} inodes per lane, growing by as many as needed",
        g.lanes, g.seg_inodes
    );
    println!(
        "Data blocks: {} (first {}), superblock backup at block {}",
        g.data_blocks(),
        g.first_data_block,
        g.backup_sb()
    );
    println!("Features: unwritten{}", if g.slot_logs { " slot_log" } else { "" });
}
