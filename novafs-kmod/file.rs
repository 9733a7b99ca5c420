// SPDX-License-Identifier: GPL-2.0

//! Regular-file data through DAX: the iomap answer for a file offset.

use crate::index::Lookup;
use crate::inode::{self, Index};
use crate::layout::BLOCK_SIZE_U64;
use crate::shim::{self, Map};
use core::ffi::{c_int, c_void};
use kernel::bindings;

/// iomap_begin: the mapping covering byte `pos` (at most `length` bytes).
/// With `IOMAP_WRITE` (write faults) a hole gets zeroed blocks first,
/// durable before this returns (`mmap.rs`); `size` and the time are the
/// file's size and the fault's mtime for that log entry.
#[no_mangle]
extern "C" fn novars_rs_iomap_begin(
    inode: *mut bindings::inode,
    info: *mut c_void,
    pos: u64,
    length: u64,
    flags: u32,
    size: u64,
    now_sec: i64,
    now_nsec: u32,
    out: *mut Map,
) -> c_int {
    // SAFETY: C passes the inode's own info.
    let info = unsafe { inode::info(info) };
    let pg = pos / BLOCK_SIZE_U64;
    let want = pos.saturating_add(length.max(1)).div_ceil(BLOCK_SIZE_U64) - pg;
    if flags & shim::IOMAP_WRITE != 0 {
        // SAFETY: C passes a live novars inode.
        let sbi = unsafe { super_::sbi((*inode).i_sb) };
        let fault = flags & shim::IOMAP_FAULT != 0;
        return match crate::mmap::write_map(sbi, info, pg, want, fault, size, ts(now_sec, now_nsec))
        {
            Ok((block, run, new, blocks)) => {
                let m = Map {
                    offset: pg * BLOCK_SIZE_U64,
                    length: run.min(want).saturating_mul(BLOCK_SIZE_U64),
                    addr: block.saturating_mul(BLOCK_SIZE_U64),
                    mapped: 1,
                    flags: if new { shim::MAP_NEW } else { 0 },
                    blocks,
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
            blocks: 0,
        },
        Lookup::Hole { run } => Map {
            offset: pg * BLOCK_SIZE_U64,
            length: run.min(want).max(1).saturating_mul(BLOCK_SIZE_U64),
            addr: 0,
            mapped: 0,
            flags: 0,
            blocks: 0,
        },
    };
    // SAFETY: `out` points to the caller's `struct novars_map`.
    unsafe { out.write(m) };
    0
}

use crate::index::ExtentMap;
use crate::inode::InodeInfo;
use crate::layout::inode::{S_IFMT, S_IFREG};
use crate::layout::log::{encode_fixed, et, sa, EntryHeader, SetAttrEntry, MAX_FILE_SIZE};
use crate::layout::walk::{blocks_for_size, FileMap};
use crate::layout::{Media, BLOCK_SIZE};
use crate::locks::lock_logs;
use crate::log::Appender;
use crate::namei::ts;
use crate::super_::{self, SbInfo};
use kernel::prelude::*;

static ZEROS: [u8; BLOCK_SIZE] = [0; BLOCK_SIZE];

/// Most extents one write() commits (a longer write is cut short; the
/// caller sees a short write and continues).
const MAX_EXTENTS: usize = 128;

/// Fills `[from, to)` of new block `dst` with the old block's bytes (if
/// mapped) or zeros.
fn fill(sbi: &SbInfo, dst: u64, old: Option<u64>, from: usize, to: usize) -> Result {
    if from >= to {
        return Ok(());
    }
    let pos = dst * BLOCK_SIZE_U64 + from as u64;
    match old {
        Some(ob) => {
            let b = sbi.media.block(ob).map_err(|_| EIO)?;
            sbi.pm.write_nt(pos, b.get(from..to).ok_or(EINVAL)?)
        }
        None => sbi.pm.write_nt(pos, ZEROS.get(from..to).ok_or(EINVAL)?),
    }
}

fn old_block(map: &mut ExtentMap, pg: u64) -> Option<u64> {
    match map.lookup(pg) {
        Lookup::Mapped { block, .. } => Some(block),
        Lookup::Hole { .. } => None,
    }
}

/// Result of a write for C.
#[repr(C)]
pub(crate) struct WriteOut {
    pub(crate) size: u64,
    pub(crate) blocks: u64,
    /// Holes an in-place write filled (C drops their zero-page mappings).
    pub(crate) filled: u64,
}

const _: () = assert!(core::mem::size_of::<WriteOut>() == 24);

/// `NOVARS_W_MAPPED`, a fact C found: some page of the range has a DAX
/// entry (it is, or was, mapped into user space).
pub(crate) const W_MAPPED: u32 = 1;
const _: () = assert!(shim::shim_h("NOVARS_W_MAPPED") == W_MAPPED as u64);

/// write() in place: mapped blocks are overwritten where they are (a mapped
/// page keeps its pfn, so every mapping sees the new bytes), holes get
/// zeroed new blocks (refused with EBUSY under a seal), one WRITE entry per
/// new extent, else one SETATTR for mtime/size; one tail commit. Not atomic
/// on a crash (as ext4-DAX); used only where copy-on-write cannot be: the
/// range is mapped into user space, or the block map is sealed.
#[allow(clippy::too_many_arguments)]
fn write_inplace(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut crate::inode::Inner,
    iter: *mut c_void,
    pos: u64,
    mut end: u64,
    size: u64,
    now: crate::layout::Timespec,
    out: &mut WriteOut,
) -> Result<u64> {
    let sealed = crate::seal::is_sealed(g);
    let log = g.log;
    let Index::File(map) = &mut g.index else { return Err(EINVAL) };
    let first = pos / BLOCK_SIZE_U64;
    let last = (end - 1) / BLOCK_SIZE_U64;
    // Blocks at or past it are appended (alloc.rs places them aligned).
    let eof = blocks_for_size(size);
    // (file block, device block, count, newly allocated)
    let mut runs: KVec<(u64, u64, u64, bool)> = KVec::new();
    let free_new = |runs: &KVec<(u64, u64, u64, bool)>| {
        let a = &sbi.alloc;
        for &(_, b, c, new) in runs.as_slice() {
            if new {
                let _ = a.free(b, c);
            }
        }
    };
    let mut pg = first;
    while pg <= last {
        if runs.len() >= MAX_EXTENTS {
            end = pg * BLOCK_SIZE_U64;
            break;
        }
        // Continue the previous run on the device if it is free there.
        let goal = match runs.last() {
            Some(&(p, b, c, _)) if p + c == pg => Some(b + c),
            _ => map.goal(pg),
        };
        let (b, c, new) = match map.lookup(pg) {
            Lookup::Mapped { block, run } => (block, run.min(last - pg + 1), false),
            Lookup::Hole { .. } if sealed => {
                if runs.is_empty() {
                    return Err(shim::err(bindings::EBUSY));
                }
                end = pg * BLOCK_SIZE_U64;
                break;
            }
            Lookup::Hole { run } => {
                match sbi.alloc.alloc_for(pg, run.min(last - pg + 1), pg >= eof, goal) {
                    Ok((b, c)) => (b, c, true),
                    Err(e) if runs.is_empty() => return Err(e),
                    Err(_) => {
                        end = pg * BLOCK_SIZE_U64;
                        break;
                    }
                }
            }
        };
        runs.push((pg, b, c, new), GFP_KERNEL).inspect_err(|_| {
            if new {
                let _ = sbi.alloc.free(b, c);
            }
            free_new(&runs);
        })?;
        pg += c;
    }
    let size_after = size.max(end);
    let mut ap = Appender::new(sbi, info.ino, info.gen, info.rec, log);
    let r = (|| -> Result {
        let mut logged = false;
        for &(epg, blk, cnt, new) in runs.as_slice() {
            for i in 0..cnt {
                let p = (epg + i) * BLOCK_SIZE_U64;
                let lo = pos.max(p);
                let hi = end.min(p + BLOCK_SIZE_U64);
                let d = blk + i;
                if new {
                    fill(sbi, d, None, 0, (lo - p) as usize)?;
                    fill(sbi, d, None, (hi - p) as usize, BLOCK_SIZE)?;
                }
                let n = (hi - lo) as usize;
                // SAFETY: `iter` is the caller's iov_iter; the range is in a
                // block of this file, whose writers the inode lock
                // serialises (`pm` checks it is on the device).
                let got = unsafe { sbi.pm.copy_from_iter(iter, d * BLOCK_SIZE_U64 + (lo - p), n) }?;
                if got != n {
                    return Err(EFAULT);
                }
            }
            if new {
                ap.push_write(0, epg, blk, cnt, size_after, now)?;
                logged = true;
            }
        }
        if !logged {
            let mut e = SetAttrEntry::zeroed();
            e.valid = sa::MTIME | sa::CTIME | if size_after != size { sa::SIZE } else { 0 };
            e.size = size_after;
            e.mtime = now;
            e.ctime = now;
            ap.push(|s, buf| {
                e.hdr = EntryHeader::new(et::SETATTR, 0, s, SetAttrEntry::SIZE);
                encode_fixed(&e, buf)
            })?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        ap.abort();
        free_new(&runs);
        return Err(e);
    }
    // `commit` fences the copied data before the tail store.
    let newlog = match ap.commit() {
        Ok(l) => l,
        Err(e) => {
            free_new(&runs);
            return Err(e);
        }
    };
    let mut filled = 0u64;
    for &(epg, blk, cnt, new) in runs.as_slice() {
        if new {
            map.map(epg, blk, cnt);
            filled = filled.saturating_add(cnt);
        }
    }
    out.size = size_after;
    out.filled = filled;
    out.blocks = map.mapped_blocks().saturating_add(newlog.pages).saturating_mul(8);
    g.log = newlog;
    // Repeated in-place writes of a mapped range log a SETATTR each: keep
    // the log bounded (compaction moves no data block, so mappings stay).
    if let Some(pages) = crate::gc::maybe_compact(sbi, info, g) {
        out.blocks =
            out.blocks.saturating_sub(newlog.pages.saturating_sub(pages).saturating_mul(8));
    }
    Ok(end - pos)
}

#[allow(clippy::too_many_arguments)]
fn write(
    sbi: &SbInfo,
    info: &InodeInfo,
    iter: *mut c_void,
    pos: u64,
    len: u64,
    size: u64,
    now_sec: i64,
    now_nsec: u32,
    facts: u32,
    out: &mut WriteOut,
) -> Result<u64> {
    let _w = sbi.start_write()?;
    let now = ts(now_sec, now_nsec);
    let mut end = pos
        .checked_add(len)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or_else(|| shim::err(bindings::EFBIG))?;
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    // Copy-on-write gives a mapped page a new pfn that the mappings would
    // not see, and a seal keeps every block where it is: in place then.
    if facts & W_MAPPED != 0 || crate::seal::is_sealed(&g) {
        return write_inplace(sbi, info, &mut g, iter, pos, end, size, now, out);
    }
    let log = g.log;
    let Index::File(map) = &mut g.index else { return Err(EINVAL) };
    let first = pos / BLOCK_SIZE_U64;
    let last = (end - 1) / BLOCK_SIZE_U64;
    let eof = blocks_for_size(size);
    // Phase 1: allocate the new blocks.
    let mut exts: KVec<(u64, u64, u64)> = KVec::new();
    let mut pg = first;
    let free_all = |exts: &KVec<(u64, u64, u64)>| {
        let a = &sbi.alloc;
        for &(_, b, c) in exts.as_slice() {
            let _ = a.free(b, c);
        }
    };
    while pg <= last {
        if exts.len() >= MAX_EXTENTS {
            end = pg * BLOCK_SIZE_U64;
            break;
        }
        // Continue the file (or the previous extent) on the device.
        let goal = match exts.last() {
            Some(&(p, b, c)) if p + c == pg => Some(b + c),
            _ => map.goal(pg),
        };
        let r = sbi.alloc.alloc_for(pg, last - pg + 1, pg >= eof, goal);
        let (b, c) = match r {
            Ok(x) => x,
            Err(e) if exts.is_empty() => return Err(e),
            Err(_) => {
                end = pg * BLOCK_SIZE_U64;
                break;
            }
        };
        exts.push((pg, b, c), GFP_KERNEL).inspect_err(|_| {
            let _ = sbi.alloc.free(b, c);
            free_all(&exts);
        })?;
        pg += c;
    }
    let size_after = size.max(end);
    // Phase 2: copy, fill partial blocks, log one WRITE per extent.
    let mut ap = Appender::new(sbi, info.ino, info.gen, info.rec, log);
    let r = (|| -> Result {
        for &(epg, blk, cnt) in exts.as_slice() {
            for i in 0..cnt {
                let p = (epg + i) * BLOCK_SIZE_U64;
                let lo = pos.max(p);
                let hi = end.min(p + BLOCK_SIZE_U64);
                let d = blk + i;
                let old =
                    if lo > p || hi < p + BLOCK_SIZE_U64 { old_block(map, epg + i) } else { None };
                fill(sbi, d, old, 0, (lo - p) as usize)?;
                let n = (hi - lo) as usize;
                let dst = d * BLOCK_SIZE_U64 + (lo - p);
                // SAFETY: `iter` is the caller's iov_iter; `dst` is in a
                // block this write owns (`pm` checks the range).
                let got = unsafe { sbi.pm.copy_from_iter(iter, dst, n) }?;
                if got != n {
                    return Err(EFAULT);
                }
                fill(sbi, d, old, (hi - p) as usize, BLOCK_SIZE)?;
            }
            ap.push_write(0, epg, blk, cnt, size_after, now)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        ap.abort();
        free_all(&exts);
        return Err(e);
    }
    let newlog = match ap.commit() {
        Ok(l) => l,
        Err(e) => {
            free_all(&exts);
            return Err(e);
        }
    };
    // Committed: switch the DRAM map and free the replaced blocks.
    let mut old = KVec::new();
    for &(epg, blk, cnt) in exts.as_slice() {
        let _ = map.collect(epg, cnt, &mut old);
        map.map(epg, blk, cnt);
    }
    {
        let a = &sbi.alloc;
        for &(b, c) in old.as_slice() {
            let _ = a.free(b, c);
        }
    }
    out.size = size_after;
    out.blocks = map.mapped_blocks().saturating_add(newlog.pages).saturating_mul(8);
    g.log = newlog;
    if let Some(pages) = crate::gc::maybe_compact(sbi, info, &mut g) {
        out.blocks =
            out.blocks.saturating_sub(newlog.pages.saturating_sub(pages).saturating_mul(8));
    }
    Ok(end - pos)
}

/// write(2) and friends: returns bytes written or -errno.
#[no_mangle]
extern "C" fn novars_rs_write(
    inode: *mut bindings::inode,
    info: *mut c_void,
    iter: *mut c_void,
    pos: u64,
    len: u64,
    size: u64,
    now_sec: i64,
    now_nsec: u32,
    facts: u32,
    out: *mut WriteOut,
) -> i64 {
    if len == 0 {
        return 0;
    }
    // SAFETY: C passes a live novars inode, its info and an out struct.
    let (sbi, info, out) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info), &mut *out) };
    match write(sbi, info, iter, pos, len, size, now_sec, now_nsec, facts, out) {
        Ok(n) => n as i64,
        Err(e) => e.to_errno() as i64,
    }
}

/// Everything setattr needs from C: the VFS's iattr (`valid`: its
/// `ATTR_*` bits, which are the layout `sa` bits) and facts.
#[repr(C)]
pub(crate) struct SetattrArgs {
    pub(crate) valid: u32,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) old_size: u64,
    pub(crate) atime_sec: i64,
    pub(crate) mtime_sec: i64,
    pub(crate) ctime_sec: i64,
    pub(crate) now_sec: i64,
    pub(crate) atime_nsec: u32,
    pub(crate) mtime_nsec: u32,
    pub(crate) ctime_nsec: u32,
    pub(crate) now_nsec: u32,
    /// The inode's file type and mode.
    pub(crate) inode_mode: u32,
    /// `SA_TAIL_MAPPED` or 0.
    pub(crate) facts: u32,
}

const _: () = assert!(core::mem::size_of::<SetattrArgs>() == 88);
const _: () = assert!(core::mem::offset_of!(SetattrArgs, inode_mode) == 80);
const _: () = {
    assert!(shim::shim_h("NOVARS_SA_MODE") == sa::MODE as u64);
    assert!(shim::shim_h("NOVARS_SA_UID") == sa::UID as u64);
    assert!(shim::shim_h("NOVARS_SA_GID") == sa::GID as u64);
    assert!(shim::shim_h("NOVARS_SA_SIZE") == sa::SIZE as u64);
    assert!(shim::shim_h("NOVARS_SA_ATIME") == sa::ATIME as u64);
    assert!(shim::shim_h("NOVARS_SA_MTIME") == sa::MTIME as u64);
    assert!(shim::shim_h("NOVARS_SA_CTIME") == sa::CTIME as u64);
    assert!(shim::shim_h("NOVARS_SA_ALL") == sa::ALL as u64);
    assert!(shim::shim_h("NOVARS_SA_TAIL_MAPPED") == SA_TAIL_MAPPED as u64);
};

/// `NOVARS_SA_TAIL_MAPPED` (in `SetattrArgs::facts`): the page holding the
/// new size has a DAX entry (it is, or was, mapped into user space).
pub(crate) const SA_TAIL_MAPPED: u32 = 1;

/// What setattr decides before C prepares a size change: EINVAL for a
/// size on anything but a regular file, EBUSY for a size change of a
/// sealed file; a size without times sets mtime and ctime too (as ext4,
/// also for an unchanged size: POSIX wants it when the size changes).
/// Returns whether there is anything to log.
fn setattr_begin(info: &InodeInfo, a: &mut SetattrArgs) -> Result<bool> {
    if a.valid & sa::SIZE != 0 {
        if a.inode_mode & S_IFMT != S_IFREG {
            return Err(EINVAL);
        }
        if a.valid & (sa::MTIME | sa::CTIME) == 0 {
            a.valid |= sa::MTIME | sa::CTIME;
            (a.mtime_sec, a.mtime_nsec) = (a.now_sec, a.now_nsec);
            (a.ctime_sec, a.ctime_nsec) = (a.now_sec, a.now_nsec);
        }
        if a.size != a.old_size {
            crate::seal::check_unsealed(&info.inner.lock())?;
        }
    }
    Ok(a.valid & sa::ALL != 0)
}

/// setattr, step 1 (before C takes the invalidate lock for a size
/// change): 0 to go on, 1 when there is nothing to do, or -errno. May add
/// to `args` (see [`setattr_begin`]).
#[no_mangle]
extern "C" fn novars_rs_setattr_begin(info: *mut c_void, args: *mut SetattrArgs) -> c_int {
    // SAFETY: C passes the inode's own info and its arguments.
    let (info, a) = unsafe { (inode::info(info), &mut *args) };
    match setattr_begin(info, a) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => e.to_errno(),
    }
}

fn setattr(sbi: &SbInfo, info: &InodeInfo, a: &SetattrArgs) -> Result<u64> {
    let _w = sbi.start_write()?;
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    if a.valid & sa::SIZE != 0 && a.size != a.old_size {
        crate::seal::check_unsealed(&g)?;
    }
    let log = g.log;
    let mut ap = Appender::new(sbi, info.ino, info.gen, info.rec, log);
    let shrink = a.valid & sa::SIZE != 0 && a.size < a.old_size;
    // The last page is mapped into user space: zero its tail in place (as
    // ext4 does) rather than move it; before the commit, so a crash leaves
    // the old size with zeros past the new one, never stale bytes later.
    let tail_inplace = a.facts & SA_TAIL_MAPPED != 0;
    // The partial last block of a shrinking file is copied with zeros past
    // the new end, in the same commit (so the cut-off bytes never reappear
    // on a later extension, and a crash keeps the old or the new file).
    let mut partial: Option<(u64, u64, u64)> = None; // (pg, new block, old block)
    let r = (|| -> Result {
        if shrink && a.size % BLOCK_SIZE_U64 != 0 && tail_inplace {
            if let Index::File(map) = &mut g.index {
                if let Some(ob) = old_block(map, a.size / BLOCK_SIZE_U64) {
                    let keep = (a.size % BLOCK_SIZE_U64) as usize;
                    fill(sbi, ob, None, keep, BLOCK_SIZE)?;
                }
            }
        } else if shrink && a.size % BLOCK_SIZE_U64 != 0 {
            if let Index::File(map) = &mut g.index {
                let pg = a.size / BLOCK_SIZE_U64;
                if let Some(ob) = old_block(map, pg) {
                    let (nb, _) = sbi.alloc.alloc(1)?;
                    partial = Some((pg, nb, ob));
                    let keep = (a.size % BLOCK_SIZE_U64) as usize;
                    fill(sbi, nb, Some(ob), 0, keep)?;
                    fill(sbi, nb, None, keep, BLOCK_SIZE)?;
                    ap.push_write(0, pg, nb, 1, a.old_size, ts(a.mtime_sec, a.mtime_nsec))?;
                }
            }
        }
        let mut e = SetAttrEntry::zeroed();
        e.valid = a.valid & sa::ALL;
        e.mode = a.mode & 0o7777;
        e.uid = a.uid;
        e.gid = a.gid;
        e.size = a.size;
        e.atime = ts(a.atime_sec, a.atime_nsec);
        e.mtime = ts(a.mtime_sec, a.mtime_nsec);
        e.ctime = ts(a.ctime_sec, a.ctime_nsec);
        ap.push(|s, buf| {
            e.hdr = EntryHeader::new(et::SETATTR, 0, s, SetAttrEntry::SIZE);
            encode_fixed(&e, buf)
        })
    })();
    if let Err(e) = r {
        ap.abort();
        if let Some((_, nb, _)) = partial {
            let _ = sbi.alloc.free(nb, 1);
        }
        return Err(e);
    }
    let newlog = match ap.commit() {
        Ok(l) => l,
        Err(e) => {
            if let Some((_, nb, _)) = partial {
                let _ = sbi.alloc.free(nb, 1);
            }
            return Err(e);
        }
    };
    g.log = newlog;
    let mut blocks = 0;
    if let Index::File(map) = &mut g.index {
        if a.valid & sa::SIZE != 0 {
            let mut old = KVec::new();
            if let Some((pg, nb, _)) = partial {
                let _ = map.collect(pg, 1, &mut old);
                map.map(pg, nb, 1);
            }
            let first = blocks_for_size(a.size);
            if first < crate::layout::log::MAX_FILE_BLOCKS {
                let n = crate::layout::log::MAX_FILE_BLOCKS - first;
                let _ = map.collect(first, n, &mut old);
                map.unmap(first, n);
            }
            let al = &sbi.alloc;
            for &(b, c) in old.as_slice() {
                let _ = al.free(b, c);
            }
        }
        blocks = map.mapped_blocks();
    }
    let pages = crate::gc::maybe_compact(sbi, info, &mut g).unwrap_or(newlog.pages);
    Ok(blocks.saturating_add(pages).saturating_mul(8))
}

/// setattr: logs the change; returns the new i_blocks or -errno.
#[no_mangle]
extern "C" fn novars_rs_setattr(
    inode: *mut bindings::inode,
    info: *mut c_void,
    args: *const SetattrArgs,
) -> i64 {
    // SAFETY: C passes a live novars inode, its info and the arguments.
    let (sbi, info, a) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info), &*args) };
    match setattr(sbi, info, a) {
        Ok(b) => b as i64,
        Err(e) => e.to_errno() as i64,
    }
}

