//! The write side of logs: every entry kind's constructor and the append
//! protocol (FORMAT.md "Appending"), written once.
//!
//! The kernel module, `mkfs.novars`, `fsck.novars`'s repairs and the crash
//! checker's synthetic operations all write logs through [`append`] and
//! [`commit`], each over its own [`LogMedium`]: the module's persistence
//! layer (non-temporal stores, clwb, sfence), an image in memory, fsck's
//! repair overlay, or a recorder of the stores a kernel must issue. No
//! other code builds an entry header.
//!
//! The protocol, for one entry of `len` bytes at the log end `end`:
//! - a slot log (FORMAT.md "Slot logs"; the owner allows one, see
//!   [`LogOwner::slot`]): an empty log whose entry fits in the record's
//!   inline area starts there; a slot log whose next entry fits there
//!   grows there; otherwise its entries are copied to the start of a fresh
//!   first page (tail written, ordinal 0), which becomes the head, and the
//!   entry follows them as below;
//! - empty log (`end.tail == 0`): take a page, write its tail (owner,
//!   generation, ordinal 0); it becomes the head;
//! - the entry does not fit in the tail page ([`fits`]): take a page,
//!   write its tail (next ordinal), then seal the old page with one 8-byte
//!   store of its `next` word ([`pack_next`]: the new block and the bytes
//!   used) and flush it;
//! - write the entry (non-temporal: durable at the next fence).
//!
//! Nothing written is reachable until [`commit`] (or the caller's journal
//! transaction, with [`commit_words`]) moves `log_tail`: fence, then the
//! head word of a log that had no page, then the tail word, each persisted.

use super::inode::{
    SegmentHeader, Timespec, INODE_HEAD_OFF, INODE_INLINE_OFF, INODE_TAIL_OFF, SEG_NEXT_OFF,
};
use super::log::{
    dentry_len, et, fits, is_page_tail, name_is_valid, pack_next, pos_block, pos_offset,
    seal_entry, slot_len, xattr_len, xattr_name_is_valid, DentryEntry, EntryHeader, FlagsEntry,
    LinkEntry, PageTail, ParentEntry, PunchEntry, SetAttrEntry, WriteEntry, XattrEntry, LOG_AREA,
    MAX_ENTRY, PAGE_NEXT_OFF, SLOT_LOG, SLOT_LOG_BYTES, XATTR_INLINE_MAX, XATTR_VALUE_MAX,
    XA_REMOVE, XA_SET,
};
use super::sb::Geometry;
use super::walk::WalkReport;
use super::BLOCK_SIZE_U64;

/// The attributes a `SETATTR` entry carries (those named in `valid` apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetAttrs {
    /// [`super::log::sa`] bits.
    pub valid: u32,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl SetAttrs {
    /// Only the bits of `valid`, every value zero: set the named ones.
    pub fn only(valid: u32) -> Self {
        let z = Timespec::zeroed();
        Self { valid, mode: 0, uid: 0, gid: 0, size: 0, atime: z, mtime: z, ctime: z }
    }
}

/// What an `XATTR` entry says of the attribute's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrValue<'a> {
    /// Set, the value inside the entry (at most [`XATTR_INLINE_MAX`] bytes).
    Inline(&'a [u8]),
    /// Set, the value (`len` bytes, more than [`XATTR_INLINE_MAX`]) in the
    /// blocks from `block` on, written before the entry commits.
    Blocks { block: u64, len: u32 },
    /// Removed.
    Removed,
}

/// A log entry to append; its sequence number is assigned by [`append`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewEntry<'a> {
    /// `WRITE`: file blocks `[pgoff, pgoff + count)` live in device blocks
    /// `[block, block + count)`; `flags` are [`super::log::WF_FAULT`],
    /// [`super::log::WF_FALLOC`], [`super::log::WF_UNWRITTEN`].
    Write { flags: u8, pgoff: u64, block: u64, count: u32, size_after: u64, mtime: Timespec },
    /// `PUNCH`: file blocks `[pgoff, pgoff + count)` unmapped.
    Punch { pgoff: u64, count: u64, mtime: Timespec },
    /// `SETATTR`.
    SetAttr(SetAttrs),
    /// `LINK`: the link count becomes `nlink`.
    Link { nlink: u32, ctime: Timespec },
    /// `DENTRY`: `op` is [`super::log::DE_ADD`] or [`super::log::DE_DEL`].
    Dentry { op: u8, ino: u64, ftype: u8, mtime: Timespec, name: &'a [u8] },
    /// `PARENT`: a directory's `..` becomes `parent`.
    Parent { parent: u64, ctime: Timespec },
    /// `XATTR`: attribute `name` of namespace `index` ([`super::log::xa`]).
    Xattr { index: u8, name: &'a [u8], value: XattrValue<'a>, ctime: Timespec },
    /// `FLAGS`: the inode flags ([`super::log::fl`]) and project id.
    Flags { flags: u32, projid: u32, ctime: Timespec },
}

