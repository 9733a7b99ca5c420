// SPDX-License-Identifier: GPL-2.0

//! Sealed block maps (`NOVARS_IOC_SEAL`, `novars_ioctl.h`).
//!
//! A file opened for writing may seal its inode's block map: the ioctl
//! first allocates (zeroed) every hole in the given range, extending the
//! size to cover it like `fallocate(2)` mode 0, then takes a hold that lasts
//! until that open file is released (last close, or process exit including
//! SIGKILL). While any hold exists no block of the file moves or goes away:
//! truncate, fallocate punch/collapse/insert/zero and allocation of holes by
//! write() or a fault fail with EBUSY; write() and faults update blocks in
//! place. Holds are counted in DRAM only (`Inner::seals`, checked
//! arithmetic): nothing about a seal is ever written to the media, so a
//! crash or a remount has no seal.
//!
//! One hold per open file: sealing again through the same file only
//! allocates. The open file records its hold in `file->private_data`; it
//! is read and changed only under the inode lock, so concurrent ioctls and
//! release agree on the count.

use crate::file::WriteOut;
use crate::filetx::{FileTx, FILL_BATCH};
use crate::inode::{self, Index, Inner};
use crate::layout::log::MAX_FILE_SIZE;
use crate::layout::BLOCK_SIZE_U64;
use crate::mmap::fill_holes;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::{c_int, c_long, c_ulong, c_void};
use core::mem::size_of;
use core::ptr::addr_of_mut;
use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::{AsBytes, FromBytes};
use kernel::uaccess::UserSlice;

/// The value of `file->private_data` of an open file holding a seal.
const HOLDER: *mut c_void = 1 as *mut c_void;

/// EBUSY when the inode's block map is sealed: for every operation that
/// would move, free or add a block (truncate, fallocate modes, allocating
/// writes and faults). Call with the inode lock (`InodeInfo::inner`) held.
pub(crate) fn check_unsealed(g: &Inner) -> Result {
    if g.seals > 0 {
        return Err(shim::err(bindings::EBUSY));
    }
    Ok(())
}

/// Whether the inode's block map is sealed (same locking as above).
pub(crate) fn is_sealed(g: &Inner) -> bool {
    g.seals > 0
}

#[allow(clippy::too_many_arguments)]
fn seal(
    sbi: &SbInfo,
    info: &inode::InodeInfo,
    slot: *mut *mut c_void,
    off: u64,
    len: u64,
    size: u64,
    now: crate::layout::Timespec,
    out: &mut WriteOut,
) -> Result {
    if len == 0 {
        return Err(EINVAL);
    }
    let _w = sbi.start_write()?;
    let end = off
        .checked_add(len)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or_else(|| shim::err(bindings::EFBIG))?;
    let _l = crate::locks::lock_logs(&[info])?;
    let mut g = info.inner.lock();
    if !matches!(g.index, Index::File(_)) {
        return Err(EINVAL);
    }
    let size_after = size.max(end);
    let mut pg = off / BLOCK_SIZE_U64;
    let stop = end.div_ceil(BLOCK_SIZE_U64);
    let mut logged = false;
    let r = (|| -> Result {
        while pg < stop {
            let (n, next) =
                fill_holes(sbi, info, &mut g, pg, stop - pg, FILL_BATCH, size_after, now)?;
            if n > 0 {
                logged = true;
                out.size = size_after;
            }
            if next <= pg {
                return Err(EIO);
            }
            pg = next;
        }
        if !logged && size_after != size {
            // The range was allocated already but ends past i_size (inside
            // the last block): log the new size alone.
            let mut tx = FileTx::new(sbi, info, g.log, now);
            tx.size(size_after)?;
            tx.commit(&mut g)?;
            out.size = size_after;
        }
        Ok(())
    })();
    if let Index::File(map) = &g.index {
        out.blocks = map.mapped_blocks().saturating_add(g.log.pages).saturating_mul(8);
    }
    r?;
    // SAFETY: `slot` is `&file->private_data` of the open file making the
    // call; it is only read or written under the inode lock held here.
    let held = unsafe { *slot } == HOLDER;
    if !held {
        g.seals = g.seals.checked_add(1).ok_or_else(|| shim::err(bindings::EOVERFLOW))?;
        // SAFETY: as above.
        unsafe { *slot = HOLDER };
    }
    Ok(())
}

/// `NOVARS_IOC_SEAL`: allocate `[off, off+len)` and take this open file's
/// hold (`size`: i_size). The VFS inode gets the size and i_blocks after
/// the call (also on error: blocks committed before a failure stay).
///
/// # Safety
///
/// `inode` is a live novars inode whose inode lock is held; `slot` is
/// `&file->private_data` of the open file making the call.
unsafe fn seal_inode(
    inode: *mut bindings::inode,
    slot: *mut *mut c_void,
    off: u64,
    len: u64,
    size: u64,
) -> Result {
    // SAFETY: per the contract.
    let (sbi, info, now) =
        unsafe { (super_::sbi((*inode).i_sb), inode::of(inode), shim::now(inode)) };
    let mut out = WriteOut { size, ..WriteOut::default() };
    let r = seal(sbi, info, slot, off, len, size, now, &mut out);
    let mut a = IAttr::default();
    if out.size > size {
        a = a.size(out.size).changed(now, true);
    }
    if out.blocks != 0 {
        a = a.blocks(out.blocks);
    }
    // SAFETY: as above.
    unsafe { a.set(inode) };
    r
}

