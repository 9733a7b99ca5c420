//! The repair modes through the library: interactive answers, preen,
//! read-only, and what each writes.

mod common;

use common::*;
use layout::append::NewEntry;
use layout::inode::{dt, Timespec};
use layout::log::DE_DEL;
use novars_fsck::direct::{ReadBlocks, SliceReader};
use novars_fsck::{
    apply_writes, check, check_with_reader, tree, Answer, Code, Events, Mode, Options, Problem,
    Quiet,
};

/// Answers from a script; records what it was asked.
struct Script(Vec<Answer>, Vec<Code>);
impl Events for Script {
    fn ask(&mut self, p: &Problem) -> Answer {
        self.1.push(p.code);
        if self.0.is_empty() {
            Answer::No
        } else {
            self.0.remove(0)
        }
    }
}

/// Two problems: a wrong link count (preen-safe) and a directory entry
/// removing a name that is not there (needs -y).
fn damaged() -> Vec<u8> {
    let mut img = Img::new(base_image());
    let f = img.ino("/links/orig1");
    img.append(f, &NewEntry::Link { nlink: 7, ctime: Timespec::new(1, 0) });
    let docs = img.ino("/docs");
    img.append(
        docs,
        &NewEntry::Dentry {
            op: DE_DEL,
            ino: 999,
            ftype: dt::REG,
            mtime: Timespec::new(1, 0),
            name: b"ghost",
        },
    );
    img.bytes
}

fn clean_after(img: &[u8], writes: &[(u64, Box<[u8]>)]) -> i32 {
    let mut img = img.to_vec();
    apply_writes(&mut img, writes);
    check(&img, &Options::new(Mode::ReadOnly), &mut Quiet).exit_code
}

#[test]
fn read_only_reports_and_writes_nothing() {
    let img = damaged();
    let out = check(&img, &Options::new(Mode::ReadOnly), &mut Quiet);
    assert_eq!(out.exit_code, 4);
    assert!(out.has(Code::LinkCount) && out.has(Code::DentryDelMissing));
    assert!(out.writes.is_empty());
}

#[test]
fn interactive_yes_no_all_quit() {
    let img = damaged();
    // No to everything: nothing written.
    let mut s = Script(vec![Answer::No, Answer::No], Vec::new());
    let out = check(&img, &Options::new(Mode::Interactive), &mut s);
    assert_eq!(out.exit_code, 4);
    assert_eq!(s.1, vec![Code::DentryDelMissing, Code::LinkCount]);
    assert!(out.writes.is_empty());
    // Yes to the first only: corrected and uncorrected.
    let mut s = Script(vec![Answer::Yes, Answer::No], Vec::new());
    let out = check(&img, &Options::new(Mode::Interactive), &mut s);
    assert_eq!(out.exit_code, 1 | 4);
    assert!(!out.writes.is_empty());
    // All: asked once, everything fixed.
    let mut s = Script(vec![Answer::All], Vec::new());
    let out = check(&img, &Options::new(Mode::Interactive), &mut s);
    assert_eq!(s.1.len(), 1);
    assert_eq!(out.exit_code, 1);
    assert_eq!(clean_after(&img, &out.writes), 0);
    // Quit: cancelled, nothing written.
    let mut s = Script(vec![Answer::Quit], Vec::new());
    let out = check(&img, &Options::new(Mode::Interactive), &mut s);
    assert!(out.cancelled);
    assert_eq!(out.exit_code & 32, 32);
    assert!(out.writes.is_empty());
}

#[test]
fn preen_stops_at_what_it_may_not_fix() {
    let img = damaged();
    let out = check(&img, &Options::new(Mode::Preen), &mut Quiet);
    // The directory fault comes first (pass 4) and stops preen repairs;
    // the link count (pass 5) is then left alone too.
    assert_eq!(out.exit_code, 4);
    let lc = out.problems.iter().find(|p| p.code == Code::LinkCount).unwrap();
    assert!(!lc.fixed());
    // The error flag is set for the next boot.
    let mut after = img.clone();
    apply_writes(&mut after, &out.writes);
    let sb = layout::Superblock::decode(&after).unwrap();
    assert_ne!(sb.state & layout::sb::STATE_ERROR, 0);
    let out = check(&after, &Options::new(Mode::Yes), &mut Quiet);
    assert!(out.has(Code::SbErrorFlag));
    assert_eq!(out.exit_code, 1);
    assert_eq!(clean_after(&after, &out.writes), 0);
}

