//! Hostile bytes: the check never panics, overflows or hangs on randomly
//! damaged images, and a `-y` repair leaves an image that checks clean.
//!
//! A small image is built once; each case flips bytes and overwrites 8-byte
//! words (with values chosen to look like block numbers, positions,
//! sequence numbers) in its metadata blocks: superblocks, journals, inode
//! tables, log pages, allocator record. Seeded, so a failure names its case.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use layout::{BLOCK_SIZE, BLOCK_SIZE_U64};
use novars_fsck::{apply_writes, check, Mode, Options, Quiet};

/// Cases of a default run; `NOVARS_HOSTILE_CASES=N` for more (the long
/// mode: `NOVARS_HOSTILE_CASES=100000 cargo test --release -p fsck --test
/// hostile`).
const CASES: u64 = 400;

fn cases() -> u64 {
    std::env::var("NOVARS_HOSTILE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES)
}

fn small_image() -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    for i in 0..40 {
        std::fs::write(d.join(format!("a/file{i}")), vec![i as u8; (i * 300) % 5000]).unwrap();
    }
    for i in 0..70 {
        std::fs::write(d.join(format!("a/b/name-number-{i:03}")), b"x").unwrap();
    }
    std::fs::hard_link(d.join("a/file3"), d.join("hl")).unwrap();
    std::os::unix::fs::symlink("a/file1", d.join("s")).unwrap();
    std::os::unix::fs::symlink("y".repeat(150), d.join("long-s")).unwrap();
    image_from_dir(d, 4 << 20, 2, 64)
}

/// Byte ranges that hold live metadata: superblocks, journal headers,
/// segment headers, live inode records, committed log bytes and page
/// tails, allocator-record headers and extents.
fn metadata_ranges(img: &Img) -> Vec<(u64, u64)> {
    let r = img.reader();
    let last = img.blocks() - 1;
    let mut v = vec![(0, 512), (last * BLOCK_SIZE_U64, 512)];
    for lane in 0..r.geo.lanes {
        v.push((r.geo.journal_block(lane) * BLOCK_SIZE_U64, 64));
    }
    for segs in &r.segments {
        for &s in segs {
            v.push((s * BLOCK_SIZE_U64, 64));
        }
    }
    let mut stack = vec![r.geo.root_ino];
    let mut seen = std::collections::HashSet::new();
    while let Some(ino) = stack.pop() {
        if !seen.insert(ino) {
            continue;
        }
        v.push((img.slot(ino), 256));
        let log = img.log(ino);
        for &p in &log.pages {
            v.push((p * BLOCK_SIZE_U64 + layout::log::LOG_AREA as u64, 64));
        }
        for &(pos, len, _) in &log.entries {
            v.push((pos, len as u64));
        }
        if let Some(l) = r.load(ino) {
            stack.extend(l.names.names.values().map(|d| d.ino));
        }
    }
    let mut b = r.sb.alloc_rec_head;
    while b != 0 && v.len() < 100_000 {
        v.push((b * BLOCK_SIZE_U64, 32 + 16 * 4));
        b = img.u64_at(b * BLOCK_SIZE_U64 + 24);
    }
    v
}

fn mutate(img: &mut [u8], meta: &[(u64, u64)], rng: &mut Rng) {
    let blocks = (img.len() / BLOCK_SIZE) as u64;
    for _ in 0..1 + rng.below(4) {
        let (start, len) = meta[rng.below(meta.len() as u64) as usize];
        match rng.below(8) {
            0 => {
                // A whole block copied over another (duplicated pages,
                // segments, records) or zeroed.
                let from = start / BLOCK_SIZE_U64;
                let (to, _) = meta[rng.below(meta.len() as u64) as usize];
                let to = (to / BLOCK_SIZE_U64) as usize * BLOCK_SIZE;
                if rng.below(2) == 0 {
                    let src = img[from as usize * BLOCK_SIZE..][..BLOCK_SIZE].to_vec();
                    img[to..to + BLOCK_SIZE].copy_from_slice(&src);
                } else {
                    img[to..to + BLOCK_SIZE].fill(0);
                }
            }
            1 | 2 => {
                let off = (start + rng.below(len)) as usize;
                img[off] ^= 1 << rng.below(8);
            }
            _ => {
                let off = ((start + rng.below(len)) & !7) as usize;
                let v = match rng.below(8) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => rng.below(blocks + 10),
                    3 => rng.below(blocks + 10) * BLOCK_SIZE_U64 + rng.below(4096),
                    4 => rng.below(1000),
                    5 => u64::from_le_bytes(img[off..off + 8].try_into().unwrap()).wrapping_add(1),
                    6 => layout::inode::INODE_LIVE,
                    _ => rng.next(),
                };
                img[off..off + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

fn run_cases() -> Vec<String> {
    let base = small_image();
    let meta = metadata_ranges(&Img::new(base.clone()));
    let mut notes = Vec::new();
    for case in 0..cases() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut img = base.clone();
        mutate(&mut img, &meta, &mut rng);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let first = check(&img, &Options::new(Mode::ReadOnly), &mut Quiet);
            let fix = check(&img, &Options::new(Mode::Yes), &mut Quiet);
            let mut repaired = img.clone();
            apply_writes(&mut repaired, &fix.writes);
            let again = check(&repaired, &Options::new(Mode::ReadOnly), &mut Quiet);
            (first, fix, again)
        }));
        let (first, fix, again) = match r {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(Box::new(format!("case {case} panicked: {e:?}"))),
        };
        assert_eq!(
            first.fatal.is_some(),
            fix.fatal.is_some(),
            "case {case}: {:?} / {:?}",
            first.fatal,
            fix.fatal
        );
        if std::env::var_os("FSCK_SHOW").is_some() {
            let codes: Vec<&str> = first.problems.iter().map(|p| p.code.name()).collect();
            println!(
                "case {case}: exit {} fatal {:?} {:?}",
                first.exit_code,
                first.fatal.is_some(),
                codes
            );
        }
        if fix.fatal.is_none() && again.exit_code != 0 {
            let left: Vec<String> = again.problems.iter().map(|p| p.to_string()).collect();
            let fixed: Vec<String> = fix.problems.iter().map(|p| p.to_string()).collect();
            notes.push(format!(
                "case {case}: not clean after -y:\n  {}\n after fixing:\n  {}",
                left.join("\n  "),
                fixed.join("\n  ")
            ));
        }
    }
    notes
}

#[test]
fn mutated_images_never_panic_and_repair_cleanly() {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let r = catch_unwind(run_cases);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(100 * cases().div_ceil(CASES).max(1))) {
        Ok(Ok(notes)) => {
            assert!(notes.is_empty(), "{} of {} cases:\n{}", notes.len(), cases(), notes.join("\n"))
        }
        Ok(Err(e)) => std::panic::resume_unwind(e),
        Err(_) => panic!("mutated images: no result after {:?} (a hang?)", t0.elapsed()),
    }
}