/// evict: an inode with no links left is freed with everything it holds.
#[no_mangle]
extern "C" fn novars_rs_evict(inode: *mut bindings::inode, info: *mut c_void) {
    // SAFETY: C passes a live novars inode being evicted and its info.
    let (sbi, info) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info)) };
    if info.inner.lock().nlink != 0 {
        return;
    }
    if let Err(e) = crate::namei::free_inode(sbi, info) {
        pr_err!("({}): could not free inode {} ({})\n", sbi.dev(), info.ino, e.to_errno());
    }
}

// ------------------------------------------------------------ fallocate
//
// fallocate(2): preallocate (default and FALLOC_FL_KEEP_SIZE), punch a
// hole (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) and zero a range
// (FALLOC_FL_ZERO_RANGE, with or without KEEP_SIZE), collapse and insert
// a range (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE), as ext4 does
// them. Collapse and insert are one commit each (see `shift`).
//
// Two steps, each made of log entries committed by one tail store:
// 1. the visible change, always one commit: the partial blocks at the
//    edges of a punched or zeroed range are copied on write with the range
//    zeroed (WRITE), whole blocks inside are unmapped (PUNCH);
// 2. the holes of an allocated or zeroed range get new blocks, zeroed
//    through `pm` before their WRITE(FALLOC) entries commit. The last
//    commit carries the new size. Holes and zeroed blocks read the same, so
//    a crash between the commits of this step (a range needing more than
//    `MAX_EXTENTS` extents) is invisible except in the block count.

