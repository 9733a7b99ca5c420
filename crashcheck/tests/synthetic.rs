//! The checker on synthetic traces: a correct workload has no violation in
//! any crash image, and each deliberate protocol fault is caught.

mod common;

use std::time::Instant;

use common::{base, check, long_name, quick, synth};
use crashcheck::synth::{Faults, Synth};
use crashcheck::Config;
use layout::log::{fl, xa};

/// Every operation kind the emulation knows, on the base tree.
fn workload(s: &mut Synth) {
    s.create("/a/new").unwrap();
    s.write("/a/new", 0, b"hello world").unwrap();
    let tail: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8 + 1).collect();
    s.write("/a/f1", 5000, &tail).unwrap();
    s.write("/a/f1", 0, &[0xaa; 100]).unwrap();
    s.write("/c", 0, &[0x55; 8192]).unwrap();
    s.mkdir("/d").unwrap();
    s.create("/e/x").unwrap();
    s.create(&format!("/full/{}", long_name(0))).unwrap();
    s.truncate("/a/f1", 3000).unwrap();
    s.link("/a/f1", "/b/l").unwrap();
    s.unlink("/b/l").unwrap();
    s.rename("/a/new", "/b/moved").unwrap();
    s.rename("/b", "/d/b").unwrap();
    s.rename("/a/f1", "/a/old").unwrap();
    s.symlink("/s", b"/a/old").unwrap();
    s.unlink("/c").unwrap();
    s.mkdir("/r").unwrap();
    s.rmdir("/r").unwrap();
    s.setxattr("/a/old", xa::USER, b"small", b"v").unwrap();
    s.setxattr("/a/old", xa::USER, b"big", &[7u8; 5000]).unwrap();
    s.setxattr("/a/old", xa::USER, b"big", b"inline now").unwrap();
    s.removexattr("/a/old", xa::USER, b"small").unwrap();
    s.setflags("/d", fl::NODUMP, 5).unwrap();
}

#[test]
fn correct_workload_has_no_violation() {
    let base = base();
    let mut s = synth(&base, Faults::default());
    workload(&mut s);
    let tree = novars_fsck::tree::list(s.image());
    assert!(tree.contains_key(std::path::Path::new("/d/b/moved")));
    assert!(!tree.contains_key(std::path::Path::new("/a/f1")));
    let old = &tree[std::path::Path::new("/a/old")];
    assert_eq!(old.xattrs.len(), 1, "{:?}", old.xattrs);
    assert_eq!(tree[std::path::Path::new("/d")].flags, fl::NODUMP);
    let t0 = Instant::now();
    let r = check(&base, &s.trace(), &Config::default());
    println!("{}", r.text(&|id| format!("--only {id}")));
    println!("checked in {:?}", t0.elapsed());
    assert_eq!(r.violations, 0);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.ops, 23);
    assert!(r.checked > 500, "too few images checked: {}", r.checked);
}

/// Runs `op` (the only operation of a trace) with `faults` and returns the
/// checker's violation count.
fn violations(base: &[u8], faults: Faults, op: &dyn Fn(&mut Synth)) -> u64 {
    let mut s = synth(base, faults);
    op(&mut s);
    check(base, &s.trace(), &quick()).violations
}

/// For each flush and each fence of the operation, runs the trace without
/// it. Returns what each dropped flush and fence that the checker did *not*
/// catch was for.
fn drop_each(base: &[u8], op: &dyn Fn(&mut Synth)) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut s = synth(base, Faults::default());
    op(&mut s);
    let info = s.ops().last().unwrap().clone();
    assert_eq!(check(base, &s.trace(), &quick()).violations, 0, "the correct operation must pass");
    let flushes = (0..info.flushes.len())
        .filter(|&k| {
            violations(base, Faults { drop_flush: Some((info.nr, k)), ..Faults::default() }, op)
                == 0
        })
        .map(|k| info.flushes[k])
        .collect();
    let fences = (0..info.fences.len())
        .filter(|&k| {
            violations(base, Faults { drop_fence: Some((info.nr, k)), ..Faults::default() }, op)
                == 0
        })
        .map(|k| info.fences[k])
        .collect();
    (flushes, fences)
}

