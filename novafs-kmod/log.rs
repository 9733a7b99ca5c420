// SPDX-License-Identifier: GPL-2.0

//! Appending entries to an inode's log (FORMAT.md "Appending").
//!
//! An [`Appender`] writes entries past the committed tail with
//! non-temporal stores, starting the log or a new page as needed; nothing
//! it writes is visible until the caller commits the new tail: by
//! [`Appender::commit`] for a single inode, or inside a journal transaction
//! for several. On failure before the commit, [`Appender::abort`] returns
//! the pages it took.

use crate::layout::inode::{INODE_HEAD_OFF, INODE_TAIL_OFF};
use crate::layout::log::{
    encode_fixed, et, fits, pack_next, pos_block, pos_offset, EntryHeader, PageTail, WriteEntry,
    LOG_AREA, MAX_ENTRY, PAGE_NEXT_OFF,
};
use crate::layout::{Timespec, BLOCK_SIZE_U64};
use crate::super_::SbInfo;
use kernel::prelude::*;

/// Where an inode's log ends, in DRAM.
#[derive(Clone, Copy, Default)]
pub(crate) struct LogPos {
    /// First page (meaningful while `tail != 0`).
    pub(crate) head: u64,
    /// Committed tail position (0: empty log).
    pub(crate) tail: u64,
    /// Ordinal of the tail page.
    pub(crate) tail_ord: u64,
    /// Sequence number of the last committed entry.
    pub(crate) seq: u64,
    /// Pages in the log.
    pub(crate) pages: u64,
    /// Page count at which garbage collection next looks at this log
    /// (`gc.rs`; 0: the default threshold).
    pub(crate) gc_at: u64,
}

/// Writes the tail of a fresh log page: page `ordinal` of inode `ino`/`gen`
/// (FORMAT.md "Appending"; durable at the next fence).
pub(crate) fn start_page(sbi: &SbInfo, page: u64, ino: u64, gen: u32, ordinal: u64) -> Result {
    let mut t = [0u8; PageTail::SIZE];
    PageTail::new(ino, gen, ordinal).encode(&mut t);
    sbi.pm.write_nt(page * BLOCK_SIZE_U64 + LOG_AREA as u64, &t)
}

/// Links the full page holding position `tail` to `next` (its `next`
/// word records how much of it is used); flushed, not fenced. Invisible
/// until a committed tail leaves the page.
pub(crate) fn link_page(sbi: &SbInfo, tail: u64, next: u64) -> Result {
    let pos = pos_block(tail) * BLOCK_SIZE_U64 + PAGE_NEXT_OFF as u64;
    sbi.pm.store_u64(pos, pack_next(next, pos_offset(tail)))?;
    sbi.pm.flush(pos, 8)
}

/// Pending appends to one inode's log.
pub(crate) struct Appender<'a> {
    sbi: &'a SbInfo,
    ino: u64,
    gen: u32,
    /// Position of the inode record (for the head/tail words).
    rec: u64,
    old: LogPos,
    new: LogPos,
    /// Pages taken by this appender (returned on abort).
    taken: [u64; 4],
    ntaken: usize,
}

impl<'a> Appender<'a> {
    pub(crate) fn new(sbi: &'a SbInfo, ino: u64, gen: u32, rec: u64, log: LogPos) -> Self {
        Self { sbi, ino, gen, rec, old: log, new: log, taken: [0; 4], ntaken: 0 }
    }

    fn new_page(&mut self, ordinal: u64) -> Result<u64> {
        if self.ntaken >= self.taken.len() {
            return Err(EINVAL);
        }
        let (page, _) = self.sbi.alloc.alloc(1)?;
        self.taken[self.ntaken] = page;
        self.ntaken += 1;
        start_page(self.sbi, page, self.ino, self.gen, ordinal)?;
        Ok(page)
    }