impl NewEntry<'_> {
    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        match self {
            NewEntry::Write { .. } => WriteEntry::SIZE,
            NewEntry::Punch { .. } => PunchEntry::SIZE,
            NewEntry::SetAttr(_) => SetAttrEntry::SIZE,
            NewEntry::Link { .. } => LinkEntry::SIZE,
            NewEntry::Dentry { name, .. } => dentry_len(name.len()),
            NewEntry::Parent { .. } => ParentEntry::SIZE,
            NewEntry::Xattr { name, value: XattrValue::Inline(v), .. } => {
                xattr_len(name.len(), v.len())
            }
            NewEntry::Xattr { name, .. } => xattr_len(name.len(), 0),
            NewEntry::Flags { .. } => FlagsEntry::SIZE,
        }
    }

    /// Encodes the entry with sequence number `seq` into the start of
    /// `buf` and seals its checksum; returns its length, or `None` if
    /// `buf` is short or a name is illegal.
    pub fn encode(&self, seq: u64, buf: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let b = buf.get_mut(..len)?;
        b.fill(0);
        match *self {
            NewEntry::Write { flags, pgoff, block, count, size_after, mtime } => {
                WriteEntry {
                    hdr: EntryHeader::new(et::WRITE, flags, seq, len),
                    pgoff,
                    block,
                    count,
                    _pad: 0,
                    size_after,
                    mtime,
                }
                .encode(b);
            }
            NewEntry::Punch { pgoff, count, mtime } => {
                PunchEntry { hdr: EntryHeader::new(et::PUNCH, 0, seq, len), pgoff, count, mtime }
                    .encode(b);
            }
            NewEntry::SetAttr(a) => {
                SetAttrEntry {
                    hdr: EntryHeader::new(et::SETATTR, 0, seq, len),
                    valid: a.valid,
                    mode: a.mode & 0o7777,
                    uid: a.uid,
                    gid: a.gid,
                    size: a.size,
                    atime: a.atime,
                    mtime: a.mtime,
                    ctime: a.ctime,
                }
                .encode(b);
            }
            NewEntry::Link { nlink, ctime } => {
                LinkEntry { hdr: EntryHeader::new(et::LINK, 0, seq, len), nlink, _pad: 0, ctime }
                    .encode(b);
            }
            NewEntry::Dentry { op, ino, ftype, mtime, name } => {
                if !name_is_valid(name) {
                    return None;
                }
                DentryEntry {
                    hdr: EntryHeader::new(et::DENTRY, op, seq, len),
                    ino,
                    mtime,
                    name_len: name.len() as u8,
                    ftype,
                    _pad: [0; 6],
                }
                .encode(b);
                b.get_mut(DentryEntry::SIZE..DentryEntry::SIZE + name.len())?.copy_from_slice(name);
            }
            NewEntry::Parent { parent, ctime } => {
                ParentEntry { hdr: EntryHeader::new(et::PARENT, 0, seq, len), parent, ctime }
                    .encode(b);
            }
            NewEntry::Flags { flags, projid, ctime } => {
                if flags & !super::log::fl::ALL != 0 {
                    return None;
                }
                FlagsEntry { hdr: EntryHeader::new(et::FLAGS, 0, seq, len), flags, projid, ctime }
                    .encode(b);
            }
            NewEntry::Xattr { index, name, value, ctime } => {
                if !xattr_name_is_valid(index, name) {
                    return None;
                }
                let (flags, value_len, value_block, inline) = match value {
                    XattrValue::Inline(v) if v.len() <= XATTR_INLINE_MAX => {
                        (XA_SET, v.len() as u32, 0, v)
                    }
                    XattrValue::Blocks { block, len }
                        if block != 0
                            && len as usize > XATTR_INLINE_MAX
                            && len as usize <= XATTR_VALUE_MAX =>
                    {
                        (XA_SET, len, block, &[][..])
                    }
                    XattrValue::Removed => (XA_REMOVE, 0, 0, &[][..]),
                    _ => return None,
                };
                XattrEntry {
                    hdr: EntryHeader::new(et::XATTR, flags, seq, len),
                    index,
                    name_len: name.len() as u8,
                    _pad: 0,
                    value_len,
                    value_block,
                    ctime,
                }
                .encode(b);
                let at = XattrEntry::SIZE;
                b.get_mut(at..at + name.len())?.copy_from_slice(name);
                let at = at + name.len();
                b.get_mut(at..at + inline.len())?.copy_from_slice(inline);
            }
        }
        seal_entry(b);
        Some(len)
    }
}

