// SPDX-License-Identifier: GPL-2.0

//! Persistence: every store, non-temporal copy, cache-line flush and fence
//! that novars issues to pmem goes through [`Pm`], so the ordering of
//! persistence can be read, traced (issue 7) and tested in one place.
//!
//! x86 model: a cached store is durable once its line is flushed (clwb via
//! `arch_wb_cache_pmem`) and a fence (sfence) follows; a non-temporal copy
//! (`memcpy_flushcache`) is durable at the next fence.
//!
//! The tracing build (Kbuild `NOVARS_TRACE=y`, i.e. `--cfg novars_trace`;
//! `cargo xt module --trace`) records each of them, in program order, as a
//! `layout::trace` record in the buffer of `novars_trace.c` (read through
//! debugfs by the crash checker), and can switch on the deliberate
//! [`Fault`]s the checker must catch. In a normal build none of that is
//! compiled: the hooks are empty inline functions and [`fault`] is `false`.

use crate::layout::trace::kind;
use crate::layout::MediaError;
use crate::media::DaxMedia;
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

    /// Copies `len` bytes of user data from `iter` (a `struct iov_iter`) to
    /// `pos` with non-temporal stores (durable at the next fence); returns
    /// the bytes copied (fewer on a fault in user memory).
    ///
    /// # Safety
    ///
    /// `iter` must be the live `iov_iter` of the current call.
    pub(crate) unsafe fn copy_from_iter(
        &self,
        iter: *mut c_void,
        pos: u64,
        len: usize,
    ) -> Result<usize> {
        let p = self.check(pos, len as u64)?;
        // SAFETY: `p` is `len` bytes inside the mapping; `iter` is live by
        // the caller's contract; pmem and user memory cannot overlap.
        let got = unsafe { shim::novars_copy_from_iter(iter, p.cast::<c_void>(), len) }.min(len);
        // The trace holds the bytes as they reached pmem (read back).
        // SAFETY: `got <= len` bytes at `p` are inside the mapping.
        trace::rec(kind::NT_STORE, pos, || unsafe { core::slice::from_raw_parts(p, got) });
        Ok(got)
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
        let bytes = v.to_le_bytes();
        trace::rec(kind::STORE, pos, || &bytes[..]);
        Ok(())
    }

    /// Copies `src` to `pos` with non-temporal stores (durable at the next
    /// fence).
    pub(crate) fn write_nt(&self, pos: u64, src: &[u8]) -> Result {
        let p = self.check(pos, src.len() as u64)?;
        // SAFETY: destination checked to be inside the mapping; `src` is a
        // valid slice; the regions cannot overlap (pmem vs DRAM).
        unsafe {
            shim::novars_memcpy_nt(p.cast::<c_void>(), src.as_ptr().cast::<c_void>(), src.len())
        };
        trace::rec(kind::NT_STORE, pos, || src);
        Ok(())
    }

    /// Copies the `len` bytes at `src` to `dst` (both device positions)
    /// with machine-check-safe loads ([`DaxMedia::copy_mc`]); the stores
    /// are cached and flushed here, so the bytes are durable at the next
    /// fence, as after [`Pm::write_nt`]. A poisoned source is
    /// [`MediaError::Io`], with `dst` partly written.
    pub(crate) fn copy_from_media(
        &self,
        m: &DaxMedia,
        dst: u64,
        src: u64,
        len: usize,
    ) -> core::result::Result<(), MediaError> {
        let bad_dst = MediaError::OutOfRange(dst / crate::layout::BLOCK_SIZE_U64);
        let p = self.check(dst, len as u64).map_err(|_| bad_dst)?;
        let (s_end, d_end) = (src.saturating_add(len as u64), dst.saturating_add(len as u64));
        if src < d_end && dst < s_end {
            return Err(bad_dst);
        }
        // SAFETY: `p` is `len` bytes inside the mapping (checked), which
        // the source range does not overlap (checked).
        unsafe { m.copy_mc(p, src, len) }?;
        // Flushed at once, the cached stores are ordered as non-temporal
        // ones: durable at the next fence. The trace says so.
        // SAFETY: `p` is `len` bytes inside the mapping.
        unsafe { shim::novars_flush(p.cast::<c_void>(), len) };
        // SAFETY: the `len` bytes at `p` were just written.
        trace::rec(kind::NT_STORE, dst, || unsafe { core::slice::from_raw_parts(p, len) });
        Ok(())
    }

    /// Writes back the cache lines covering `[pos, pos + len)`.
    pub(crate) fn flush(&self, pos: u64, len: u64) -> Result {
        let p = self.check(pos, len)?;
        // SAFETY: the range is inside the mapping.
        unsafe { shim::novars_flush(p.cast::<c_void>(), len as usize) };
        trace::mark(kind::FLUSH, pos, len);
        Ok(())
    }

    /// Orders every earlier store and flush before any later store.
    pub(crate) fn fence(&self) {
        // SAFETY: `sfence` has no operands and no memory-safety effect.
        unsafe { core::arch::asm!("sfence", options(nostack, preserves_flags)) };
        trace::mark(kind::FENCE, 0, 0);
    }

    /// Store, flush and fence an 8-byte word: the commit primitive.
    pub(crate) fn persist_u64(&self, pos: u64, v: u64) -> Result {
        self.store_u64(pos, v)?;
        if !fault(Fault::CommitNoFlush) && !fault(Fault::FaultCommitNoFlush) {
            self.flush(pos, 8)?;
        }
        if !fault(Fault::CommitNoFence) {
            self.fence();
        }
        Ok(())
    }
}