    /// Appends one entry built by `build(seq, buf) -> len`.
    pub(crate) fn push(&mut self, build: impl FnOnce(u64, &mut [u8]) -> Option<usize>) -> Result {
        let mut buf = [0u8; MAX_ENTRY];
        let seq = self
            .new
            .seq
            .checked_add(1)
            .ok_or_else(|| crate::shim::err(kernel::bindings::EOVERFLOW))?;
        let len = build(seq, &mut buf).ok_or(EINVAL)?;
        let entry = buf.get(..len).ok_or(EINVAL)?;
        if self.new.tail == 0 {
            let page = self.new_page(0)?;
            self.new.head = page;
            self.new.tail = page * BLOCK_SIZE_U64;
            self.new.tail_ord = 0;
            self.new.pages = 1;
        } else if !fits(self.new.tail, len) {
            let ord = self
                .new
                .tail_ord
                .checked_add(1)
                .ok_or_else(|| crate::shim::err(kernel::bindings::EOVERFLOW))?;
            let page = self.new_page(ord)?;
            link_page(self.sbi, self.new.tail, page)?;
            self.new.tail = page * BLOCK_SIZE_U64;
            self.new.tail_ord = ord;
            self.new.pages += 1;
        }
        if crate::pm::fault(crate::pm::Fault::TailBeforeEntry) && self.old.tail != 0 {
            // Deliberate fault (tracing build only): the tail before the entry.
            let tail = self.new.tail.checked_add(len as u64).ok_or(EINVAL)?;
            self.sbi.pm.persist_u64(self.rec + INODE_TAIL_OFF, tail)?;
        }
        self.sbi.pm.write_nt(self.new.tail, entry)?;
        self.new.tail += len as u64;
        self.new.seq = seq;
        Ok(())
    }

    /// Appends a WRITE entry: file blocks `pgoff..+count` are device blocks
    /// `block..`, the file's size is `size_after` and its mtime `mtime`.
    pub(crate) fn push_write(
        &mut self,
        flags: u8,
        pgoff: u64,
        block: u64,
        count: u64,
        size_after: u64,
        mtime: Timespec,
    ) -> Result {
        let w = WriteEntry {
            hdr: EntryHeader::new(et::WRITE, flags, 0, WriteEntry::SIZE),
            pgoff,
            block,
            count: u32::try_from(count).map_err(|_| EINVAL)?,
            _pad: 0,
            size_after,
            mtime,
        };
        self.push(|s, buf| {
            let mut w = w;
            w.hdr.seq = s;
            encode_fixed(&w, buf)
        })
    }

    /// Whether the log's head changes (an empty log got its first page).
    pub(crate) fn new_head(&self) -> bool {
        self.old.tail == 0 && self.new.tail != 0
    }

    /// The words to journal/store for a multi-inode commit: (pos, new).
    pub(crate) fn words(&self) -> ([(u64, u64); 2], usize) {
        let tail = (self.rec + INODE_TAIL_OFF, self.new.tail);
        if self.new_head() {
            ([(self.rec + INODE_HEAD_OFF, self.new.head), tail], 2)
        } else {
            ([tail, (0, 0)], 1)
        }
    }

    /// The log position after commit.
    pub(crate) fn pos(&self) -> LogPos {
        self.new
    }

    /// Commits a single-inode change: fence the entries, then persist the
    /// head (first page only) and the tail. Returns the new position.
    pub(crate) fn commit(self) -> Result<LogPos> {
        let pm = &self.sbi.pm;
        pm.fence();
        if self.new_head() {
            pm.persist_u64(self.rec + INODE_HEAD_OFF, self.new.head)?;
        }
        pm.persist_u64(self.rec + INODE_TAIL_OFF, self.new.tail)?;
        Ok(self.new)
    }

    /// Gives back the pages taken; nothing was committed.
    pub(crate) fn abort(self) {
        let a = &self.sbi.alloc;
        for &p in self.taken.iter().take(self.ntaken) {
            let _ = a.free(p, 1);
        }
    }
}
