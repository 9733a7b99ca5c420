// SPDX-License-Identifier: GPL-2.0

//! Regular-file data through DAX: the iomap answer for a file offset, and
//! `write()` (copy on write, or in place where the range is mapped or the
//! block map sealed), each one [`FileTx`] commit.

use crate::index::Lookup;
use crate::inode::{self, Index};
use crate::layout::BLOCK_SIZE_U64;
use crate::shim::{self, IAttr, Map};
use core::ffi::{c_int, c_void};
use kernel::bindings;

/// iomap_begin: the mapping covering byte `pos` (at most `length` bytes).
/// With `IOMAP_WRITE` (write faults) a hole gets zeroed blocks first,
/// durable before this returns (`mmap.rs`); `size` and the time are the
/// file's size for that log entry; the VFS inode gets the new block count.
#[no_mangle]
extern "C" fn novars_rs_iomap_begin(
    inode: *mut bindings::inode,
    pos: u64,
    length: u64,
    flags: u32,
    size: u64,
    out: *mut Map,
) -> c_int {
    // SAFETY: C passes a live novars inode of a mounted super block.
    let info = unsafe { inode::of(inode) };
    // SAFETY: as above.
    if let Err(e) = unsafe { super_::sbi((*inode).i_sb) }.live() {
        return e.to_errno();
    }
    let pg = pos / BLOCK_SIZE_U64;
    let want = pos.saturating_add(length.max(1)).div_ceil(BLOCK_SIZE_U64) - pg;
    if flags & shim::IOMAP_WRITE != 0 {
        // SAFETY: C passes a live novars inode.
        let (sbi, now) = unsafe { (super_::sbi((*inode).i_sb), shim::now(inode)) };
        let fault = flags & shim::IOMAP_FAULT != 0;
        return match crate::mmap::write_map(sbi, info, pg, want, fault, size, now) {
            Ok((block, run, new, blocks)) => {
                if new {
                    // SAFETY: as above.
                    unsafe { IAttr::default().blocks(blocks).set(inode) };
                }
                let m = Map {
                    offset: pg * BLOCK_SIZE_U64,
                    length: run.min(want).saturating_mul(BLOCK_SIZE_U64),
                    addr: block.saturating_mul(BLOCK_SIZE_U64),
                    mapped: 1,
                    flags: if new { shim::MAP_NEW } else { 0 },
                };
                // SAFETY: `out` points to the caller's `struct novars_map`.
                unsafe { out.write(m) };
                0
            }
            Err(e) => e.to_errno(),
        };
    }
    let mut g = info.inner.lock();
    let Index::File(map) = &mut g.index else { return shim::neg(bindings::EINVAL) };
    let m = match map.lookup(pg) {
        Lookup::Mapped { block, run } => Map {
            offset: pg * BLOCK_SIZE_U64,
            length: run.min(want).saturating_mul(BLOCK_SIZE_U64),
            addr: block.saturating_mul(BLOCK_SIZE_U64),
            mapped: 1,
            flags: 0,
        },
        // Reads (read(), read faults, splice) give zeros for it; SEEK_DATA
        // and SEEK_HOLE treat it as ext4 does; FIEMAP says "unwritten".
        Lookup::Unwritten { block, run } => Map {
            offset: pg * BLOCK_SIZE_U64,
            length: run.min(want).saturating_mul(BLOCK_SIZE_U64),
            addr: block.saturating_mul(BLOCK_SIZE_U64),
            mapped: shim::MAPPED_UNWRITTEN,
            flags: 0,
        },
        Lookup::Hole { run } => Map {
            offset: pg * BLOCK_SIZE_U64,
            length: run.min(want).max(1).saturating_mul(BLOCK_SIZE_U64),
            addr: 0,
            mapped: 0,
            flags: 0,
        },
    };
    // SAFETY: `out` points to the caller's `struct novars_map`.
    unsafe { out.write(m) };
    0
}

