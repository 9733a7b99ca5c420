// SPDX-License-Identifier: GPL-2.0

//! The Rust half of `novars_shim.h`: the shared structs (layouts asserted
//! here and by `static_assert`s in `novars_shim.c`) and the C functions Rust
//! calls. Rust entry points called from C are `#[no_mangle]` functions in
//! the module that owns the concern (super_, inode, namei, dir, file, seal).
//!
//! Values both sides use are `#define`d in the C headers as mirrors of
//! their one Rust definition (mostly in `layout`); [`c_define`] reads each
//! at compile time and a const assert here fails the build on any drift.

use crate::layout::{self, Timespec};
use core::ffi::{c_char, c_int, c_long, c_void};
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicI64, Ordering};
use kernel::bindings;

const SHIM_H: &str = include_str!("novars_shim.h");
const TRACE_H: &str = include_str!("novars_trace.h");

/// Whether `h[at..]` starts with `pat`.
const fn starts_with_at(h: &[u8], at: usize, pat: &[u8]) -> bool {
    if at > h.len() || h.len() - at < pat.len() {
        return false;
    }
    let mut i = 0;
    while i < pat.len() {
        if h[at + i] != pat[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The value of `#define NAME <number>` (decimal or `0x` hex, an optional
/// `u` suffix) in C header text `header`. Only ever evaluated at compile
/// time (every use is in a `const`): a missing or malformed definition
/// stops the build.
pub(crate) const fn c_define(header: &str, name: &str) -> u64 {
    let h = header.as_bytes();
    let n = name.as_bytes();
    let def = b"#define ";
    let mut i = 0;
    while i < h.len() {
        let line_start = i == 0 || h[i - 1] == b'\n';
        if line_start && starts_with_at(h, i, def) && starts_with_at(h, i + def.len(), n) {
            let mut j = i + def.len() + n.len();
            if j < h.len() && (h[j] == b' ' || h[j] == b'\t') {
                while j < h.len() && (h[j] == b' ' || h[j] == b'\t') {
                    j += 1;
                }
                let hex = starts_with_at(h, j, b"0x");
                if hex {
                    j += 2;
                }
                let base = if hex { 16 } else { 10 };
                let mut v: u64 = 0;
                let mut digits = 0;
                while j < h.len() {
                    let d = match h[j] {
                        b'0'..=b'9' => h[j] - b'0',
                        b'a'..=b'f' if hex => h[j] - b'a' + 10,
                        b'A'..=b'F' if hex => h[j] - b'A' + 10,
                        _ => break,
                    };
                    v = v * base + d as u64;
                    digits += 1;
                    j += 1;
                }
                let end_ok = j >= h.len() || matches!(h[j], b'u' | b'U' | b' ' | b'\t' | b'\n');
                assert!(digits > 0 && end_ok, "a #define shared with Rust is not a plain number");
                return v;
            }
        }
        i += 1;
    }
    panic!("a #define shared with Rust is missing from its header");
}

/// `c_define` in `novars_shim.h` (for the const asserts next to each
/// Rust definition).
pub(crate) const fn shim_h(name: &str) -> u64 {
    c_define(SHIM_H, name)
}

/// `c_define` in `novars_trace.h`.
const fn trace_h(name: &str) -> u64 {
    c_define(TRACE_H, name)
}

/// `struct novars_opts`: the options of one mount or remount call
/// (`super_::novars_rs_parse_param`).
#[repr(C)]
pub(crate) struct Opts {
    pub(crate) errors: u32,
    pub(crate) flags: u32,
}

/// `struct novars_sb_c`: the head of `SbInfo`, read by C.
#[repr(C)]
pub(crate) struct SbC {
    pub(crate) dax: *mut c_void,
    pub(crate) dax_part_off: u64,
    pub(crate) kaddr: *mut c_void,
    pub(crate) size: u64,
    pub(crate) uuid: [u8; 16],
}

impl SbC {
    pub(crate) const fn empty() -> Self {
        Self {
            dax: core::ptr::null_mut(),
            dax_part_off: 0,
            kaddr: core::ptr::null_mut(),
            size: 0,
            uuid: [0; 16],
        }
    }
}

/// `struct novars_iattr`: what Rust answers for a VFS inode (all of it
/// for `novars_iget`; the fields named in `valid` for [`IAttr::set`]).
#[repr(C)]
pub(crate) struct IAttr {
    /// `I_*`: the fields [`IAttr::set`] sets.
    pub(crate) valid: u32,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) generation: u32,
    pub(crate) size: u64,
    pub(crate) rdev: u64,
    pub(crate) blocks: u64,
    pub(crate) atime_sec: i64,
    pub(crate) mtime_sec: i64,
    pub(crate) ctime_sec: i64,
    pub(crate) atime_nsec: u32,
    pub(crate) mtime_nsec: u32,
    pub(crate) ctime_nsec: u32,
    /// Inode flags (`layout::log::fl`, the `FS_*_FL` values).
    pub(crate) flags: u32,
    pub(crate) link: *mut c_char,
}

/// `NOVARS_I_*`: the fields of [`IAttr`] `novars_inode_set` sets.
pub(crate) const I_NLINK: u32 = 1;
pub(crate) const I_SIZE: u32 = 2;
pub(crate) const I_BLOCKS: u32 = 4;
pub(crate) const I_ATIME: u32 = 8;
pub(crate) const I_MTIME: u32 = 16;
pub(crate) const I_CTIME: u32 = 32;
pub(crate) const I_FLAGS: u32 = 64;
const _: () = assert!(shim_h("NOVARS_I_FLAGS") == I_FLAGS as u64);
const _: () = assert!(shim_h("NOVARS_I_NLINK") == I_NLINK as u64);
const _: () = assert!(shim_h("NOVARS_I_SIZE") == I_SIZE as u64);
const _: () = assert!(shim_h("NOVARS_I_BLOCKS") == I_BLOCKS as u64);
const _: () = assert!(shim_h("NOVARS_I_ATIME") == I_ATIME as u64);
const _: () = assert!(shim_h("NOVARS_I_MTIME") == I_MTIME as u64);
const _: () = assert!(shim_h("NOVARS_I_CTIME") == I_CTIME as u64);

impl Default for IAttr {
    fn default() -> Self {
        Self {
            valid: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 0,
            generation: 0,
            size: 0,
            rdev: 0,
            blocks: 0,
            atime_sec: 0,
            mtime_sec: 0,
            ctime_sec: 0,
            atime_nsec: 0,
            mtime_nsec: 0,
            ctime_nsec: 0,
            flags: 0,
            link: core::ptr::null_mut(),
        }
    }
}

impl IAttr {
    /// The link count.
    pub(crate) fn nlink(mut self, nlink: u32) -> Self {
        self.valid |= I_NLINK;
        self.nlink = nlink;
        self
    }

    /// The size.
    pub(crate) fn size(mut self, size: u64) -> Self {
        self.valid |= I_SIZE;
        self.size = size;
        self
    }

    /// The inode flags (`fl` bits: S_IMMUTABLE and friends in the VFS).
    pub(crate) fn iflags(mut self, flags: u32) -> Self {
        self.valid |= I_FLAGS;
        self.flags = flags;
        self
    }

    /// The 512-byte sectors in use.
    pub(crate) fn blocks(mut self, blocks: u64) -> Self {
        self.valid |= I_BLOCKS;
        self.blocks = blocks;
        self
    }

    /// ctime, and mtime too if `mtime` (the contents changed), to `now`.
    pub(crate) fn changed(mut self, now: Timespec, mtime: bool) -> Self {
        self.valid |= I_CTIME;
        (self.ctime_sec, self.ctime_nsec) = (now.sec, now.nsec);
        if mtime {
            self.valid |= I_MTIME;
            (self.mtime_sec, self.mtime_nsec) = (now.sec, now.nsec);
        }
        self
    }

    /// Sets the fields named in `valid` of the VFS inode.
    ///
    /// # Safety
    ///
    /// `inode` must be a live VFS inode the caller holds a reference to.
    pub(crate) unsafe fn set(&self, inode: *mut bindings::inode) {
        // SAFETY: per the contract; `self` is read for the call only.
        unsafe { novars_inode_set(inode, self) };
    }
}

/// The current time for an inode's timestamps (`current_time()`).
///
/// # Safety
///
/// `inode` must be a live VFS inode.
pub(crate) unsafe fn now(inode: *mut bindings::inode) -> Timespec {
    // SAFETY: per the contract; current_time only reads the inode's super
    // block's time granularity.
    let t = unsafe { bindings::current_time(inode) };
    // tv_nsec < 10^9 and tv_sec fits i64.
    Timespec::new(t.tv_sec, u32::try_from(t.tv_nsec).unwrap_or(0))
}

// ---- VFS and page-cache calls: the `static inline` ones by their 6.12
// definitions, the exported ones the bindings lack by hand (`extern` below).

/// `LLONG_MAX`: the end of a page-cache range "to the end of the file".
pub(crate) const LLONG_MAX: u64 = i64::MAX as u64;
/// Bytes one PMD (a 2 MiB DAX entry) maps.
pub(crate) const PMD_SIZE: u64 = 1 << bindings::PMD_SHIFT;
/// `XA_PRESENT` (asserted in `novars_shim.c`): any entry, for `xa_find`.
const XA_PRESENT: bindings::xa_mark_t = 8;

/// `i_size_read`: the VFS inode's size.
///
/// # Safety
///
/// `inode` must be a live VFS inode.
pub(crate) unsafe fn i_size(inode: *mut bindings::inode) -> u64 {
    // SAFETY: per the contract the field is live; an `loff_t` is 8-byte
    // aligned. On 64-bit, i_size_read is smp_load_acquire of it (pairing
    // with i_size_write's release store).
    let size =
        unsafe { AtomicI64::from_ptr(addr_of_mut!((*inode).i_size)) }.load(Ordering::Acquire);
    u64::try_from(size).unwrap_or(0)
}

/// A VFS `rw_semaphore` held for writing until dropped.
///
/// # Invariants
///
/// The semaphore is live and held for writing by this task.
pub(crate) struct WriteLocked(*mut bindings::rw_semaphore);

impl WriteLocked {
    /// `inode_lock`.
    ///
    /// # Safety
    ///
    /// `inode` must be a live VFS inode that outlives the guard, not locked
    /// by this task, and the lock order (DESIGN.md) must allow it here.
    pub(crate) unsafe fn inode(inode: *mut bindings::inode) -> Self {
        // SAFETY: per the contract.
        unsafe { Self::take(addr_of_mut!((*inode).i_rwsem)) }
    }

    /// `filemap_invalidate_lock` of the inode's mapping: no fault runs
    /// until the guard is dropped.
    ///
    /// # Safety
    ///
    /// As for [`WriteLocked::inode`].
    pub(crate) unsafe fn invalidate(inode: *mut bindings::inode) -> Self {
        // SAFETY: per the contract; a live inode has a live mapping.
        unsafe { Self::take(addr_of_mut!((*(*inode).i_mapping).invalidate_lock)) }
    }

    /// # Safety
    ///
    /// `sem` is live for the guard's life and not held by this task.
    unsafe fn take(sem: *mut bindings::rw_semaphore) -> Self {
        // SAFETY: per the contract.
        unsafe { bindings::down_write(sem) };
        // INVARIANT: taken just now.
        Self(sem)
    }
}

impl Drop for WriteLocked {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this task holds it for writing.
        unsafe { bindings::up_write(self.0) };
    }
}

/// Write access to the mount of an open file (`mnt_want_write_file`) until
/// dropped.
pub(crate) struct MntWrite(*mut bindings::file);

impl MntWrite {
    /// # Safety
    ///
    /// `file` must be an open file that outlives the guard.
    pub(crate) unsafe fn new(file: *mut bindings::file) -> kernel::error::Result<Self> {
        // SAFETY: per the contract.
        kernel::error::to_result(unsafe { bindings::mnt_want_write_file(file) })?;
        Ok(Self(file))
    }
}

impl Drop for MntWrite {
    fn drop(&mut self) {
        // SAFETY: `new` succeeded on this open file, which is still open.
        unsafe { bindings::mnt_drop_write_file(self.0) };
    }
}

/// The page index of file byte `pos` (`pgoff_t`, `usize` in the bindings).
fn page_index(pos: u64) -> usize {
    usize::try_from(pos >> bindings::PAGE_SHIFT).unwrap_or(usize::MAX)
}

/// Whether a page of file bytes `[pos, pos + len)` has a DAX entry (it is,
/// or was, mapped into user space).
///
/// # Safety
///
/// `inode` must be a live VFS inode.
pub(crate) unsafe fn range_mapped(inode: *mut bindings::inode, pos: u64, len: u64) -> bool {
    if len == 0 {
        return false;
    }
    // SAFETY: per the contract the inode and its mapping are live; the
    // xarray takes its own lock.
    unsafe {
        let pages = addr_of_mut!((*(*inode).i_mapping).i_pages);
        let mut index = page_index(pos);
        let last = page_index(pos.saturating_add(len - 1));
        !bindings::xa_find(pages, &mut index, last, XA_PRESENT).is_null()
    }
}

/// Waits until no page of the file from byte `from` on is pinned
/// (O_DIRECT, RDMA through a mapping: `novars_break_layouts`), writes back
/// the dirty entries of `[from, writeback_end]` if given (their lines
/// reach the media first), then drops the mappings
/// and DAX entries of `[from, end]` (`truncate_pagecache_range`), or with
/// `end` `None` of everything from `from` on, private copies too
/// (`truncate_pagecache`, for a size cut).
///
/// # Safety
///
/// `inode` must be a live VFS inode whose invalidate lock this task holds
/// for writing (dropped while waiting for pins).
pub(crate) unsafe fn drop_dax_entries(
    inode: *mut bindings::inode,
    from: u64,
    writeback_end: Option<u64>,
    end: Option<u64>,
) -> kernel::error::Result {
    let off = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    // SAFETY: per the contract.
    unsafe {
        kernel::error::to_result(novars_break_layouts(inode, off(from)))?;
        if let Some(wb_end) = writeback_end {
            let mapping = (*inode).i_mapping;
            let r = filemap_write_and_wait_range(mapping, off(from), off(wb_end));
            kernel::error::to_result(r)?;
        }
        match end {
            Some(end) => bindings::truncate_pagecache_range(inode, off(from), off(end)),
            None => bindings::truncate_pagecache(inode, off(from)),
        }
    }
    Ok(())
}

/// Drops the mappings of file bytes `[pos, pos + len)` (`len` > 0) from
/// user space and the page cache: holes filled in place may have the zero
/// page mapped.
///
/// # Safety
///
/// `inode` must be a live VFS inode whose invalidate lock this task holds.
pub(crate) unsafe fn invalidate_range(inode: *mut bindings::inode, pos: u64, len: u64) {
    let last = page_index(pos.saturating_add(len.saturating_sub(1)));
    // SAFETY: per the contract. It returns -EBUSY only for pages it could
    // not invalidate; a DAX mapping has none it cannot drop under the lock.
    unsafe { invalidate_inode_pages2_range((*inode).i_mapping, page_index(pos), last) };
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
}

/// `NOVARS_MAP_NEW`.
pub(crate) const MAP_NEW: u32 = 1;
const _: () = assert!(shim_h("NOVARS_MAP_NEW") == MAP_NEW as u64);

/// `Map::mapped` of unwritten blocks (`NOVARS_MAPPED_UNWRITTEN`): C
/// answers `IOMAP_UNWRITTEN` (0: a hole, 1: mapped).
pub(crate) const MAPPED_UNWRITTEN: u32 = 2;
const _: () = assert!(shim_h("NOVARS_MAPPED_UNWRITTEN") == MAPPED_UNWRITTEN as u64);

/// `struct novars_statfs`.
#[repr(C)]
pub(crate) struct StatFs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    /// Free blocks for unprivileged users.
    pub(crate) bavail: u64,
    /// Longest name (`f_namelen`).
    pub(crate) namelen: u64,
}

/// `struct novars_owner`: what a new inode's owner is decided from.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct OwnerFacts {
    /// The caller's fsuid and fsgid (init_user_ns).
    pub(crate) fsuid: u32,
    pub(crate) fsgid: u32,
    /// The parent directory's mode and group.
    pub(crate) dir_mode: u32,
    pub(crate) dir_gid: u32,
}

