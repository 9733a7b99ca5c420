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
    let mut g = info.index.lock();
    let Index::File(map) = &mut *g else { return shim::neg(bindings::EINVAL) };
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