/// Dropping any flush or fence is a violation, except the ones that are
/// redundant by construction (the expected misses below, each explained):
///
/// * `journal entries` / `after journal entries`: a transaction of at most
///   two words fits in the journal header's cache line (32 + 2 x 16 bytes),
///   which `journal open` flushes; by the same-line rule the entries cannot
///   miss the media once the state word is on it. Larger transactions
///   (the directory rename; an unlink whose file's slot log moves to a
///   page: three words) need them.
/// * `after data`: non-temporal data becomes durable at the next fence,
///   which the entry's fence provides before the tail is stored.
/// * `log_head` (the first page of a log that had none: the files of the
///   base keep their one `WRITE` in the record, a slot log, and the next
///   entry moves it to a page): `log_head` and `log_tail` share the
///   inode's first cache line, so the tail's flush writes the head back
///   too. A first write of an empty file goes to the record: no head.
/// * one `entry` of the directory rename: the `DENTRY ADD` at the start of
///   the destination's new page shares its cache line with the `LINK`
///   entry stored after it, whose flush writes both back.
/// * `inode state (evict)` and `after evict` (unlink of the last link):
///   the unlink commits `LINK 0`; evict then stores the FREE state, as the
///   kernel does. A crash before that state is durable leaves an orphan
///   (live, no name, link count 0) that the next mount frees.
#[test]
fn every_needed_flush_and_fence_is_checked() {
    let base = base();
    type Op = Box<dyn Fn(&mut Synth)>;
    type Missed = (Vec<&'static str>, Vec<&'static str>);
    let small_tx = (vec!["journal entries"], vec!["after journal entries"]);
    let cases: Vec<(&str, Op, Missed)> = vec![
        (
            "create",
            Box::new(|s| {
                s.create("/a/new").unwrap();
            }),
            small_tx.clone(),
        ),
        (
            "create into a full log page",
            Box::new(|s| {
                s.create(&format!("/full/{}", long_name(1))).unwrap();
            }),
            small_tx.clone(),
        ),
        (
            "append that moves a slot log to its first page",
            Box::new(|s| s.write("/a/f1", 5000, &[7; 3000]).unwrap()),
            (vec!["log_head"], vec!["after data"]),
        ),
        (
            "append to a log in pages",
            Box::new(|s| {
                s.write("/a/f1", 5000, &[7; 3000]).unwrap();
                s.write("/a/f1", 9000, &[8; 100]).unwrap();
            }),
            (vec![], vec!["after data"]),
        ),
        (
            "first write of an empty log (into the record)",
            Box::new(|s| s.write("/c", 0, &[9; 100]).unwrap()),
            (vec![], vec!["after data"]),
        ),
        ("truncate", Box::new(|s| s.truncate("/a/f1", 10).unwrap()), (vec!["log_head"], vec![])),
        (
            "rename of a file into a directory with an empty log",
            Box::new(|s| s.rename("/a/old", "/b/moved").unwrap()),
            (vec!["log_head"], vec![]),
        ),
        (
            "rename of a directory",
            Box::new(|s| s.rename("/a", "/b/a").unwrap()),
            (vec!["entry", "log_head"], vec![]),
        ),
        (
            "setxattr with a value in blocks",
            Box::new(|s| s.setxattr("/a/f1", xa::USER, b"big", &[3; 6000]).unwrap()),
            (vec!["log_head"], vec![]),
        ),
        (
            "setxattr inline",
            Box::new(|s| s.setxattr("/a/f1", xa::TRUSTED, b"t", b"value").unwrap()),
            (vec!["log_head"], vec![]),
        ),
        ("setflags", Box::new(|s| s.setflags("/a", fl::SYNC, 0).unwrap()), (vec![], vec![])),
        (
            "unlink",
            Box::new(|s| s.unlink("/a/old").unwrap()),
            (vec!["log_head", "inode state (evict)"], vec!["after evict"]),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, op, expected) in &cases {
        let t = Instant::now();
        let missed = drop_each(&base, op.as_ref());
        println!("{name}: not caught {missed:?} ({:?})", t.elapsed());
        if &missed != expected {
            wrong.push(format!("{name}: not caught {missed:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
#[test]
fn tail_before_entry_is_caught() {
    let base = base();
    let f = Faults { tail_before_entry: true, ..Faults::default() };
    assert!(violations(&base, f, &|s| s.write("/a/f1", 0, &[1; 10]).unwrap()) > 0);
    assert!(violations(&base, f, &|s| s.truncate("/a/f1", 10).unwrap()) > 0);
}

#[test]
fn dentry_updated_in_place_is_caught() {
    let base = base();
    let op = |s: &mut Synth| s.rename("/a/f1", "/a/old").unwrap();
    assert_eq!(violations(&base, Faults::default(), &op), 0);
    let f = Faults { dentry_in_place: true, ..Faults::default() };
    assert!(violations(&base, f, &op) > 0);
}

#[test]
fn rename_without_journal_is_caught() {
    let base = base();
    let op = |s: &mut Synth| s.rename("/a/f1", "/b/f1").unwrap();
    assert_eq!(violations(&base, Faults::default(), &op), 0);
    let f = Faults { rename_without_journal: true, ..Faults::default() };
    assert!(violations(&base, f, &op) > 0);
}

#[test]
fn unflushed_write_tail_is_caught_as_wrong_contents() {
    let base = base();
    let op = |s: &mut Synth| s.write("/a/f1", 5000, &[7; 100]).unwrap();
    let mut s = synth(&base, Faults { unflushed_write_tail: true, ..Faults::default() });
    op(&mut s);
    let r = check(&base, &s.trace(), &quick());
    assert!(r.violations > 0);
    // fsck is clean: only the tree comparison sees the lost bytes, inside
    // the call (neither before nor after) and once it has returned.
    let tree_only: Vec<_> =
        r.findings.iter().filter(|f| f.fsck.is_empty() && !f.tree_diff.is_empty()).collect();
    assert!(
        tree_only.iter().any(|f| f.point == crashcheck::report::PointKind::OpEnd),
        "{:#?}",
        r.findings
    );
    assert!(
        tree_only.iter().any(|f| f.point == crashcheck::report::PointKind::Fence),
        "{:#?}",
        r.findings
    );
    assert!(
        tree_only[0].tree_diff.iter().any(|d| d.contains("differs /a/f1")),
        "{:#?}",
        tree_only[0]
    );
}

/// Regression test of a finding of this checker: mount used to clear CLEAN
/// by rewriting the whole superblock, whose checksum covered `state`; the
/// checksum (line 0) and `state` (line 2) could reach the media apart and
/// fsck -n called the torn primary an error (SB_PRIMARY_BAD). The mutable
/// words now sit outside the checksum and change by 8-byte stores.
#[test]
fn mount_superblock_words_never_tear() {
    let mut img = base();
    // Make the base a cleanly unmounted image again.
    let blocks = (img.len() / 4096) as u64;
    let (mut sb, geo) = layout::Superblock::parse(&img[..4096], blocks).unwrap();
    sb.state |= layout::sb::STATE_CLEAN;
    let mut blk = vec![0u8; 4096];
    sb.write_block(&mut blk);
    img[..4096].copy_from_slice(&blk);
    let b = geo.backup_sb() as usize * 4096;
    img[b..b + 4096].copy_from_slice(&blk);
    // fsck -n on a CLEAN image compares the allocator record: mkfs's is
    // still right, so the base checks clean.
    let o = novars_fsck::check(
        &img,
        &novars_fsck::Options::new(novars_fsck::Mode::ReadOnly),
        &mut novars_fsck::Quiet,
    );
    assert_eq!(o.exit_code, 0, "{:?}", o.problems);
    let mut s = synth(&img, Faults::default());
    assert!(s.create("/a/x").is_err(), "nothing but mount runs on a CLEAN image");
    s.mount().unwrap();
    let r = check(&img, &s.trace(), &quick());
    // Regression: a full superblock rewrite could tear (SB_PRIMARY_BAD);
    // with the mutable words outside the checksum no crash state is bad.
    assert_eq!(r.violations, 0, "{:#?}", r.findings);
}
