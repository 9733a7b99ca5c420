// SPDX-License-Identifier: GPL-2.0

//! DAX mmap: what a write fault on a hole or on unwritten blocks does.
//!
//! The fault itself runs in C (`dax_iomap_fault` with novars's iomap ops,
//! `novars_shim.c`); when it needs blocks, `iomap_begin` lands here. The
//! new blocks are zeroed with non-temporal stores, one WRITE entry per
//! extent is appended and the tail is committed before the pfn goes back to
//! the fault: the allocation, the zeroing and the block map are durable when
//! the fault returns. Unwritten blocks (fallocate) are zeroed in place and
//! converted by one WRITE entry, committed the same way. So a `MAP_SYNC` mapping needs nothing deferred (no
//! `IOMAP_F_DIRTY`, no `VM_FAULT_NEEDDSYNC`), and an application that stores
//! and flushes its cache lines has durable data without msync or fsync.

use crate::alloc::HUGE;
use crate::filetx::{file_map, FileTx, FILL_BATCH};
use crate::index::Lookup;
use crate::inode::{Index, Inner, InodeInfo};
use crate::layout::Timespec;
use crate::super_::SbInfo;
use kernel::prelude::*;

/// Allocates zeroed blocks for the holes in file blocks `[first, first +
/// count)` and zeroes and converts its unwritten blocks, using at most
/// `max_exts` extents, and commits them (one WRITE entry per extent,
/// `size_after` as the file size, `mtime`) in one [`FileTx`]. Returns the
/// number of blocks allocated or converted and the first file block not
/// examined (the caller loops while it is below `first + count`).
///
/// The caller holds the inode's log lock and passes its locked `Inner`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_holes(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    first: u64,
    count: u64,
    max_exts: usize,
    size_after: u64,
    mtime: Timespec,
) -> Result<(u64, u64)> {
    if !sbi.rw() {
        return Err(EROFS);
    }
    let end = first.checked_add(count).ok_or(EINVAL)?;
    let mut tx = FileTx::new(sbi, info, g.log, mtime);
    let max = max_exts.min(FILL_BATCH);
    let (next, _) = tx.fill_holes(file_map(g)?, first, end, max, 0, size_after, size_after)?;
    let n = tx.filled_blocks();
    // `commit` fences the zeroing and the entries before the tail store.
    tx.commit(g)?;
    Ok((n, next))
}

/// `iomap_begin` for a write fault (or any `IOMAP_WRITE`): the mapping at
/// file block `pg`, allocating zeroed blocks for a hole first (at most
/// `want` blocks, one extent). Returns (device block, run, newly allocated,
/// the inode's 512-byte blocks).
///
/// `fault`: a page fault asks. A PMD fault asks for the 2 MiB-aligned
/// [`HUGE`] blocks at once; it gets them only as one device-aligned extent
/// (else `ENOSPC`, on which DAX falls back to 4 KiB faults: a hole is then
/// filled page by page, never with a 2 MiB extent that cannot be mapped).
pub(crate) fn write_map(
    sbi: &SbInfo,
    info: &InodeInfo,
    pg: u64,
    want: u64,
    fault: bool,
    size: u64,
    mtime: Timespec,
) -> Result<(u64, u64, bool, u64)> {
    // Not `start_write`: a write fault on a mapped block of a read-only
    // file system is answered (`fill_holes` refuses to allocate).
    let _w = sbi.enter();
    sbi.live()?;
    let _l = crate::locks::lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let mut new = false;
    let huge = fault && want >= HUGE && pg % HUGE == 0;
    for _ in 0..2 {
        let Index::File(map) = &mut g.index else { return Err(EINVAL) };
        match map.lookup(pg) {
            Lookup::Mapped { block, run } => {
                let blocks = map.mapped_blocks().saturating_add(g.log.pages).saturating_mul(8);
                return Ok((block, run, new, blocks));
            }
            Lookup::Unwritten { block, run } => {
                if new {
                    break;
                }
                let eof = crate::layout::walk::blocks_for_size(size);
                if pg >= eof {
                    return Err(EINVAL);
                }
                let n = if huge {
                    // One PMD needs the whole 2 MiB as one device-aligned
                    // extent; else DAX falls back to 4 KiB faults.
                    if run < HUGE || eof - pg < HUGE || block % HUGE != 0 {
                        return Err(ENOSPC);
                    }
                    HUGE
                } else {
                    want.max(1).min(run).min(eof - pg)
                };
                // Zeroes and converts them in place: no block moves, so a
                // seal allows it.
                fill_holes(sbi, info, &mut g, pg, n, 1, size, mtime)?;
                crate::gc::maybe_compact(sbi, info, &mut g);
                new = true;
            }
            Lookup::Hole { run } => {
                if new {
                    break;
                }
                // A sealed block map does not change (seal.rs).
                crate::seal::check_unsealed(&g)?;
                // Never past the end of the file (DAX sends SIGBUS before
                // asking; this guards other IOMAP_WRITE users).
                let eof = crate::layout::walk::blocks_for_size(size);
                if pg >= eof {
                    return Err(EINVAL);
                }
                if huge {
                    // The whole 2 MiB must be a hole inside the file.
                    if run < HUGE || eof - pg < HUGE {
                        return Err(ENOSPC);
                    }
                    fill_huge(sbi, info, &mut g, pg, size, mtime)?;
                } else {
                    let n = want.max(1).min(run).min(eof - pg);
                    fill_holes(sbi, info, &mut g, pg, n, 1, size, mtime)?;
                }
                // Every first-touch fault appends a WRITE entry: keep the
                // log bounded. Compaction moves no data block, so this and
                // every other mapping stay valid.
                crate::gc::maybe_compact(sbi, info, &mut g);
                new = true;
            }
        }
    }
    Err(EIO)
}

/// A PMD write fault on a 2 MiB hole at `pg`: one device-aligned extent of
/// [`HUGE`] zeroed blocks, committed as [`fill_holes`] does.
fn fill_huge(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    pg: u64,
    size: u64,
    mtime: Timespec,
) -> Result {
    if !sbi.rw() {
        return Err(EROFS);
    }
    let goal = file_map(g)?.goal(pg);
    let mut tx = FileTx::new(sbi, info, g.log, mtime);
    let (b, c) = tx.alloc_huge(pg, goal)?;
    tx.map_zeroed(pg, b, c, size, 0)?;
    tx.commit(g)
}
