//! Hostile images on the host (issue 14): the engine's cases of two rich
//! bases are walked by the `layout` functions the module trusts and
//! checked by fsck; nothing may panic, overflow or hang, and a `-y`
//! repair must leave an image that `-n` calls clean.
//!
//! 100,000 cases by default: about 100 s on two idle cores, 1.4-1.6 ms
//! of CPU a case (the dev profile builds layout, fsck and this crate at
//! opt-level 3: see the workspace Cargo.toml); more with the machine
//! loaded. Environment:
//!
//! * `NOVARS_HOSTILE_CASES=N`: random cases (the long mode: 1000000,
//!   about 15 minutes on two idle cores);
//! * `NOVARS_HOSTILE_SEED=S`: their seed (default: the time; printed, and
//!   every failure names its case);
//! * `NOVARS_HOSTILE_CASE=BASE/CASE`: only that case, e.g. `clean/17:4242`
//!   or `crashed/size-max`, with what it did and fsck's findings printed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crashcheck::synth::{Faults, Synth};
use layout::alloc_rec;
use layout::append::XattrValue;
use layout::inode::{read_inode_at, walk_segments};
use layout::journal::{self, JournalState, JOURNAL_STATE_OFF};
use layout::log::{et, fl, xa, Entry};
use layout::media::SliceMedia;
use layout::sb::{Geometry, STATE_CLEAN};
use layout::walk::{
    replay_inode, walk_log, DirIndex, FileMap, LogVisitor, XattrIndex, XattrReplay,
};
use layout::{Media, Superblock, Timespec, BLOCK_SIZE};
use novars_fsck::check::exit;
use novars_fsck::{check, Mode, Options, Outcome, Quiet};
use novars_imgfuzz::{Base, Case, Image, Regression};
use novars_mkfs::{Builder, Options as MkfsOptions};

