// SPDX-License-Identifier: GPL-2.0

//! Regular-file data through DAX: the iomap answer for a file offset.

use crate::index::Lookup;
use crate::inode::{self, Index};
use crate::layout::BLOCK_SIZE_U64;
use crate::shim::{self, Map};
use core::ffi::{c_int, c_void};
use kernel::bindings;

/// iomap_begin: the mapping covering byte `pos` (at most `length` bytes).
#[no_mangle]
extern "C" fn novars_rs_iomap_begin(
    _inode: *mut bindings::inode,
    info: *mut c_void,
    pos: u64,
    length: u64,
    flags: u32,
    out: *mut Map,
) -> c_int {
    if flags & shim::IOMAP_WRITE != 0 {
        // Writes arrive with the read-write mount (issue 4).
        return shim::neg(bindings::EROFS);
    }
    // SAFETY: C passes the inode's own info.
    let info = unsafe { inode::info(info) };
    let mut g = info.inner.lock();
    let Index::File(map) = &mut g.index else { return shim::neg(bindings::EINVAL) };
    let pg = pos / BLOCK_SIZE_U64;
    let want = pos.saturating_add(length.max(1)).div_ceil(BLOCK_SIZE_U64) - pg;
    let m = match map.lookup(pg) {
        Lookup::Mapped { block, run } => Map {
            offset: pg * BLOCK_SIZE_U64,
            length: run.min(want).saturating_mul(BLOCK_SIZE_U64),
            addr: block.saturating_mul(BLOCK_SIZE_U64),
            mapped: 1,
            pad: 0,
        },
        Lookup::Hole { run } => Map {
            offset: pg * BLOCK_SIZE_U64,
            length: run.min(want).max(1).saturating_mul(BLOCK_SIZE_U64),
            addr: 0,
            mapped: 0,
            pad: 0,
        },
    };
    // SAFETY: `out` points to the caller's `struct novars_map`.
    unsafe { out.write(m) };
    0
}

use crate::index::ExtentMap;
use crate::inode::InodeInfo;
use crate::layout::log::{encode_fixed, et, sa, EntryHeader, SetAttrEntry, WriteEntry, MAX_FILE_SIZE};
use crate::layout::walk::{blocks_for_size, FileMap};
use crate::layout::{Media, BLOCK_SIZE};
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
}

#[allow(clippy::too_many_arguments)]
fn write(sbi: &SbInfo, info: &InodeInfo, iter: *mut c_void, pos: u64, len: u64, size: u64, now_sec: i64, now_nsec: u32, out: &mut WriteOut) -> Result<u64> {
    if !sbi.rw {
        return Err(EROFS);
    }
    let now = ts(now_sec, now_nsec);
    let mut end = pos.checked_add(len).filter(|e| *e <= MAX_FILE_SIZE).ok_or_else(|| shim::err(bindings::EFBIG))?;
    let _ops = sbi.ops.lock();
    let mut g = info.inner.lock();
    let log = g.log;
    let Index::File(map) = &mut g.index else { return Err(EINVAL) };
    let first = pos / BLOCK_SIZE_U64;
    let last = (end - 1) / BLOCK_SIZE_U64;
    // Phase 1: allocate the new blocks.
    let mut exts: KVec<(u64, u64, u64)> = KVec::new();
    let mut pg = first;
    let free_all = |exts: &KVec<(u64, u64, u64)>| {
        let mut a = sbi.alloc.lock();
        for &(_, b, c) in exts.as_slice() {
            let _ = a.free(b, c);
        }
    };
    while pg <= last {
        if exts.len() >= MAX_EXTENTS {
            end = pg * BLOCK_SIZE_U64;
            break;
        }
        let r = sbi.alloc.lock().alloc(last - pg + 1);
        let (b, c) = match r {
            Ok(x) => x,
            Err(e) if exts.is_empty() => return Err(e),
            Err(_) => {
                end = pg * BLOCK_SIZE_U64;
                break;
            }
        };
        exts.push((pg, b, c), GFP_KERNEL).inspect_err(|_| {
            let _ = sbi.alloc.lock().free(b, c);
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
                let old = if lo > p || hi < p + BLOCK_SIZE_U64 { old_block(map, epg + i) } else { None };
                fill(sbi, d, old, 0, (lo - p) as usize)?;
                let n = (hi - lo) as usize;
                let dst = d * BLOCK_SIZE_U64 + (lo - p);
                let kaddr = sbi.pm.addr(dst, n as u64)?;
                // SAFETY: `kaddr` is `n` bytes of pmem inside the mapping
                // (checked by `addr`), in a block this write owns; `iter`
                // is the caller's iov_iter.
                let got = unsafe { shim::novars_copy_from_iter(iter, kaddr.cast(), n) };
                if got != n {
                    return Err(EFAULT);
                }
                fill(sbi, d, old, (hi - p) as usize, BLOCK_SIZE)?;
            }
            let w = WriteEntry {
                hdr: EntryHeader::new(et::WRITE, 0, 0, WriteEntry::SIZE),
                pgoff: epg,
                block: blk,
                count: cnt as u32,
                _pad: 0,
                size_after,
                mtime: now,
            };
            ap.push(|s, buf| {
                let mut w = w;
                w.hdr.seq = s;
                encode_fixed(&w, buf)
            })?;
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
        let mut a = sbi.alloc.lock();
        for &(b, c) in old.as_slice() {
            let _ = a.free(b, c);
        }
    }
    out.size = size_after;
    out.blocks = map.mapped_blocks().saturating_add(newlog.pages).saturating_mul(8);
    g.log = newlog;
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
    out: *mut WriteOut,
) -> i64 {
    if len == 0 {
        return 0;
    }
    // SAFETY: C passes a live novars inode, its info and an out struct.
    let (sbi, info, out) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info), &mut *out) };
    match write(sbi, info, iter, pos, len, size, now_sec, now_nsec, out) {
        Ok(n) => n as i64,
        Err(e) => e.to_errno() as i64,
    }
}