const _: () = assert!(core::mem::size_of::<Opts>() == 8);
const _: () = assert!(core::mem::size_of::<SbC>() == 48);
const _: () = assert!(core::mem::offset_of!(SbC, kaddr) == 16);
const _: () = assert!(core::mem::offset_of!(SbC, uuid) == 32);
const _: () = assert!(core::mem::size_of::<IAttr>() == 96);
const _: () = assert!(core::mem::offset_of!(IAttr, generation) == 20);
const _: () = assert!(core::mem::offset_of!(IAttr, atime_sec) == 48);
const _: () = assert!(core::mem::offset_of!(IAttr, atime_nsec) == 72);
const _: () = assert!(core::mem::offset_of!(IAttr, link) == 88);
const _: () = assert!(core::mem::size_of::<Map>() == 32);
const _: () = assert!(core::mem::size_of::<StatFs>() == 48);
const _: () = assert!(core::mem::size_of::<OwnerFacts>() == 16);

/// `IOMAP_WRITE` (asserted in `novars_shim.c`).
pub(crate) const IOMAP_WRITE: u32 = 1;
/// `IOMAP_FAULT` (asserted in `novars_shim.c`).
pub(crate) const IOMAP_FAULT: u32 = 1 << 3;

// The persistence trace (tracing build): novars_trace.h mirrors layout.
const _: () = {
    use layout::trace::{kind, op, TRACE_MAGIC, TRACE_VERSION};
    assert!(trace_h("NOVARS_TRACE_MAGIC") == TRACE_MAGIC as u64);
    assert!(trace_h("NOVARS_TRACE_VERSION") == TRACE_VERSION as u64);
    assert!(trace_h("NOVARS_KIND_STORE") == kind::STORE as u64);
    assert!(trace_h("NOVARS_KIND_NT_STORE") == kind::NT_STORE as u64);
    assert!(trace_h("NOVARS_KIND_OP_BEGIN") == kind::OP_BEGIN as u64);
    assert!(trace_h("NOVARS_KIND_OP_END") == kind::OP_END as u64);
    assert!(trace_h("NOVARS_KIND_USER_STORE") == kind::USER_STORE as u64);
    assert!(trace_h("NOVARS_OP_MOUNT") == op::MOUNT);
    assert!(trace_h("NOVARS_OP_UNMOUNT") == op::UNMOUNT);
    assert!(trace_h("NOVARS_OP_CREATE") == op::CREATE);
    assert!(trace_h("NOVARS_OP_MKDIR") == op::MKDIR);
    assert!(trace_h("NOVARS_OP_WRITE") == op::WRITE);
    assert!(trace_h("NOVARS_OP_TRUNCATE") == op::TRUNCATE);
    assert!(trace_h("NOVARS_OP_SETATTR") == op::SETATTR);
    assert!(trace_h("NOVARS_OP_LINK") == op::LINK);
    assert!(trace_h("NOVARS_OP_UNLINK") == op::UNLINK);
    assert!(trace_h("NOVARS_OP_RMDIR") == op::RMDIR);
    assert!(trace_h("NOVARS_OP_RENAME") == op::RENAME);
    assert!(trace_h("NOVARS_OP_SYMLINK") == op::SYMLINK);
    assert!(trace_h("NOVARS_OP_MKNOD") == op::MKNOD);
    assert!(trace_h("NOVARS_OP_FALLOCATE") == op::FALLOCATE);
    assert!(trace_h("NOVARS_OP_FSYNC") == op::FSYNC);
    assert!(trace_h("NOVARS_OP_FAULT") == op::FAULT);
    assert!(trace_h("NOVARS_OP_XATTR") == op::XATTR);
    assert!(trace_h("NOVARS_OP_FILEATTR") == op::FILEATTR);
    assert!(trace_h("NOVARS_FAULT_IN_PAGE_FAULT") == crate::pm::Fault::FaultCommitNoFlush as u64);
};