use crate::filetx::{file_map, fill, old_block, zero_past_eof, FileTx};
use crate::index::ExtentMap;
use crate::inode::InodeInfo;
use crate::layout::log::MAX_FILE_SIZE;
use crate::layout::walk::blocks_for_size;
use crate::layout::BLOCK_SIZE;
use crate::locks::lock_logs;
use crate::super_::{self, SbInfo};
use kernel::prelude::*;

/// What a write (or a seal) changed.
#[derive(Default)]
pub(crate) struct WriteOut {
    pub(crate) size: u64,
    pub(crate) blocks: u64,
    /// Holes an in-place write filled (C drops their zero-page mappings).
    pub(crate) filled: u64,
}

/// In `write`'s facts: some page of the range has a DAX entry (it is, or
/// was, mapped into user space).
const W_MAPPED: u32 = 1;

/// write() in place: mapped blocks are overwritten where they are (a mapped
/// page keeps its pfn, so every mapping sees the new bytes), holes get
/// zeroed new blocks (refused with EBUSY under a seal), unwritten blocks
/// are written where they are (zeros around the data) and converted, one
/// WRITE entry per new or converted extent, else one SETATTR for
/// mtime/size; one tail commit. Not atomic
/// on a crash (as ext4-DAX); used only where copy-on-write cannot be: the
/// range is mapped into user space, or the block map is sealed.
fn write_inplace(
    tx: &mut FileTx<'_>,
    map: &mut ExtentMap,
    sealed: bool,
    src: &mut Source<'_>,
    size: u64,
) -> Result<u64> {
    let sbi = src.sbi;
    let (pos, mut end) = (src.pos, src.end);
    let first = pos / BLOCK_SIZE_U64;
    let last = (end - 1) / BLOCK_SIZE_U64;
    // Blocks at or past it are appended (alloc.rs places them aligned).
    let eof = blocks_for_size(size);
    let mut pg = first;
    let mut prev: Option<(u64, u64)> = None; // end of the last new run: (file block, device block)
    while pg <= last {
        let (b, c, new) = match map.lookup(pg) {
            Lookup::Mapped { block, run } => (block, run.min(last - pg + 1), false),
            // Converting moves no block: allowed under a seal too.
            Lookup::Unwritten { block, run } => {
                let c = run.min(last - pg + 1);
                store_unwritten(src, block, pg, c)?;
                tx.convert(pg, block, c, size.max(end), 0)?;
                pg += c;
                continue;
            }
            Lookup::Hole { .. } if sealed => {
                if pg == first {
                    return Err(shim::err(bindings::EBUSY));
                }
                end = pg * BLOCK_SIZE_U64;
                break;
            }
            Lookup::Hole { run } => {
                // Continue the previous run on the device if it is free there.
                let goal = match prev {
                    Some((p, b)) if p == pg => Some(b),
                    _ => map.goal(pg),
                };
                let (b, c) = tx.alloc(pg, run.min(last - pg + 1), pg >= eof, goal)?;
                (b, c, true)
            }
        };
        for i in 0..c {
            let p = (pg + i) * BLOCK_SIZE_U64;
            let lo = pos.max(p);
            let hi = end.min(p + BLOCK_SIZE_U64);
            if new {
                fill(sbi, b + i, None, 0, (lo - p) as usize)?;
                fill(sbi, b + i, None, (hi - p) as usize, BLOCK_SIZE)?;
            }
            src.copy((b + i) * BLOCK_SIZE_U64 + (lo - p), lo, hi)?;
        }
        if new {
            tx.write(pg, b, c, size.max(end), 0, true)?;
            prev = Some((pg + c, b + c));
        }
        pg += c;
    }
    let size_after = size.max(end);
    if tx.entries() == 0 {
        tx.times(size, size_after)?;
    }
    Ok(end)
}