/// Everything setattr needs from C (`valid` uses the layout `sa` bits).
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
    pub(crate) atime_nsec: u32,
    pub(crate) mtime_nsec: u32,
    pub(crate) ctime_nsec: u32,
    pub(crate) pad: u32,
}

const _: () = assert!(core::mem::size_of::<SetattrArgs>() == 72);

fn setattr(sbi: &SbInfo, info: &InodeInfo, a: &SetattrArgs) -> Result<u64> {
    if !sbi.rw {
        return Err(EROFS);
    }
    let _ops = sbi.ops.lock();
    let mut g = info.inner.lock();
    let log = g.log;
    let mut ap = Appender::new(sbi, info.ino, info.gen, info.rec, log);
    let shrink = a.valid & sa::SIZE != 0 && a.size < a.old_size;
    // The partial last block of a shrinking file is copied with zeros past
    // the new end, in the same commit (so the cut-off bytes never reappear
    // on a later extension, and a crash keeps the old or the new file).
    let mut partial: Option<(u64, u64, u64)> = None; // (pg, new block, old block)
    let r = (|| -> Result {
        if shrink && a.size % BLOCK_SIZE_U64 != 0 {
            if let Index::File(map) = &mut g.index {
                let pg = a.size / BLOCK_SIZE_U64;
                if let Some(ob) = old_block(map, pg) {
                    let (nb, _) = sbi.alloc.lock().alloc(1)?;
                    partial = Some((pg, nb, ob));
                    let keep = (a.size % BLOCK_SIZE_U64) as usize;
                    fill(sbi, nb, Some(ob), 0, keep)?;
                    fill(sbi, nb, None, keep, BLOCK_SIZE)?;
                    let w = WriteEntry {
                        hdr: EntryHeader::new(et::WRITE, 0, 0, WriteEntry::SIZE),
                        pgoff: pg,
                        block: nb,
                        count: 1,
                        _pad: 0,
                        size_after: a.old_size,
                        mtime: ts(a.mtime_sec, a.mtime_nsec),
                    };
                    ap.push(|s, buf| {
                        let mut w = w;
                        w.hdr.seq = s;
                        encode_fixed(&w, buf)
                    })?;
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
            let _ = sbi.alloc.lock().free(nb, 1);
        }
        return Err(e);
    }
    let newlog = match ap.commit() {
        Ok(l) => l,
        Err(e) => {
            if let Some((_, nb, _)) = partial {
                let _ = sbi.alloc.lock().free(nb, 1);
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
            let mut al = sbi.alloc.lock();
            for &(b, c) in old.as_slice() {
                let _ = al.free(b, c);
            }
        }
        blocks = map.mapped_blocks();
    }
    Ok(blocks.saturating_add(newlog.pages).saturating_mul(8))
}

/// setattr: logs the change; returns the new i_blocks or -errno.
#[no_mangle]
extern "C" fn novars_rs_setattr(inode: *mut bindings::inode, info: *mut c_void, args: *const SetattrArgs) -> i64 {
    // SAFETY: C passes a live novars inode, its info and the arguments.
    let (sbi, info, a) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info), &*args) };
    match setattr(sbi, info, a) {
        Ok(b) => b as i64,
        Err(e) => e.to_errno() as i64,
    }
}

/// evict with no links left: free the inode and everything it holds.
#[no_mangle]
extern "C" fn novars_rs_evict(inode: *mut bindings::inode, info: *mut c_void) {
    // SAFETY: C passes a live novars inode being evicted and its info.
    let (sbi, info) = unsafe { (super_::sbi((*inode).i_sb), inode::info(info)) };
    if sbi.rw {
        if let Err(e) = crate::namei::free_inode(sbi, info) {
            pr_err!("({}): could not free inode {} ({})\n", sbi.dev(), info.ino, e.to_errno());
        }
    }
}
