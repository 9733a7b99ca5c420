//! Walking an inode's log and replaying what it means.
//!
//! [`walk_log`] follows the page chain from `log_head` to the page holding
//! `log_tail`, verifying every page tail and every committed entry, and
//! hands each entry to a [`LogVisitor`]. It is bounded (never more pages
//! than the device has) and never panics, whatever the bytes.
//!
//! [`Replay`] is the visitor that turns entries into the inode's current
//! state: scalar attributes in [`InodeView`], the block map through a
//! caller-provided [`FileMap`], names through a [`DirIndex`]. The kernel's
//! inode load, its recovery and fsck all use it.

use super::append::XattrValue;
use super::inode::{Inode, Timespec};
use super::log::{
    pos_block, pos_offset, sa, slot_len, unpack_next, Entry, EntryError, PageTail, DE_ADD,
    LOG_AREA, MAX_FILE_BLOCKS, PAGE_MAGIC, SLOT_LOG, WF_UNWRITTEN, XA_SET,
};
use super::sb::Geometry;
use super::{Media, MediaError, BLOCK_SIZE_U64};

/// Why a log walk stopped before the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A page could not be read.
    Media(MediaError),
    /// `log_head` or a `next` link points outside the data area.
    PageOutOfRange { block: u64 },
    /// The offset part of `log_tail` lies past the entry area.
    TailOutOfRange { tail: u64 },
    /// Page-tail magic or checksum wrong.
    BadPageTail { block: u64 },
    /// The page belongs to another inode (or generation).
    WrongOwner { block: u64, owner: u64 },
    /// The page's ordinal is not its place in the chain.
    BadOrdinal { block: u64 },
    /// The chain ended (or is longer than the device) before the tail page:
    /// the tail is not in the chain, or the chain loops.
    TailNotInChain { block: u64 },
    /// A sealed page claims more used bytes than it has.
    BadUsed { block: u64 },
    /// An invalid entry inside the committed range.
    Entry { pos: u64, err: EntryError },
    /// Sequence numbers do not increase.
    SeqNotIncreasing { pos: u64 },
    /// A slot-log tail on an image without slot logs, on a directory or a
    /// fast symlink, or longer than the inline area.
    BadSlotLog { tail: u64 },
}

impl WalkError {
    /// A short description for logs and tools.
    pub fn describe(&self) -> &'static str {
        match self {
            WalkError::Media(_) => "log page unreadable",
            WalkError::PageOutOfRange { .. } => "log page outside the data area",
            WalkError::TailOutOfRange { .. } => "log tail past the entry area",
            WalkError::BadPageTail { .. } => "log page tail corrupt",
            WalkError::WrongOwner { .. } => "log page owned by another inode",
            WalkError::BadOrdinal { .. } => "log page out of order",
            WalkError::TailNotInChain { .. } => "log tail not reachable from log head",
            WalkError::BadUsed { .. } => "log page used length invalid",
            WalkError::Entry { err: EntryError::BadChecksum, .. } => "log entry checksum mismatch",
            WalkError::Entry { err: EntryError::BadField(f), .. } => f,
            WalkError::Entry { .. } => "log entry malformed",
            WalkError::SeqNotIncreasing { .. } => "log entry sequence not increasing",
            WalkError::BadSlotLog { .. } => "log in the inode record invalid",
        }
    }
}

/// What a successful walk saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkReport {
    /// Log pages in the chain up to and including the tail page.
    pub pages: u64,
    /// Committed entries.
    pub entries: u64,
    /// Sequence number of the last entry (0 if none).
    pub last_seq: u64,
    /// Bytes of committed entries (for garbage-collection decisions).
    pub entry_bytes: u64,
    /// Committed `XATTR` entries (none: the inode has no attributes).
    pub xattr_entries: u64,
}

