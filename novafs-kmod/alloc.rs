// SPDX-License-Identifier: GPL-2.0

//! Free space in DRAM: free block extents (by start, merged on free) and
//! free inode slots per lane. Built at mount from the allocator record or
//! from a scan of every log; saved back as the record at unmount.
//!
//! One lock for now (`SbInfo::alloc`); per-lane free lists are the planned
//! refinement once the 2-vCPU scaling benchmark asks for it.

use crate::layout::sb::Geometry;
use kernel::prelude::*;
use kernel::rbtree::RBTree;

/// Blocks in a 2 MiB extent: large requests prefer this alignment so DAX
/// can map them with PMD faults.
pub(crate) const HUGE: u64 = 512;

/// A set of bits over `0..len`.
pub(crate) struct Bitmap {
    words: KVec<u64>,
    len: u64,
}

impl Bitmap {
    pub(crate) fn new(len: u64) -> Result<Self> {
        let n = usize::try_from(len.div_ceil(64)).map_err(|_| ENOMEM)?;
        Ok(Self { words: KVec::from_elem(0u64, n, GFP_KERNEL)?, len })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn get(&self, i: u64) -> bool {
        i < self.len && self.words.as_slice().get((i / 64) as usize).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn set(&mut self, i: u64, v: bool) {
        if i >= self.len {
            return;
        }
        if let Some(w) = self.words.as_mut_slice().get_mut((i / 64) as usize) {
            if v {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
    }

    /// Sets `[start, start+count)` (clipped to the bitmap).
    pub(crate) fn set_range(&mut self, start: u64, count: u64) {
        let end = start.saturating_add(count).min(self.len);
        let mut i = start;
        while i < end {
            self.set(i, true);
            i += 1;
        }
    }

    /// First clear bit at or after `from`.
    pub(crate) fn first_clear(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.len {
            let w = *self.words.as_slice().get((i / 64) as usize)?;
            if w == u64::MAX && i % 64 == 0 {
                i += 64;
                continue;
            }
            if w & (1 << (i % 64)) == 0 {
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

/// Free blocks and inode slots.
pub(crate) struct Alloc {
    /// Free extents: start -> length.
    free: RBTree<u64, u64>,
    pub(crate) free_blocks: u64,
    /// Per lane: used inode slots (bit set = live or reserved).
    pub(crate) slots: KVec<Bitmap>,
    /// Rotates new inodes over the lanes.
    next_lane: u32,
}

impl Alloc {
    /// Free space = data blocks not set in `used`; slots from `slots`.
    pub(crate) fn from_used(geo: &Geometry, used: &Bitmap, slots: KVec<Bitmap>) -> Result<Self> {
        let mut a = Self { free: RBTree::new(), free_blocks: 0, slots, next_lane: 0 };
        let mut b = geo.first_data_block;
        let end = geo.backup_sb();
        while b < end {
            if used.get(b) {
                b += 1;
                continue;
            }
            let start = b;
            while b < end && !used.get(b) {
                b += 1;
            }
            a.insert_free(start, b - start)?;
        }
        Ok(a)
    }

    /// An allocator with no free blocks and the given slot maps.
    pub(crate) fn empty(slots: KVec<Bitmap>) -> Self {
        Self { free: RBTree::new(), free_blocks: 0, slots, next_lane: 0 }
    }

    pub(crate) fn insert_free(&mut self, start: u64, len: u64) -> Result {
        self.free.try_create_and_insert(start, len, GFP_KERNEL)?;
        self.free_blocks = self.free_blocks.saturating_add(len);
        Ok(())
    }

    /// Allocates up to `want` contiguous blocks (at least 1), preferring an
    /// extent that holds all of them, 2 MiB-aligned for large requests.
    /// Returns (first block, count).
    pub(crate) fn alloc(&mut self, want: u64) -> Result<(u64, u64)> {
        let want = want.max(1);
        // First fit over the extents; remember the largest as a fallback.
        let mut best: Option<(u64, u64)> = None;
        let mut pick: Option<(u64, u64, u64)> = None; // (extent start, len, alloc start)
        for (&s, &l) in self.free.iter() {
            if want >= HUGE {
                let a = s.next_multiple_of(HUGE);
                if a.saturating_add(want) <= s.saturating_add(l) {
                    pick = Some((s, l, a));
                    break;
                }
            }
            if l >= want && pick.is_none() && want < HUGE {
                pick = Some((s, l, s));
                break;
            }
            if best.is_none_or(|(_, bl)| l > bl) {
                best = Some((s, l));
            }
        }
        let (s, l, a, n) = match (pick, best) {
            (Some((s, l, a)), _) => (s, l, a, want),
            (None, Some((s, l))) if want >= HUGE && l >= want => (s, l, s, want),
            (None, Some((s, l))) => (s, l, s, l.min(want)),
            (None, None) => return Err(ENOSPC),
        };
        self.free.remove(&s);
        self.free_blocks = self.free_blocks.saturating_sub(l);
        if a > s {
            self.insert_free(s, a - s)?;
        }
        let end = s + l;
        if a + n < end {
            self.insert_free(a + n, end - (a + n))?;
        }
        Ok((a, n))
    }

    /// Returns `[start, start+len)` to the free space, merging neighbours.
    pub(crate) fn free(&mut self, start: u64, len: u64) -> Result {
        if len == 0 {
            return Ok(());
        }
        let (mut s, mut l) = (start, len);
        // Merge with the extent ending at `start`.
        let prev = match self.free.cursor_lower_bound(&start) {
            Some(c) => c.peek_prev().map(|(k, v)| (*k, *v)),
            None => self.free.cursor_back().map(|c| {
                let (k, v) = c.current();
                (*k, *v)
            }),
        };
        if let Some((ps, pl)) = prev {
            if ps + pl == start {
                self.free.remove(&ps);
                self.free_blocks = self.free_blocks.saturating_sub(pl);
                s = ps;
                l += pl;
            }
        }
        // Merge with the extent starting at the end.
        if let Some(nl) = self.free.remove(&(start + len)) {
            self.free_blocks = self.free_blocks.saturating_sub(nl);
            l += nl;
        }
        self.insert_free(s, l)
    }

    /// Free extents in order, for the allocator record.
    pub(crate) fn extents(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.free.iter().map(|(s, l)| (*s, *l))
    }

    /// Takes a free inode slot, rotating over the lanes. Returns (lane,
    /// slot); `ENOSPC` when every table is full (tables grow later).
    pub(crate) fn alloc_slot(&mut self, lanes: u32) -> Result<(u32, u64)> {
        for i in 0..lanes {
            let lane = (self.next_lane + i) % lanes.max(1);
            if let Some(bm) = self.slots.as_mut_slice().get_mut(lane as usize) {
                let from = if lane == 0 { 1 } else { 0 };
                if let Some(slot) = bm.first_clear(from) {
                    bm.set(slot, true);
                    self.next_lane = (lane + 1) % lanes.max(1);
                    return Ok((lane, slot));
                }
            }
        }
        Err(ENOSPC)
    }

    /// Returns an inode slot.
    pub(crate) fn free_slot(&mut self, lane: u32, slot: u64) {
        if let Some(bm) = self.slots.as_mut_slice().get_mut(lane as usize) {
            bm.set(slot, false);
        }
    }

    /// Free inode slots over all lanes.
    pub(crate) fn free_slots(&self) -> u64 {
        let mut n = 0u64;
        for bm in self.slots.as_slice() {
            let mut i = 0;
            while i < bm.len() {
                if !bm.get(i) {
                    n += 1;
                }
                i += 1;
            }
        }
        n
    }
}
