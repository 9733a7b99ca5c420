// SPDX-License-Identifier: GPL-2.0

//! One transaction type for every change to a regular file's blocks and
//! size: `write()` (copy-on-write and in place), truncate, fallocate, the
//! holes a write fault or a seal fills.
//!
//! A [`FileTx`] owns what it takes (blocks from the allocator, log pages
//! through its [`Appender`]), records the log entries and the DRAM block
//! map changes they stand for, and commits once: [`FileTx::commit`]
//! fences the data and entries, stores the log tail, and only then updates
//! the DRAM map and frees the blocks the change replaced. A transaction
//! dropped without a commit (any error on the way) gives back everything it
//! took; nothing it wrote is reachable, since the tail did not move.
//!
//! The caller holds the inode's log lock and its locked [`Inner`] for the
//! whole life of the transaction.

use crate::alloc::Pool;
use crate::index::{ExtentMap, Lookup};
use crate::inode::{Index, Inner, InodeInfo};
use crate::layout::append::{NewEntry, SetAttrs};
use crate::layout::log::{sa, MAX_FILE_BLOCKS, WF_UNWRITTEN};
use crate::layout::walk::{blocks_for_size, FileMap};
use crate::layout::{MediaError, Timespec, BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::log::{Appender, LogPos};
use crate::smallvec::SmallVec;
use crate::super_::SbInfo;
use kernel::prelude::*;

/// Most extents one commit that fills holes maps (a fault, a seal, a
/// fallocate step): a huge, fragmented range commits in steps rather than
/// holding every extent in DRAM. Holes and zeroed blocks read the same, so
/// a crash between two steps shows only in the block count.
pub(crate) const FILL_BATCH: usize = 128;

/// A block of zeros, the source of every zeroing store.
pub(crate) static ZEROS: [u8; BLOCK_SIZE] = [0; BLOCK_SIZE];

/// Fills `[from, to)` of block `dst` with the old block's bytes (if
/// mapped) or zeros (non-temporal: durable at the next fence).
pub(crate) fn fill(sbi: &SbInfo, dst: u64, old: Option<u64>, from: usize, to: usize) -> Result {
    if from >= to {
        return Ok(());
    }
    let pos = dst * BLOCK_SIZE_U64 + from as u64;
    match old {
        Some(ob) => {
            if to > BLOCK_SIZE {
                return Err(EINVAL);
            }
            let src = ob * BLOCK_SIZE_U64 + from as u64;
            sbi.pm.copy_from_media(&sbi.media, pos, src, to - from).map_err(|e| {
                if let MediaError::Io(b) = e {
                    pr_err!("({}): uncorrectable media error in data block {b}: EIO\n", sbi.dev());
                }
                EIO
            })
        }
        None => sbi.pm.write_nt(pos, ZEROS.get(from..to).ok_or(EINVAL)?),
    }
}

/// The end of the file moves from `old_size` to `new_size`: zeroes the
/// bytes of the block holding `old_size` from there on (up to `new_size`),
/// in place. They lie past the end, so no reader sees the change, but a
/// store through a mapping may have left bytes there (inside the last
/// page), which must not become file data (as on ext4). Non-temporal:
/// durable at the fence that precedes the caller's commit.
pub(crate) fn zero_past_eof(
    sbi: &SbInfo,
    map: &mut ExtentMap,
    old_size: u64,
    new_size: u64,
) -> Result {
    let from = (old_size % BLOCK_SIZE_U64) as usize;
    if new_size <= old_size || from == 0 {
        return Ok(());
    }
    let pg = old_size / BLOCK_SIZE_U64;
    let to = if new_size / BLOCK_SIZE_U64 == pg {
        (new_size % BLOCK_SIZE_U64) as usize
    } else {
        BLOCK_SIZE
    };
    match old_block(map, pg) {
        Some(ob) => fill(sbi, ob, None, from, to),
        None => Ok(()),
    }
}

/// The device block holding file block `pg`'s data, if mapped and
/// written (an unwritten block reads as zeros, like a hole).
pub(crate) fn old_block(map: &mut ExtentMap, pg: u64) -> Option<u64> {
    match map.lookup(pg) {
        Lookup::Mapped { block, .. } => Some(block),
        Lookup::Unwritten { .. } | Lookup::Hole { .. } => None,
    }
}

/// The regular file's block map in `g`.
pub(crate) fn file_map(g: &mut Inner) -> Result<&mut ExtentMap> {
    match &mut g.index {
        Index::File(m) => Ok(m),
        _ => Err(EINVAL),
    }
}

/// A change to the DRAM block map, applied once its commit is durable.
#[derive(Clone, Copy)]
enum Change {
    /// File blocks `pg..+count` now live in `block..` (`unwritten` or
    /// not); the blocks they replace are freed.
    Map { pg: u64, block: u64, count: u64, unwritten: bool },
    /// The unwritten blocks `block..+count` at file blocks `pg..` are
    /// written now (same blocks: nothing is freed).
    Convert { pg: u64, block: u64, count: u64 },
    /// File blocks `pg..+count` are unmapped and their blocks freed.
    Unmap { pg: u64, count: u64 },
    /// Unmap without freeing (the blocks are mapped again elsewhere).
    Forget { pg: u64, count: u64 },
    /// Free blocks no longer mapped anywhere.
    Free { block: u64, count: u64 },
}

/// An uncommitted change to one regular file (see the module docs).
pub(crate) struct FileTx<'a> {
    sbi: &'a SbInfo,
    ap: Appender<'a>,
    /// Blocks taken for this change (given back if it is abandoned).
    taken: SmallVec<(u64, u64), 4>,
    changes: SmallVec<Change, 4>,
    /// The time every entry carries.
    pub(crate) now: Timespec,
    entries: usize,
    /// Unwritten blocks converted in place so far.
    converted: u64,
    committed: bool,
}

