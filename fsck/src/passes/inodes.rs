//! Pass 2: inode tables and logs.
//!
//! Walks every lane's segment chain, then every slot: the state word must
//! be FREE or LIVE, a live record must validate, and its log must walk to
//! the tail. A broken log keeps its valid prefix: the tail moves to the end
//! of the last good entry (or the log is emptied if not even the head page
//! is good). A tail that is not in the chain is first looked for by
//! following the chain to its last page.

use layout::inode::{
    read_inode_at, walk_segments, Inode, InodeError, SegError, SegmentHeader, INODE_FREE,
    INODE_HEAD_OFF, INODE_LIVE, INODE_STATE_OFF, INODE_TAIL_OFF, SEG_MAGIC, S_IFLNK, S_IFMT,
};
use layout::log::{EntryError, LOG_AREA};
use layout::sb::{INODES_PER_BLOCK, INODE_SIZE};
use layout::walk::WalkError;
use layout::BLOCK_SIZE_U64;
use layout::{Geometry, Media};

use crate::check::{Fsck, Lane};
use crate::direct::{Aligned, PageReader};
use crate::model::{walk_inode, InodeMap, InodeRec, LogFault, Walked};
use crate::overlay::Overlay;
use crate::problem::Code;

pub const NAME: &str = "inode tables and logs";

fn media_err(e: layout::MediaError) -> String {
    format!("cannot access the image ({e:?})")
}

pub fn run(f: &mut Fsck<'_, '_>) {
    let lanes = f.geo.lanes;
    f.lanes = (0..lanes).map(|lane| Lane { segments: scan_segments(f, lane) }).collect();
    let per_seg = f.geo.seg_inodes as u64;
    let total: u64 = f.lanes.iter().map(|l| l.segments.len() as u64 * per_seg).sum();
    f.progress(0, total);
    // Every inode-table block, in the order the slots are checked.
    let mut blocks = Vec::new();
    for (lane, l) in f.lanes.iter().enumerate() {
        for (si, &seg) in l.segments.iter().enumerate() {
            for b in 0..(f.geo.seg_inodes / INODES_PER_BLOCK) as u64 {
                blocks.push(TableBlock {
                    lane: lane as u32,
                    first_slot: si as u64 * per_seg + b * INODES_PER_BLOCK as u64,
                    block: seg + 1 + b,
                });
            }
        }
    }
    // The slots that need no repair are read in parallel; the others are
    // checked afterwards, one by one and in table order, so problems are
    // reported in the same order whatever the number of threads. A repair
    // of pass 2 changes only its own inode's slot, never what another
    // slot's check reads, so the parallel results stay valid.
    let mut scans = scan_parallel(f, &blocks);
    let mut free = Vec::new();
    let mut slow = Vec::new();
    for s in &mut scans {
        free.append(&mut s.free);
        slow.append(&mut s.slow);
    }
    // The maps are built in one go (a sort of a few sorted runs, then no
    // node splits) rather than by an insert per inode; the records stay
    // in the vectors the threads filled.
    let live: Vec<_> = scans.into_iter().map(|s| s.live).collect();
    if f.inodes.is_empty() {
        f.inodes = InodeMap::from_runs(live);
    } else {
        f.inodes.extend(live.into_iter().flatten());
    }
    if f.free_inos.is_empty() {
        f.free_inos = free.into_iter().collect();
    } else {
        f.free_inos.extend(free);
    }
    let n = slow.len() as u64;
    for (i, (ino, pos)) in slow.into_iter().enumerate() {
        check_slot(f, ino, pos);
        if i % 4096 == 0 {
            f.progress(total.saturating_sub(n) + i as u64, total);
        }
    }
    f.progress(total, total);
}

/// One block of an inode table: slots `first_slot..+16` of `lane`.
#[derive(Clone, Copy)]
struct TableBlock {
    lane: u32,
    first_slot: u64,
    block: u64,
}

