// SPDX-License-Identifier: GPL-2.0

//! fallocate(2): preallocate (default and FALLOC_FL_KEEP_SIZE), punch a
//! hole (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) and zero a range
//! (FALLOC_FL_ZERO_RANGE, with or without KEEP_SIZE), collapse and insert
//! a range (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE), as ext4 does
//! them; each step one [`FileTx`].

use crate::alloc::Pool;
use crate::filetx::{file_map, FileTx, FILL_BATCH};
use crate::index::Lookup;
use crate::inode::{self, Inner, InodeInfo};
use crate::layout::log::{MAX_FILE_SIZE, WF_FALLOC, WF_UNWRITTEN};
use crate::layout::{Timespec, BLOCK_SIZE_U64};
use crate::locks::lock_logs;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::{c_int, c_long};
use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;

// Two steps, each made of log entries committed by one tail store:
// 1. the visible change, always one commit: the partial blocks at the
//    edges of a punched or zeroed range are copied on write with the range
//    zeroed (WRITE), whole blocks inside are unmapped (PUNCH); collapse and
//    insert are one commit each (see `shift`);
// 2. the holes of an allocated or zeroed range get new blocks, logged as
//    unwritten (WRITE with FALLOC | UNWRITTEN): nothing is written to them,
//    they read as zeros until a write or a write fault converts them, so
//    `fallocate -l 1G` costs metadata only. The last commit carries the new
//    size. Holes and unwritten blocks read the same, so a crash between the
//    commits of this step (a range needing more than `FILL_BATCH` extents)
//    is invisible except in the block count. A zeroed range (ZERO_RANGE)
//    thus ends unwritten, as on ext4: its blocks are punched in step 1 and
//    preallocated again here.

/// `linux/falloc.h` mode bits.
const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
const FALLOC_FL_ZERO_RANGE: u32 = 0x10;
const FALLOC_FL_COLLAPSE_RANGE: u32 = 0x08;
const FALLOC_FL_INSERT_RANGE: u32 = 0x20;

/// What a fallocate left (also after a failure part-way).
pub(crate) struct FallocOut {
    pub(crate) size: u64,
    pub(crate) blocks: u64,
    /// Something was committed: the VFS inode gets the new size, blocks
    /// and times.
    pub(crate) changed: bool,
}

/// Step 1: zero bytes `[off, end)`: copy-on-write of the partial edge
/// blocks, PUNCH of the whole blocks inside. One commit.
#[allow(clippy::too_many_arguments)]
fn zero_range(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    off: u64,
    end: u64,
    size: u64,
    now: Timespec,
    pool: Pool,
) -> Result<bool> {
    if off >= end {
        return Ok(false);
    }
    let mut b = FileTx::new(sbi, info, g.log, now).with_pool(pool);
    let r = (|| -> Result {
        let map = file_map(g)?;
        let head = off / BLOCK_SIZE_U64;
        let tail = end / BLOCK_SIZE_U64;
        let head_lo = (off % BLOCK_SIZE_U64) as usize;
        if head_lo != 0 {
            let hi = end.min((head + 1) * BLOCK_SIZE_U64) - head * BLOCK_SIZE_U64;
            b.cow_zero(map, head, head_lo, hi as usize, size)?;
        }
        let tail_hi = (end % BLOCK_SIZE_U64) as usize;
        if tail_hi != 0 && (tail != head || head_lo == 0) {
            b.cow_zero(map, tail, 0, tail_hi, size)?;
        }
        let first_full = off.div_ceil(BLOCK_SIZE_U64);
        if tail > first_full {
            let mut any = KVVec::new();
            map.collect(first_full, tail - first_full, |b, n| Ok(any.push((b, n), GFP_KERNEL)?))?;
            if !any.is_empty() {
                b.punch(first_full, tail - first_full)?;
            }
        }
        Ok(())
    })();
    // On an error `b` is dropped: it gives back what it took.
    r?;
    let changed = b.entries() > 0;
    b.commit(g)?;
    Ok(changed)
}