impl<'a> FileTx<'a> {
    /// A change to `info`, whose committed log is `log`.
    pub(crate) fn new(sbi: &'a SbInfo, info: &InodeInfo, log: LogPos, now: Timespec) -> Self {
        let ap = Appender::of(sbi, info, log);
        Self {
            sbi,
            ap,
            taken: SmallVec::new((0, 0)),
            changes: SmallVec::new(Change::Free { block: 0, count: 0 }),
            now,
            entries: 0,
            converted: 0,
            committed: false,
        }
    }

    /// Blocks and log pages from `pool`: [`Pool::Reserve`] for a change
    /// that frees space (truncate down, punch hole), which may still copy
    /// the partial pages at its edges.
    pub(crate) fn with_pool(mut self, pool: Pool) -> Self {
        self.ap.set_pool(pool);
        self
    }

    /// Log entries recorded so far.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Blocks taken so far.
    pub(crate) fn taken_blocks(&self) -> u64 {
        self.taken.iter().fold(0u64, |n, &(_, c)| n.saturating_add(c))
    }

    /// Blocks that read as zeros before this change and hold data after
    /// it: holes filled and unwritten blocks converted (a mapping may show
    /// the zero page there).
    pub(crate) fn filled_blocks(&self) -> u64 {
        self.taken_blocks().saturating_add(self.converted)
    }

    fn keep(&mut self, b: u64, c: u64) -> Result {
        if let Err(e) = self.taken.push((b, c)) {
            let _ = self.sbi.alloc.free(b, c);
            return Err(e);
        }
        Ok(())
    }

    /// Takes up to `want` blocks (at least one) for file blocks from `pg`
    /// (`append`: at or past the end of the file; at `goal` if free).
    pub(crate) fn alloc(
        &mut self,
        pg: u64,
        want: u64,
        append: bool,
        goal: Option<u64>,
    ) -> Result<(u64, u64)> {
        let pool = self.ap.pool();
        let (b, c) = self.sbi.with_space(|a| a.alloc_for(pg, want, append, goal, pool))?;
        self.keep(b, c)?;
        Ok((b, c))
    }

    /// Takes one 2 MiB-aligned extent of `HUGE` blocks for file block `pg`.
    pub(crate) fn alloc_huge(&mut self, pg: u64, goal: Option<u64>) -> Result<(u64, u64)> {
        let (b, c) = self.sbi.alloc.alloc_huge(pg, goal, self.ap.pool())?;
        self.keep(b, c)?;
        Ok((b, c))
    }

    fn change(&mut self, c: Change) -> Result {
        self.changes.push(c)
    }

    /// Logs WRITE `pg..+count -> block..` with the file size `size_after`
    /// (`flags` with [`WF_UNWRITTEN`]: the blocks are unwritten); `remap`:
    /// the DRAM map changes (false when the entry restates a mapping, with
    /// its own kind, to carry a new size).
    pub(crate) fn write(
        &mut self,
        pg: u64,
        block: u64,
        count: u64,
        size_after: u64,
        flags: u8,
        remap: bool,
    ) -> Result {
        self.ap.push_write(flags, pg, block, count, size_after, self.now)?;
        self.entries += 1;
        if remap {
            let unwritten = flags & WF_UNWRITTEN != 0;
            self.change(Change::Map { pg, block, count, unwritten })?;
        }
        Ok(())
    }