/// What the parallel part of the pass found, in table order.
#[derive(Default)]
struct Scan {
    /// Live inodes whose record and log need nothing.
    live: Vec<(u64, InodeRec)>,
    free: Vec<u64>,
    /// Slots for [`check_slot`]: `(ino, pos)`.
    slow: Vec<(u64, u64)>,
}

/// Threads for the parallel parts of the check.
pub(crate) fn threads(work: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below a few thousand items a thread costs more than it saves.
    cpus.min(8).min(work / 2048).max(1)
}

/// What the parallel readers share: the image and its geometry.
struct Tables<'m, 'a> {
    m: &'m Overlay<'a>,
    geo: &'m Geometry,
    /// The share of slots the superblock says are live.
    live_share: f64,
}

fn scan_parallel(f: &Fsck<'_, '_>, blocks: &[TableBlock]) -> Vec<Scan> {
    // The superblock's count of free inodes (a hint only: it may be stale
    // or damaged) sizes each thread's vector of records once, rather than
    // by copies as it grows.
    let slots = (blocks.len() as u64).saturating_mul(INODES_PER_BLOCK as u64);
    let live = slots.saturating_sub(f.sb.free_inodes);
    let t =
        Tables { m: &f.m, geo: &f.geo, live_share: (live as f64 / slots.max(1) as f64).min(1.0) };
    let t = &t;
    let n = threads(blocks.len() * INODES_PER_BLOCK as usize);
    let chunk = blocks.len().div_ceil(n).max(1);
    if n == 1 {
        return vec![scan_blocks(t, blocks)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> =
            blocks.chunks(chunk).map(|c| s.spawn(move || scan_blocks(t, c))).collect();
        // A thread that panicked: its slots are checked the slow way.
        handles
            .into_iter()
            .zip(blocks.chunks(chunk))
            .map(|(h, c)| h.join().unwrap_or_else(|_| all_slow(t, c)))
            .collect()
    })
}

/// Every slot of `blocks` for the one-by-one check.
fn all_slow(f: &Tables<'_, '_>, blocks: &[TableBlock]) -> Scan {
    let mut out = Scan::default();
    for_each_slot(f, blocks, |ino, pos| out.slow.push((ino, pos)));
    out
}

fn for_each_slot(f: &Tables<'_, '_>, blocks: &[TableBlock], mut each: impl FnMut(u64, u64)) {
    for tb in blocks {
        for k in 0..INODES_PER_BLOCK as u64 {
            let Some(ino) = f.geo.ino_of(tb.lane, tb.first_slot + k) else { continue };
            if ino == 0 {
                continue; // reserved
            }
            each(ino, tb.block * BLOCK_SIZE_U64 + k * INODE_SIZE as u64);
        }
    }
}

/// Reads the slots of `blocks`: free ones, live ones [`check_slot`] would
/// accept without a word, and the rest (left for it).
fn scan_blocks(f: &Tables<'_, '_>, blocks: &[TableBlock]) -> Scan {
    let mut out = Scan::default();
    let slots = blocks.len() * INODES_PER_BLOCK as usize;
    // Only a hint: a refused reservation changes nothing.
    let _ = out.live.try_reserve((slots as f64 * f.live_share * 1.1) as usize + 16);
    let pages = PageReader::new(f.m);
    let mut tables = TableRun::new(f.m);
    for (i, tb) in blocks.iter().enumerate() {
        let table = tables.block(blocks, i);
        for k in 0..INODES_PER_BLOCK as u64 {
            let Some(ino) = f.geo.ino_of(tb.lane, tb.first_slot + k) else { continue };
            if ino == 0 {
                continue; // reserved
            }
            let pos = tb.block * BLOCK_SIZE_U64 + k * INODE_SIZE as u64;
            let at = k as usize * INODE_SIZE as usize;
            let raw = table.and_then(|t| t.get(at..at + Inode::SIZE));
            // Most slots of a young file system are free: the state word
            // says so without decoding the record.
            if raw.and_then(|r| layout::read_u64(r, INODE_STATE_OFF as usize)) == Some(INODE_FREE) {
                out.free.push(ino);
                continue;
            }
            match raw.and_then(Inode::decode) {
                Some(inode) => quick_slot(f, &pages, ino, pos, inode, &mut out),
                None => out.slow.push((ino, pos)),
            }
        }
    }
    out
}