/// Step 2: maps unwritten blocks into every hole of file blocks
/// `[first, last]`; the size becomes `new_size` with the last commit.
/// `size` is updated as commits land (for a failure part-way).
#[allow(clippy::too_many_arguments)]
fn fill_holes(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    first: u64,
    last: u64,
    size: &mut u64,
    new_size: u64,
    now: Timespec,
) -> Result<bool> {
    // Fail before taking anything when the holes cannot all be filled.
    let mut mapped = KVVec::new();
    file_map(g)?.collect(first, last - first + 1, |b, n| Ok(mapped.push((b, n), GFP_KERNEL)?))?;
    let have = mapped.as_slice().iter().fold(0u64, |n, &(_, c)| n.saturating_add(c));
    if (last - first + 1).saturating_sub(have) > sbi.alloc.available() {
        return Err(ENOSPC);
    }
    let mut changed = false;
    let mut pg = first;
    loop {
        let mut b = FileTx::new(sbi, info, g.log, now);
        let map = file_map(g)?;
        // Unwritten only where the image says modules know the flag.
        let flags = if sbi.unwritten { WF_FALLOC | WF_UNWRITTEN } else { WF_FALLOC };
        let (next, reached) =
            b.fill_holes(map, pg, last + 1, FILL_BATCH, flags, *size, new_size)?;
        pg = next;
        if pg > last && !reached && new_size != *size {
            // The last block was mapped already: restate its mapping to
            // carry the new size.
            match map.lookup(last) {
                Lookup::Mapped { block, .. } => {
                    b.write(last, block, 1, new_size, WF_FALLOC, false)?
                }
                // Restated as it is: still unwritten.
                Lookup::Unwritten { block, .. } => {
                    b.write(last, block, 1, new_size, flags, false)?
                }
                Lookup::Hole { .. } => return Err(EINVAL),
            }
        }
        changed |= b.entries() > 0;
        b.commit(g)?;
        if pg > last {
            *size = new_size;
            return Ok(changed);
        }
    }
}

/// Collapse (`insert` false: remove `[off, off+len)` and pull the rest
/// down) or insert (a hole of `len` bytes at `off`, the rest pushed up), in
/// one commit: PUNCH of every block from `off` on, a WRITE per moved extent
/// at its new offset (same device blocks), then SETATTR of the new size.
/// Returns the new size.
#[allow(clippy::too_many_arguments)]
fn shift(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    off: u64,
    len: u64,
    size: u64,
    insert: bool,
    now: Timespec,
) -> Result<u64> {
    use crate::layout::log::MAX_FILE_BLOCKS;
    if off % BLOCK_SIZE_U64 != 0 || len % BLOCK_SIZE_U64 != 0 {
        return Err(EINVAL);
    }
    let end = off.checked_add(len).ok_or_else(|| shim::err(bindings::EFBIG))?;
    let new_size = if insert {
        if off >= size {
            return Err(EINVAL);
        }
        size.checked_add(len)
            .filter(|s| *s <= MAX_FILE_SIZE)
            .ok_or_else(|| shim::err(bindings::EFBIG))?
    } else {
        if end >= size {
            return Err(EINVAL);
        }
        size - len
    };
    let off_pg = off / BLOCK_SIZE_U64;
    let len_pg = len / BLOCK_SIZE_U64;
    let map = file_map(g)?;
    // The extents that move, with their file offsets and WRITE flags
    // (unwritten ones stay unwritten).
    let mut moved: KVVec<(u64, u64, u64, u8)> = KVVec::new();
    let mut pg = if insert { off_pg } else { off_pg + len_pg };
    while pg < MAX_FILE_BLOCKS {
        match map.lookup(pg) {
            Lookup::Mapped { block, run } => {
                let run = run.min(MAX_FILE_BLOCKS - pg);
                moved.push((pg, block, run, 0), GFP_KERNEL)?;
                pg += run;
            }
            Lookup::Unwritten { block, run } => {
                let run = run.min(MAX_FILE_BLOCKS - pg);
                moved.push((pg, block, run, WF_FALLOC | WF_UNWRITTEN), GFP_KERNEL)?;
                pg += run;
            }
            Lookup::Hole { run } => pg = pg.saturating_add(run),
        }
    }
    let mut gone = KVVec::new();
    if !insert {
        map.collect(off_pg, len_pg, |b, n| Ok(gone.push((b, n), GFP_KERNEL)?))?;
    }
    // Collapsing frees the range: the reserve lets a full file system do it.
    let pool = if insert { Pool::General } else { Pool::Reserve };
    let mut b = FileTx::new(sbi, info, g.log, now).with_pool(pool);
    let r = (|| -> Result {
        b.punch_keep(off_pg, MAX_FILE_BLOCKS - off_pg)?;
        for &(p, blk, cnt, flags) in moved.as_slice() {
            let np = if insert { p.checked_add(len_pg) } else { p.checked_sub(len_pg) };
            let np = np
                .filter(|n| n.checked_add(cnt).is_some_and(|e| e <= MAX_FILE_BLOCKS))
                .ok_or_else(|| shim::err(bindings::EFBIG))?;
            b.write(np, blk, cnt, new_size, flags, true)?;
        }
        for &(blk, cnt) in gone.as_slice() {
            b.free_later(blk, cnt)?;
        }
        b.size(new_size)
    })();
    // On an error `b` is dropped: it gives back what it took.
    r?;
    b.commit(g)?;
    Ok(new_size)
}