    /// Logs WRITE `pg..+count -> block..` (without [`WF_UNWRITTEN`]) over
    /// the unwritten blocks already there: converts them to written. The
    /// caller has stored every byte of them (data, zeros around it), with
    /// non-temporal stores: durable at the commit's fence, and unread
    /// before it (unwritten blocks read as zeros).
    pub(crate) fn convert(
        &mut self,
        pg: u64,
        block: u64,
        count: u64,
        size_after: u64,
        flags: u8,
    ) -> Result {
        self.ap.push_write(flags & !WF_UNWRITTEN, pg, block, count, size_after, self.now)?;
        self.entries += 1;
        self.converted = self.converted.saturating_add(count);
        self.change(Change::Convert { pg, block, count })
    }

    /// Logs PUNCH of file blocks `pg..+count` (their blocks are freed).
    pub(crate) fn punch(&mut self, pg: u64, count: u64) -> Result {
        self.ap.push(&NewEntry::Punch { pgoff: pg, count, mtime: self.now })?;
        self.entries += 1;
        self.change(Change::Unmap { pg, count })
    }

    /// Logs PUNCH of `pg..+count` whose blocks the caller maps elsewhere
    /// or frees with [`FileTx::free_later`].
    pub(crate) fn punch_keep(&mut self, pg: u64, count: u64) -> Result {
        self.ap.push(&NewEntry::Punch { pgoff: pg, count, mtime: self.now })?;
        self.entries += 1;
        self.change(Change::Forget { pg, count })
    }

    /// Frees `block..+count` once the change is committed.
    pub(crate) fn free_later(&mut self, block: u64, count: u64) -> Result {
        self.change(Change::Free { block, count })
    }

    /// Logs a new value of the attribute `index` with an empty name (a
    /// chmod's access ACL, with the mode): a large value goes to fresh
    /// blocks, given back if the change is abandoned.
    pub(crate) fn acl(&mut self, index: u8, value: &[u8]) -> Result {
        if let Some((b, n)) =
            crate::xattr::push_new(self.sbi, &mut self.ap, index, value, self.now)?
        {
            self.keep(b, n)?;
        }
        self.entries += 1;
        Ok(())
    }

    /// Logs a SETATTR; a size change drops every block at or past the new
    /// end (as its replay does).
    pub(crate) fn setattr(&mut self, a: SetAttrs) -> Result {
        self.ap.push(&NewEntry::SetAttr(a))?;
        self.entries += 1;
        if a.valid & sa::SIZE != 0 {
            let first = blocks_for_size(a.size);
            if first < MAX_FILE_BLOCKS {
                self.change(Change::Unmap { pg: first, count: MAX_FILE_BLOCKS - first })?;
            }
        }
        Ok(())
    }

    /// Logs the new size with mtime and ctime.
    pub(crate) fn size(&mut self, size: u64) -> Result {
        let now = self.now;
        self.setattr(SetAttrs {
            size,
            mtime: now,
            ctime: now,
            ..SetAttrs::only(sa::SIZE | sa::MTIME | sa::CTIME)
        })
    }

    /// Logs mtime and ctime, and the size if it is not `size` any more.
    pub(crate) fn times(&mut self, size: u64, size_after: u64) -> Result {
        if size_after != size {
            return self.size(size_after);
        }
        let now = self.now;
        self.setattr(SetAttrs { mtime: now, ctime: now, ..SetAttrs::only(sa::MTIME | sa::CTIME) })
    }

    /// Zeroes the new blocks `block..+count` (non-temporal: durable at the
    /// commit's fence) and logs them as file blocks `pg..` (`flags`, the
    /// file size `size_after`).
    pub(crate) fn map_zeroed(
        &mut self,
        pg: u64,
        block: u64,
        count: u64,
        size_after: u64,
        flags: u8,
    ) -> Result {
        for i in 0..count {
            self.sbi.pm.write_nt((block + i) * BLOCK_SIZE_U64, &ZEROS)?;
        }
        self.write(pg, block, count, size_after, flags, true)
    }