use crate::inode::Inner;
use crate::layout::inode::Timespec;
use crate::layout::log::{PunchEntry, WF_FALLOC};

/// `linux/falloc.h` mode bits.
const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
const FALLOC_FL_ZERO_RANGE: u32 = 0x10;
const FALLOC_FL_COLLAPSE_RANGE: u32 = 0x08;
const FALLOC_FL_INSERT_RANGE: u32 = 0x20;

/// What a fallocate left, for C (also after a failure part-way).
#[repr(C)]
pub(crate) struct FallocOut {
    pub(crate) size: u64,
    pub(crate) blocks: u64,
    /// Something was committed: C updates mtime and ctime.
    pub(crate) changed: u32,
    pub(crate) pad: u32,
}

const _: () = assert!(core::mem::size_of::<FallocOut>() == 24);

/// A change to the DRAM block map, applied once its commit is durable.
enum Change {
    Map {
        pg: u64,
        block: u64,
        count: u64,
    },
    Unmap {
        pg: u64,
        count: u64,
    },
    /// Unmap without freeing (the blocks are mapped again elsewhere).
    Forget {
        pg: u64,
        count: u64,
    },
    /// Free blocks no longer mapped anywhere.
    Free {
        block: u64,
        count: u64,
    },
}

/// The entries of one fallocate commit.
struct Batch<'a> {
    sbi: &'a SbInfo,
    ap: Appender<'a>,
    /// Blocks taken for this batch (given back if it is abandoned).
    new: KVec<(u64, u64)>,
    changes: KVec<Change>,
    now: Timespec,
    entries: usize,
}