/// Inode-table blocks read in runs of consecutive blocks (or from the
/// mapping, without a reader; from the overlay where it changed them).
struct TableRun<'m, 'a> {
    m: &'m Overlay<'a>,
    buf: Aligned,
    first: u64,
    count: u64,
}

/// Most table blocks read at once.
const TABLE_RUN: usize = 64;

impl<'m, 'a> TableRun<'m, 'a> {
    fn new(m: &'m Overlay<'a>) -> Self {
        let n = if m.reader().is_some() { TABLE_RUN } else { 0 };
        Self { m, buf: Aligned::new(n), first: 0, count: 0 }
    }

    /// The bytes of `blocks[i]`.
    fn block(&mut self, blocks: &[TableBlock], i: usize) -> Option<&[u8]> {
        let nr = blocks.get(i)?.block;
        let (Some(reader), false) = (self.m.reader(), self.m.is_block_dirty(nr)) else {
            return self.m.block(nr).ok();
        };
        if !(self.first..self.first + self.count).contains(&nr) {
            let n = blocks
                .iter()
                .skip(i)
                .take(TABLE_RUN)
                .enumerate()
                .take_while(|&(j, tb)| {
                    tb.block == nr + j as u64 && nr + (j as u64) < self.m.blocks()
                })
                .count();
            let len = n * layout::BLOCK_SIZE;
            let ok = self
                .buf
                .bytes_mut()
                .get_mut(..len)
                .is_some_and(|b| reader.read_blocks(nr, b).is_ok());
            (self.first, self.count) = if ok { (nr, n as u64) } else { (0, 0) };
            if !ok {
                return self.m.block(nr).ok();
            }
        }
        let off = usize::try_from(nr - self.first).ok()? * layout::BLOCK_SIZE;
        self.buf.bytes().get(off..off + layout::BLOCK_SIZE)
    }
}

/// [`check_slot`] for a slot that has nothing to report; anything else
/// goes to `out.slow`.
fn quick_slot<M: Media + ?Sized>(
    f: &Tables<'_, '_>,
    m: &M,
    ino: u64,
    pos: u64,
    inode: Inode,
    out: &mut Scan,
) {
    if inode.state == INODE_FREE {
        return out.free.push(ino);
    }
    if inode.validate(ino).is_err() {
        return out.slow.push((ino, pos));
    }
    let w = walk_inode(m, f.geo, ino, &inode);
    if w.fault.is_some() {
        return out.slow.push((ino, pos));
    }
    let rec = InodeRec::new(pos, &inode, w);
    if rec.view.mode & S_IFMT == S_IFLNK && symlink_problem(&inode, &rec).is_some() {
        return out.slow.push((ino, pos));
    }
    out.live.push((ino, rec));
}

