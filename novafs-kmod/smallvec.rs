// SPDX-License-Identifier: GPL-2.0

//! A vector whose first `N` items live inline: the per-call lists of the
//! write path (blocks taken, map changes, blocks to free) hold one or two
//! items almost always, and a heap allocation per `write()` is a
//! measurable part of its cost (BENCH.md, "Overwrites").

use kernel::prelude::*;

/// Up to `N` items inline, the rest in a [`KVVec`].
pub(crate) struct SmallVec<T: Copy, const N: usize> {
    inline: [T; N],
    len: usize,
    spill: KVVec<T>,
}

impl<T: Copy, const N: usize> SmallVec<T, N> {
    /// An empty vector; `fill` only initialises the unused inline slots.
    pub(crate) fn new(fill: T) -> Self {
        Self { inline: [fill; N], len: 0, spill: KVVec::new() }
    }

    pub(crate) fn push(&mut self, v: T) -> Result {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = v;
            self.len += 1;
            return Ok(());
        }
        self.spill.push(v, GFP_KERNEL)?;
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items in the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        Iterator::chain(self.inline.get(..self.len).unwrap_or(&[]).iter(), self.spill.iter())
    }
}
