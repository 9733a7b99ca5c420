// SPDX-License-Identifier: GPL-2.0

//! setattr: mode, owner, times and size (truncate) of an inode, one
//! SETATTR entry (and, when a file shrinks to the middle of a block, the
//! copy of that block with zeros past the new end) in one [`FileTx`].

use crate::alloc::Pool;
use crate::filetx::{fill, old_block, zero_past_eof, FileTx};
use crate::inode::{self, Index, InodeInfo};
use crate::layout::append::SetAttrs;
use crate::layout::inode::{S_IFMT, S_IFREG};
use crate::layout::log::sa;
use crate::layout::{Timespec, BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::locks::lock_logs;
use crate::namei::ts;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::c_int;
use kernel::bindings;
use kernel::prelude::*;

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
// The VFS's ATTR_* bits are the layout's SETATTR bits.
const _: () = {
    assert!(bindings::ATTR_MODE == sa::MODE as u32);
    assert!(bindings::ATTR_UID == sa::UID as u32);
    assert!(bindings::ATTR_GID == sa::GID as u32);
    assert!(bindings::ATTR_SIZE == sa::SIZE as u32);
    assert!(bindings::ATTR_ATIME == sa::ATIME as u32);
    assert!(bindings::ATTR_MTIME == sa::MTIME as u32);
    assert!(bindings::ATTR_CTIME == sa::CTIME as u32);
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
    a.valid &= sa::ALL;
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
extern "C" fn novars_rs_setattr_begin(
    inode: *mut bindings::inode,
    args: *mut SetattrArgs,
) -> c_int {
    // SAFETY: C passes a live novars inode and its arguments.
    let (info, a) = unsafe { (inode::of(inode), &mut *args) };
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
    let g = &mut *g;
    if a.valid & sa::SIZE != 0 && a.size != a.old_size {
        crate::seal::check_unsealed(g)?;
    }
    let mtime = ts(a.mtime_sec, a.mtime_nsec);
    let shrink = a.valid & sa::SIZE != 0 && a.size < a.old_size;
    // Truncating down frees space: the reserve lets a full file system
    // shrink its files.
    let pool = if shrink { Pool::Reserve } else { Pool::General };
    let mut tx = FileTx::new(sbi, info, g.log, mtime).with_pool(pool);
    let keep = (a.size % BLOCK_SIZE_U64) as usize;
    if let (true, true, Index::File(map)) = (shrink, keep != 0, &mut g.index) {
        let pg = a.size / BLOCK_SIZE_U64;
        if let Some(ob) = old_block(map, pg) {
            if a.facts & SA_TAIL_MAPPED != 0 {
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
        atime: ts(a.atime_sec, a.atime_nsec),
        mtime,
        ctime: ts(a.ctime_sec, a.ctime_nsec),
    })?;
    tx.commit(g)?;
    crate::gc::maybe_compact(sbi, info, g);
    let blocks = match &mut g.index {
        Index::File(map) => map.mapped_blocks(),
        _ => 0,
    };
    Ok(blocks.saturating_add(g.log.pages).saturating_mul(8))
}

/// setattr: logs the change and sets the VFS inode's block count (C sets
/// the rest with `setattr_copy`); 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_setattr(inode: *mut bindings::inode, args: *const SetattrArgs) -> c_int {
    // SAFETY: C passes a live novars inode, its inode lock held, and the
    // arguments.
    let (sbi, info, a) = unsafe { (super_::sbi((*inode).i_sb), inode::of(inode), &*args) };
    match setattr(sbi, info, a) {
        Ok(blocks) => {
            // SAFETY: as above.
            unsafe { IAttr::default().blocks(blocks).set(inode) };
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