// Pointers to C structs cross the boundary only as opaque handles; the
// pointees' Rust layouts (which contain non-FFI-safe bindgen types) are
// never passed by value.
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn novars_register_fs() -> c_int;
    pub(crate) fn novars_unregister_fs();
    pub(crate) fn novars_dax_map(sb: *mut bindings::super_block, c: *mut SbC) -> c_long;
    pub(crate) fn novars_dax_unmap(c: *mut SbC);
    pub(crate) fn novars_flush(addr: *const c_void, len: usize);
    pub(crate) fn novars_memcpy_nt(dst: *mut c_void, src: *const c_void, len: usize);
    pub(crate) fn novars_iget(sb: *mut bindings::super_block, ino: u64) -> *mut bindings::inode;
    pub(crate) fn novars_iget_handle(
        sb: *mut bindings::super_block,
        ino: u64,
        gen: u32,
    ) -> *mut bindings::inode;
    fn novars_inode_set(inode: *mut bindings::inode, a: *const IAttr);
    pub(crate) fn novars_dir_emit(
        ctx: *mut c_void,
        name: *const c_char,
        len: c_int,
        ino: u64,
        dt: u32,
        pos: u64,
    ) -> c_int;
    pub(crate) fn novars_sb_rdonly(sb: *mut bindings::super_block) -> bool;
    pub(crate) fn novars_sb_set_rdonly(sb: *mut bindings::super_block);
    pub(crate) fn novars_rebuild_start(
        sb: *mut bindings::super_block,
    ) -> *mut bindings::task_struct;
    pub(crate) fn novars_rebuild_stop(t: *mut bindings::task_struct);
    pub(crate) fn novars_unmap_all(sb: *mut bindings::super_block);
    pub(crate) fn novars_cpu() -> u32;
    pub(crate) fn novars_cond_resched();
    pub(crate) fn novars_copy_from_iter(iter: *mut c_void, dst: *mut c_void, len: usize) -> usize;
    fn novars_break_layouts(inode: *mut bindings::inode, start: i64) -> c_int;
    // Exported by the kernel; `linux/pagemap.h` is beyond the bindings.
    fn filemap_write_and_wait_range(
        mapping: *mut bindings::address_space,
        lstart: i64,
        lend: i64,
    ) -> c_int;
    fn invalidate_inode_pages2_range(
        mapping: *mut bindings::address_space,
        start: usize,
        end: usize,
    ) -> c_int;
}

