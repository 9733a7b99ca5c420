//! Base images and helpers shared by the integration tests.
#![allow(dead_code)]

use crashcheck::synth::{mark_mounted, Faults, Synth};
use crashcheck::{trace, Config, Report};
use layout::inode::{S_IFDIR, S_IFREG};
use layout::Timespec;
use novars_mkfs::{Attrs, Builder, Options};

/// A mounted 4 MiB image with two lanes:
/// `/a/{f1 (5000 bytes), old}`, `/b`, `/c` (empty, no log), `/e` (empty
/// directory, no log), `/full` (a directory whose log page is full: the
/// next name needs a new page), `/lost+found`.
pub fn base() -> Vec<u8> {
    let mut img = vec![0u8; 4 << 20];
    let mut o = Options::defaults((img.len() / 4096) as u64, 2);
    o.seg_inodes = 64;
    let mut b = Builder::format(&mut img, o).unwrap();
    let t = Timespec::new(1_600_000_000, 0);
    let dir = Attrs::new(S_IFDIR | 0o755, 0, 0, t);
    let file = Attrs::new(S_IFREG | 0o644, 0, 0, t);
    let r = b.root();
    let a = b.mkdir(r, b"a", dir).unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    b.add_file(a, b"f1", file, &data).unwrap();
    b.add_file(a, b"old", file, b"old contents").unwrap();
    b.mkdir(r, b"b", dir).unwrap();
    b.add_file(r, b"c", file, b"").unwrap();
    b.mkdir(r, b"e", dir).unwrap();
    let full = b.mkdir(r, b"full", dir).unwrap();
    // 13 entries of 296 bytes fill 3848 of the 4032 bytes of a log page.
    for i in 0..13 {
        let name = format!("{i:02}{}", "n".repeat(242));
        b.add_file(full, name.as_bytes(), file, b"").unwrap();
    }
    b.finish().unwrap();
    mark_mounted(&mut img).unwrap();
    img
}

/// A long name for `/full`, which does not fit in its first log page.
pub fn long_name(i: u32) -> String {
    format!("x{i:02}{}", "n".repeat(241))
}

/// Runs the checker over `trace` from `base`.
pub fn check(base: &[u8], trace: &[u8], cfg: &Config) -> Report {
    let t = trace::parse(trace).unwrap();
    crashcheck::run(base.to_vec(), &t, cfg).unwrap().report
}

/// The checker's default configuration with fewer random states.
pub fn quick() -> Config {
    Config { max_random: 8, ..Config::default() }
}

/// A synth over `base` with `faults`.
pub fn synth(base: &[u8], faults: Faults) -> Synth {
    Synth::new(base, faults).unwrap()
}