/// Whose log a page belongs to (written into every page tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOwner {
    pub ino: u64,
    pub gen: u32,
    /// Position of the inode's record if its log may live there (FORMAT.md
    /// "Slot logs": the image has the feature and the inode may have one,
    /// [`super::inode::Inode::may_slot_log`]); 0 if its log is in pages
    /// only. An empty log then starts in the record while its entries fit,
    /// and moves to a page when one does not.
    pub slot: u64,
}

impl LogOwner {
    /// The owner of a log kept in pages only.
    pub fn pages(ino: u64, gen: u32) -> Self {
        Self { ino, gen, slot: 0 }
    }

    /// The owner of the log of `inode`, whose record is at `rec`: a slot
    /// log allowed if the image has them and the inode may have one.
    pub fn of(geo: &Geometry, ino: u64, inode: &super::inode::Inode, rec: u64) -> Self {
        let slot = if geo.slot_logs && inode.may_slot_log() { rec } else { 0 };
        Self { ino, gen: inode.generation, slot }
    }
}

/// Where a log ends: what an appender needs to know, kept in DRAM by the
/// module and the tools (built from a walk by [`LogEnd::walked`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogEnd {
    /// First page (meaningful while `tail != 0`).
    pub head: u64,
    /// Tail position: where the next entry goes if it fits (0: no log).
    pub tail: u64,
    /// Ordinal of the tail page.
    pub tail_ord: u64,
    /// Sequence number of the last entry (the next gets a larger one).
    pub seq: u64,
    /// Pages in the log.
    pub pages: u64,
}

impl LogEnd {
    /// The end of a committed log with head `head` and tail `tail`, as
    /// its walk (`walk::walk_log`) reported it.
    pub fn walked(head: u64, tail: u64, rep: &WalkReport) -> Self {
        if !is_page_tail(tail) {
            // Empty, or a slot log (no pages; `log_head` means nothing).
            return Self { tail, seq: rep.last_seq, ..Self::default() };
        }
        Self {
            head,
            tail,
            tail_ord: rep.pages.saturating_sub(1),
            seq: rep.last_seq,
            pages: rep.pages,
        }
    }

    /// Whether the log has no page yet.
    pub fn is_empty(&self) -> bool {
        self.tail == 0
    }
}

/// Why an append could not be encoded (the medium's own failures are its
/// `Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The sequence number would not increase (or overflowed).
    Sequence,
    /// The entry does not encode (an illegal name).
    BadEntry,
    /// A position or ordinal overflowed.
    Overflow,
    /// A new inode-table segment outside the data area.
    BadPlace,
}

/// Where and how logs are written: the module's persistence layer, an
/// image in memory, fsck's overlay, or the crash checker's recorder.
pub trait LogMedium {
    /// The medium's error type.
    type Error;

    /// Turns a protocol error into the medium's error.
    fn error(e: AppendError) -> Self::Error;
    /// Reads `buf.len()` bytes at `pos` as written so far (moving a slot
    /// log to a page reads the record's inline area).
    fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Takes a free block for a log page (its contents are undefined).
    fn alloc_page(&mut self) -> Result<u64, Self::Error>;
    /// Writes `bytes` at `pos`, durable at the next fence (non-temporal).
    fn write_nt(&mut self, pos: u64, bytes: &[u8]) -> Result<(), Self::Error>;
    /// A cached, atomic 8-byte store at an 8-aligned `pos`.
    fn store_u64(&mut self, pos: u64, v: u64) -> Result<(), Self::Error>;
    /// Writes back the cache lines of `[pos, pos + len)`.
    fn flush(&mut self, pos: u64, len: u64) -> Result<(), Self::Error>;
    /// Orders every earlier store and flush before any later store.
    fn fence(&mut self) -> Result<(), Self::Error>;

    /// Store, flush and fence an 8-byte word: the commit primitive.
    fn persist_u64(&mut self, pos: u64, v: u64) -> Result<(), Self::Error> {
        self.store_u64(pos, v)?;
        self.flush(pos, 8)?;
        self.fence()
    }