/// Random cases of a default run.
const CASES: u64 = 100_000;
/// A case taking longer than this is a hang (a case takes about a
/// millisecond).
const HANG: Duration = Duration::from_secs(20);
/// Failures reported in full; the run stops after them.
const MAX_FAILURES: usize = 20;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// The guest's tree (`fuzz_images.sh`): 140 files of 0-9 KiB, a sparse
/// file, a hard link, a short and a long symlink, a fifo, nested
/// directories.
fn tree(s: &Path) {
    std::fs::create_dir_all(s.join("d/e")).unwrap();
    for i in 0..140 {
        std::fs::write(s.join(format!("f{i:02}")), vec![i as u8; i * 700 % 9000]).unwrap();
    }
    let sparse = std::fs::File::create(s.join("d/sparse")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", 300_000).unwrap();
    std::fs::hard_link(s.join("f03"), s.join("d/e/hard")).unwrap();
    std::os::unix::fs::symlink("f01", s.join("short")).unwrap();
    std::os::unix::fs::symlink("y".repeat(200), s.join("d/long")).unwrap();
    let st = std::process::Command::new("mkfifo").arg(s.join("d/fifo")).status().unwrap();
    assert!(st.success());
}

/// The two bases, as the guest's worked-on image: `mkfs -d` of [`tree`]
/// into 8 MiB with two lanes of 64-inode segments (so the tables grow),
/// then worked on as the kernel would (`crashcheck`'s `Synth`: writes over
/// several log pages, a fault, truncate, link, renames incl. a directory
/// across directories, unlink, mkdir, creates, a symlink). `crashed` is
/// that image with its last transaction open in the journal (a crash
/// before the commit); `clean` is it after `fsck -y` (an allocator
/// record, CLEAN).
fn bases() -> Vec<(&'static str, Base)> {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let mut img = vec![0u8; 8 << 20];
    let mut o = MkfsOptions::defaults((img.len() / BLOCK_SIZE) as u64, 2);
    o.seg_inodes = 64;
    o.now = Timespec::new(1_700_000_000, 0);
    let mut b = Builder::format(&mut img, o).unwrap();
    novars_mkfs::populate::populate_dir(&mut b, t.path()).unwrap();
    b.finish().unwrap();

    let mut s = Synth::new(&img, Faults::default()).unwrap();
    s.mount().unwrap();
    for i in 0..100 {
        s.write("/f10", i * 5000, &[b'w'; 100]).unwrap();
    }
    s.truncate("/f10", 150_000).unwrap();
    s.fault("/d/sparse", 5).unwrap();
    s.link("/f13", "/d/f13-link").unwrap();
    s.rename("/d/e", "/e-moved").unwrap();
    s.rename("/f14", "/d/f14-renamed").unwrap();
    s.unlink("/f15").unwrap();
    s.mkdir("/newdir").unwrap();
    for i in 0..30 {
        let p = format!("/newdir/n{i}");
        s.create(&p).unwrap();
        s.write(&p, 0, &vec![b'n'; i * 100 + 1]).unwrap();
    }
    s.symlink("/newdir/link", b"../f01").unwrap();
    // Attributes inline and in blocks, a replaced and a removed one, a
    // default ACL, inode flags with a project id (issue 15).
    s.setxattr("/f20", xa::USER, b"small", b"v").unwrap();
    s.setxattr("/f20", xa::USER, b"gone", b"soon").unwrap();
    s.removexattr("/f20", xa::USER, b"gone").unwrap();
    s.setxattr("/f21", xa::USER, b"big", &[0x42; 6000]).unwrap();
    s.setxattr("/f22", xa::SECURITY, b"label", &[1; 3000]).unwrap();
    s.setxattr("/f22", xa::SECURITY, b"label", b"now inline").unwrap();
    s.setxattr("/d", xa::ACL_DEFAULT, b"", &[2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255]).unwrap();
    s.setflags("/f23", fl::IMMUTABLE | fl::NODUMP, 0).unwrap();
    s.setflags("/d", fl::DIRSYNC | fl::PROJINHERIT, 7).unwrap();
    let worked = s.image().to_vec();

    let mut crashed = worked.clone();
    let j = Geometry::plan(2048, 2, 64).unwrap().journal_block(0) as usize * BLOCK_SIZE;
    let seq = crashed[j + 16..j + 24].to_vec();
    crashed[j + JOURNAL_STATE_OFF..j + JOURNAL_STATE_OFF + 8].copy_from_slice(&seq);

    let fix = check(&worked, &Options::new(Mode::Yes), &mut Quiet);
    assert_eq!(fix.exit_code, 0, "the worked-on image: {:?}", fix.problems);
    let mut clean = worked;
    novars_fsck::apply_writes(&mut clean, &fix.writes);
    vec![("clean", Base::new(clean).unwrap()), ("crashed", Base::new(crashed).unwrap())]
}

#[test]
fn bases_hold_every_structure_and_check_clean() {
    for (name, base) in bases() {
        let m = base.map();
        assert!(m.segments.len() > 2, "{name}: grown inode tables: {:?}", m.segments);
        for t in [et::WRITE, et::SETATTR, et::LINK, et::DENTRY, et::PARENT, et::XATTR, et::FLAGS] {
            assert!(m.entries.iter().any(|e| e.etype == t), "{name}: no entry of type {t}");
        }
        // Logs in pages and in records (a file written once), both.
        assert!(m.pages.len() > 10, "{name}: {} pages", m.pages.len());
        assert!(m.slot_entries > 20, "{name}: {} slot-log entries", m.slot_entries);
        let out = check(base.bytes(), &Options::new(Mode::ReadOnly), &mut Quiet);
        assert_eq!(out.exit_code, 0, "{name}: {:?}", out.problems);
        let geo = Geometry::plan(m.blocks, 2, 64).unwrap();
        let j = &base.bytes()[m.journals[0] as usize * BLOCK_SIZE..][..BLOCK_SIZE];
        let open = matches!(journal::inspect(j, &geo, 0), Ok(JournalState::Open { .. }));
        assert_eq!(open, name == "crashed", "{name}: open journal");
        if name == "clean" {
            let sb = Superblock::decode(base.bytes()).unwrap();
            assert!(sb.state & STATE_CLEAN != 0 && !m.records.is_empty(), "clean: a record");
        }
    }
}

struct Count;
impl LogVisitor for Count {
    fn entry(&mut self, _: u64, _: &Entry<'_>) {}
}

/// Replay's output, checked as the module uses it.
struct Sink;
impl FileMap for Sink {
    fn map(&mut self, p: u64, b: u64, c: u64) {
        assert!(p.checked_add(c).is_some() && b.checked_add(c).is_some(), "map {p} {b} {c}");
    }
    fn unmap(&mut self, p: u64, c: u64) {
        assert!(p.checked_add(c).is_some(), "unmap {p} {c}");
    }
}
impl DirIndex for Sink {
    fn add(&mut self, name: &[u8], ino: u64, _: u8, _: u64) {
        assert!(!name.is_empty() && name.len() <= 255 && ino != 0, "add {name:?} {ino}");
    }
    fn remove(&mut self, _: &[u8], _: u64) {}
}

impl XattrIndex for Sink {
    fn set(&mut self, index: u8, name: &[u8], v: XattrValue<'_>) {
        assert!(layout::log::xattr_name_is_valid(index, name), "xattr {index} {name:?}");
        match v {
            XattrValue::Inline(v) => assert!(v.len() <= 512, "inline value of {}", v.len()),
            XattrValue::Blocks { block, len } => assert!(
                (513..=65536).contains(&len) && block.checked_add(16).is_some(),
                "value of {len} bytes at block {block}"
            ),
            XattrValue::Removed => panic!("a removal handed over as a set"),
        }
    }
    fn remove(&mut self, index: u8, name: &[u8]) {
        assert!(layout::log::xattr_name_is_valid(index, name), "remove {index} {name:?}");
    }
}

/// The superblock fsck and the module use: the primary, else the backup
/// at the device's end.
fn superblock(img: &[u8]) -> Option<(Superblock, Geometry)> {
    let blocks = (img.len() / BLOCK_SIZE) as u64;
    let last = &img[img.len() - BLOCK_SIZE..];
    Superblock::parse(&img[..BLOCK_SIZE], blocks).or_else(|_| Superblock::parse(last, blocks)).ok()
}

/// Whether that superblock has read-only-compatible features nobody
/// knows (`-n` checks such an image, `-y` refuses to write it).
fn read_only_features(img: &[u8]) -> bool {
    superblock(img).is_some_and(|(_, geo)| geo.read_only)
}

/// What the module reads at mount and when it loads an inode, with the
/// same `layout` functions: the superblock (the primary, else the backup
/// at the device's end), each journal and its rollback, the segment
/// chains, every inode record, the log of every valid live inode walked
/// and replayed, and the allocator record's chain.
fn walk_layout(img: &[u8]) {
    let m = SliceMedia::new(img);
    let Some((sb, geo)) = superblock(img) else { return };
    for lane in 0..geo.lanes {
        let jb = m.block(geo.journal_block(lane)).unwrap();
        if let Ok(JournalState::Open { count, .. }) = journal::inspect(jb, &geo, lane) {
            for e in journal::undo_entries(jb, count) {
                assert!(journal::pos_journalable(&geo, e.pos), "rollback of {}", e.pos);
            }
        }
        let mut segs = Vec::new();
        let _ = walk_segments(&m, &geo, lane, |_, b| segs.push(b));
        for (index, &seg) in segs.iter().enumerate() {
            for s in 0..geo.seg_inodes {
                let Ok(i) = read_inode_at(&m, geo.slot_pos(seg, s)) else { continue };
                let slot = index as u64 * geo.seg_inodes as u64 + s as u64;
                let Some(ino) = geo.ino_of(lane, slot) else { continue };
                if i.validate(ino).is_ok() {
                    let _ = walk_log(&m, &geo, ino, &i, &mut Count);
                    let _ = replay_inode(&m, &geo, ino, &i, &mut Sink, &mut Sink);
                    let _ = walk_log(&m, &geo, ino, &i, &mut XattrReplay(&mut Sink));
                }
            }
        }
    }
    let mut b = sb.alloc_rec_head;
    for _ in 0..m.blocks() {
        let Ok(block) = m.block(b) else { break };
        let Ok((h, extents)) = alloc_rec::parse(block, sb.alloc_rec_seq) else { break };
        let _ = extents.count();
        b = h.next;
    }
}

/// The checks of a mutated image: the layout walk, `-n`, `-y`, the
/// repair applied, `-n` again. Returns the first two checks' outcomes;
/// `Err` says what went wrong.
fn check_image(img: &mut Image) -> Result<(Outcome, Outcome), String> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        walk_layout(img.bytes());
        let first = check(img.bytes(), &Options::new(Mode::ReadOnly), &mut Quiet);
        let fix = check(img.bytes(), &Options::new(Mode::Yes), &mut Quiet);
        (first, fix)
    }));
    let (first, fix) = r.map_err(|e| panic_text(&*e))?;
    // Only unknown read-only-compatible features let `-n` check what
    // `-y` refuses to repair.
    if first.fatal.is_some() != fix.fatal.is_some() && !read_only_features(img.bytes()) {
        return Err(format!("-n fatal {:?}, -y fatal {:?}", first.fatal, fix.fatal));
    }
    // A `-y` that cannot check must not claim repairs (the case of the
    // regression `unknown-ro-backup`).
    if fix.fatal.is_some() && (fix.exit_code & exit::CORRECTED != 0 || !fix.writes.is_empty()) {
        return Err(format!(
            "-y exited {} ({:?}) with repairs: {}",
            fix.exit_code,
            fix.fatal,
            some(&fix)
        ));
    }
    for (b, data) in &fix.writes {
        img.write(*b as usize * BLOCK_SIZE, data);
    }
    let again = catch_unwind(AssertUnwindSafe(|| {
        check(img.bytes(), &Options::new(Mode::ReadOnly), &mut Quiet)
    }))
    .map_err(|e| format!("after -y: {}", panic_text(&*e)))?;
    // A repair may fail (no space left to reconnect a file, sequence
    // numbers used up), but then `-y` must say so (exit 4); when it says
    // the errors were corrected, nothing may be left.
    let claims_clean = fix.fatal.is_none() && fix.exit_code & exit::UNCORRECTED == 0;
    if claims_clean && again.exit_code != 0 {
        return Err(format!(
            "-y exited {}, then -n exited {}: {} (-y had found: {})",
            fix.exit_code,
            again.exit_code,
            some(&again),
            some(&fix)
        ));
    }
    Ok((first, fix))
}

