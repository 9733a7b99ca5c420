// SPDX-License-Identifier: GPL-2.0

//! The ioctls about the whole file system, on any novars file or
//! directory: `FS_IOC_SHUTDOWN` (xfs's GOINGDOWN, which ext4 answers too),
//! `FS_IOC_GETFSLABEL` and `FS_IOC_SETFSLABEL`. (`FS_IOC_GETFSUUID` is the
//! VFS's, from the uuid set at mount.)
//!
//! Shutdown: every call answers EIO from then on, nothing more is written
//! (not the allocator record at unmount either), and every mapping of
//! every file is torn down so that a store through one faults and gets
//! SIGBUS. All three flags do the same: every operation is durable when
//! it returns, so there is no log to flush first. The superblock is not
//! CLEAN while mounted read-write, so the next mount recovers as after a
//! crash.

use crate::shim;
use crate::super_::{self, SbInfo};
use core::ffi::{c_int, c_long, c_ulong};
use kernel::bindings;
use kernel::ioctl::{_IOR, _IOW};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// `FS_IOC_SHUTDOWN` (`linux/fs.h`): `_IOR('X', 125, __u32)`.
const FS_IOC_SHUTDOWN: u32 = _IOR::<u32>(b'X' as u32, 125);
/// `FSLABEL_MAX`: the label buffer of the two label ioctls.
const FSLABEL_MAX: usize = 256;
/// `FS_IOC_GETFSLABEL`: `_IOR(0x94, 49, char[FSLABEL_MAX])`.
const FS_IOC_GETFSLABEL: u32 = _IOR::<[u8; FSLABEL_MAX]>(0x94, 49);
/// `FS_IOC_SETFSLABEL`: `_IOW(0x94, 50, char[FSLABEL_MAX])`.
const FS_IOC_SETFSLABEL: u32 = _IOW::<[u8; FSLABEL_MAX]>(0x94, 50);

/// The shutdown flags (`FS_SHUTDOWN_FLAGS_*`): default (sync first),
/// flush the log first, do not.
const SHUTDOWN_FLAGS_MAX: u32 = 2;

fn sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}

/// `FS_IOC_SHUTDOWN` with its flags at user address `arg`.
fn shutdown(sbi: &SbInfo, sb: *mut bindings::super_block, arg: c_ulong) -> Result {
    if !sys_admin() {
        return Err(EPERM);
    }
    let flags = UserSlice::new(arg as usize, size_of::<u32>()).reader().read::<u32>()?;
    if flags > SHUTDOWN_FLAGS_MAX {
        return Err(EINVAL);
    }
    if sbi.shut_down() {
        // SAFETY: `sb` is the live super block of the ioctl's file.
        unsafe { shim::novars_unmap_all(sb) };
        pr_info!(
            "({}): shut down (flags {flags}); every call now fails with EIO and nothing more is written\n",
            sbi.dev()
        );
    }
    Ok(())
}

/// `FS_IOC_GETFSLABEL`: the label, NUL-terminated, into `FSLABEL_MAX`
/// bytes at `arg`.
fn get_label(sbi: &SbInfo, arg: c_ulong) -> Result {
    sbi.live()?;
    let mut out = [0u8; FSLABEL_MAX];
    let label = sbi.label();
    out.get_mut(..label.len()).ok_or(EINVAL)?.copy_from_slice(&label);
    UserSlice::new(arg as usize, FSLABEL_MAX).writer().write_slice(&out)
}

/// `FS_IOC_SETFSLABEL`: a NUL-terminated label of at most
/// `layout::sb::LABEL_MAX` bytes at `arg` (C has taken write access to
/// the mount).
fn set_label(sbi: &SbInfo, arg: c_ulong) -> Result {
    if !sys_admin() {
        return Err(EPERM);
    }
    let mut buf = [0u8; FSLABEL_MAX];
    UserSlice::new(arg as usize, FSLABEL_MAX).reader().read_slice(&mut buf)?;
    let len = buf.iter().position(|&b| b == 0).ok_or(EINVAL)?;
    sbi.set_label(buf.get(..len).ok_or(EINVAL)?)?;
    pr_info!("({}): label set\n", sbi.dev());
    Ok(())
}

/// The file-system ioctls above: 0 or -errno; -ENOTTY for any other.
#[no_mangle]
extern "C" fn novars_rs_ioctl_fs(sb: *mut bindings::super_block, cmd: u32, arg: c_ulong) -> c_long {
    // SAFETY: C passes the mounted super block of the ioctl's file.
    let sbi = unsafe { super_::sbi(sb) };
    let r = match cmd {
        FS_IOC_SHUTDOWN => shutdown(sbi, sb, arg),
        FS_IOC_GETFSLABEL => get_label(sbi, arg),
        FS_IOC_SETFSLABEL => set_label(sbi, arg),
        _ => return shim::neg(bindings::ENOTTY).into(),
    };
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno().into(),
    }
}

/// Whether an ioctl changes the file system (C then takes write access to
/// the mount first, as for any change: EROFS on a read-only mount).
#[no_mangle]
extern "C" fn novars_rs_ioctl_writes(cmd: u32) -> bool {
    cmd == FS_IOC_SETFSLABEL
}

/// 0, or -EIO once the file system is shut down: for the entry points C
/// serves alone (open, mmap, fsync, writeback).
#[no_mangle]
extern "C" fn novars_rs_live(sb: *mut bindings::super_block) -> c_int {
    // SAFETY: C passes a mounted novars super block.
    match unsafe { super_::sbi(sb) }.live() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