    /// Called when an entry's place is known, just before it is written;
    /// `end` is the log end after it. The module's tracing build uses it
    /// for a deliberate fault; everyone else writes nothing here.
    fn before_entry(&mut self, _end: &LogEnd) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Writes the tail of a fresh log page: page `ordinal` of `owner`.
pub fn start_page<M: LogMedium>(
    m: &mut M,
    page: u64,
    owner: LogOwner,
    ordinal: u64,
) -> Result<(), M::Error> {
    let mut t = [0u8; PageTail::SIZE];
    PageTail::new(owner.ino, owner.gen, ordinal).encode(&mut t);
    let pos = page.checked_mul(BLOCK_SIZE_U64).ok_or(M::error(AppendError::Overflow))?;
    m.write_nt(pos + LOG_AREA as u64, &t)
}

/// Seals the page holding position `tail`: its `next` word names `next`
/// and the bytes used; flushed, not fenced.
pub fn link_page<M: LogMedium>(m: &mut M, tail: u64, next: u64) -> Result<(), M::Error> {
    let pos = pos_block(tail) * BLOCK_SIZE_U64 + PAGE_NEXT_OFF as u64;
    m.store_u64(pos, pack_next(next, pos_offset(tail)))?;
    m.flush(pos, 8)
}

/// Appends `e` after `end` with the next sequence number; `end` moves
/// past it. Returns the entry's position. Nothing is committed.
pub fn append<M: LogMedium>(
    m: &mut M,
    owner: LogOwner,
    end: &mut LogEnd,
    e: &NewEntry<'_>,
) -> Result<u64, M::Error> {
    let seq = end.seq.checked_add(1).ok_or(M::error(AppendError::Sequence))?;
    append_seq(m, owner, end, seq, e)
}

/// Appends `e` with sequence number `seq`, which must be above `end.seq`
/// (log compaction keeps each name's original number, its readdir cookie).
pub fn append_seq<M: LogMedium>(
    m: &mut M,
    owner: LogOwner,
    end: &mut LogEnd,
    seq: u64,
    e: &NewEntry<'_>,
) -> Result<u64, M::Error> {
    if seq <= end.seq {
        return Err(M::error(AppendError::Sequence));
    }
    let mut buf = [0u8; MAX_ENTRY];
    let len = e.encode(seq, &mut buf).ok_or(M::error(AppendError::BadEntry))?;
    let entry = buf.get(..len).ok_or(M::error(AppendError::BadEntry))?;
    let mut new = *end;
    let inline = owner.slot.checked_add(INODE_INLINE_OFF).ok_or(M::error(AppendError::Overflow))?;
    if let Some(used) = slot_len(new.tail) {
        let used = usize::try_from(used)
            .ok()
            .filter(|&u| u <= SLOT_LOG_BYTES && owner.slot != 0)
            .ok_or(M::error(AppendError::BadPlace))?;
        if used + len <= SLOT_LOG_BYTES {
            return put_in_slot(m, end, new, inline + used as u64, seq, entry);
        }
        // Move the slot log to a first page: its entries, byte for byte,
        // at the page's start; the commit stores `log_head`, then the tail.
        let mut moved = [0u8; SLOT_LOG_BYTES];
        let moved = moved.get_mut(..used).ok_or(M::error(AppendError::BadPlace))?;
        m.read(inline, moved)?;
        let page = m.alloc_page()?;
        start_page(m, page, owner, 0)?;
        let at = page.checked_mul(BLOCK_SIZE_U64).ok_or(M::error(AppendError::Overflow))?;
        m.write_nt(at, moved)?;
        new.head = page;
        new.tail = at + used as u64;
        new.tail_ord = 0;
        new.pages = 1;
    } else if new.tail == 0 && owner.slot != 0 && len <= SLOT_LOG_BYTES {
        let empty = LogEnd { tail: SLOT_LOG, ..LogEnd::default() };
        return put_in_slot(m, end, empty, inline, seq, entry);
    }
    if new.tail == 0 {
        let page = m.alloc_page()?;
        start_page(m, page, owner, 0)?;
        new.head = page;
        new.tail = page * BLOCK_SIZE_U64;
        new.tail_ord = 0;
        new.pages = 1;
    } else if !fits(new.tail, len) {
        let ord = new.tail_ord.checked_add(1).ok_or(M::error(AppendError::Overflow))?;
        let page = m.alloc_page()?;
        start_page(m, page, owner, ord)?;
        link_page(m, new.tail, page)?;
        new.tail = page * BLOCK_SIZE_U64;
        new.tail_ord = ord;
        new.pages = new.pages.saturating_add(1);
    }
    let pos = new.tail;
    new.tail = pos.checked_add(len as u64).ok_or(M::error(AppendError::Overflow))?;
    new.seq = seq;
    m.before_entry(&new)?;
    m.write_nt(pos, entry)?;
    *end = new;
    Ok(pos)
}

/// Writes `entry` (sequence number `seq`) after the slot log `new`, at
/// `at` in the record's inline area; `end` moves past it. Returns its
/// position (`SLOT_LOG | offset`).
fn put_in_slot<M: LogMedium>(
    m: &mut M,
    end: &mut LogEnd,
    mut new: LogEnd,
    at: u64,
    seq: u64,
    entry: &[u8],
) -> Result<u64, M::Error> {
    let pos = new.tail;
    new.tail = pos + entry.len() as u64;
    new.seq = seq;
    m.before_entry(&new)?;
    m.write_nt(at, entry)?;
    *end = new;
    Ok(pos)
}

/// The words that commit a change of a log from `old` to `new`, for an
/// inode record at `rec`: `(position, value)`, the head first when the log
/// was empty, then the tail. A journal transaction stores these.
pub fn commit_words(rec: u64, old: &LogEnd, new: &LogEnd) -> ([(u64, u64); 2], usize) {
    let tail = (rec + INODE_TAIL_OFF, new.tail);
    if !is_page_tail(old.tail) && is_page_tail(new.tail) {
        ([(rec + INODE_HEAD_OFF, new.head), tail], 2)
    } else {
        ([tail, (0, 0)], 1)
    }
}

/// Commits one log's appends without a journal: fence (the entries and
/// page work are durable), then persist the head word of a log that was
/// empty, then the tail word.
pub fn commit<M: LogMedium>(
    m: &mut M,
    rec: u64,
    old: &LogEnd,
    new: &LogEnd,
) -> Result<(), M::Error> {
    m.fence()?;
    let (words, n) = commit_words(rec, old, new);
    for &(pos, v) in words.iter().take(n) {
        m.persist_u64(pos, v)?;
    }
    Ok(())
}

/// Adds segment `index` (blocks `[seg, seg + geo.seg_blocks())`, free and
/// inside the data area) to lane `lane`'s inode table after its last
/// segment, whose header is at block `prev` (FORMAT.md "Inode numbers and
/// inode tables"): every block zeroed (every slot FREE) and the header
/// written, non-temporally; a fence; then the previous header's `next`
/// persisted, the one store that makes the segment part of the table. A
/// crash before that store leaves blocks nothing reaches (free again at
/// the next mount's scan); after it, a table with more free slots.
pub fn grow_segment<M: LogMedium>(
    m: &mut M,
    geo: &Geometry,
    lane: u32,
    index: u32,
    prev: u64,
    seg: u64,
) -> Result<(), M::Error> {
    if index == 0 || !geo.is_data_range(seg, geo.seg_blocks()) {
        return Err(M::error(AppendError::BadPlace));
    }
    let zero = [0u8; BLOCK_SIZE_U64 as usize];
    for b in seg..seg + geo.seg_blocks() {
        m.write_nt(b * BLOCK_SIZE_U64, &zero)?;
    }
    let mut h = [0u8; SegmentHeader::SIZE];
    SegmentHeader::new(lane, index, geo.seg_inodes).encode(&mut h);
    m.write_nt(seg * BLOCK_SIZE_U64, &h)?;
    m.fence()?;
    let link = prev.checked_mul(BLOCK_SIZE_U64).ok_or(M::error(AppendError::Overflow))?;
    m.persist_u64(link + SEG_NEXT_OFF as u64, seg)
}

#[cfg(test)]
mod tests {
    use super::super::log::{Entry, DE_ADD};
    use super::super::walk::{walk_log, LogVisitor};
    use super::*;
    use std::vec::Vec;

