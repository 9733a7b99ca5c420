// SPDX-License-Identifier: GPL-2.0

//! Appending entries to an inode's log (FORMAT.md "Appending").
//!
//! The protocol itself is `layout::append`, shared with mkfs, fsck and the
//! crash checker; [`PmLog`] is the module's medium for it (stores, flushes
//! and fences through `pm.rs`, pages from `alloc.rs`). An [`Appender`]
//! writes entries past the committed tail; nothing it writes is visible
//! until the caller commits the new tail: by [`Appender::commit`] for
//! a single inode, or inside a journal transaction for several (with
//! [`Appender::words`]). On failure before the commit, [`Appender::abort`]
//! returns the pages it took.

use crate::alloc::Pool;
use crate::inode::InodeInfo;
use crate::layout::append::{self, AppendError, LogEnd, LogMedium, LogOwner, NewEntry};
use crate::layout::inode::INODE_TAIL_OFF;
use crate::layout::Timespec;
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

impl LogPos {
    /// The log end as the format's append code sees it.
    pub(crate) fn end(&self) -> LogEnd {
        LogEnd {
            head: self.head,
            tail: self.tail,
            tail_ord: self.tail_ord,
            seq: self.seq,
            pages: self.pages,
        }
    }

    /// This position moved to `end` (the GC threshold stays).
    pub(crate) fn at(self, end: LogEnd) -> Self {
        Self {
            head: end.head,
            tail: end.tail,
            tail_ord: end.tail_ord,
            seq: end.seq,
            pages: end.pages,
            gc_at: self.gc_at,
        }
    }
}

/// The module's log medium: the persistence layer and the allocator of a
/// mounted file system, remembering the pages it took so that an
/// uncommitted append can give them back.
pub(crate) struct PmLog<'a> {
    pub(crate) sbi: &'a SbInfo,
    /// Pages taken, in order.
    pub(crate) taken: KVVec<u64>,
    /// Inode record and its committed tail, for the deliberate
    /// `TailBeforeEntry` fault of the tracing build (0: none).
    fault_rec: u64,
    fault_old_tail: u64,
    /// Where log pages come from.
    pub(crate) pool: Pool,
}

impl<'a> PmLog<'a> {
    pub(crate) fn new(sbi: &'a SbInfo) -> Self {
        Self { sbi, taken: KVVec::new(), fault_rec: 0, fault_old_tail: 0, pool: Pool::General }
    }

    /// Gives back every page taken.
    pub(crate) fn free_taken(&mut self) {
        for &p in self.taken.iter() {
            let _ = self.sbi.alloc.free(p, 1);
        }
        self.taken = KVVec::new();
    }
}

impl LogMedium for PmLog<'_> {
    type Error = Error;

    fn error(e: AppendError) -> Error {
        match e {
            AppendError::BadEntry | AppendError::BadPlace => EINVAL,
            AppendError::Sequence | AppendError::Overflow => {
                crate::shim::err(kernel::bindings::EOVERFLOW)
            }
        }
    }

    fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result {
        crate::layout::Media::read(&self.sbi.media, pos, buf).map_err(|e| {
            crate::media::read_failed(self.sbi, format_args!("log in the record at {pos:#x}"), e)
        })
    }

    fn alloc_page(&mut self) -> Result<u64> {
        let pool = self.pool;
        let (page, _) = self.sbi.with_space(|a| a.alloc(1, pool))?;
        if let Err(e) = self.taken.push(page, GFP_KERNEL) {
            let _ = self.sbi.alloc.free(page, 1);
            return Err(e.into());
        }
        Ok(page)
    }

    fn write_nt(&mut self, pos: u64, bytes: &[u8]) -> Result {
        self.sbi.pm.write_nt(pos, bytes)
    }

    fn store_u64(&mut self, pos: u64, v: u64) -> Result {
        self.sbi.pm.store_u64(pos, v)
    }

    fn flush(&mut self, pos: u64, len: u64) -> Result {
        self.sbi.pm.flush(pos, len)
    }

    fn fence(&mut self) -> Result {
        self.sbi.pm.fence();
        Ok(())
    }

    fn persist_u64(&mut self, pos: u64, v: u64) -> Result {
        self.sbi.pm.persist_u64(pos, v)
    }

    fn before_entry(&mut self, end: &LogEnd) -> Result {
        if crate::pm::fault(crate::pm::Fault::TailBeforeEntry)
            && self.fault_rec != 0
            && self.fault_old_tail != 0
        {
            // Deliberate fault (tracing build only): the tail before the entry.
            self.sbi.pm.persist_u64(self.fault_rec + INODE_TAIL_OFF, end.tail)?;
        }
        Ok(())
    }
}