/// `NOVARS_IOC_SEAL` once its argument is checked (`off + len` <=
/// `i64::MAX`): the VFS's limits for the size it may grow to, then the
/// seal under the locks a size change takes (write access to the mount,
/// the inode lock, the invalidate lock); holes just filled may have the
/// zero page mapped, so the range's mappings go.
///
/// # Safety
///
/// `file` is the open novars file of the ioctl call.
unsafe fn seal_locked(file: *mut bindings::file, off: u64, len: u64) -> Result {
    // SAFETY: per the contract.
    let _mnt = unsafe { shim::MntWrite::new(file) }?;
    // SAFETY: per the contract; an open file has a live inode.
    let inode = unsafe { (*file).f_inode };
    // SAFETY: as above; nothing of this task holds it (an ioctl).
    let _ilock = unsafe { shim::WriteLocked::inode(inode) };
    // SAFETY: as above.
    let size = unsafe { shim::i_size(inode) };
    let end = off.saturating_add(len);
    if end > size {
        let end = i64::try_from(end).map_err(|_| shim::err(bindings::EFBIG))?;
        // SAFETY: as above.
        to_result(unsafe { bindings::inode_newsize_ok(inode, end) })?;
    }
    // SAFETY: as above; the invalidate lock comes after the inode lock.
    let _inval = unsafe { shim::WriteLocked::invalidate(inode) };
    // SAFETY: the inode lock is held; the slot is this file's.
    let r = unsafe { seal_inode(inode, addr_of_mut!((*file).private_data), off, len, size) };
    // SAFETY: the invalidate lock is held.
    unsafe { shim::invalidate_range(inode, off, len) };
    r
}

/// file_operations `release` (the open file's last close): drops its
/// hold, if it has one.
#[no_mangle]
extern "C" fn novars_rs_release(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: the VFS passes a live novars inode (read by iget) and the
    // open file being released.
    let (info, slot) = unsafe { (inode::of(inode), addr_of_mut!((*file).private_data)) };
    let mut g = info.inner.lock();
    // SAFETY: see `seal`: the word is only touched under the inode lock.
    if unsafe { *slot } == HOLDER {
        g.seals = g.seals.saturating_sub(1);
        // SAFETY: as above.
        unsafe { *slot = core::ptr::null_mut() };
    }
    0
}

/// `struct novars_seal` (`novars_ioctl.h`): the argument of `NOVARS_IOC_SEAL`.
#[repr(C)]
pub(crate) struct SealArg {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    /// No flags are defined: 0.
    pub(crate) flags: u64,
}

/// `struct novars_seal_info`: the answer of `NOVARS_IOC_SEAL_INFO`.
#[repr(C)]
pub(crate) struct SealInfo {
    /// 1 if any seal is held, else 0.
    pub(crate) sealed: u32,
    /// Open files holding a seal.
    pub(crate) holders: u32,
    pub(crate) reserved: u64,
}

const _: () = assert!(core::mem::size_of::<SealArg>() == 24);
const _: () = assert!(core::mem::size_of::<SealInfo>() == 16);

// SAFETY: both are `repr(C)` integers without padding: every byte
// pattern is a valid value and no byte is uninitialised.
unsafe impl FromBytes for SealArg {}
// SAFETY: as above.
unsafe impl AsBytes for SealInfo {}

/// `NOVARS_IOC_SEAL` with its argument at user address `arg`, from a file
/// open for writing (`writable`) or not: EBADF, EFAULT, EINVAL (flags, or
/// an empty range), EFBIG (past the largest offset); else
/// [`seal_locked`]. 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_ioc_seal(
    file: *mut bindings::file,
    writable: bool,
    arg: c_ulong,
) -> c_long {
    if !writable {
        return shim::neg(bindings::EBADF).into();
    }
    let s = match UserSlice::new(arg as usize, size_of::<SealArg>()).reader().read::<SealArg>() {
        Ok(s) => s,
        Err(e) => return e.to_errno().into(),
    };
    if s.flags != 0 || s.length == 0 {
        return shim::neg(bindings::EINVAL).into();
    }
    let max = i64::MAX as u64;
    if s.offset > max || s.length > max - s.offset {
        return shim::neg(bindings::EFBIG).into();
    }
    // SAFETY: `file` is the open file of this ioctl call.
    match unsafe { seal_locked(file, s.offset, s.length) } {
        Ok(()) => 0,
        Err(e) => e.to_errno().into(),
    }
}

/// `NOVARS_IOC_SEAL_INFO`: the holds on the inode's block map, written to
/// user address `arg`. 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_ioc_seal_info(inode: *mut bindings::inode, arg: c_ulong) -> c_long {
    // SAFETY: C passes the live novars inode of the ioctl's open file.
    let holders = unsafe { inode::of(inode) }.inner.lock().seals;
    let out = SealInfo { sealed: u32::from(holders != 0), holders, reserved: 0 };
    match UserSlice::new(arg as usize, size_of::<SealInfo>()).writer().write(&out) {
        Ok(()) => 0,
        Err(e) => e.to_errno().into(),
    }
}
