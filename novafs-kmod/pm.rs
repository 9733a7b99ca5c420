// SPDX-License-Identifier: GPL-2.0

//! Persistence: every store, non-temporal copy, cache-line flush and fence
//! that novars issues to pmem goes through [`Pm`], so the ordering of
//! persistence can be read, traced (issue 7) and tested in one place.
//!
//! x86 model: a cached store is durable once its line is flushed (clwb via
//! `arch_wb_cache_pmem`) and a fence (sfence) follows; a non-temporal copy
//! (`memcpy_flushcache`) is durable at the next fence.

use crate::shim;
use core::ffi::c_void;
use kernel::prelude::*;

/// Write access to the mapped file system.
///
/// # Invariants
///
/// `base` is the kernel address of byte 0 of the file system and
/// `[base, base + len)` stays mapped while the `Pm` exists (it lives in the
/// `SbInfo` of a mounted file system, dropped after the last access).
pub(crate) struct Pm {
    base: *mut u8,
    len: u64,
}

// SAFETY: `Pm` is an address range; concurrent writers to the same bytes are
// serialised by the callers' locks (inode, lane), as with any shared memory.
unsafe impl Send for Pm {}
// SAFETY: see `Send`.
unsafe impl Sync for Pm {}

impl Pm {
    /// # Safety
    ///
    /// `[base, base + len)` must be mapped, writable pmem for the life of
    /// the returned value.
    pub(crate) unsafe fn new(base: *mut u8, len: u64) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { base, len }
    }

    fn check(&self, pos: u64, len: u64) -> Result<*mut u8> {
        let end = pos.checked_add(len).ok_or(EINVAL)?;
        if end > self.len {
            pr_err!("pm: write {pos:#x}+{len} beyond the device ({:#x})\n", self.len);
            return Err(EIO);
        }
        // SAFETY: `pos + len <= self.len`, so the pointer stays inside the
        // mapping (type invariant).
        Ok(unsafe { self.base.add(pos as usize) })
    }

    /// The kernel address of `[pos, pos+len)` for a copy done elsewhere
    /// (user data via `copy_from_iter_flushcache`, non-temporal).
    pub(crate) fn addr(&self, pos: u64, len: u64) -> Result<*mut u8> {
        self.check(pos, len)
    }

    /// Stores an aligned 8-byte word (cached: flush and fence to persist).
    pub(crate) fn store_u64(&self, pos: u64, v: u64) -> Result {
        if pos % 8 != 0 {
            return Err(EINVAL);
        }
        let p = self.check(pos, 8)?;
        // SAFETY: `p` is 8-aligned (the mapping is page-aligned and `pos` is
        // a multiple of 8) and inside the mapping; a volatile store is a
        // single 8-byte store, atomic on x86.
        unsafe { core::ptr::write_volatile(p.cast::<u64>(), v) };
        Ok(())
    }

    /// Copies `src` to `pos` with non-temporal stores (durable at the next
    /// fence).
    pub(crate) fn write_nt(&self, pos: u64, src: &[u8]) -> Result {
        let p = self.check(pos, src.len() as u64)?;
        // SAFETY: destination checked to be inside the mapping; `src` is a
        // valid slice; the regions cannot overlap (pmem vs DRAM).
        unsafe { shim::novars_memcpy_nt(p.cast::<c_void>(), src.as_ptr().cast::<c_void>(), src.len()) };
        Ok(())
    }

    /// Writes back the cache lines covering `[pos, pos + len)`.
    pub(crate) fn flush(&self, pos: u64, len: u64) -> Result {
        let p = self.check(pos, len)?;
        // SAFETY: the range is inside the mapping.
        unsafe { shim::novars_flush(p.cast::<c_void>(), len as usize) };
        Ok(())
    }

    /// Orders every earlier store and flush before any later store.
    pub(crate) fn fence(&self) {
        // SAFETY: `sfence` has no operands and no memory-safety effect.
        unsafe { core::arch::asm!("sfence", options(nostack, preserves_flags)) };
    }

    /// Store, flush and fence an 8-byte word: the commit primitive.
    pub(crate) fn persist_u64(&self, pos: u64, v: u64) -> Result {
        self.store_u64(pos, v)?;
        self.flush(pos, 8)?;
        self.fence();
        Ok(())
    }
}