/// Walks lane `lane`'s segment chain, repairing what can be repaired.
fn scan_segments(f: &mut Fsck<'_, '_>, lane: u32) -> Vec<u64> {
    let first = f.geo.first_segment(lane);
    for attempt in 0..2 {
        let mut segs = Vec::new();
        let err = match walk_segments(&f.m, &f.geo, lane, |_, b| segs.push(b)) {
            Ok(_) => return segs,
            Err(e) => e,
        };
        let Some(&prev) = segs.last() else {
            // The first segment sits at a fixed place: rebuild its header,
            // keeping the link to the next segment (not checksummed).
            if attempt > 0 {
                return vec![first];
            }
            let next = f.m.read_u64(first * BLOCK_SIZE_U64 + 8).unwrap_or(0);
            let seg_inodes = f.geo.seg_inodes;
            let fixed = f.problem(
                Code::SegBadHeader,
                format!("lane {lane} segment 0"),
                format!("header of the first inode-table segment (block {first}) is corrupt"),
                "rewrite the header",
                |f| {
                    let mut h = SegmentHeader::new(lane, 0, seg_inodes);
                    h.next = next;
                    let b = f.m.block_mut(first).map_err(media_err)?;
                    h.encode(b);
                    Ok(())
                },
            );
            if !fixed {
                // Analyse as if it were rewritten: later segments stay visible.
                let mut segs = vec![first];
                follow(f, lane, next, 1, &mut segs);
                return segs;
            }
            continue;
        };
        let n = segs.len();
        let (code, msg) = match err {
            SegError::OutOfRange { block } => (
                Code::SegOutOfRange,
                format!(
                    "link from segment {} points to block {block}, outside the data area",
                    n - 1
                ),
            ),
            SegError::BadHeader { block } => {
                (Code::SegBadHeader, format!("segment {n} (block {block}) has a corrupt header"))
            }
            SegError::Cycle { block } => {
                (Code::SegCycle, format!("segment chain loops (at block {block})"))
            }
            SegError::Media(e) => (Code::SegOutOfRange, format!("segment {n} unreadable ({e:?})")),
        };
        f.problem(
            code,
            format!("lane {lane}"),
            msg,
            format!(
                "end the chain at segment {} (block {prev}); inodes in later segments are lost",
                n - 1
            ),
            |f| f.m.write_u64(prev * BLOCK_SIZE_U64 + 8, 0).map_err(media_err),
        );
        return segs;
    }
    vec![first]
}

/// Follows a segment chain from block `blk` (segment `index`) with the
/// checks of `walk_segments`, stopping quietly at the first bad link.
fn follow(f: &Fsck<'_, '_>, lane: u32, mut blk: u64, mut index: u32, out: &mut Vec<u64>) {
    let geo = &f.geo;
    let max = geo.blocks_count / geo.seg_blocks() + 1;
    while blk != 0 && (index as u64) <= max && geo.is_data_range(blk, geo.seg_blocks()) {
        let Some(h) = f.m.block(blk).ok().and_then(SegmentHeader::decode) else {
            return;
        };
        if h.magic != SEG_MAGIC
            || h.csum != h.compute_csum()
            || h.lane != lane
            || h.index != index
            || h.seg_inodes != geo.seg_inodes
        {
            return;
        }
        out.push(blk);
        blk = h.next;
        index += 1;
    }
}

fn check_slot(f: &mut Fsck<'_, '_>, ino: u64, pos: u64) {
    let Ok(raw) = read_inode_at(&f.m, pos) else { return };
    if raw.state == INODE_FREE {
        f.free_inos.insert(ino);
        return;
    }
    let subject = format!("inode {ino}");
    let mut inode = raw;
    if !raw.state_known() {
        // A record that validates as live, whose log walks and which still
        // has links, was live; anything else was free.
        let mut t = raw;
        t.state = INODE_LIVE;
        let live = t.validate(ino).is_ok() && {
            let w = walk_inode(&f.m, &f.geo, ino, &t);
            w.fault.is_none() && w.view.nlink > 0
        };
        let (action, word) = if live {
            ("mark it live (record and log are valid)", INODE_LIVE)
        } else {
            ("mark it free", INODE_FREE)
        };
        let fixed = f.problem(
            Code::InodeBadState,
            subject.clone(),
            format!("state word {:#018x} is neither free nor live", raw.state),
            action,
            |f| f.m.write_u64(pos + INODE_STATE_OFF, word).map_err(media_err),
        );
        if !live {
            if fixed {
                f.free_inos.insert(ino);
            }
            return;
        }
        inode = t;
    }
    let Some(inode) = check_record(f, ino, pos, inode, &subject) else {
        return;
    };
    check_log(f, ino, pos, inode, &subject);
}