/// Loop iterations between two [`cond_resched`] calls in loops that run
/// over every block, inode slot or log of a device.
pub(crate) const RESCHED_EVERY: u64 = 4096;

/// Lets other tasks run (and the soft-lockup detector see progress) in a
/// long loop; only where sleeping is allowed.
pub(crate) fn cond_resched() {
    // SAFETY: `cond_resched` has no preconditions beyond a context that may
    // sleep, which every caller (mount, unmount, operations holding only
    // mutexes) is.
    unsafe { novars_cond_resched() }
}

/// [`cond_resched`] every [`RESCHED_EVERY`]-th iteration `i` of a loop.
pub(crate) fn resched_every(i: u64) {
    if i % RESCHED_EVERY == RESCHED_EVERY - 1 {
        cond_resched();
    }
}

/// Whether a pointer from C is an `ERR_PTR` (`IS_ERR`).
pub(crate) fn is_err<T>(p: *mut T) -> bool {
    p as usize >= (-(bindings::MAX_ERRNO as isize)) as usize
}

/// `ERR_PTR(errno)` for a negative errno.
pub(crate) fn err_ptr<T>(errno: c_int) -> *mut T {
    errno as isize as *mut T
}

/// A negative errno for a positive uapi constant from `bindings`.
pub(crate) fn neg(errno: u32) -> c_int {
    -(errno as c_int)
}

/// A kernel `Error` for a positive uapi constant from `bindings`.
pub(crate) fn err(errno: u32) -> kernel::error::Error {
    kernel::error::Error::from_errno(neg(errno))
}