fn fallocate(
    sbi: &SbInfo,
    info: &InodeInfo,
    mode: u32,
    off: u64,
    len: u64,
    out: &mut FallocOut,
    now: Timespec,
) -> Result {
    let _w = sbi.start_write()?;
    let shift_mode = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
    let known = if shift_mode != 0 {
        mode == FALLOC_FL_COLLAPSE_RANGE || mode == FALLOC_FL_INSERT_RANGE
    } else {
        mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) == 0
    };
    if !known {
        return Err(shim::err(bindings::EOPNOTSUPP));
    }
    let end = off
        .checked_add(len)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or_else(|| shim::err(bindings::EFBIG))?;
    if len == 0 {
        return Err(EINVAL);
    }
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let g = &mut *g;
    if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 || shift_mode != 0 {
        crate::seal::check_unsealed(g)?;
    }
    let mut size = out.size;
    if mode & FALLOC_FL_KEEP_SIZE == 0 && end > size {
        // Growing the size may copy the block of the old end (its bytes
        // past the end become zeros), and changes the size: as ftruncate
        // up, refused while sealed. Within the size it only fills holes.
        crate::seal::check_unsealed(g)?;
    }
    let tail_before = g.log.tail;
    let r = (|| -> Result<bool> {
        let mut changed = false;
        if shift_mode != 0 {
            size = shift(sbi, info, g, off, len, size, shift_mode == FALLOC_FL_INSERT_RANGE, now)?;
            changed = true;
        } else if mode & FALLOC_FL_PUNCH_HOLE != 0 {
            // As ext4: nothing past the end of the file (rounded up to a
            // block) is punched.
            if off < size {
                let end = end.min(size.next_multiple_of(BLOCK_SIZE_U64));
                // Frees space: the reserve lets a full file system punch.
                changed |= zero_range(sbi, info, g, off, end, size, now, Pool::Reserve)?;
            }
        } else {
            let new_size = if mode & FALLOC_FL_KEEP_SIZE == 0 { size.max(end) } else { size };
            if new_size > size && size % BLOCK_SIZE_U64 != 0 {
                // The bytes between the old end and the end of its block
                // read as zeros from now on (ext4 zeroes them too).
                changed |= zero_range(
                    sbi,
                    info,
                    g,
                    size,
                    size.next_multiple_of(BLOCK_SIZE_U64),
                    size,
                    now,
                    Pool::General,
                )?;
            }
            if mode & FALLOC_FL_ZERO_RANGE != 0 {
                changed |= zero_range(sbi, info, g, off, end, size, now, Pool::General)?;
            }
            changed |= fill_holes(
                sbi,
                info,
                g,
                off / BLOCK_SIZE_U64,
                (end - 1) / BLOCK_SIZE_U64,
                &mut size,
                new_size,
                now,
            )?;
        }
        Ok(changed)
    })();
    let changed = match r {
        Ok(c) => c,
        Err(e) => {
            out.size = size;
            out.blocks = file_map(g)
                .map(|m| m.mapped_blocks())
                .unwrap_or(0)
                .saturating_add(g.log.pages)
                .saturating_mul(8);
            // Part of the work may have committed (filling holes).
            out.changed = g.log.tail != tail_before;
            return Err(e);
        }
    };
    if !changed {
        // Nothing to change but the times (ext4 updates them too).
        let mut b = FileTx::new(sbi, info, g.log, now);
        b.times(size, size)?;
        b.commit(g)?;
    }
    // Compaction moves no data block (C has dropped the DAX entries of
    // the blocks this call moved; the others stay valid).
    crate::gc::maybe_compact(sbi, info, g);
    out.size = size;
    out.blocks = file_map(g)?.mapped_blocks().saturating_add(g.log.pages).saturating_mul(8);
    out.changed = true;
    Ok(())
}