#[test]
fn yes_repairs_are_idempotent() {
    let img = damaged();
    let out = check(&img, &Options::new(Mode::Yes), &mut Quiet);
    assert_eq!(out.exit_code, 1);
    let mut fixed = img.clone();
    apply_writes(&mut fixed, &out.writes);
    let again = check(&fixed, &Options::new(Mode::Yes), &mut Quiet);
    assert_eq!(again.exit_code, 0);
    assert!(again.writes.is_empty(), "a clean image must not be rewritten");
}

/// Found by the hostile-image fuzz (vm:fuzz_images, case 1765:178): a
/// primary superblock that is unusable over a backup with read-only-
/// compatible features nobody knows. `-y` may not write such a file
/// system, so it must not claim to have copied the backup over the
/// primary (it exited 9, "corrected", and wrote nothing).
#[test]
fn unknown_read_only_features_repair_nothing() {
    let mut img = Img::new(base_image());
    let mut sb = img.sb();
    sb.feature_ro_compat = 1 << 40;
    let backup = sb.blocks_count - 1;
    sb.write_block(img.block(backup));
    img.block(0)[..8].fill(0);
    let n = check(&img.bytes, &Options::new(Mode::ReadOnly), &mut Quiet);
    assert_eq!(n.exit_code, 4, "{:?}", n.problems);
    assert!(n.has(Code::SbPrimaryBad));
    let y = check(&img.bytes, &Options::new(Mode::Yes), &mut Quiet);
    assert!(y.fatal.is_some());
    assert_eq!(y.exit_code, 8 | 4, "{:?}", y.problems);
    assert!(y.has(Code::SbPrimaryBad) && y.problems.iter().all(|p| !p.fixed()));
    assert!(y.writes.is_empty());
}

/// The parallel scan of pass 2 must not change what is reported or
/// written: damage spread over both lanes' tables gives the same problems,
/// in the same order, and the same repairs with 1, 2, 3 and 7 threads.
#[test]
fn threads_do_not_change_the_outcome() {
    let mut img = Img::new(base_image());
    let inos: Vec<u64> = tree::list(&img.bytes).values().map(|i| i.ino).collect();
    let mut damaged = 0;
    for (k, &ino) in inos.iter().enumerate().filter(|(k, _)| k % 9 == 4) {
        match k % 3 {
            0 => {
                // Record checksum: recomputed (or the inode cleared).
                let p = img.slot(ino) + 100;
                img.bytes[p as usize] ^= 0x40;
            }
            1 => {
                // First log entry's checksum: the log is cut.
                let log = img.log(ino);
                let Some(&(pos, _, _)) = log.entries.first() else { continue };
                img.bytes[pos as usize + 4] ^= 1;
            }
            _ => {
                // A wrong link count.
                img.append(ino, &NewEntry::Link { nlink: 9, ctime: Timespec::new(1, 0) });
            }
        }
        damaged += 1;
    }
    assert!(damaged > 20, "{damaged}");
    // With a reader (as for pmem: tables and log pages read apart from
    // the mapping) the outcome is the same too.
    let reader = SliceReader(&img.bytes);
    for mode in [Mode::ReadOnly, Mode::Yes] {
        let run = |threads, direct: bool| {
            let opts = Options { threads, ..Options::new(mode) };
            let r = direct.then_some(&reader as &dyn ReadBlocks);
            let out = check_with_reader(&img.bytes, r, &opts, &mut Quiet);
            (format!("{:?}", out.problems), out.writes, out.exit_code, out.counts)
        };
        let one = run(1, false);
        assert!(one.0.matches("code:").count() > 20, "{}", one.0);
        for (n, direct) in [(2, false), (3, false), (7, false), (1, true), (3, true)] {
            let many = run(n, direct);
            assert_eq!(many.0, one.0, "{n} threads, direct {direct}, {mode:?}");
            assert_eq!(many.1, one.1, "{n} threads, direct {direct}, {mode:?}");
            assert_eq!((many.2, many.3), (one.2, one.3), "{n} threads, {direct}, {mode:?}");
        }
    }
}
