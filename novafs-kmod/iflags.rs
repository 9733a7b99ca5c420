// SPDX-License-Identifier: GPL-2.0

//! Inode flags (chattr/lsattr: `FS_IOC_GETFLAGS`/`SETFLAGS`, and xfs_io's
//! `FS_IOC_FSGETXATTR`/`FSSETXATTR`): immutable, append-only, noatime,
//! sync, dirsync, nodump, projinherit and a project id, one FLAGS entry per
//! change (FORMAT.md). The VFS enforces them from the inode's `i_flags`
//! (`novars_inode_set`), as for ext4: permission, open, truncate, unlink,
//! link, rename, setattr, fallocate, setxattr. Every regular file is DAX:
//! the DAX flag is reported set on it and cannot be cleared.

use crate::inode::{self, InodeInfo};
use crate::layout::append::NewEntry;
use crate::layout::inode::{S_IFDIR, S_IFMT, S_IFREG};
use crate::layout::log::fl;
use crate::layout::Timespec;
use crate::locks::lock_logs;
use crate::log::Appender;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::c_int;
use kernel::bindings;
use kernel::prelude::*;

/// `FS_DAX_FL`: reported on regular files, which are all DAX.
const DAX: u32 = 0x0200_0000;

const _: () = {
    assert!(fl::SYNC == bindings::FS_SYNC_FL);
    assert!(fl::IMMUTABLE == bindings::FS_IMMUTABLE_FL);
    assert!(fl::APPEND == bindings::FS_APPEND_FL);
    assert!(fl::NODUMP == bindings::FS_NODUMP_FL);
    assert!(fl::NOATIME == bindings::FS_NOATIME_FL);
    assert!(fl::DIRSYNC == bindings::FS_DIRSYNC_FL);
    assert!(fl::PROJINHERIT == bindings::FS_PROJINHERIT_FL);
    assert!(DAX == bindings::FS_DAX_FL);
};

/// The flags as chattr sees them (`reg`: a regular file).
fn get(info: &InodeInfo, reg: bool) -> (u32, u32) {
    let g = info.inner.lock();
    (g.flags | if reg { DAX } else { 0 }, g.projid)
}

/// What a new inode of type `fmt` (`S_IFMT` bits) inherits from a
/// directory with `flags` and `projid`, as on ext4: directories take sync,
/// nodump, noatime, dirsync and projinherit; regular files sync, nodump
/// and noatime; other types nodump and noatime. The project id follows
/// projinherit (else 0). Returns (flags, project id).
pub(crate) fn inherited(flags: u32, projid: u32, fmt: u32) -> (u32, u32) {
    let mask = match fmt {
        S_IFDIR => fl::SYNC | fl::NODUMP | fl::NOATIME | fl::DIRSYNC | fl::PROJINHERIT,
        S_IFREG => fl::SYNC | fl::NODUMP | fl::NOATIME,
        _ => fl::NODUMP | fl::NOATIME,
    };
    let projid = if flags & fl::PROJINHERIT != 0 { projid } else { 0 };
    (flags & mask, projid)
}

/// Sets the flags (and the project id, if `projid` is given) in one FLAGS
/// entry; EOPNOTSUPP for a flag novars does not keep, for clearing DAX on
/// a regular file, or for xfs_io's extent size hints (`other`).
fn set(
    sbi: &SbInfo,
    info: &InodeInfo,
    reg: bool,
    flags: u32,
    projid: Option<u32>,
    other: bool,
    now: Timespec,
) -> Result<u32> {
    if other || flags & !(fl::ALL | DAX) != 0 {
        return Err(shim::err(bindings::EOPNOTSUPP));
    }
    let _w = sbi.start_write()?;
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let g = &mut *g;
    if reg && flags & DAX == 0 {
        return Err(shim::err(bindings::EOPNOTSUPP));
    }
    let keep = flags & fl::ALL;
    let projid = projid.unwrap_or(g.projid);
    // An inode that is and stays immutable changes nothing else (as ext4).
    if g.flags & keep & fl::IMMUTABLE != 0 && (g.flags != keep || g.projid != projid) {
        return Err(EPERM);
    }
    let mut ap = Appender::of(sbi, info, g.log);
    let pos = match ap
        .push(&NewEntry::Flags { flags: keep, projid, ctime: now })
        .and_then(|_| ap.commit())
    {
        Ok(p) => p,
        Err(e) => {
            ap.abort();
            return Err(e);
        }
    };
    g.log = pos;
    (g.flags, g.projid) = (keep, projid);
    crate::gc::maybe_compact(sbi, info, g);
    Ok(keep)
}

/// # Safety
///
/// `inode` is a live VFS inode.
unsafe fn is_reg(inode: *mut bindings::inode) -> bool {
    // SAFETY: per the contract; the file type never changes.
    u32::from(unsafe { (*inode).i_mode }) & S_IFMT == S_IFREG
}

/// `fileattr_get`: the flags (`FS_*_FL`) in `*flags`, the project id in
/// `*projid`; 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_get_flags(
    inode: *mut bindings::inode,
    flags: *mut u32,
    projid: *mut u32,
) -> c_int {
    // SAFETY: C passes a live novars inode of a mounted super block and
    // places for the flags and the project id.
    let (info, reg, sbi) = unsafe { (inode::of(inode), is_reg(inode), super_::sbi((*inode).i_sb)) };
    if let Err(e) = sbi.live() {
        return e.to_errno();
    }
    let (f, p) = get(info, reg);
    // SAFETY: as above.
    unsafe {
        *flags = f;
        *projid = p;
    }
    0
}

/// `fileattr_set` (the VFS checked ownership and CAP_LINUX_IMMUTABLE):
/// `flags` as `FS_*_FL`; `projid` applies if `fsx` (FSSETXATTR); `other`:
/// extent size hints were asked for. 0 or -errno; on success the VFS
/// inode's flags and ctime are set.
#[no_mangle]
extern "C" fn novars_rs_set_flags(
    inode: *mut bindings::inode,
    flags: u32,
    fsx: bool,
    projid: u32,
    other: bool,
) -> c_int {
    // SAFETY: C passes a live novars inode, its inode lock held.
    let (sbi, info, now, reg) =
        unsafe { (super_::sbi((*inode).i_sb), inode::of(inode), shim::now(inode), is_reg(inode)) };
    match set(sbi, info, reg, flags, fsx.then_some(projid), other, now) {
        Ok(keep) => {
            // SAFETY: as above.
            unsafe { IAttr::default().iflags(keep).changed(now, false).set(inode) };
            0
        }
        Err(e) => e.to_errno(),
    }
}