/// Receives what a walk finds, in log order.
pub trait LogVisitor {
    /// A log page of the chain (called before its entries).
    fn page(&mut self, _block: u64, _ordinal: u64) {}
    /// A committed, verified entry at byte position `pos`.
    fn entry(&mut self, pos: u64, e: &Entry<'_>);
}

/// Walks `inode`'s log (the inode is `ino`).
pub fn walk_log<M: Media + ?Sized, V: LogVisitor + ?Sized>(
    m: &M,
    geo: &Geometry,
    ino: u64,
    inode: &Inode,
    v: &mut V,
) -> Result<WalkReport, WalkError> {
    let mut rep = WalkReport::default();
    // A zero tail is an empty log, whatever `log_head` says (a first page
    // may be allocated before the first commit).
    if inode.log_tail == 0 {
        return Ok(rep);
    }
    if let Some(len) = slot_len(inode.log_tail) {
        // A slot log: the record's inline area, already in hand.
        if !geo.slot_logs || inode.validate_slot_log().is_err() {
            return Err(WalkError::BadSlotLog { tail: inode.log_tail });
        }
        let area = inode.inline.get(..len as usize).unwrap_or(&[]);
        let mut last_seq = 0;
        walk_entries(geo, area, SLOT_LOG, &mut last_seq, &mut rep, v)?;
        rep.last_seq = last_seq;
        return Ok(rep);
    }
    let tail_blk = pos_block(inode.log_tail);
    let tail_off = pos_offset(inode.log_tail);
    if tail_off > LOG_AREA {
        return Err(WalkError::TailOutOfRange { tail: inode.log_tail });
    }
    let mut blk = inode.log_head;
    let mut ordinal: u64 = 0;
    let mut last_seq: u64 = 0;
    loop {
        if !geo.is_data_block(blk) {
            return Err(WalkError::PageOutOfRange { block: blk });
        }
        if ordinal >= geo.blocks_count {
            return Err(WalkError::TailNotInChain { block: blk });
        }
        // The tail first (64 bytes), then only the bytes it says are used:
        // most pages of most logs are far from full.
        let mut tail = [0u8; PageTail::SIZE];
        let tail_pos = blk.saturating_mul(BLOCK_SIZE_U64).saturating_add(LOG_AREA as u64);
        m.read(tail_pos, &mut tail).map_err(WalkError::Media)?;
        let t = PageTail::decode(&tail).ok_or(WalkError::BadPageTail { block: blk })?;
        if t.magic != PAGE_MAGIC || t.csum != t.compute_csum() {
            return Err(WalkError::BadPageTail { block: blk });
        }
        if t.owner != ino || t.owner_gen != inode.generation {
            return Err(WalkError::WrongOwner { block: blk, owner: t.owner });
        }
        if t.ordinal != ordinal {
            return Err(WalkError::BadOrdinal { block: blk });
        }
        v.page(blk, ordinal);
        rep.pages += 1;
        let is_tail = blk == tail_blk;
        let (next, end) = if is_tail {
            (0, tail_off)
        } else {
            if t.next == 0 {
                return Err(WalkError::TailNotInChain { block: blk });
            }
            let (n, used) = unpack_next(t.next);
            if used > LOG_AREA {
                return Err(WalkError::BadUsed { block: blk });
            }
            (n, used)
        };
        let page = m.head(blk, end).map_err(WalkError::Media)?;
        let area = page.get(..end).ok_or(WalkError::BadUsed { block: blk })?;
        let base = blk.saturating_mul(BLOCK_SIZE_U64);
        walk_entries(geo, area, base, &mut last_seq, &mut rep, v)?;
        if is_tail {
            rep.last_seq = last_seq;
            return Ok(rep);
        }
        blk = next;
        ordinal += 1;
    }
}

/// Parses, checks and visits the entries of `area`, which starts at
/// position `base` (a page's first byte, or [`SLOT_LOG`] for a slot log).
fn walk_entries<V: LogVisitor + ?Sized>(
    geo: &Geometry,
    area: &[u8],
    base: u64,
    last_seq: &mut u64,
    rep: &mut WalkReport,
    v: &mut V,
) -> Result<(), WalkError> {
    let mut off = 0usize;
    while off < area.len() {
        let pos = base.saturating_add(off as u64);
        let rest = area.get(off..).unwrap_or(&[]);
        let (e, len) = Entry::parse(rest).map_err(|err| WalkError::Entry { pos, err })?;
        e.check(geo).map_err(|err| WalkError::Entry { pos, err })?;
        let seq = e.hdr().seq;
        if seq <= *last_seq {
            return Err(WalkError::SeqNotIncreasing { pos });
        }
        *last_seq = seq;
        v.entry(pos, &e);
        rep.entries += 1;
        if let Entry::Xattr(..) = e {
            rep.xattr_entries += 1;
        }
        rep.entry_bytes += len as u64;
        off += len;
    }
    Ok(())
}

/// Receives the block map as the log rebuilds it. Later calls override
/// earlier ones.
pub trait FileMap {
    /// File blocks `[pgoff, pgoff+count)` now live at `[block, block+count)`.
    fn map(&mut self, pgoff: u64, block: u64, count: u64);
    /// As [`FileMap::map`], but the blocks are unwritten
    /// ([`super::log::WF_UNWRITTEN`]): the file's own, reading as zeros.
    /// A sink that only accounts blocks may keep the default.
    fn map_unwritten(&mut self, pgoff: u64, block: u64, count: u64) {
        self.map(pgoff, block, count)
    }
    /// File blocks `[pgoff, pgoff+count)` are now holes.
    fn unmap(&mut self, pgoff: u64, count: u64);
}

/// Receives directory names as the log rebuilds them.
pub trait DirIndex {
    /// `name` now refers to `ino` (entry sequence `seq`, a stable readdir
    /// cookie).
    fn add(&mut self, name: &[u8], ino: u64, ftype: u8, seq: u64);
    /// `name` (which referred to `ino`) is gone.
    fn remove(&mut self, name: &[u8], ino: u64);
}

/// Receives extended attributes as the log rebuilds them. Later calls
/// override earlier ones; a removal of an absent attribute is ignored.
pub trait XattrIndex {
    /// Attribute `name` of namespace `index` now has `value` (never
    /// [`XattrValue::Removed`]).
    fn set(&mut self, index: u8, name: &[u8], value: XattrValue<'_>);
    /// Attribute `name` of namespace `index` is gone.
    fn remove(&mut self, index: u8, name: &[u8]);
}

/// A log visitor that gives the `XATTR` entries of a log to an
/// [`XattrIndex`] (attributes are read on first use, not when an inode is
/// loaded).
pub struct XattrReplay<'a, X: XattrIndex + ?Sized>(pub &'a mut X);

impl<X: XattrIndex + ?Sized> LogVisitor for XattrReplay<'_, X> {
    fn entry(&mut self, _pos: u64, e: &Entry<'_>) {
        if let Entry::Xattr(x, name, inline) = e {
            match (x.hdr.flags, x.value_block) {
                (XA_SET, 0) => self.0.set(x.index, name, XattrValue::Inline(inline)),
                (XA_SET, block) => {
                    self.0.set(x.index, name, XattrValue::Blocks { block, len: x.value_len })
                }
                _ => self.0.remove(x.index, name),
            }
        }
    }
}