    /// Maps new blocks into the holes of file blocks `[pg, end)`, until
    /// this transaction holds `max` entries: one WRITE (`flags`) per extent
    /// with the file size `size_after`, or `size_end` for the extent that
    /// reaches `end`. With [`WF_UNWRITTEN`] in `flags` (fallocate) the new
    /// blocks are logged unwritten, not written to, and unwritten blocks
    /// stay as they are; without (faults, seals) the new blocks are zeroed
    /// and so are unwritten blocks of the range, converted in place.
    /// Stops early, without an error, when the allocator fails after the
    /// first extent. Returns the first file block not examined and whether
    /// a new or converted extent reached `end`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fill_holes(
        &mut self,
        map: &mut ExtentMap,
        mut pg: u64,
        end: u64,
        max: usize,
        flags: u8,
        size_after: u64,
        size_end: u64,
    ) -> Result<(u64, bool)> {
        let mut prev: Option<(u64, u64)> = None; // where the last new extent ends
        let mut reached = false;
        let unwritten = flags & WF_UNWRITTEN != 0;
        while pg < end && self.entries < max {
            match map.lookup(pg) {
                Lookup::Mapped { run, .. } => pg = pg.saturating_add(run).min(end),
                Lookup::Unwritten { run, .. } if unwritten => pg = pg.saturating_add(run).min(end),
                Lookup::Unwritten { block, run } => {
                    let c = run.min(end - pg);
                    for i in 0..c {
                        self.sbi.pm.write_nt((block + i) * BLOCK_SIZE_U64, &ZEROS)?;
                    }
                    reached = pg + c >= end;
                    let size = if reached { size_end } else { size_after };
                    self.convert(pg, block, c, size, flags)?;
                    prev = Some((pg + c, block + c));
                    pg += c;
                }
                Lookup::Hole { run } => {
                    // Continue the previous extent on the device if free.
                    let goal = match prev {
                        Some((p, b)) if p == pg => Some(b),
                        _ => map.goal(pg),
                    };
                    let (b, c) = match self.alloc(pg, run.min(end - pg), false, goal) {
                        Ok(x) => x,
                        Err(e) if self.entries == 0 => return Err(e),
                        Err(_) => break,
                    };
                    reached = pg + c >= end;
                    let size = if reached { size_end } else { size_after };
                    if unwritten {
                        self.write(pg, b, c, size, flags, true)?;
                    } else {
                        self.map_zeroed(pg, b, c, size, flags)?;
                    }
                    prev = Some((pg + c, b + c));
                    pg += c;
                }
            }
        }
        Ok((pg, reached))
    }

    /// Copies mapped file block `pg` to a new block with bytes `[lo, hi)`
    /// of it zeroed; nothing for a hole (it reads as zeros already).
    pub(crate) fn cow_zero(
        &mut self,
        map: &mut ExtentMap,
        pg: u64,
        lo: usize,
        hi: usize,
        size_after: u64,
    ) -> Result {
        let Some(old) = old_block(map, pg) else { return Ok(()) };
        let (nb, _) = self.alloc(pg, 1, false, None)?;
        fill(self.sbi, nb, Some(old), 0, lo)?;
        fill(self.sbi, nb, None, lo, hi)?;
        fill(self.sbi, nb, Some(old), hi, BLOCK_SIZE)?;
        self.write(pg, nb, 1, size_after, 0, true)
    }

    /// Commits the change (nothing if no entry was logged): fence, tail
    /// store; then publishes the log position, updates the DRAM map and
    /// frees the blocks it no longer maps.
    pub(crate) fn commit(mut self, g: &mut Inner) -> Result {
        if self.entries == 0 {
            return Ok(());
        }
        let newlog = self.ap.commit()?;
        self.committed = true;
        g.log = newlog;
        if self.changes.is_empty() {
            return Ok(());
        }
        let Index::File(map) = &mut g.index else { return Err(EINVAL) };
        // The replaced blocks are freed after the map no longer holds them.
        let mut old: SmallVec<(u64, u64), 8> = SmallVec::new((0, 0));
        for c in self.changes.iter() {
            match *c {
                Change::Map { pg, block, count, unwritten } => {
                    let _ = map.collect(pg, count, |b, n| old.push((b, n)));
                    map.map_as(pg, block, count, unwritten);
                }
                Change::Convert { pg, block, count } => map.map_as(pg, block, count, false),
                Change::Unmap { pg, count } => {
                    let _ = map.collect(pg, count, |b, n| old.push((b, n)));
                    map.unmap(pg, count);
                }
                Change::Forget { pg, count } => map.unmap(pg, count),
                Change::Free { block, count } => {
                    let _ = old.push((block, count));
                }
            }
        }
        let a = &self.sbi.alloc;
        for &(b, c) in old.iter() {
            let _ = a.free(b, c);
        }
        Ok(())
    }
}

impl Drop for FileTx<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        self.ap.release();
        let a = &self.sbi.alloc;
        for &(b, c) in self.taken.iter() {
            let _ = a.free(b, c);
        }
    }
}