impl<'a> Batch<'a> {
    fn new(sbi: &'a SbInfo, info: &InodeInfo, log: crate::log::LogPos, now: Timespec) -> Self {
        let ap = Appender::new(sbi, info.ino, info.gen, info.rec, log);
        Self { sbi, ap, new: KVec::new(), changes: KVec::new(), now, entries: 0 }
    }

    /// Takes up to `want` blocks (at least one) for file blocks from `pg`
    /// (at `goal` if free there) for this batch.
    fn alloc(&mut self, pg: u64, want: u64, goal: Option<u64>) -> Result<(u64, u64)> {
        let (b, c) = self.sbi.alloc.alloc_for(pg, want, false, goal)?;
        if let Err(e) = self.new.push((b, c), GFP_KERNEL) {
            let _ = self.sbi.alloc.free(b, c);
            return Err(e.into());
        }
        Ok((b, c))
    }

    /// Logs WRITE `pg..+count -> block..`; `remap`: the DRAM map changes
    /// (false when the entry restates a mapping to carry a new size).
    fn write(
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
            self.changes.push(Change::Map { pg, block, count }, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Logs PUNCH of file blocks `pg..+count`.
    fn punch(&mut self, pg: u64, count: u64) -> Result {
        let now = self.now;
        self.ap.push(|s, buf| {
            encode_fixed(
                &PunchEntry {
                    hdr: EntryHeader::new(et::PUNCH, 0, s, PunchEntry::SIZE),
                    pgoff: pg,
                    count,
                    mtime: now,
                },
                buf,
            )
        })?;
        self.entries += 1;
        self.changes.push(Change::Unmap { pg, count }, GFP_KERNEL)?;
        Ok(())
    }

    /// Logs PUNCH of `pg..+count` whose blocks are then mapped elsewhere
    /// or freed by the caller's `Change::Free`.
    fn punch_keep(&mut self, pg: u64, count: u64) -> Result {
        let now = self.now;
        self.ap.push(|s, buf| {
            encode_fixed(
                &PunchEntry {
                    hdr: EntryHeader::new(et::PUNCH, 0, s, PunchEntry::SIZE),
                    pgoff: pg,
                    count,
                    mtime: now,
                },
                buf,
            )
        })?;
        self.entries += 1;
        self.changes.push(Change::Forget { pg, count }, GFP_KERNEL)?;
        Ok(())
    }

    /// Logs the new size with mtime and ctime; blocks past the new end are
    /// dropped (as replay of a SETATTR size does).
    fn size(&mut self, size: u64) -> Result {
        let now = self.now;
        self.ap.push(|s, buf| {
            let mut e = SetAttrEntry::zeroed();
            e.hdr = EntryHeader::new(et::SETATTR, 0, s, SetAttrEntry::SIZE);
            e.valid = sa::SIZE | sa::MTIME | sa::CTIME;
            e.size = size;
            e.mtime = now;
            e.ctime = now;
            encode_fixed(&e, buf)
        })?;
        self.entries += 1;
        let first = blocks_for_size(size);
        if first < crate::layout::log::MAX_FILE_BLOCKS {
            self.changes.push(
                Change::Unmap { pg: first, count: crate::layout::log::MAX_FILE_BLOCKS - first },
                GFP_KERNEL,
            )?;
        }
        Ok(())
    }

    /// Logs the new mtime and ctime alone (nothing else changed).
    fn times(&mut self) -> Result {
        let now = self.now;
        self.ap.push(|s, buf| {
            let mut e = SetAttrEntry::zeroed();
            e.hdr = EntryHeader::new(et::SETATTR, 0, s, SetAttrEntry::SIZE);
            e.valid = sa::MTIME | sa::CTIME;
            e.mtime = now;
            e.ctime = now;
            encode_fixed(&e, buf)
        })?;
        self.entries += 1;
        Ok(())
    }

    /// Copies mapped page `pg` to a new block with bytes `[lo, hi)` of it
    /// zeroed; nothing for a hole (it reads as zeros already).
    fn cow_zero(
        &mut self,
        map: &mut ExtentMap,
        pg: u64,
        lo: usize,
        hi: usize,
        size_after: u64,
    ) -> Result {
        let Some(old) = old_block(map, pg) else { return Ok(()) };
        let (nb, _) = self.alloc(pg, 1, None)?;
        fill(self.sbi, nb, Some(old), 0, lo)?;
        fill(self.sbi, nb, None, lo, hi)?;
        fill(self.sbi, nb, Some(old), hi, BLOCK_SIZE)?;
        self.write(pg, nb, 1, size_after, 0, true)
    }

    /// Gives back everything taken; nothing was committed.
    fn abandon(self) {
        self.ap.abort();
        let a = &self.sbi.alloc;
        for &(b, c) in self.new.as_slice() {
            let _ = a.free(b, c);
        }
    }

    /// Commits the entries (if any), then updates the DRAM map and frees
    /// the blocks it no longer maps.
    fn commit(self, g: &mut Inner) -> Result {
        if self.entries == 0 {
            self.abandon();
            return Ok(());
        }
        let sbi = self.sbi;
        let newlog = match self.ap.commit() {
            Ok(l) => l,
            Err(e) => {
                let a = &sbi.alloc;
                for &(b, c) in self.new.as_slice() {
                    let _ = a.free(b, c);
                }
                return Err(e);
            }
        };
        g.log = newlog;
        let Index::File(map) = &mut g.index else { return Err(EINVAL) };
        let mut old = KVec::new();
        for c in self.changes.as_slice() {
            match *c {
                Change::Map { pg, block, count } => {
                    let _ = map.collect(pg, count, &mut old);
                    map.map(pg, block, count);
                }
                Change::Unmap { pg, count } => {
                    let _ = map.collect(pg, count, &mut old);
                    map.unmap(pg, count);
                }
                Change::Forget { pg, count } => map.unmap(pg, count),
                Change::Free { block, count } => {
                    let _ = old.push((block, count), GFP_KERNEL);
                }
            }
        }
        let a = &sbi.alloc;
        for &(b, c) in old.as_slice() {
            let _ = a.free(b, c);
        }
        Ok(())
    }
}

fn file_map(g: &mut Inner) -> Result<&mut ExtentMap> {
    match &mut g.index {
        Index::File(m) => Ok(m),
        _ => Err(EINVAL),
    }
}

/// Step 1: zero bytes `[off, end)`: copy-on-write of the partial edge
/// blocks, PUNCH of the whole blocks inside. One commit.
fn zero_range(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    off: u64,
    end: u64,
    size: u64,
    now: Timespec,
) -> Result<bool> {
    if off >= end {
        return Ok(false);
    }
    let mut b = Batch::new(sbi, info, g.log, now);
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
            let mut any = KVec::new();
            map.collect(first_full, tail - first_full, &mut any)?;
            if !any.is_empty() {
                b.punch(first_full, tail - first_full)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        b.abandon();
        return Err(e);
    }
    let changed = b.entries > 0;
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
    let mut mapped = KVec::new();
    file_map(g)?.collect(first, last - first + 1, &mut mapped)?;
    let have = mapped.as_slice().iter().fold(0u64, |n, &(_, c)| n.saturating_add(c));
    if (last - first + 1).saturating_sub(have) > sbi.alloc.free_blocks() {
        return Err(ENOSPC);
    }
    let mut changed = false;
    let mut pg = first;
    loop {
        let mut b = Batch::new(sbi, info, g.log, now);
        let mut wrote_last = false;
        let r = (|| -> Result {
            let map = file_map(g)?;
            while pg <= last && b.entries < MAX_EXTENTS {
                match map.lookup(pg) {
                    Lookup::Mapped { run, .. } => pg = pg.saturating_add(run.min(last - pg + 1)),
                    Lookup::Hole { run } => {
                        let goal = map.goal(pg);
                        let (blk, cnt) = b.alloc(pg, run.min(last - pg + 1), goal)?;
                        for i in 0..cnt {
                            sbi.pm.write_nt((blk + i) * BLOCK_SIZE_U64, &ZEROS)?;
                        }
                        wrote_last = pg + cnt > last;
                        let sz = if wrote_last { new_size } else { *size };
                        b.write(pg, blk, cnt, sz, WF_FALLOC, true)?;
                        pg += cnt;
                    }
                }
            }
            if pg > last && !wrote_last && new_size != *size {
                // The last block was mapped already: restate its mapping
                // to carry the new size.
                match map.lookup(last) {
                    Lookup::Mapped { block, .. } => {
                        b.write(last, block, 1, new_size, WF_FALLOC, false)?
                    }
                    Lookup::Hole { .. } => return Err(EINVAL),
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            b.abandon();
            return Err(e);
        }
        changed |= b.entries > 0;
        let done = pg > last;
        b.commit(g)?;
        if done {
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
    let mut moved: KVec<(u64, u64, u64)> = KVec::new();
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
    // One commit holds at most this many entries (the log appender takes
    // at most a few new pages).
    if moved.len() > MAX_EXTENTS {
        return Err(ENOSPC);
    }
    let mut gone = KVec::new();
    if !insert {
        map.collect(off_pg, len_pg, &mut gone)?;
    }
    let mut b = Batch::new(sbi, info, g.log, now);
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
            b.changes.push(Change::Free { block: blk, count: cnt }, GFP_KERNEL)?;
        }
        b.size(new_size)
    })();
    if let Err(e) = r {
        b.abandon();
        return Err(e);
    }
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
                changed |= zero_range(sbi, info, g, off, end, size, now)?;
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
                )?;
            }
            if mode & FALLOC_FL_ZERO_RANGE != 0 {
                changed |= zero_range(sbi, info, g, off, end, size, now)?;
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
            out.changed = (g.log.tail != tail_before) as u32;
            return Err(e);
        }
    };
    if !changed {
        // Nothing to change but the times (ext4 updates them too).
        let mut b = Batch::new(sbi, info, g.log, now);
        if let Err(e) = b.times() {
            b.abandon();
            return Err(e);
        }
        b.commit(g)?;
    }
    // Compaction moves no data block (C has dropped the DAX entries of
    // the blocks this call moved; the others stay valid).
    crate::gc::maybe_compact(sbi, info, g);
    out.size = size;
    out.blocks = file_map(g)?.mapped_blocks().saturating_add(g.log.pages).saturating_mul(8);
    out.changed = 1;
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
extern "C" fn novars_rs_fallocate_begin(info: *mut c_void, mode: u32) -> c_int {
    // SAFETY: C passes the inode's own info.
    let info = unsafe { inode::info(info) };
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
/// not): returns 0 or -errno; `out.size` holds the size on entry.
#[no_mangle]
extern "C" fn novars_rs_fallocate(
    inode: *mut bindings::inode,
    info: *mut c_void,
    mode: u32,
    off: u64,
    len: u64,
    now_sec: i64,
    now_nsec: u32,
    out: *mut FallocOut,
) -> c_int {
    // SAFETY: C passes a live novars inode, its info and an out struct.
    let (sbi, info, out) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info), &mut *out) };
    match fallocate(sbi, info, mode, off, len, out, ts(now_sec, now_nsec)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
