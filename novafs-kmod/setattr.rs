// SPDX-License-Identifier: GPL-2.0

//! setattr: mode, owner, times and size (truncate) of an inode, one
//! SETATTR entry (and, when a file shrinks to the middle of a block, the
//! copy of that block with zeros past the new end) in one [`FileTx`].

use crate::alloc::Pool;
use crate::filetx::{fill, old_block, zero_past_eof, FileTx};
use crate::inode::{self, Index, InodeInfo};
use crate::layout::append::SetAttrs;
use crate::layout::inode::{S_IFMT, S_IFREG};
use crate::layout::log::{sa, xa};
use crate::layout::{Timespec, BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::locks::lock_logs;
use crate::namei::ts;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::{c_int, c_void};
use kernel::bindings;
use kernel::prelude::*;

/// The VFS's iattr as setattr logs it (`valid`: its `ATTR_*` bits, which
/// are the layout `sa` bits), with the facts it is decided from.
struct SetattrArgs<'a> {
    valid: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    old_size: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    now: Timespec,
    /// The inode's file type and mode.
    inode_mode: u32,
    /// The page holding the new size has a DAX entry (it is, or was,
    /// mapped into user space).
    tail_mapped: bool,
    /// A chmod's new access ACL (`posix_acl_to_xattr`), logged in the same
    /// commit as the mode.
    acl: Option<&'a [u8]>,
}

// The VFS's ATTR_* bits are the layout's SETATTR bits.
const _: () = {
    assert!(bindings::ATTR_MODE == sa::MODE as u32);
    assert!(bindings::ATTR_UID == sa::UID as u32);
    assert!(bindings::ATTR_GID == sa::GID as u32);
    assert!(bindings::ATTR_SIZE == sa::SIZE as u32);
    assert!(bindings::ATTR_ATIME == sa::ATIME as u32);
    assert!(bindings::ATTR_MTIME == sa::MTIME as u32);
    assert!(bindings::ATTR_CTIME == sa::CTIME as u32);
};