    /// An image in memory that records the order of operations.
    struct Img {
        bytes: Vec<u8>,
        next_free: u64,
        ops: Vec<char>,
    }

    impl LogMedium for Img {
        type Error = AppendError;
        fn error(e: AppendError) -> AppendError {
            e
        }
        fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), AppendError> {
            buf.copy_from_slice(&self.bytes[pos as usize..pos as usize + buf.len()]);
            Ok(())
        }
        fn alloc_page(&mut self) -> Result<u64, AppendError> {
            self.next_free += 1;
            Ok(self.next_free - 1)
        }
        fn write_nt(&mut self, pos: u64, b: &[u8]) -> Result<(), AppendError> {
            self.ops.push('N');
            self.bytes[pos as usize..pos as usize + b.len()].copy_from_slice(b);
            Ok(())
        }
        fn store_u64(&mut self, pos: u64, v: u64) -> Result<(), AppendError> {
            self.ops.push('S');
            self.bytes[pos as usize..pos as usize + 8].copy_from_slice(&v.to_le_bytes());
            Ok(())
        }
        fn flush(&mut self, _: u64, _: u64) -> Result<(), AppendError> {
            self.ops.push('F');
            Ok(())
        }
        fn fence(&mut self) -> Result<(), AppendError> {
            self.ops.push('B');
            Ok(())
        }
    }

