//! Writes a base image and a synthetic trace, for trying the CLI:
//!
//! ```text
//! cargo run -p crashcheck --example synth -- DIR [FAULT]
//! novars-crashcheck --base DIR/base.img --trace DIR/trace.bin
//! ```
//!
//! FAULT is one of `none` (default), `drop-flush:OP:N`, `drop-fence:OP:N`,
//! `tail-before-entry`, `dentry-in-place`, `rename-without-journal`.

use crashcheck::synth::{mark_mounted, Faults, Synth};
use layout::inode::{S_IFDIR, S_IFREG};
use layout::Timespec;
use novars_mkfs::{Attrs, Builder, Options};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: synth DIR [FAULT]")?;
    let fault = args.next().unwrap_or_else(|| "none".into());
    let mut faults = Faults::default();
    let nums = |s: &str| -> Result<(u32, usize), String> {
        let mut it = s.split(':').skip(1);
        let op = it.next().and_then(|x| x.parse().ok()).ok_or("OP")?;
        let n = it.next().and_then(|x| x.parse().ok()).ok_or("N")?;
        Ok((op, n))
    };
    match fault.as_str() {
        "none" => {}
        "tail-before-entry" => faults.tail_before_entry = true,
        "dentry-in-place" => faults.dentry_in_place = true,
        "rename-without-journal" => faults.rename_without_journal = true,
        f if f.starts_with("drop-flush:") => faults.drop_flush = Some(nums(f)?),
        f if f.starts_with("drop-fence:") => faults.drop_fence = Some(nums(f)?),
        f => return Err(format!("unknown fault {f}")),
    }
    let mut img = vec![0u8; 4 << 20];
    let mut o = Options::defaults((img.len() / 4096) as u64, 2);
    o.seg_inodes = 64;
    let mut b = Builder::format(&mut img, o).map_err(|e| e.to_string())?;
    let t = Timespec::new(1_600_000_000, 0);
    let r = b.root();
    let a = b.mkdir(r, b"a", Attrs::new(S_IFDIR | 0o755, 0, 0, t)).map_err(|e| e.to_string())?;
    let file = Attrs::new(S_IFREG | 0o644, 0, 0, t);
    b.add_file(a, b"f1", file, &[3; 5000]).map_err(|e| e.to_string())?;
    b.add_file(a, b"old", file, b"old contents").map_err(|e| e.to_string())?;
    b.mkdir(r, b"b", Attrs::new(S_IFDIR | 0o755, 0, 0, t)).map_err(|e| e.to_string())?;
    b.finish().map_err(|e| e.to_string())?;
    mark_mounted(&mut img)?;
    let mut s = Synth::new(&img, faults)?;
    s.create("/a/new")?;
    s.write("/a/new", 0, b"hello world")?;
    s.write("/a/f1", 5000, &[4; 3000])?;
    s.rename("/a/f1", "/a/old")?;
    s.rename("/a/new", "/b/new")?;
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(format!("{dir}/base.img"), &img).map_err(|e| e.to_string())?;
    std::fs::write(format!("{dir}/trace.bin"), s.trace()).map_err(|e| e.to_string())?;
    for o in s.ops() {
        println!(
            "op {} ({}): flushes {:?}; fences {:?}",
            o.nr,
            crashcheck::trace::op_name(o.code),
            o.flushes,
            o.fences
        );
    }
    Ok(())
}
