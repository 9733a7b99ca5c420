// SPDX-License-Identifier: GPL-2.0

//! Directory lookup and readdir over the DRAM name index.
//!
//! Readdir cookies are the sequence numbers of ADD entries plus 2 (0 and 1
//! are `.` and `..`): stable across concurrent changes, so telldir/seekdir
//! work and a concurrently added name never causes a repeat.

use crate::inode::{self, Index, InodeInfo};
use crate::shim;
use crate::super_;
use core::ffi::{c_int, c_uint, c_void};
use kernel::bindings;
use kernel::prelude::*;

/// Largest readdir position: cookies are 63-bit sequence numbers (plus 2).
const POS_MAX: u64 = i64::MAX as u64;
const _: () = assert!(shim::shim_h("NOVARS_DIR_POS_MAX") == POS_MAX);

/// Names copied out per lock hold.
const BATCH: usize = 32;

/// The inode number of `name` in `dir`, 0 if absent.
fn lookup(dir: &InodeInfo, name: &[u8]) -> Result<u64> {
    // Longer names exist nowhere (ENAMETOOLONG, as for every Linux fs).
    if name.len() > crate::layout::log::NAME_MAX {
        return Err(shim::err(bindings::ENAMETOOLONG));
    }
    let mut g = dir.inner.lock();
    match &mut g.index {
        Index::Dir(d) => Ok(d.lookup(name).unwrap_or(0)),
        _ => Err(ENOTDIR),
    }
}

/// inode_operations `lookup`: the dentry spliced to the inode its name
/// names (a negative dentry if none), or an `ERR_PTR`.
#[no_mangle]
extern "C" fn novars_rs_lookup(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: c_uint,
) -> *mut bindings::dentry {
    // SAFETY: the VFS passes a live novars directory (read by iget) and a
    // dentry whose name stays put for the call.
    let (info, name, sb) = unsafe {
        let q = &(*dentry).d_name;
        let len = q.__bindgen_anon_1.__bindgen_anon_1.len as usize;
        (inode::of(dir), core::slice::from_raw_parts(q.name, len), (*dir).i_sb)
    };
    // SAFETY: `sb` is the directory's, mounted.
    if let Err(e) = unsafe { super_::sbi(sb) }.live() {
        return shim::err_ptr(e.to_errno());
    }
    let inode = match lookup(info, name) {
        Ok(0) => core::ptr::null_mut(),
        // SAFETY: `sb` is the directory's, mounted.
        Ok(ino) => unsafe { shim::novars_iget(sb, ino) },
        Err(e) => return shim::err_ptr(e.to_errno()),
    };
    if shim::is_err(inode) {
        return inode.cast();
    }
    // SAFETY: `inode` is NULL or a reference from novars_iget, which
    // d_splice_alias consumes.
    unsafe { bindings::d_splice_alias(inode, dentry) }
}

/// Readdir from cookie `pos` (>= 2).
#[no_mangle]
extern "C" fn novars_rs_readdir(dir: *mut bindings::inode, ctx: *mut c_void, pos: u64) -> c_int {
    // SAFETY: C passes a live novars directory of a mounted super block.
    let (info, sbi) = unsafe { (inode::of(dir), super_::sbi((*dir).i_sb)) };
    if let Err(e) = sbi.live() {
        return e.to_errno();
    }
    let mut from = pos.saturating_sub(2);
    loop {
        let batch = {
            let mut g = info.inner.lock();
            let Index::Dir(d) = &mut g.index else { return shim::neg(bindings::ENOTDIR) };
            match d.batch(from, BATCH) {
                Ok(b) => b,
                Err(e) => return e.to_errno(),
            }
        };
        if batch.is_empty() {
            return 0;
        }
        for (seq, e) in batch.as_slice() {
            let Some(cookie) = seq.checked_add(2).filter(|c| *c <= i64::MAX as u64) else {
                return 0;
            };
            // SAFETY: `ctx` is the caller's dir_context; the name is a live
            // slice of at most 255 bytes.
            let ok = unsafe {
                shim::novars_dir_emit(
                    ctx,
                    e.name.as_ptr().cast(),
                    e.name.len() as c_int,
                    e.ino,
                    e.ftype as u32,
                    cookie,
                )
            };
            if ok == 0 {
                return 0;
            }
            from = seq.saturating_add(1);
        }
    }
}