/// Frees a live inode whose record cannot be trusted.
fn clear(f: &mut Fsck<'_, '_>, code: Code, subject: &str, msg: String, ino: u64, pos: u64) {
    let fixed =
        f.problem(code, subject, msg, "clear the inode (its names are removed in pass 4)", |f| {
            f.m.write_u64(pos + INODE_STATE_OFF, INODE_FREE).map_err(media_err)
        });
    if fixed {
        f.free_inos.insert(ino);
    }
}

/// Validates a live record, repairing what is safe; `None`: the inode is
/// gone (cleared, or unusable).
fn check_record(
    f: &mut Fsck<'_, '_>,
    ino: u64,
    pos: u64,
    mut inode: Inode,
    subject: &str,
) -> Option<Inode> {
    for _ in 0..8 {
        let err = match inode.validate(ino) {
            Ok(()) => return Some(inode),
            Err(e) => e,
        };
        let mut t = inode;
        match err {
            InodeError::BadChecksum => {
                t.seal();
                if t.validate(ino).is_ok() {
                    f.problem(
                        Code::InodeCsum,
                        subject,
                        format!(
                            "checksum {:#010x} does not match the record ({:#010x})",
                            inode.csum, t.csum
                        ),
                        "recompute the checksum (the record is otherwise valid)",
                        |f| f.write_inode(pos, &t),
                    );
                } else {
                    let msg = format!(
                        "checksum mismatch and the record is not valid either ({:?})",
                        t.validate(ino).err()
                    );
                    clear(f, Code::InodeCsum, subject, msg, ino, pos);
                    return None;
                }
            }
            InodeError::WrongIno => {
                t.ino = ino;
                t.seal();
                f.problem(
                    Code::InodeWrongIno,
                    subject,
                    format!("record says it is inode {}", inode.ino),
                    format!("set the number to {ino}"),
                    |f| f.write_inode(pos, &t),
                );
            }
            InodeError::BadMode => {
                clear(
                    f,
                    Code::InodeBadMode,
                    subject,
                    format!("unknown file type in mode {:#o}", inode.mode),
                    ino,
                    pos,
                );
                return None;
            }
            InodeError::BadTime => {
                for ts in [&mut t.atime, &mut t.mtime, &mut t.ctime, &mut t.btime] {
                    if !ts.is_valid() {
                        ts.nsec = 0;
                    }
                }
                t.seal();
                f.problem(
                    Code::InodeBadTime,
                    subject,
                    "a timestamp has 1e9 or more nanoseconds",
                    "set those nanoseconds to 0",
                    |f| f.write_inode(pos, &t),
                );
            }
            InodeError::BadInline => {
                if inode.mode & S_IFMT == S_IFLNK {
                    let msg = format!("inline symlink target of {} bytes", inode.inline_len);
                    clear(f, Code::InodeBadInline, subject, msg, ino, pos);
                    return None;
                }
                t.inline_len = 0;
                t.inline = [0; 96];
                t.seal();
                f.problem(
                    Code::InodeBadInline,
                    subject,
                    "inline data in an inode that is not a symlink",
                    "drop the inline data",
                    |f| f.write_inode(pos, &t),
                );
            }
            InodeError::BadLogPointers => {
                t.log_head = 0;
                t.log_tail = 0;
                f.problem(
                    Code::InodeBadLogPtr,
                    subject,
                    if layout::log::slot_len(inode.log_tail).is_some() {
                        format!(
                            "log tail {:#x}: a log in the inode record out of range or where \
                             none may be",
                            inode.log_tail
                        )
                    } else {
                        format!(
                            "log head {:#x} / tail {:#x}: one is zero",
                            inode.log_head, inode.log_tail
                        )
                    },
                    "empty the log",
                    |f| {
                        f.m.write_u64(pos + INODE_HEAD_OFF, 0).map_err(media_err)?;
                        f.m.write_u64(pos + INODE_TAIL_OFF, 0).map_err(media_err)
                    },
                );
            }
            InodeError::BadSize => {
                // The log's WRITE and SETATTR entries carry the sizes
                // set later; the record's own is the size at creation.
                t.size = 0;
                t.seal();
                f.problem(
                    Code::InodeBadSize,
                    subject,
                    format!("size {} beyond the largest file the format allows", inode.size),
                    "set the recorded size to 0 (the log's sizes still apply)",
                    |f| f.write_inode(pos, &t),
                );
            }
            InodeError::BadFlags => {
                t.flags &= layout::log::fl::ALL;
                t.seal();
                f.problem(
                    Code::InodeBadFlags,
                    subject,
                    format!("flags {:#x} include bits the format does not define", inode.flags),
                    "clear the undefined bits",
                    |f| f.write_inode(pos, &t),
                );
            }
            InodeError::BadState => return None,
        }
        inode = t;
    }
    None
}