/// Stores the write's bytes into the `count` contiguous device blocks
/// from `block` (file blocks `pg..`) with one copy; a partial first or last
/// block gets the bytes around the write from `old` (the device block that
/// file block had, if it keeps its bytes) or zeros. Non-temporal: durable
/// at the commit's fence.
fn store_run(
    src: &mut Source<'_>,
    block: u64,
    pg: u64,
    count: u64,
    mut old: impl FnMut(u64) -> Option<u64>,
) -> Result {
    let p0 = pg * BLOCK_SIZE_U64;
    let p_end = (pg + count) * BLOCK_SIZE_U64;
    let (lo, hi) = (src.pos.max(p0), src.end.min(p_end));
    if lo > p0 {
        fill(src.sbi, block, old(pg), 0, (lo - p0) as usize)?;
    }
    src.copy(block * BLOCK_SIZE_U64 + (lo - p0), lo, hi)?;
    if hi < p_end {
        let lp = pg + count - 1;
        let from = (hi - lp * BLOCK_SIZE_U64) as usize;
        fill(src.sbi, block + count - 1, old(lp), from, BLOCK_SIZE)?;
    }
    Ok(())
}

/// Stores the write's bytes into the `count` unwritten blocks from device
/// block `block` (file blocks `pg..`), zeros around them: the whole blocks
/// are file data once a WRITE converts them. Until that commits they still
/// read as zeros, so the store needs no copy on write.
fn store_unwritten(src: &mut Source<'_>, block: u64, pg: u64, count: u64) -> Result {
    store_run(src, block, pg, count, |_| None)
}

/// File blocks from `pg` up to `last` that are not unwritten (written or
/// holes): the next run a copy-on-write takes new blocks for.
fn cow_run(map: &mut ExtentMap, pg: u64, last: u64) -> u64 {
    let mut at = pg;
    while at <= last {
        match map.lookup(at) {
            Lookup::Unwritten { .. } => break,
            Lookup::Mapped { run, .. } | Lookup::Hole { run } => {
                at = at.saturating_add(run).min(last + 1);
            }
        }
    }
    at - pg
}

/// write() by copy on write: every block the range touches gets a new
/// block (the old bytes around the range copied in), one WRITE entry per
/// new extent, one tail commit: the write is atomic on a crash. Unwritten
/// blocks are the exception: they keep their place, the bytes are stored
/// into them and the same commit converts them (they read as zeros until
/// then, so the write stays atomic).
fn write_cow(
    tx: &mut FileTx<'_>,
    map: &mut ExtentMap,
    src: &mut Source<'_>,
    size: u64,
) -> Result<u64> {
    let (pos, end) = (src.pos, src.end);
    let first = pos / BLOCK_SIZE_U64;
    let last = (end - 1) / BLOCK_SIZE_U64;
    let eof = blocks_for_size(size);
    let size_after = size.max(end);
    let mut pg = first;
    let mut prev: Option<(u64, u64)> = None;
    while pg <= last {
        if let Lookup::Unwritten { block, run } = map.lookup(pg) {
            let c = run.min(last - pg + 1);
            store_unwritten(src, block, pg, c)?;
            tx.convert(pg, block, c, size_after, 0)?;
            prev = Some((pg + c, block + c));
            pg += c;
            continue;
        }
        // Continue the file (or the previous extent) on the device.
        let goal = match prev {
            Some((p, b)) if p == pg => Some(b),
            _ => map.goal(pg),
        };
        let want = cow_run(map, pg, last).max(1);
        let (blk, cnt) = tx.alloc(pg, want, pg >= eof, goal)?;
        // The run's new blocks are contiguous on the device: the user
        // bytes go in with one copy; only a partial first or last block
        // gets the old bytes (or zeros) around them.
        store_run(src, blk, pg, cnt, |p| old_block(map, p))?;
        tx.write(pg, blk, cnt, size_after, 0, true)?;
        prev = Some((pg + cnt, blk + cnt));
        pg += cnt;
    }
    Ok(end)
}

/// The user bytes of one write(): file range `[pos, end)` from `iter`.
struct Source<'a> {
    sbi: &'a SbInfo,
    iter: *mut c_void,
    pos: u64,
    end: u64,
}

