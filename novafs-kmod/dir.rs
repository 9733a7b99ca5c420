// SPDX-License-Identifier: GPL-2.0

//! Directory lookup and readdir over the DRAM name index.
//!
//! Readdir cookies are the sequence numbers of ADD entries plus 2 (0 and 1
//! are `.` and `..`): stable across concurrent changes, so telldir/seekdir
//! work and a concurrently added name never causes a repeat.

use crate::inode::{self, Index};
use crate::shim;
use core::ffi::{c_int, c_void};
use kernel::bindings;

/// Largest readdir position: cookies are 63-bit sequence numbers (plus 2).
const POS_MAX: u64 = i64::MAX as u64;
const _: () = assert!(shim::shim_h("NOVARS_DIR_POS_MAX") == POS_MAX);

/// Names copied out per lock hold.
const BATCH: usize = 32;

/// Lookup: the inode number of `name` in `dir`, 0 if absent, or -errno.
#[no_mangle]
extern "C" fn novars_rs_lookup(dir: *mut bindings::inode, name: *const u8, len: usize) -> i64 {
    // Longer names exist nowhere (ENAMETOOLONG, as for every Linux fs).
    if len > crate::layout::log::NAME_MAX {
        return shim::neg(bindings::ENAMETOOLONG) as i64;
    }
    // SAFETY: C passes a live novars directory and its dentry name.
    let (info, name) = unsafe { (inode::of(dir), core::slice::from_raw_parts(name, len)) };
    let mut g = info.inner.lock();
    match &mut g.index {
        Index::Dir(d) => d.lookup(name).and_then(|i| i64::try_from(i).ok()).unwrap_or(0),
        _ => shim::neg(bindings::ENOTDIR) as i64,
    }
}

/// Readdir from cookie `pos` (>= 2).
#[no_mangle]
extern "C" fn novars_rs_readdir(dir: *mut bindings::inode, ctx: *mut c_void, pos: u64) -> c_int {
    // SAFETY: C passes a live novars directory.
    let info = unsafe { inode::of(dir) };
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