/// The first problems of a check, in one line (all of them, one per line,
/// for a single case: `NOVARS_HOSTILE_CASE`).
fn some(o: &Outcome) -> String {
    if std::env::var_os("NOVARS_HOSTILE_CASE").is_some() {
        let v: Vec<String> = o.problems.iter().map(|p| format!("\n  {p}")).collect();
        return v.concat();
    }
    let mut v: Vec<String> = o.problems.iter().take(4).map(|p| p.to_string()).collect();
    if o.problems.len() > 4 {
        v.push(format!("{} more", o.problems.len() - 4));
    }
    v.join("; ")
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    let msg = e
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| e.downcast_ref::<&str>().copied())
        .unwrap_or("?");
    format!("panicked: {msg}")
}

/// `NOVARS_HOSTILE_CASE=BASE/CASE`: that case alone, described.
fn one_case(spec: &str) {
    let (name, case) = spec.split_once('/').expect("NOVARS_HOSTILE_CASE=BASE/CASE");
    let case: Case = case.parse().unwrap();
    let bases = bases();
    let (_, base) = bases.iter().find(|b| b.0 == name).expect("BASE is clean or crashed");
    let mut img = Image::new(base.bytes());
    println!("{spec}: {}", base.mutate(case, &mut img));
    match check_image(&mut img) {
        Ok((first, fix)) => {
            println!("-n: exit {}, fatal {:?}", first.exit_code, first.fatal);
            for p in &first.problems {
                println!("  {p}");
            }
            println!("-y: exit {}; -n after it: clean", fix.exit_code);
        }
        Err(e) => panic!("{spec}: {e}"),
    }
}