/// A sink that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ignore;

impl FileMap for Ignore {
    fn map(&mut self, _: u64, _: u64, _: u64) {}
    fn unmap(&mut self, _: u64, _: u64) {}
}

impl DirIndex for Ignore {
    fn add(&mut self, _: &[u8], _: u64, _: u8, _: u64) {}
    fn remove(&mut self, _: &[u8], _: u64) {}
}

/// The scalar state of an inode after its log is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeView {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub parent: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub btime: Timespec,
    /// Inode flags ([`super::log::fl`]).
    pub flags: u32,
    pub projid: u32,
}

impl InodeView {
    /// The state recorded in the inode itself, before any entry.
    pub fn of(inode: &Inode) -> Self {
        Self {
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            nlink: inode.nlink,
            size: inode.size,
            parent: inode.parent,
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
            btime: inode.btime,
            flags: inode.flags,
            projid: 0,
        }
    }
}

/// First file block wholly past `size`.
pub fn blocks_for_size(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE_U64)
}

/// Applies entries to an [`InodeView`], a [`FileMap`] and a [`DirIndex`].
pub struct Replay<'a, F: FileMap + ?Sized, D: DirIndex + ?Sized> {
    /// The state so far.
    pub view: InodeView,
    /// Receives the block map.
    pub map: &'a mut F,
    /// Receives names.
    pub dir: &'a mut D,
}