/// The problem code and message for a log fault.
fn describe(fault: LogFault, w: &Walked, tail: u64) -> (Code, String) {
    match fault {
        LogFault::Kind { pos, what } => (Code::LogEntryKind, format!("{what} at {pos:#x}")),
        LogFault::Walk(e) => match e {
            WalkError::Media(e) => {
                (Code::LogPageUnreadable, format!("log page unreadable ({e:?})"))
            }
            WalkError::PageOutOfRange { block } => (
                Code::LogPageOutOfRange,
                format!("log page link to block {block}, outside the data area"),
            ),
            WalkError::TailOutOfRange { tail } => (
                Code::LogTailOutOfRange,
                format!("log tail {tail:#x} lies past the entry area of its page"),
            ),
            WalkError::BadPageTail { block } => (
                Code::LogPageTail,
                format!("log page {block}: page tail corrupt (magic or checksum)"),
            ),
            WalkError::WrongOwner { block, owner } => (
                Code::LogWrongOwner,
                format!("log page {block} belongs to inode {owner} or another generation"),
            ),
            WalkError::BadOrdinal { block } if w.pages.contains(&block) => {
                (Code::LogCycle, format!("log page chain loops back to block {block}"))
            }
            WalkError::BadOrdinal { block } => {
                (Code::LogOrdinal, format!("log page {block} is out of order"))
            }
            WalkError::TailNotInChain { block } => (
                Code::LogTailNotInChain,
                format!(
                    "log tail {tail:#x} is not in the page chain (the chain ends at block {block})"
                ),
            ),
            WalkError::BadUsed { block } => {
                (Code::LogUsed, format!("sealed log page {block} claims more bytes than it has"))
            }
            WalkError::Entry { pos, err: EntryError::BadChecksum } => {
                (Code::LogEntryCsum, format!("log entry checksum mismatch at {pos:#x}"))
            }
            WalkError::Entry { pos, err } => (
                Code::LogEntryBad,
                format!("invalid log entry at {pos:#x}: {}", e.describe_with(err)),
            ),
            WalkError::SeqNotIncreasing { pos } => {
                (Code::LogSeq, format!("log entry sequence number does not increase at {pos:#x}"))
            }
            WalkError::BadSlotLog { tail } => (
                Code::LogTailOutOfRange,
                format!(
                    "log tail {tail:#x} names a log in the inode record, on an image without them"
                ),
            ),
        },
    }
}

trait DescribeWith {
    fn describe_with(&self, err: EntryError) -> String;
}

impl DescribeWith for WalkError {
    fn describe_with(&self, err: EntryError) -> String {
        match err {
            EntryError::Truncated => "runs past the committed range".into(),
            EntryError::BadLength => "bad length".into(),
            EntryError::UnknownType(t) => format!("unknown type {t}"),
            EntryError::BadChecksum => "checksum mismatch".into(),
            EntryError::BadField(f) => f.into(),
        }
    }
}