/// Deliberate faults of the tracing build, switched on by bit (the
/// discriminant) in `/sys/kernel/debug/novars/faults`: the crash checker
/// must report a violation for each (`xtests/vm-tests/crashcheck.sh`).
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) enum Fault {
    /// [`Pm::persist_u64`] (every commit word: log tails, inode states,
    /// journal states) does not flush its line: "drop one flush".
    CommitNoFlush = 0,
    /// [`Pm::persist_u64`] does not fence: "drop one fence".
    CommitNoFence = 1,
    /// A log append persists the new `log_tail` before it writes the entry
    /// (`log.rs`).
    TailBeforeEntry = 2,
    /// A rename over an existing name in one directory rewrites the
    /// existing `DENTRY ADD` in place instead of appending (`namei.rs`).
    DentryInPlace = 3,
    /// A rename commits each log on its own, without the journal
    /// (`namei.rs`).
    RenameNoJournal = 4,
    /// Inside a DAX write fault only, [`Pm::persist_u64`] does not flush:
    /// the fault's `WRITE` entry is committed by a tail store left in the
    /// cache, so the block a `MAP_SYNC` program stores into may not be the
    /// file's after a crash (`novars_trace.c` knows which task is in a
    /// fault).
    FaultCommitNoFlush = 5,
    /// Every machine-check-safe read ([`crate::media`]) of the block named
    /// in `/sys/kernel/debug/novars/poison_block` fails as if a load had hit
    /// a poisoned line: the error paths of a real machine check, which
    /// emulated pmem cannot raise.
    Poison = 6,
    /// The clean pools do not give up what is taken from them (`alloc.rs`
    /// `Lane::clean_take`, the slot mark): a mount after a crash would
    /// hand out blocks and slots in use.
    PoolKeep = 7,
}

/// The faults that are more than a skipped flush or fence.
#[cfg(novars_trace)]
#[path = "fault.rs"]
pub(crate) mod inject;

/// Is fault `f` switched on? Always `false` outside the tracing build.
#[inline(always)]
pub(crate) fn fault(f: Fault) -> bool {
    trace::fault(f)
}

/// Does `[pos, pos + len)` touch the block [`Fault::Poison`] names (with
/// that fault on)? Always `false` outside the tracing build.
#[inline(always)]
pub(crate) fn poisoned(pos: u64, len: u64) -> bool {
    fault(Fault::Poison) && {
        let b = trace::poison_block();
        let first = pos / crate::layout::BLOCK_SIZE_U64;
        let last = pos.saturating_add(len.max(1) - 1) / crate::layout::BLOCK_SIZE_U64;
        (first..=last).contains(&b)
    }
}

#[cfg(novars_trace)]
mod trace {
    use core::ffi::c_void;

    extern "C" {
        fn novars_trace_rec(kind: u8, pos: u64, len: u32, data: *const c_void);
        fn novars_trace_fault(bit: u32) -> bool;
        fn novars_trace_poison_block() -> u64;
    }

    /// Records a store of the bytes `data()` returns, at `pos`, in pieces
    /// of at most 64 KiB (a record's length is 32 bits).
    pub(super) fn rec<'a>(kind: u8, pos: u64, data: impl FnOnce() -> &'a [u8]) {
        const PIECE: usize = 64 << 10;
        let mut at = pos;
        for piece in data().chunks(PIECE) {
            // SAFETY: `piece` is a valid slice of at most 64 KiB, copied
            // before the call returns.
            unsafe { novars_trace_rec(kind, at, piece.len() as u32, piece.as_ptr().cast()) };
            at = at.wrapping_add(piece.len() as u64);
        }
    }

    /// Records a flush or a fence (no payload).
    pub(super) fn mark(kind: u8, pos: u64, len: u64) {
        // SAFETY: no payload is read for these kinds.
        unsafe {
            novars_trace_rec(kind, pos, u32::try_from(len).unwrap_or(u32::MAX), core::ptr::null())
        };
    }

    pub(super) fn fault(f: super::Fault) -> bool {
        // SAFETY: reads one word of novars_trace.c's state; no preconditions.
        unsafe { novars_trace_fault(f as u32) }
    }

    pub(super) fn poison_block() -> u64 {
        // SAFETY: reads one word of novars_trace.c's state; no preconditions.
        unsafe { novars_trace_poison_block() }
    }
}

/// The normal build: nothing recorded, no fault; every hook compiles away.
#[cfg(not(novars_trace))]
mod trace {
    #[inline(always)]
    pub(super) fn rec<'a>(_kind: u8, _pos: u64, _data: impl FnOnce() -> &'a [u8]) {}
    #[inline(always)]
    pub(super) fn mark(_kind: u8, _pos: u64, _len: u64) {}
    #[inline(always)]
    pub(super) fn fault(_f: super::Fault) -> bool {
        false
    }
    #[inline(always)]
    pub(super) fn poison_block() -> u64 {
        u64::MAX
    }
}