impl<'a, F: FileMap + ?Sized, D: DirIndex + ?Sized> Replay<'a, F, D> {
    /// Starts from the inode's own fields.
    pub fn new(inode: &Inode, map: &'a mut F, dir: &'a mut D) -> Self {
        Self { view: InodeView::of(inode), map, dir }
    }
}

impl<F: FileMap + ?Sized, D: DirIndex + ?Sized> LogVisitor for Replay<'_, F, D> {
    fn entry(&mut self, _pos: u64, e: &Entry<'_>) {
        let v = &mut self.view;
        match e {
            Entry::Write(w) => {
                if w.hdr.flags & WF_UNWRITTEN != 0 {
                    self.map.map_unwritten(w.pgoff, w.block, w.count as u64);
                } else {
                    self.map.map(w.pgoff, w.block, w.count as u64);
                }
                v.size = w.size_after;
                v.mtime = w.mtime;
                v.ctime = w.mtime;
            }
            Entry::Punch(p) => {
                self.map.unmap(p.pgoff, p.count);
                v.mtime = p.mtime;
                v.ctime = p.mtime;
            }
            Entry::SetAttr(s) => {
                if s.valid & sa::MODE != 0 {
                    v.mode = (v.mode & !0o7777) | (s.mode & 0o7777);
                }
                if s.valid & sa::UID != 0 {
                    v.uid = s.uid;
                }
                if s.valid & sa::GID != 0 {
                    v.gid = s.gid;
                }
                if s.valid & sa::SIZE != 0 {
                    v.size = s.size;
                    let first = blocks_for_size(s.size);
                    if first < MAX_FILE_BLOCKS {
                        self.map.unmap(first, MAX_FILE_BLOCKS - first);
                    }
                }
                if s.valid & sa::ATIME != 0 {
                    v.atime = s.atime;
                }
                if s.valid & sa::MTIME != 0 {
                    v.mtime = s.mtime;
                }
                if s.valid & sa::CTIME != 0 {
                    v.ctime = s.ctime;
                }
            }
            Entry::Link(l) => {
                v.nlink = l.nlink;
                v.ctime = l.ctime;
            }
            Entry::Dentry(d, name) => {
                if d.hdr.flags == DE_ADD {
                    self.dir.add(name, d.ino, d.ftype, d.hdr.seq);
                } else {
                    self.dir.remove(name, d.ino);
                }
                v.mtime = d.mtime;
                v.ctime = d.mtime;
            }
            Entry::Parent(p) => {
                v.parent = p.parent;
                v.ctime = p.ctime;
            }
            Entry::Xattr(x, _, _) => v.ctime = x.ctime,
            Entry::Flags(f) => {
                v.flags = f.flags;
                v.projid = f.projid;
                v.ctime = f.ctime;
            }
        }
    }
}

/// Walks and replays `inode`'s log in one go.
pub fn replay_inode<M: Media + ?Sized, F: FileMap + ?Sized, D: DirIndex + ?Sized>(
    m: &M,
    geo: &Geometry,
    ino: u64,
    inode: &Inode,
    map: &mut F,
    dir: &mut D,
) -> Result<(InodeView, WalkReport), WalkError> {
    let mut r = Replay::new(inode, map, dir);
    let rep = walk_log(m, geo, ino, inode, &mut r)?;
    Ok((r.view, rep))
}
