// SPDX-License-Identifier: GPL-2.0

//! Read access to the mapped file system, for the `layout` walkers and
//! every copy of bytes already on pmem.
//!
//! Every such read is machine-check safe (`copy_mc_to_kernel`): a poisoned
//! pmem line becomes [`MediaError::Io`] (EIO for the call concerned) where
//! a plain load would take the machine down. The tracing build can make a
//! chosen block read as poisoned ([`crate::pm::poisoned`]), which proves
//! the error paths without a real machine check.

use crate::layout::{Media, MediaError, BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::super_::SbInfo;
use core::ffi::c_void;
use core::mem::MaybeUninit;
use kernel::bindings;
use kernel::prelude::*;

/// The DAX mapping, as whole blocks.
///
/// # Invariants
///
/// `[base, base + blocks * BLOCK_SIZE)` is mapped for the life of the value.
pub(crate) struct DaxMedia {
    base: *const u8,
    blocks: u64,
}

// SAFETY: read-only view of memory that stays mapped (type invariant).
unsafe impl Send for DaxMedia {}
// SAFETY: as above.
unsafe impl Sync for DaxMedia {}

/// A block, or its first `len` bytes, copied out of pmem with
/// machine-check-safe loads.
///
/// # Invariants
///
/// The first `len` bytes of `buf` are initialised, and `len <= BLOCK_SIZE`.
pub(crate) struct McBlock {
    buf: KBox<MaybeUninit<[u8; BLOCK_SIZE]>>,
    len: usize,
}

impl core::ops::Deref for McBlock {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the block-sized `buf` are
        // initialised (type invariant), and nothing writes them while this
        // shared borrow lives.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }
}

impl DaxMedia {
    /// # Safety
    ///
    /// `[base, base + blocks * 4096)` must stay mapped for the value's life.
    pub(crate) unsafe fn new(base: *const u8, blocks: u64) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { base, blocks }
    }

    /// Copies the `len` bytes at `pos` to `dst` with machine-check-safe
    /// loads (the stores are plain: to DRAM, or to pmem the caller then
    /// flushes).
    ///
    /// # Safety
    ///
    /// `dst` must be valid for `len` bytes of writes and not overlap
    /// `[pos, pos + len)` of the mapping.
    pub(crate) unsafe fn copy_mc(
        &self,
        dst: *mut u8,
        pos: u64,
        len: usize,
    ) -> Result<(), MediaError> {
        let first = pos / BLOCK_SIZE_U64;
        let end = pos.checked_add(len as u64).ok_or(MediaError::OutOfRange(first))?;
        let limit = self.blocks.saturating_mul(BLOCK_SIZE_U64);
        if end > limit {
            return Err(MediaError::OutOfRange(first));
        }
        if crate::pm::poisoned(pos, len as u64) {
            return Err(MediaError::Io(first));
        }
        let n = u32::try_from(len).map_err(|_| MediaError::OutOfRange(first))?;
        // SAFETY: `[pos, end)` lies inside the mapping (checked above, type
        // invariant); `dst` is valid for `len` bytes by the caller's
        // contract. `copy_mc_to_kernel` returns the bytes it could not copy
        // when a load hit poison, instead of raising a machine check.
        let left = unsafe {
            bindings::copy_mc_to_kernel(
                dst.cast::<c_void>(),
                self.base.add(pos as usize).cast::<c_void>(),
                n,
            )
        };
        if left != 0 {
            let bad = end.saturating_sub(left as u64).min(end.saturating_sub(1)) / BLOCK_SIZE_U64;
            return Err(MediaError::Io(bad));
        }
        Ok(())
    }
}

impl Media for DaxMedia {
    type Block<'a> = McBlock;

    fn block(&self, nr: u64) -> Result<McBlock, MediaError> {
        self.head(nr, BLOCK_SIZE)
    }

    fn head(&self, nr: u64, len: usize) -> Result<McBlock, MediaError> {
        if nr >= self.blocks {
            return Err(MediaError::OutOfRange(nr));
        }
        let len = len.min(BLOCK_SIZE);
        let mut buf = KBox::<[u8; BLOCK_SIZE]>::new_uninit(GFP_KERNEL)
            .map_err(|_| MediaError::NoMemory(nr))?;
        let dst = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: `dst` is a fresh allocation of BLOCK_SIZE bytes, not in
        // the mapping, and `len <= BLOCK_SIZE`.
        unsafe { self.copy_mc(dst, nr * BLOCK_SIZE_U64, len) }?;
        // INVARIANT: `copy_mc` returned Ok: the first `len` bytes are
        // written.
        Ok(McBlock { buf, len })
    }

    fn read(&self, pos: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let nr = pos / BLOCK_SIZE_U64;
        let off = (pos % BLOCK_SIZE_U64) as usize;
        if off.saturating_add(buf.len()) > BLOCK_SIZE {
            return Err(MediaError::OutOfRange(nr));
        }
        let dst = buf.as_mut_ptr();
        // SAFETY: `buf` is a DRAM slice of `buf.len()` bytes.
        unsafe { self.copy_mc(dst, pos, buf.len()) }
    }

    fn blocks(&self) -> u64 {
        self.blocks
    }
}

/// Reads the aligned 8-byte word at `pos`.
pub(crate) fn read_word(m: &DaxMedia, pos: u64) -> Result<u64, MediaError> {
    let mut w = [0u8; 8];
    m.read(pos, &mut w)?;
    Ok(u64::from_le_bytes(w))
}

/// The errno for a failed read of metadata, after its one log line: a
/// media error (poison) or a block beyond the device is an error of the
/// file system (`errors=` applies, as ext4 does for an unreadable
/// metadata block); no memory for the copy is only ENOMEM.
pub(crate) fn read_failed(sbi: &SbInfo, what: core::fmt::Arguments<'_>, e: MediaError) -> Error {
    match e {
        MediaError::NoMemory(_) => ENOMEM,
        MediaError::Io(b) => {
            sbi.fs_error(format_args!("{what}: uncorrectable media error in block {b}"));
            EIO
        }
        MediaError::OutOfRange(b) => {
            sbi.fs_error(format_args!("{what}: block {b} beyond the device"));
            crate::super_::euclean()
        }
    }
}