/// A VFS time as logged.
fn vfs_ts(t: &bindings::timespec64) -> Timespec {
    ts(t.tv_sec, u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// What setattr decides before the page cache is prepared for a size
/// change: EINVAL for a size on anything but a regular file, EBUSY for a
/// size change of a sealed file; a size without times sets mtime and ctime
/// too (as ext4, also for an unchanged size: POSIX wants it when the size
/// changes). Returns whether there is anything to log.
fn setattr_begin(info: &InodeInfo, a: &mut SetattrArgs<'_>) -> Result<bool> {
    a.valid &= sa::ALL;
    if a.valid & sa::SIZE != 0 {
        if a.inode_mode & S_IFMT != S_IFREG {
            return Err(EINVAL);
        }
        if a.valid & (sa::MTIME | sa::CTIME) == 0 {
            a.valid |= sa::MTIME | sa::CTIME;
            (a.mtime, a.ctime) = (a.now, a.now);
        }
        if a.size != a.old_size {
            crate::seal::check_unsealed(&info.inner.lock())?;
        }
    }
    Ok(a.valid & sa::ALL != 0)
}

/// Before a size change, with the invalidate lock held (no fault runs):
/// drop the DAX entries of the pages a shrink frees. A 2 MiB entry (PMD
/// fault) reaching below the new end would survive `truncate_pagecache`
/// (it skips entries that begin before its start) and keep the freed
/// blocks associated: drop every entry from the 2 MiB boundary below the
/// new end, the pages that stay written back first (they fault in again),
/// after waiting for pins. Then note whether the new last page is mapped.
///
/// # Safety
///
/// `inode` is live, its inode lock and invalidate lock held.
unsafe fn size_change_begin(inode: *mut bindings::inode, a: &mut SetattrArgs<'_>) -> Result {
    if a.size < a.old_size {
        let from = a.size - a.size % shim::PMD_SIZE;
        let keep_end = (from < a.size).then(|| a.size - 1);
        // SAFETY: per the contract.
        unsafe { shim::drop_dax_entries(inode, from, keep_end, None)? };
    }
    // SAFETY: per the contract.
    a.tail_mapped = unsafe { shim::range_mapped(inode, a.size, 1) };
    Ok(())
}

fn setattr(sbi: &SbInfo, info: &InodeInfo, a: &SetattrArgs<'_>) -> Result<u64> {
    let _w = sbi.start_write()?;
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let g = &mut *g;
    if a.valid & sa::SIZE != 0 && a.size != a.old_size {
        crate::seal::check_unsealed(g)?;
    }
    let mtime = a.mtime;
    let shrink = a.valid & sa::SIZE != 0 && a.size < a.old_size;
    // Truncating down frees space: the reserve lets a full file system
    // shrink its files.
    let pool = if shrink { Pool::Reserve } else { Pool::General };
    let mut tx = FileTx::new(sbi, info, g.log, mtime).with_pool(pool);
    let keep = (a.size % BLOCK_SIZE_U64) as usize;
    if let (true, true, Index::File(map)) = (shrink, keep != 0, &mut g.index) {
        let pg = a.size / BLOCK_SIZE_U64;
        if let Some(ob) = old_block(map, pg) {
            if a.tail_mapped {
                // The last page is mapped into user space: zero its tail in
                // place (as ext4 does) rather than move it; before the
                // commit, so a crash leaves the old size with zeros past
                // the new one, never stale bytes later.
                fill(sbi, ob, None, keep, BLOCK_SIZE)?;
            } else {
                // Copy the partial last block with zeros past the new end,
                // in the same commit: the cut-off bytes never reappear on a
                // later extension, and a crash keeps the old or new file.
                let (nb, _) = tx.alloc(pg, 1, false, None)?;
                fill(sbi, nb, Some(ob), 0, keep)?;
                fill(sbi, nb, None, keep, BLOCK_SIZE)?;
                tx.write(pg, nb, 1, a.old_size, 0, true)?;
            }
        }
    }
    let grow = a.valid & sa::SIZE != 0 && a.size > a.old_size;
    if let (true, Index::File(map)) = (grow, &mut g.index) {
        // What lies between the old end and the new one reads as zeros,
        // whatever a mapping stored past the old end.
        zero_past_eof(sbi, map, a.old_size, a.size)?;
    }
    tx.setattr(SetAttrs {
        valid: a.valid & sa::ALL,
        mode: a.mode & 0o7777,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        atime: a.atime,
        mtime,
        ctime: a.ctime,
    })?;
    // A chmod's access ACL: the old value's blocks are free once this
    // commits; the attributes are read again on their next use.
    let old_acl = match a.acl {
        Some(v) => {
            let old = crate::xattr::acl_blocks(sbi, info, g, xa::ACL_ACCESS)?;
            tx.acl(xa::ACL_ACCESS, v)?;
            old
        }
        None => None,
    };
    tx.commit(g)?;
    if a.acl.is_some() {
        g.xattrs = None;
    }
    if let Some((b, n)) = old_acl {
        let _ = sbi.alloc.free(b, n);
    }
    crate::gc::maybe_compact(sbi, info, g);
    let blocks = match &mut g.index {
        Index::File(map) => map.mapped_blocks(),
        _ => 0,
    };
    Ok(blocks.saturating_add(g.log.pages).saturating_mul(8))
}

/// setattr (after `setattr_prepare`; `uid`, `gid`: the iattr's, in the
/// initial user namespace): logs the change, prepares the page cache for
/// a size change (under the invalidate lock, which this takes), and sets
/// the VFS inode: its block count and size here, the rest with
/// `setattr_copy`. 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_setattr(
    idmap: *mut bindings::mnt_idmap,
    inode: *mut bindings::inode,
    attr: *mut bindings::iattr,
    uid: u32,
    gid: u32,
    acl: *const c_void,
    acl_len: usize,
) -> c_int {
    let acl = if acl.is_null() || acl_len == 0 {
        None
    } else {
        // SAFETY: C passes `acl_len` bytes at `acl` (its
        // `posix_acl_to_xattr` buffer), alive for the call.
        Some(unsafe { core::slice::from_raw_parts(acl.cast::<u8>(), acl_len) })
    };
    // SAFETY: C passes a live novars inode, its inode lock held, and the
    // VFS's iattr for it.
    let (sbi, info, at, old_size, now, inode_mode) = unsafe {
        let i = &*inode;
        (
            super_::sbi(i.i_sb),
            inode::of(inode),
            &mut *attr,
            shim::i_size(inode),
            shim::now(inode),
            u32::from(i.i_mode),
        )
    };
    let valid = at.ia_valid;
    let size = match u64::try_from(at.ia_size) {
        Ok(size) => size,
        Err(_) if valid & sa::SIZE != 0 => return EINVAL.to_errno(),
        Err(_) => 0,
    };
    let mut a = SetattrArgs {
        valid,
        mode: u32::from(at.ia_mode),
        uid,
        gid,
        size,
        old_size,
        atime: vfs_ts(&at.ia_atime),
        mtime: vfs_ts(&at.ia_mtime),
        ctime: vfs_ts(&at.ia_ctime),
        now,
        inode_mode,
        tail_mapped: false,
        acl,
    };
    match setattr_begin(info, &mut a) {
        Ok(true) => {}
        Ok(false) => return 0,
        Err(e) => return e.to_errno(),
    }
    // Rust may have added times (truncate): the VFS inode gets them too.
    at.ia_valid |= a.valid;
    for (t, v) in [(&mut at.ia_mtime, a.mtime), (&mut at.ia_ctime, a.ctime)] {
        *t = bindings::timespec64 { tv_sec: v.sec, tv_nsec: isize::try_from(v.nsec).unwrap_or(0) };
    }
    let resize = a.valid & sa::SIZE != 0;
    let r = if resize {
        // SAFETY: the inode is live and its inode lock held; the
        // invalidate lock comes next in the lock order (DESIGN.md).
        let _inval = unsafe { shim::WriteLocked::invalidate(inode) };
        // SAFETY: as above, the invalidate lock held.
        let r = unsafe { size_change_begin(inode, &mut a) }.and_then(|()| setattr(sbi, info, &a));
        if r.is_ok() {
            // SAFETY: as above; the new size is logged.
            unsafe { bindings::truncate_setsize(inode, at.ia_size) };
        }
        r
    } else {
        setattr(sbi, info, &a)
    };
    match r {
        Ok(blocks) => {
            // SAFETY: as above; `attr` is the VFS's, checked by
            // setattr_prepare, and the change is logged.
            unsafe {
                IAttr::default().blocks(blocks).set(inode);
                bindings::setattr_copy(idmap, inode, attr);
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Times the VFS changed on its own (a write fault's `file_update_time`,
/// atime under relatime or strictatime) and marked the inode dirty for:
/// logged here, so that fsync, msync, syncfs and unmount make them durable
/// (ext4 journals them). Nothing on a read-only mount or for an inode with
/// no links (evict frees it).
fn log_times(
    sbi: &SbInfo,
    info: &InodeInfo,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
) -> Result {
    let Ok(_w) = sbi.start_write() else { return Ok(()) };
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let g = &mut *g;
    if g.nlink == 0 {
        return Ok(());
    }
    let mut tx = FileTx::new(sbi, info, g.log, mtime);
    tx.setattr(SetAttrs {
        atime,
        mtime,
        ctime,
        ..SetAttrs::only(sa::ATIME | sa::MTIME | sa::CTIME)
    })?;
    tx.commit(g)?;
    crate::gc::maybe_compact(sbi, info, g);
    Ok(())
}

/// `write_inode` (super_operations): see [`log_times`]; 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_write_inode(
    inode: *mut bindings::inode,
    _wbc: *mut bindings::writeback_control,
) -> c_int {
    // SAFETY: the VFS passes a live novars inode (being written back, so
    // not freed meanwhile); the time fields are plain integers.
    let (sbi, info, a, m, c) = unsafe {
        let i = &*inode;
        (
            super_::sbi(i.i_sb),
            inode::of(inode),
            Timespec::new(i.i_atime_sec, i.i_atime_nsec),
            Timespec::new(i.i_mtime_sec, i.i_mtime_nsec),
            Timespec::new(i.i_ctime_sec, i.i_ctime_nsec),
        )
    };
    match log_times(sbi, info, a, m, c) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
