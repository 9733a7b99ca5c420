// SPDX-License-Identifier: GPL-2.0

//! Read access to the mapped file system for the `layout` walkers.

use crate::layout::{Media, MediaError, BLOCK_SIZE};

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

impl DaxMedia {
    /// # Safety
    ///
    /// `[base, base + blocks * 4096)` must stay mapped for the value's life.
    pub(crate) unsafe fn new(base: *const u8, blocks: u64) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { base, blocks }
    }
}

impl Media for DaxMedia {
    fn block(&self, nr: u64) -> Result<&[u8], MediaError> {
        if nr >= self.blocks {
            return Err(MediaError::OutOfRange(nr));
        }
        // SAFETY: `nr < blocks`, so the block lies inside the mapping (type
        // invariant), which outlives `&self`. Concurrent writers only touch
        // bytes past a log tail or words read with their own protocol.
        Ok(unsafe {
            core::slice::from_raw_parts(self.base.add(nr as usize * BLOCK_SIZE), BLOCK_SIZE)
        })
    }

    fn blocks(&self) -> u64 {
        self.blocks
    }
}