/// When the tail is not in the chain (or the last page's `used` is bad),
/// finds the chain's last page and the last valid entry in it: a walk with
/// the tail set to the end of that page's entry area.
fn salvage(f: &Fsck<'_, '_>, ino: u64, inode: &Inode, w: &Walked) -> Option<Walked> {
    let mut t = *inode;
    let last = match w.fault {
        Some(LogFault::Walk(
            WalkError::TailNotInChain { block } | WalkError::BadUsed { block },
        )) if w.pages.last() == Some(&block) => block,
        Some(LogFault::Walk(WalkError::TailOutOfRange { .. })) => {
            // Block 0 is never in a chain: walk until the chain ends.
            t.log_tail = 0;
            let w1 = walk_inode(&f.m, &f.geo, ino, &t);
            match w1.fault {
                Some(LogFault::Walk(WalkError::TailNotInChain { block }))
                    if w1.pages.last() == Some(&block) =>
                {
                    block
                }
                _ => return Some(w1).filter(|w1| w1.fault.is_some()),
            }
        }
        _ => return None,
    };
    t.log_tail = last.checked_mul(BLOCK_SIZE_U64)?.checked_add(LOG_AREA as u64)?;
    Some(walk_inode(&f.m, &f.geo, ino, &t))
}

fn check_log(f: &mut Fsck<'_, '_>, ino: u64, pos: u64, inode: Inode, subject: &str) {
    let mut w = walk_inode(&f.m, &f.geo, ino, &inode);
    let Some(fault) = w.fault else {
        add_live(f, ino, pos, &inode, InodeRec::new(pos, &inode, w), subject);
        return;
    };
    if let Some(mut s) = salvage(f, ino, &inode, &w) {
        s.fault = Some(fault);
        w = s;
    }
    let (code, msg) = describe(fault, &w, inode.log_tail);
    let point = w.truncation_point();
    let action = match point {
        Some((tail, _)) if Some(tail) == w.last_end => {
            format!("truncate the log after the last valid entry (tail {tail:#x})")
        }
        Some((tail, _)) => {
            format!("truncate the log to its first page, no entries (tail {tail:#x})")
        }
        None => "empty the log".to_string(),
    };
    let fixed = f.problem(code, subject, msg, action, |f| {
        let (head, tail) = match point {
            Some((tail, _)) => (inode.log_head, tail),
            None => (0, 0),
        };
        f.m.write_u64(pos + INODE_HEAD_OFF, head).map_err(media_err)?;
        f.m.write_u64(pos + INODE_TAIL_OFF, tail).map_err(media_err)?;
        let mut t = inode;
        t.log_head = head;
        t.log_tail = tail;
        match walk_inode(&f.m, &f.geo, ino, &t).fault {
            None => Ok(()),
            Some(e) => Err(format!("the truncated log still does not verify ({e:?})")),
        }
    });
    let mut rec = InodeRec::new(pos, &inode, w);
    rec.broken_log = !fixed;
    add_live(f, ino, pos, &inode, rec, subject);
}

/// Why a symlink's target cannot be read, if it cannot.
fn symlink_problem(inode: &Inode, rec: &InodeRec) -> Option<String> {
    let size = rec.view.size;
    if size == 0 || size >= BLOCK_SIZE_U64 {
        return Some(format!("symlink target length {size} is not 1..4095"));
    }
    if inode.inline_len > 0 {
        return (size != inode.inline_len as u64).then(|| {
            format!(
                "symlink size {size} differs from its inline target ({} bytes)",
                inode.inline_len
            )
        });
    }
    let mapped = rec.extents.iter().any(|x| x.pgoff == 0);
    (!mapped).then(|| "symlink target block is not mapped".to_string())
}

/// Records a live inode after a last look at what the log made of it.
fn add_live(f: &mut Fsck<'_, '_>, ino: u64, pos: u64, inode: &Inode, rec: InodeRec, subject: &str) {
    if rec.view.mode & S_IFMT == S_IFLNK {
        if let Some(msg) = symlink_problem(inode, &rec) {
            let fixed = f.problem(
                Code::SymlinkBad,
                subject,
                msg,
                "clear the inode (its names are removed in pass 4)",
                |f| f.m.write_u64(pos + INODE_STATE_OFF, INODE_FREE).map_err(media_err),
            );
            if fixed {
                f.free_inos.insert(ino);
                return;
            }
        }
    }
    f.inodes.insert(ino, rec);
}
