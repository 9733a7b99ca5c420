// SPDX-License-Identifier: GPL-2.0

//! The Rust half of `novars_shim.h`: the shared structs (layouts asserted
//! here and by `static_assert`s in `novars_shim.c`) and the C functions Rust
//! calls. Rust entry points called from C are `#[no_mangle]` functions in
//! the module that owns the concern (super_, inode, dir, file).

use core::ffi::{c_char, c_int, c_void};
use kernel::bindings;

/// `struct novars_opts`.
#[repr(C)]
pub(crate) struct Opts {
    pub(crate) errors: u32,
    pub(crate) flags: u32,
}

/// `NOVARS_OPT_ERRORS_SET`.
pub(crate) const OPT_ERRORS_SET: u32 = 1;

/// `struct novars_sb_c`: the head of `SbInfo`, read by C.
#[repr(C)]
pub(crate) struct SbC {
    pub(crate) dax: *mut c_void,
    pub(crate) dax_part_off: u64,
    pub(crate) kaddr: *mut c_void,
    pub(crate) size: u64,
    pub(crate) errors: u32,
    pub(crate) pad: u32,
    pub(crate) uuid: [u8; 16],
}

impl SbC {
    pub(crate) const fn empty() -> Self {
        Self {
            dax: core::ptr::null_mut(),
            dax_part_off: 0,
            kaddr: core::ptr::null_mut(),
            size: 0,
            errors: 0,
            pad: 0,
            uuid: [0; 16],
        }
    }
}

/// `struct novars_iattr`.
#[repr(C)]
pub(crate) struct IAttr {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) size: u64,
    pub(crate) rdev: u64,
    pub(crate) blocks: u64,
    pub(crate) generation: u32,
    pub(crate) link_len: u32,
    pub(crate) atime_sec: i64,
    pub(crate) mtime_sec: i64,
    pub(crate) ctime_sec: i64,
    pub(crate) btime_sec: i64,
    pub(crate) atime_nsec: u32,
    pub(crate) mtime_nsec: u32,
    pub(crate) ctime_nsec: u32,
    pub(crate) btime_nsec: u32,
    pub(crate) link: *mut c_char,
}

/// `struct novars_map`.
#[repr(C)]
pub(crate) struct Map {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) addr: u64,
    pub(crate) mapped: u32,
    /// `MAP_NEW`: the blocks were just allocated (zeroed).
    pub(crate) flags: u32,
    /// i_blocks after an allocation (when `MAP_NEW`).
    pub(crate) blocks: u64,
}

/// `NOVARS_MAP_NEW`.
pub(crate) const MAP_NEW: u32 = 1;

/// `struct novars_statfs`.
#[repr(C)]
pub(crate) struct StatFs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
}

const _: () = assert!(core::mem::size_of::<Opts>() == 8);
const _: () = assert!(core::mem::size_of::<SbC>() == 56);
const _: () = assert!(core::mem::offset_of!(SbC, kaddr) == 16);
const _: () = assert!(core::mem::offset_of!(SbC, errors) == 32);
const _: () = assert!(core::mem::offset_of!(SbC, uuid) == 40);
const _: () = assert!(core::mem::size_of::<IAttr>() == 104);
const _: () = assert!(core::mem::offset_of!(IAttr, generation) == 40);
const _: () = assert!(core::mem::offset_of!(IAttr, atime_sec) == 48);
const _: () = assert!(core::mem::offset_of!(IAttr, atime_nsec) == 80);
const _: () = assert!(core::mem::offset_of!(IAttr, link) == 96);
const _: () = assert!(core::mem::size_of::<Map>() == 40);
const _: () = assert!(core::mem::size_of::<StatFs>() == 32);

/// `IOMAP_WRITE` (asserted in `novars_shim.c`).
pub(crate) const IOMAP_WRITE: u32 = 1;
/// `IOMAP_FAULT` (asserted in `novars_shim.c`).
pub(crate) const IOMAP_FAULT: u32 = 1 << 3;

// Pointers to C structs cross the boundary only as opaque handles; the
// pointees' Rust layouts (which contain non-FFI-safe bindgen types) are
// never passed by value.
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn novars_register_fs() -> c_int;
    pub(crate) fn novars_unregister_fs();
    pub(crate) fn novars_dax_map(sb: *mut bindings::super_block, c: *mut SbC) -> c_int;
    pub(crate) fn novars_dax_unmap(c: *mut SbC);
    pub(crate) fn novars_flush(addr: *const c_void, len: usize);
    pub(crate) fn novars_memcpy_nt(dst: *mut c_void, src: *const c_void, len: usize);
    pub(crate) fn novars_iget(sb: *mut bindings::super_block, ino: u64) -> *mut bindings::inode;
    pub(crate) fn novars_dir_emit(
        ctx: *mut c_void,
        name: *const c_char,
        len: c_int,
        ino: u64,
        dt: u32,
        pos: u64,
    ) -> c_int;
    pub(crate) fn novars_sb_id(sb: *mut bindings::super_block) -> *const c_char;
    pub(crate) fn novars_sb_rdonly(sb: *mut bindings::super_block) -> bool;
    pub(crate) fn novars_cpu() -> u32;
    pub(crate) fn novars_copy_from_iter(iter: *mut c_void, dst: *mut c_void, len: usize) -> usize;
}

/// A negative errno for a positive uapi constant from `bindings`.
pub(crate) fn neg(errno: u32) -> c_int {
    -(errno as c_int)
}

/// A kernel `Error` for a positive uapi constant from `bindings`.
pub(crate) fn err(errno: u32) -> kernel::error::Error {
    kernel::error::Error::from_errno(neg(errno))
}