impl Source<'_> {
    /// Copies file bytes `[lo, hi)` of the write to device position `dst`
    /// (non-temporal; durable at the commit's fence).
    fn copy(&mut self, dst: u64, lo: u64, hi: u64) -> Result {
        let n = usize::try_from(hi - lo).map_err(|_| EINVAL)?;
        // SAFETY: `iter` is the caller's live iov_iter; `dst` is in a block
        // of this file, whose writers the log lock serialises (`pm` checks
        // the range is on the device).
        let got = unsafe { self.sbi.pm.copy_from_iter(self.iter, dst, n) }?;
        if got != n {
            return Err(EFAULT);
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn write(
    sbi: &SbInfo,
    info: &InodeInfo,
    iter: *mut c_void,
    pos: u64,
    len: u64,
    size: u64,
    now: crate::layout::Timespec,
    facts: u32,
    out: &mut WriteOut,
) -> Result<u64> {
    let _w = sbi.start_write()?;
    let end = pos
        .checked_add(len)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or_else(|| shim::err(bindings::EFBIG))?;
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let g = &mut *g;
    let sealed = crate::seal::is_sealed(g);
    // Copy-on-write gives a mapped page a new pfn that the mappings would
    // not see, and a seal keeps every block where it is: in place then.
    let inplace = facts & W_MAPPED != 0 || sealed;
    let mut tx = FileTx::new(sbi, info, g.log, now);
    let mut src = Source { sbi, iter, pos, end };
    let done = {
        let map = file_map(g)?;
        // A write past the end: what lies between the old end and `pos`
        // reads as zeros, whatever a mapping stored there.
        zero_past_eof(sbi, map, size, pos)?;
        if inplace {
            write_inplace(&mut tx, map, sealed, &mut src, size)?
        } else {
            write_cow(&mut tx, map, &mut src, size)?
        }
    };
    let filled = if inplace { tx.filled_blocks() } else { 0 };
    tx.commit(g)?;
    out.size = size.max(done);
    out.filled = filled;
    // Repeated in-place writes of a mapped range log a SETATTR each: keep
    // the log bounded (compaction moves no data block, so mappings stay).
    crate::gc::maybe_compact(sbi, info, g);
    out.blocks = file_map(g)?.mapped_blocks().saturating_add(g.log.pages).saturating_mul(8);
    Ok(done - pos)
}

/// write(2) and friends, C holding the inode lock with page faults
/// disabled: returns bytes written or -errno; the VFS inode gets the new
/// size, blocks and times. Under the invalidate lock, which this takes (no
/// page of the range gets mapped while it decides between copy-on-write
/// and in place from whether one is).
#[no_mangle]
extern "C" fn novars_rs_write(
    inode: *mut bindings::inode,
    iter: *mut c_void,
    pos: u64,
    len: u64,
) -> i64 {
    if len == 0 {
        return 0;
    }
    // SAFETY: C passes a live novars inode, its inode lock held; the
    // invalidate lock comes next in the lock order (DESIGN.md).
    let (sbi, info, now, size, _inval) = unsafe {
        let inval = shim::WriteLocked::invalidate(inode);
        (super_::sbi((*inode).i_sb), inode::of(inode), shim::now(inode), shim::i_size(inode), inval)
    };
    // SAFETY: as above.
    let facts = if unsafe { shim::range_mapped(inode, pos, len) } { W_MAPPED } else { 0 };
    let mut out = WriteOut::default();
    match write(sbi, info, iter, pos, len, size, now, facts, &mut out) {
        Ok(n) => {
            let mut a = IAttr::default().blocks(out.blocks).changed(now, true);
            if out.size > size {
                a = a.size(out.size);
            }
            // SAFETY: as above.
            unsafe {
                a.set(inode);
                if out.filled != 0 {
                    // Holes filled in place may have the zero page mapped.
                    shim::invalidate_range(inode, pos, n);
                }
            }
            n as i64
        }
        Err(e) => e.to_errno() as i64,
    }
}