/// Counts of a run.
#[derive(Default)]
struct Tally {
    cases: AtomicU64,
    /// Images whose `-n` check found an error (or could not check).
    damaged: AtomicU64,
    /// Images `-y` could not repair (and said so).
    unrepaired: AtomicU64,
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Worker `w` of `n`: cases `w`, `w + n`, ... of `all`, each on the base
/// of its index's parity (a named case on both).
fn worker(
    bases: &[(&str, Base)],
    all: &[Case],
    w: usize,
    n: usize,
    t: &Tally,
    now: &Mutex<(String, Instant)>,
) {
    let mut imgs: Vec<Image> = bases.iter().map(|(_, b)| Image::new(b.bytes())).collect();
    for &case in all.iter().skip(w).step_by(n) {
        let which: Vec<usize> = match case {
            Case::Named(_) => (0..bases.len()).collect(),
            Case::Seeded { index, .. } => vec![index as usize % bases.len()],
        };
        for k in which {
            if t.stop.load(Ordering::Relaxed) {
                return;
            }
            let (name, base) = &bases[k];
            *now.lock().unwrap() = (format!("{name}/{case}"), Instant::now());
            let img = &mut imgs[k];
            img.restore();
            let what = base.mutate(case, img);
            match check_image(img) {
                Ok((first, fix)) => {
                    if first.exit_code != 0 {
                        t.damaged.fetch_add(1, Ordering::Relaxed);
                    }
                    if fix.exit_code & (exit::UNCORRECTED | exit::OPERATIONAL) != 0 {
                        t.unrepaired.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let mut f = t.failures.lock().unwrap();
                    f.push(format!("{name}/{case} ({what}): {e}"));
                    if f.len() >= MAX_FAILURES {
                        t.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            t.cases.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn hostile_images_never_panic_and_repair_cleanly() {
    if let Ok(spec) = std::env::var("NOVARS_HOSTILE_CASE") {
        return one_case(&spec);
    }
    let count = env_u64("NOVARS_HOSTILE_CASES").unwrap_or(CASES);
    let seed = env_u64("NOVARS_HOSTILE_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs());
    println!("hostile images: {count} random cases of seed {seed}");
    let t0 = Instant::now();
    let bases = Arc::new(bases());
    let all: Arc<Vec<Case>> = Arc::new(Case::all(seed, count).collect());
    let tally = Arc::new(Tally::default());
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let now: Arc<Vec<Mutex<(String, Instant)>>> =
        Arc::new((0..n).map(|_| Mutex::new((String::new(), Instant::now()))).collect());
    let (tx, rx) = mpsc::channel();
    for w in 0..n {
        let (bases, all, tally, now, tx) =
            (bases.clone(), all.clone(), tally.clone(), now.clone(), tx.clone());
        std::thread::spawn(move || {
            worker(&bases, &all, w, n, &tally, &now[w]);
            let _ = tx.send(());
        });
    }
    drop(tx);
    // Workers end by closing the channel; meanwhile no case may take
    // longer than HANG.
    while let Err(mpsc::RecvTimeoutError::Timeout) | Ok(()) =
        rx.recv_timeout(Duration::from_secs(1))
    {
        for slot in now.iter() {
            let (case, since) = slot.lock().unwrap().clone();
            assert!(
                since.elapsed() < HANG,
                "{case}: no result after {:?} (a hang?)",
                since.elapsed()
            );
        }
    }
    let failures = tally.failures.lock().unwrap();
    let cases = tally.cases.load(Ordering::Relaxed);
    let damaged = tally.damaged.load(Ordering::Relaxed);
    let unrepaired = tally.unrepaired.load(Ordering::Relaxed);
    println!(
        "{cases} images ({} named cases on both bases) in {:.1} s on {n} threads: {damaged} \
         found damaged by -n, {unrepaired} left damaged or unchecked by -y (exit 4 or 8), \
         {} failures",
        Regression::ALL.len(),
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    // The engine must damage: most images carry an error fsck finds.
    assert!(damaged * 2 > cases, "only {damaged} of {cases} images were found damaged");
}
