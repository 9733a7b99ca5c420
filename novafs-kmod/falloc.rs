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
use crate::layout::log::{MAX_FILE_SIZE, WF_FALLOC};
use crate::layout::{Timespec, BLOCK_SIZE_U64};
use crate::locks::lock_logs;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::c_int;
use kernel::bindings;
use kernel::prelude::*;

// Two steps, each made of log entries committed by one tail store:
// 1. the visible change, always one commit: the partial blocks at the
//    edges of a punched or zeroed range are copied on write with the range
//    zeroed (WRITE), whole blocks inside are unmapped (PUNCH); collapse and
//    insert are one commit each (see `shift`);
// 2. the holes of an allocated or zeroed range get new blocks, zeroed
//    through `pm` before their WRITE(FALLOC) entries commit. The last
//    commit carries the new size. Holes and zeroed blocks read the same, so
//    a crash between the commits of this step (a range needing more than
//    `FILL_BATCH` extents) is invisible except in the block count.

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
            map.collect(first_full, tail - first_full, &mut any)?;
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

/// Step 2: maps zeroed blocks into every hole of file blocks
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
    file_map(g)?.collect(first, last - first + 1, &mut mapped)?;
    let have = mapped.as_slice().iter().fold(0u64, |n, &(_, c)| n.saturating_add(c));
    if (last - first + 1).saturating_sub(have) > sbi.alloc.available() {
        return Err(ENOSPC);
    }
    let mut changed = false;
    let mut pg = first;
    loop {
        let mut b = FileTx::new(sbi, info, g.log, now);
        let map = file_map(g)?;
        let (next, reached) =
            b.fill_holes(map, pg, last + 1, FILL_BATCH, WF_FALLOC, *size, new_size)?;
        pg = next;
        if pg > last && !reached && new_size != *size {
            // The last block was mapped already: restate its mapping to
            // carry the new size.
            match map.lookup(last) {
                Lookup::Mapped { block, .. } => {
                    b.write(last, block, 1, new_size, WF_FALLOC, false)?
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
    // The extents that move, with their file offsets.
    let mut moved: KVVec<(u64, u64, u64)> = KVVec::new();
    let mut pg = if insert { off_pg } else { off_pg + len_pg };
    while pg < MAX_FILE_BLOCKS {
        match map.lookup(pg) {
            Lookup::Mapped { block, run } => {
                let run = run.min(MAX_FILE_BLOCKS - pg);
                moved.push((pg, block, run), GFP_KERNEL)?;
                pg += run;
            }
            Lookup::Hole { run } => pg = pg.saturating_add(run),
        }
    }
    let mut gone = KVVec::new();
    if !insert {
        map.collect(off_pg, len_pg, &mut gone)?;
    }
    // Collapsing frees the range: the reserve lets a full file system do it.
    let pool = if insert { Pool::General } else { Pool::Reserve };
    let mut b = FileTx::new(sbi, info, g.log, now).with_pool(pool);
    let r = (|| -> Result {
        b.punch_keep(off_pg, MAX_FILE_BLOCKS - off_pg)?;
        for &(p, blk, cnt) in moved.as_slice() {
            let np = if insert { p.checked_add(len_pg) } else { p.checked_sub(len_pg) };
            let np = np
                .filter(|n| n.checked_add(cnt).is_some_and(|e| e <= MAX_FILE_BLOCKS))
                .ok_or_else(|| shim::err(bindings::EFBIG))?;
            b.write(np, blk, cnt, new_size, 0, true)?;
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

/// `NOVARS_FA_*`: what [`novars_rs_fallocate_begin`] tells C about a mode.
const FA_GROWS: c_int = 1;
const FA_SHIFTS: c_int = 2;
const _: () = assert!(shim::shim_h("NOVARS_FA_GROWS") == FA_GROWS as u64);
const _: () = assert!(shim::shim_h("NOVARS_FA_SHIFTS") == FA_SHIFTS as u64);

/// fallocate(2), before C takes any lock: EBUSY for a sealed block map and
/// any mode but KEEP_SIZE (checked again under the lock), EOPNOTSUPP for a
/// mode bit novars does not know; else what C must prepare: `FA_GROWS`
/// (the size may grow to the end of the range: C checks the limits),
/// `FA_SHIFTS` (every block from the offset on moves).
#[no_mangle]
extern "C" fn novars_rs_fallocate_begin(inode: *mut bindings::inode, mode: u32) -> c_int {
    // SAFETY: C passes a live novars inode.
    let info = unsafe { inode::of(inode) };
    if mode & !FALLOC_FL_KEEP_SIZE != 0 {
        if let Err(e) = crate::seal::check_unsealed(&info.inner.lock()) {
            return e.to_errno();
        }
    }
    let shifts = FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;
    if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | shifts) != 0 {
        return shim::neg(bindings::EOPNOTSUPP);
    }
    let mut plan = 0;
    if mode & (FALLOC_FL_KEEP_SIZE | shifts) == 0 {
        plan |= FA_GROWS;
    }
    if mode & shifts != 0 {
        plan |= FA_SHIFTS;
    }
    plan
}

/// fallocate(2) (C has taken the inode lock and checked what the VFS does
/// not; `size` is i_size): returns 0 or -errno. What was committed, also
/// before a failure, is set in the VFS inode.
#[no_mangle]
extern "C" fn novars_rs_fallocate(
    inode: *mut bindings::inode,
    mode: u32,
    off: u64,
    len: u64,
    size: u64,
) -> c_int {
    // SAFETY: C passes a live novars inode, its inode lock held.
    let (sbi, info, now) =
        unsafe { (super_::sbi((*inode).i_sb), inode::of(inode), shim::now(inode)) };
    let mut out = FallocOut { size, blocks: 0, changed: false };
    let r = fallocate(sbi, info, mode, off, len, &mut out, now);
    if out.changed {
        let a = IAttr::default().size(out.size).blocks(out.blocks).changed(now, true);
        // SAFETY: as above.
        unsafe { a.set(inode) };
    }
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