    /// A medium whose `head` hands out exactly the bytes asked for, and
    /// that counts the bytes it hands out.
    struct Strict<'a> {
        m: super::super::media::SliceMedia<'a>,
        read: core::cell::Cell<u64>,
    }

    impl super::super::Media for Strict<'_> {
        type Block<'b>
            = &'b [u8]
        where
            Self: 'b;
        fn block(&self, nr: u64) -> Result<&[u8], super::super::MediaError> {
            self.head(nr, super::super::BLOCK_SIZE)
        }
        fn head(&self, nr: u64, len: usize) -> Result<&[u8], super::super::MediaError> {
            self.read.set(self.read.get() + len as u64);
            Ok(&self.m.block(nr)?[..len])
        }
        fn read(&self, pos: u64, buf: &mut [u8]) -> Result<(), super::super::MediaError> {
            self.read.set(self.read.get() + buf.len() as u64);
            let off = (pos % BLOCK_SIZE_U64) as usize;
            buf.copy_from_slice(&self.m.block(pos / BLOCK_SIZE_U64)?[off..off + buf.len()]);
            Ok(())
        }
        fn blocks(&self) -> u64 {
            self.m.blocks()
        }
    }

    struct Collect(Vec<(u64, u8)>);
    impl LogVisitor for Collect {
        fn entry(&mut self, _pos: u64, e: &Entry<'_>) {
            self.0.push((e.hdr().seq, e.hdr().etype));
        }
    }

    fn geo() -> super::super::Geometry {
        super::super::Geometry::plan(8192, 1, 64).expect("geometry")
    }

    #[test]
    fn appended_log_walks_back() {
        let geo = geo();
        let mut img =
            Img { bytes: vec![0; 8192 * 4096], next_free: geo.first_data_block, ops: Vec::new() };
        let owner = LogOwner::pages(5, 1);
        let mut end = LogEnd::default();
        let t = Timespec::new(1, 2);
        let name = [b'n'; 200];
        for i in 0..100u64 {
            let e = if i % 2 == 0 {
                NewEntry::Dentry { op: DE_ADD, ino: 7 + i, ftype: 1, mtime: t, name: &name }
            } else {
                NewEntry::Link { nlink: i as u32, ctime: t }
            };
            append(&mut img, owner, &mut end, &e).unwrap();
        }
        assert_eq!(end.seq, 100);
        assert!(end.pages > 3, "{end:?}");
        assert_eq!(end.tail_ord + 1, end.pages);
        let mut seen = Collect(Vec::new());
        let media = super::super::media::SliceMedia::new(&img.bytes);
        let mut inode = super::super::Inode::zeroed();
        inode.generation = owner.gen;
        inode.log_head = end.head;
        inode.log_tail = end.tail;
        let rep = walk_log(&media, &geo, owner.ino, &inode, &mut seen).expect("walks");
        assert_eq!(rep.pages, end.pages);
        assert_eq!(rep.last_seq, 100);
        assert_eq!(seen.0.len(), 100);
        assert_eq!(LogEnd::walked(end.head, end.tail, &rep), end);
        // A medium that hands out only the bytes asked for walks the same
        // log the same way, reading each page's tail and used part only.
        let strict = Strict { m: media, read: core::cell::Cell::new(0) };
        let mut seen2 = Collect(Vec::new());
        assert_eq!(walk_log(&strict, &geo, owner.ino, &inode, &mut seen2), Ok(rep));
        assert_eq!(seen2.0, seen.0);
        let used = rep.entry_bytes + rep.pages * super::super::log::PageTail::SIZE as u64;
        assert_eq!(strict.read.get(), used, "{} pages", rep.pages);
        // A commit fences before it stores the words.
        img.ops.clear();
        commit(&mut img, 0, &LogEnd::default(), &end).unwrap();
        assert_eq!(img.ops, ['B', 'S', 'F', 'B', 'S', 'F', 'B']);
    }

    #[test]
    fn grown_segment_joins_the_chain_by_its_last_store() {
        let geo = geo();
        let mut img =
            Img { bytes: vec![0; 8192 * 4096], next_free: geo.first_data_block, ops: Vec::new() };
        let first = geo.first_segment(0);
        let mut h = [0u8; SegmentHeader::SIZE];
        SegmentHeader::new(0, 0, geo.seg_inodes).encode(&mut h);
        img.write_nt(first * 4096, &h).unwrap();
        let seg = geo.first_data_block + 8;
        // Stale bytes where the new segment goes: they must be zeroed.
        img.bytes[(seg as usize + 1) * 4096] = 0xaa;
        img.ops.clear();
        grow_segment(&mut img, &geo, 0, 1, first, seg).unwrap();
        let n = geo.seg_blocks() as usize + 1;
        assert!(img.ops[..n].iter().all(|&o| o == 'N'), "{:?}", img.ops);
        assert_eq!(img.ops[n..], ['B', 'S', 'F', 'B']);
        let media = super::super::media::SliceMedia::new(&img.bytes);
        let mut segs = Vec::new();
        let count = super::super::inode::walk_segments(&media, &geo, 0, |_, b| segs.push(b));
        assert_eq!(count, Ok(2));
        assert_eq!(segs, [first, seg]);
        assert_eq!(img.bytes[(seg as usize + 1) * 4096], 0);
        // Never in the fixed area, never the first segment.
        let before = img.ops.len();
        assert_eq!(grow_segment(&mut img, &geo, 0, 1, first, 1), Err(AppendError::BadPlace));
        assert_eq!(grow_segment(&mut img, &geo, 0, 0, first, seg), Err(AppendError::BadPlace));
        let end = geo.backup_sb() - 1;
        assert_eq!(grow_segment(&mut img, &geo, 0, 2, seg, end), Err(AppendError::BadPlace));
        assert_eq!(img.ops.len(), before, "a refused segment writes nothing");
    }

    #[test]
    fn sequence_must_increase_and_names_be_legal() {
        let mut img = Img { bytes: vec![0; 16 * 4096], next_free: 1, ops: Vec::new() };
        let owner = LogOwner::pages(5, 1);
        let mut end = LogEnd { seq: 9, ..LogEnd::default() };
        let t = Timespec::new(0, 0);
        let e = NewEntry::Link { nlink: 1, ctime: t };
        assert_eq!(append_seq(&mut img, owner, &mut end, 9, &e), Err(AppendError::Sequence));
        let bad = NewEntry::Dentry { op: DE_ADD, ino: 1, ftype: 1, mtime: t, name: b"a/b" };
        assert_eq!(append(&mut img, owner, &mut end, &bad), Err(AppendError::BadEntry));
        assert!(end.is_empty(), "a failed append leaves the end alone");
        assert!(img.ops.is_empty(), "and writes nothing");
    }

    /// Reads the record at `rec` back from the image.
    fn record(img: &Img, rec: u64) -> super::super::Inode {
        super::super::Inode::decode(&img.bytes[rec as usize..rec as usize + 256]).unwrap()
    }

    #[test]
    fn slot_log_grows_in_the_record_then_moves_to_a_page() {
        use super::super::inode::{INODE_LIVE, S_IFREG};
        let geo = geo();
        assert!(geo.slot_logs, "new images have slot logs");
        let mut img =
            Img { bytes: vec![0; 8192 * 4096], next_free: geo.first_data_block, ops: Vec::new() };
        let rec = geo.first_segment(0) * 4096 + 256 * 3;
        let mut ni = super::super::Inode::zeroed();
        ni.state = INODE_LIVE;
        ni.ino = 3;
        ni.generation = 2;
        ni.mode = S_IFREG | 0o644;
        ni.seal();
        ni.encode(&mut img.bytes[rec as usize..rec as usize + 256]);
        let owner = LogOwner::of(&geo, 3, &ni, rec);
        assert_eq!(owner.slot, rec);
        let t = Timespec::new(1, 2);
        let w = |pgoff| NewEntry::Write {
            flags: 0,
            pgoff,
            block: geo.first_data_block + 100 + pgoff,
            count: 1,
            size_after: (pgoff + 1) * 4096,
            mtime: t,
        };
        // A WRITE (64 bytes) alone fits; a PUNCH (48) and a LINK (40) do.
        let mut one = LogEnd::default();
        append(&mut img, owner, &mut one, &w(0)).unwrap();
        assert_eq!((one.tail, one.pages), (SLOT_LOG | 64, 0));
        // The first entry starts a slot log: no page, no head.
        let mut end = LogEnd::default();
        let punch = NewEntry::Punch { pgoff: 9, count: 1, mtime: t };
        let pos = append(&mut img, owner, &mut end, &punch).unwrap();
        assert_eq!(pos, SLOT_LOG);
        assert_eq!((end.tail, end.pages, img.next_free), (SLOT_LOG | 48, 0, geo.first_data_block));
        img.ops.clear();
        commit(&mut img, rec, &LogEnd::default(), &end).unwrap();
        assert_eq!(img.ops, ['B', 'S', 'F', 'B'], "the tail word alone commits it");
        let r = record(&img, rec);
        assert_eq!(r.validate(3), Ok(()), "entries in the slot leave the checksum valid");
        let media = super::super::media::SliceMedia::new(&img.bytes);
        let mut seen = Collect(Vec::new());
        let rep = walk_log(&media, &geo, 3, &r, &mut seen).unwrap();
        assert_eq!((rep.pages, rep.last_seq, seen.0.len()), (0, 1, 1));
        assert_eq!(LogEnd::walked(r.log_head, r.log_tail, &rep), end);
        // A LINK (fits in the 48 bytes left) grows it in place.
        let old = end;
        append(&mut img, owner, &mut end, &NewEntry::Link { nlink: 2, ctime: t }).unwrap();
        assert_eq!(end.tail & SLOT_LOG, SLOT_LOG);
        commit(&mut img, rec, &old, &end).unwrap();
        // The next WRITE does not fit: both entries move to a first page.
        let old = end;
        let pos = append(&mut img, owner, &mut end, &w(1)).unwrap();
        assert_eq!(end.pages, 1);
        assert_eq!(end.head, geo.first_data_block);
        let used = slot_len(old.tail).unwrap();
        assert_eq!(pos, end.head * 4096 + used);
        // A crash after the head word but before the tail: still the slot.
        let (words, n) = commit_words(rec, &old, &end);
        assert_eq!(n, 2, "head, then tail");
        assert_eq!(words[0], (rec + INODE_HEAD_OFF, end.head));
        img.store_u64(words[0].0, words[0].1).unwrap();
        let r = record(&img, rec);
        assert_eq!(r.validate(3), Ok(()));
        let media = super::super::media::SliceMedia::new(&img.bytes);
        let rep = walk_log(&media, &geo, 3, &r, &mut Collect(Vec::new())).unwrap();
        assert_eq!((rep.pages, rep.last_seq), (0, 2));
        commit(&mut img, rec, &old, &end).unwrap();
        let r = record(&img, rec);
        let media = super::super::media::SliceMedia::new(&img.bytes);
        let mut seen = Collect(Vec::new());
        let rep = walk_log(&media, &geo, 3, &r, &mut seen).unwrap();
        assert_eq!((rep.pages, rep.last_seq), (1, 3));
        assert_eq!(seen.0, [(1, et::PUNCH), (2, et::LINK), (3, et::WRITE)]);
        assert_eq!(LogEnd::walked(r.log_head, r.log_tail, &rep), end);
        // Without the feature, or on a directory, a slot tail is refused.
        let mut g2 = geo;
        g2.slot_logs = false;
        let mut slot = r;
        slot.log_tail = SLOT_LOG | 64;
        assert!(walk_log(&media, &g2, 3, &slot, &mut Collect(Vec::new())).is_err());
        let mut dir = slot;
        dir.mode = super::super::inode::S_IFDIR | 0o755;
        dir.seal();
        assert!(dir.validate(3).is_err());
        assert!(walk_log(&media, &geo, 3, &dir, &mut Collect(Vec::new())).is_err());
        slot.log_tail = SLOT_LOG | 97;
        assert!(slot.validate(3).is_err());
        assert_eq!(LogOwner::of(&geo, 3, &dir, rec).slot, 0);
        // An owner without a slot cannot grow a slot log (nothing written).
        let mut e2 = LogEnd { tail: SLOT_LOG | 64, seq: 5, ..LogEnd::default() };
        let before = img.ops.len();
        let r = append(&mut img, LogOwner::pages(3, 2), &mut e2, &w(2));
        assert_eq!(r, Err(AppendError::BadPlace));
        assert_eq!(img.ops.len(), before);
    }
}