/// The file bytes whose DAX entries a fallocate of `[off, end)` (`size`:
/// i_size) must drop first: blocks it copies on write (the partial pages at
/// the edges of a punched or zeroed range, the page of the old end when the
/// size grows), frees, or moves (collapse and insert, `shifts`: everything
/// from `off` on) change pfn, and no DAX entry may keep pointing at them (a
/// freed block still associated with this mapping trips
/// `dax_associate_entry` when reused). Whole 2 MiB units: a 2 MiB entry
/// reaching outside the range of `truncate_pagecache_range` would survive
/// it; the pages that stay fault in again. Returns `(from, last)`.
fn dax_range(off: u64, end: u64, size: u64, shifts: bool) -> (u64, u64) {
    let from = off.min(size);
    let from = from - from % shim::PMD_SIZE;
    let last = match end.checked_next_multiple_of(shim::PMD_SIZE).and_then(|e| e.checked_sub(1)) {
        Some(last) if !shifts && last < shim::LLONG_MAX => last,
        _ => shim::LLONG_MAX,
    };
    (from, last)
}

/// Before a fallocate changes blocks: the VFS's limits for a size that may
/// grow to `grow_to`, the privileges a write removes, then the invalidate
/// lock (returned) and no DAX entry left on file bytes `[from, last]`.
///
/// # Safety
///
/// `file` is an open novars file, its inode `inode`, whose lock is held.
unsafe fn prepare(
    file: *mut bindings::file,
    inode: *mut bindings::inode,
    grow_to: Option<u64>,
    from: u64,
    last: u64,
) -> Result<shim::WriteLocked> {
    if let Some(end) = grow_to {
        let end = i64::try_from(end).map_err(|_| shim::err(bindings::EFBIG))?;
        // SAFETY: per the contract.
        to_result(unsafe { bindings::inode_newsize_ok(inode, end) })?;
    }
    // SAFETY: per the contract.
    to_result(unsafe { bindings::file_remove_privs(file) })?;
    // SAFETY: per the contract; the invalidate lock comes right after the
    // inode lock in the lock order (DESIGN.md).
    let inval = unsafe { shim::WriteLocked::invalidate(inode) };
    // SAFETY: per the contract, with the invalidate lock just taken.
    unsafe { shim::drop_dax_entries(inode, from, Some(last), Some(last))? };
    Ok(inval)
}

/// fallocate(2), C holding the inode lock; the VFS has checked the range
/// (`off` >= 0, `len` > 0, no overflow), the open mode and the
/// PUNCH_HOLE/ZERO_RANGE/COLLAPSE_RANGE/INSERT_RANGE combinations. EBUSY
/// for a sealed block map and any mode but KEEP_SIZE (checked again under
/// the log lock), EOPNOTSUPP for a mode bit novars does not know, the
/// VFS's size limits for a range that may grow the file; then the pages
/// whose blocks change lose their DAX entries ([`dax_range`], under the
/// invalidate lock, which this takes). What was committed, also before a
/// failure, is set in the VFS inode. 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_fallocate(
    file: *mut bindings::file,
    mode: c_int,
    off: i64,
    len: i64,
) -> c_long {
    // SAFETY: the VFS passes an open novars file; C holds its inode's lock.
    let inode = unsafe { (*file).f_inode };
    // SAFETY: as above.
    let (sbi, info, now, size) = unsafe {
        (super_::sbi((*inode).i_sb), inode::of(inode), shim::now(inode), shim::i_size(inode))
    };
    let (Ok(mode), Ok(off), Ok(len)) =
        (u32::try_from(mode), u64::try_from(off), u64::try_from(len))
    else {
        return EINVAL.to_errno().into();
    };
    if mode & !FALLOC_FL_KEEP_SIZE != 0 {
        if let Err(e) = crate::seal::check_unsealed(&info.inner.lock()) {
            return e.to_errno().into();
        }
    }
    let shifts = FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;
    if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | shifts) != 0 {
        return shim::neg(bindings::EOPNOTSUPP).into();
    }
    let end = off.saturating_add(len);
    let grows = mode & (FALLOC_FL_KEEP_SIZE | shifts) == 0 && end > size;
    let (from, last) = dax_range(off, end, size, mode & shifts != 0);
    // SAFETY: the inode lock is held.
    let _inval = match unsafe { prepare(file, inode, grows.then_some(end), from, last) } {
        Ok(l) => l,
        Err(e) => return e.to_errno().into(),
    };
    let mut out = FallocOut { size, blocks: 0, changed: false };
    let r = fallocate(sbi, info, mode, off, len, &mut out, now);
    if out.changed {
        let a = IAttr::default().size(out.size).blocks(out.blocks).changed(now, true);
        // SAFETY: as above.
        unsafe { a.set(inode) };
    }
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno().into(),
    }
}