/// Pending appends to one inode's log.
pub(crate) struct Appender<'a> {
    m: PmLog<'a>,
    owner: LogOwner,
    /// Position of the inode record (for the head/tail words).
    rec: u64,
    old: LogPos,
    new: LogEnd,
}

impl<'a> Appender<'a> {
    /// An appender to the log of `info`, committed at `log`: a slot log
    /// (FORMAT.md "Slot logs") where the inode may have one.
    pub(crate) fn of(sbi: &'a SbInfo, info: &InodeInfo, log: LogPos) -> Self {
        Self::new(sbi, LogOwner { ino: info.ino, gen: info.gen, slot: info.slot }, info.rec, log)
    }

    /// An appender for `owner`, whose record is at `rec`.
    pub(crate) fn new(sbi: &'a SbInfo, owner: LogOwner, rec: u64, log: LogPos) -> Self {
        let mut m = PmLog::new(sbi);
        m.fault_rec = rec;
        m.fault_old_tail = log.tail;
        Self { m, owner, rec, old: log, new: log.end() }
    }

    /// Log pages from `pool` ([`Pool::Reserve`] for an operation that
    /// frees space).
    pub(crate) fn with_pool(mut self, pool: Pool) -> Self {
        self.set_pool(pool);
        self
    }

    /// As [`Appender::with_pool`], in place.
    pub(crate) fn set_pool(&mut self, pool: Pool) {
        self.m.pool = pool;
    }

    /// Where this appender's log pages come from.
    pub(crate) fn pool(&self) -> Pool {
        self.m.pool
    }

    /// Appends one entry; returns its sequence number.
    pub(crate) fn push(&mut self, e: &NewEntry<'_>) -> Result<u64> {
        append::append(&mut self.m, self.owner, &mut self.new, e)?;
        Ok(self.new.seq)
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
        let count = u32::try_from(count).map_err(|_| EINVAL)?;
        self.push(&NewEntry::Write { flags, pgoff, block, count, size_after, mtime }).map(|_| ())
    }

    /// The words to journal/store for a multi-inode commit: (pos, new).
    pub(crate) fn words(&self) -> ([(u64, u64); 2], usize) {
        append::commit_words(self.rec, &self.old.end(), &self.new)
    }

    /// The log position after commit.
    pub(crate) fn pos(&self) -> LogPos {
        self.old.at(self.new)
    }

    /// Commits a single-inode change (the appender stays, for a
    /// transaction that owns it): fence the entries, then persist the
    /// head (first page only) and the tail. Returns the new position.
    pub(crate) fn commit(&mut self) -> Result<LogPos> {
        append::commit(&mut self.m, self.rec, &self.old.end(), &self.new)?;
        // The pages are the log's now.
        self.m.taken = KVVec::new();
        Ok(self.old.at(self.new))
    }

    /// Gives back the pages taken; nothing was committed.
    pub(crate) fn abort(mut self) {
        self.release();
    }

    /// [`Appender::abort`] for an appender owned by a transaction.
    pub(crate) fn release(&mut self) {
        self.m.free_taken();
    }
}
