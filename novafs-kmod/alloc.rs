// SPDX-License-Identifier: GPL-2.0

//! Free space in DRAM, per lane: each lane owns a contiguous region of the
//! data area (a multiple of 2 MiB) with its free extents (by start, merged
//! on free) and the free inode slots of its inode table, behind its own
//! lock. A CPU allocates from its lane (`Geometry::lane_of_cpu`) and falls
//! back to the others when it is empty; a free goes to the lane owning the
//! blocks. So two CPUs allocating at once take different locks, and the
//! free counts statfs reports are kept as they change (O(lanes)).
//!
//! Built at mount from the allocator record or from a scan of every log;
//! saved back as the record at unmount (and remount read-only).

use crate::layout::sb::Geometry;
use crate::shim;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};
use kernel::sync::Mutex;

/// Blocks in a 2 MiB extent: large requests prefer this alignment so DAX
/// can map them with PMD faults.
pub(crate) const HUGE: u64 = 512;

/// Requests of at least this many blocks (256 KiB) are placed 2 MiB-colored
/// (`Allocator::alloc_for`).
pub(crate) const COLOR_MIN: u64 = 64;

/// Which free space an allocation may take.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pool {
    /// All but the reserve ([`Allocator::reserved`]): whatever adds data,
    /// names or inodes.
    General,
    /// The reserve too: operations that free space (unlink, rmdir, rename
    /// over a name, truncate down, punch hole) and log compaction, so that
    /// a full file system can always be emptied (as ext4's reserved
    /// clusters and xfs's reserve pool).
    Reserve,
}

/// Blocks held back for [`Pool::Reserve`] on a data area of `data` blocks:
/// 1/256 of it, at least 64 blocks (but at most 1/8 of a tiny file system)
/// and at most 8192 (32 MiB).
pub(crate) fn reserve_for(data: u64) -> u64 {
    (data / 256).clamp(64, 8192).min(data / 8)
}

/// `n` (1..=64) bits from bit `bit` of a word (`bit + n <= 64`).
fn word_mask(bit: u64, n: u64) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        ((1u64 << n) - 1) << bit
    }
}

/// A set of bits over `0..len`. kvmalloc'd: an inode table of millions
/// of slots outgrows what kmalloc gives (4 MiB).
pub(crate) struct Bitmap {
    words: KVVec<u64>,
    len: u64,
}

impl Bitmap {
    pub(crate) fn new(len: u64) -> Result<Self> {
        let n = usize::try_from(len.div_ceil(64)).map_err(|_| ENOMEM)?;
        Ok(Self { words: KVVec::from_elem(0u64, n, GFP_KERNEL)?, len })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn get(&self, i: u64) -> bool {
        i < self.len
            && self
                .words
                .as_slice()
                .get((i / 64) as usize)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
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
        self.fill(start, count, true);
    }

    /// Clears `[start, start+count)` (clipped to the bitmap).
    pub(crate) fn clear_range(&mut self, start: u64, count: u64) {
        self.fill(start, count, false);
    }

    /// Sets or clears a range, a word at a time.
    fn fill(&mut self, start: u64, count: u64, v: bool) {
        let end = start.saturating_add(count).min(self.len);
        let mut i = start;
        while i < end {
            let bit = i % 64;
            let n = (64 - bit).min(end - i);
            let mask = word_mask(bit, n);
            if let Some(w) = self.words.as_mut_slice().get_mut((i / 64) as usize) {
                if v {
                    *w |= mask;
                } else {
                    *w &= !mask;
                }
            }
            i += n;
        }
    }

    /// Bits set (bits past `len` are never set).
    pub(crate) fn count_set(&self) -> u64 {
        self.words.as_slice().iter().map(|w| w.count_ones() as u64).sum()
    }

    /// Extends the set to `len` bits (the new ones clear).
    pub(crate) fn grow(&mut self, len: u64) -> Result {
        if len <= self.len {
            return Ok(());
        }
        let more = self.words_short(len)?;
        self.words.extend_with(more, 0, GFP_KERNEL)?;
        self.len = len;
        Ok(())
    }

    /// Makes room for `len` bits, so that a later [`Bitmap::grow`] to at
    /// most `len` allocates nothing.
    pub(crate) fn reserve_to(&mut self, len: u64) -> Result {
        let more = self.words_short(len)?;
        Ok(self.words.reserve(more, GFP_KERNEL)?)
    }

    /// Words missing for `len` bits.
    fn words_short(&self, len: u64) -> Result<usize> {
        let n = usize::try_from(len.div_ceil(64)).map_err(|_| ENOMEM)?;
        Ok(n.saturating_sub(self.words.len()))
    }

    /// First clear bit at or after `from`.
    pub(crate) fn first_clear(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.len {
            let w = *self.words.as_slice().get((i / 64) as usize)?;
            let clear = !w & (u64::MAX << (i % 64));
            if clear != 0 {
                let b = (i - i % 64) + clear.trailing_zeros() as u64;
                return (b < self.len).then_some(b);
            }
            i = (i - i % 64).saturating_add(64);
        }
        None
    }
}

/// Blocks a [`BlockSet`] chunk covers: 4 KiB of bits, 128 MiB of device.
const CHUNK_BLOCKS: u64 = 8 * 4096;
const CHUNK_WORDS: usize = (CHUNK_BLOCKS / 64) as usize;

/// The blocks in use, as the scan at mount after a crash finds them: a
/// bitmap in chunks of [`CHUNK_BLOCKS`], each allocated when a block of it
/// is first added. Its memory follows the space in use (4 KiB per 128 MiB
/// region with anything in it, plus 24 bytes per region), not the device:
/// a dense bitmap is 8 MiB at 256 GiB and 512 MiB at 16 TiB.
pub(crate) struct BlockSet {
    /// Chunk `i` holds blocks `[i * CHUNK_BLOCKS, (i + 1) * CHUNK_BLOCKS)`;
    /// empty: none of them is in the set.
    chunks: KVVec<KVec<u64>>,
    len: u64,
}

impl BlockSet {
    /// An empty set over blocks `0..len`.
    pub(crate) fn new(len: u64) -> Result<Self> {
        let n = usize::try_from(len.div_ceil(CHUNK_BLOCKS)).map_err(|_| ENOMEM)?;
        let mut chunks = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            chunks.push(KVec::new(), GFP_KERNEL)?;
        }
        Ok(Self { chunks, len })
    }

    /// Adds `[start, start+count)` (clipped to the set). Returns whether
    /// any of those blocks was in the set already.
    pub(crate) fn insert(&mut self, start: u64, count: u64) -> Result<bool> {
        let end = start.saturating_add(count).min(self.len);
        let mut i = start;
        let mut again = false;
        while i < end {
            let chunk = self.chunks.as_mut_slice().get_mut((i / CHUNK_BLOCKS) as usize);
            let chunk = chunk.ok_or(EINVAL)?;
            if chunk.is_empty() {
                *chunk = KVec::from_elem(0u64, CHUNK_WORDS, GFP_KERNEL)?;
            }
            let bit = i % 64;
            let n = (64 - bit).min(end - i);
            if let Some(w) = chunk.as_mut_slice().get_mut(((i % CHUNK_BLOCKS) / 64) as usize) {
                again |= *w & word_mask(bit, n) != 0;
                *w |= word_mask(bit, n);
            }
            i += n;
        }
        Ok(again)
    }

    /// The first block in `[from, end)` that is in the set (`member`) or
    /// not in it (`!member`); `end` if none. A word or an absent chunk at
    /// a time.
    pub(crate) fn find(&self, from: u64, end: u64, member: bool) -> u64 {
        let end = end.min(self.len);
        let mut i = from;
        let mut steps = 0u64;
        while i < end {
            steps += 1;
            crate::shim::resched_every(steps);
            let ci = i / CHUNK_BLOCKS;
            let Some(chunk) = self.chunks.as_slice().get(ci as usize) else { return end };
            if chunk.is_empty() {
                if !member {
                    return i;
                }
                i = ci.saturating_add(1).saturating_mul(CHUNK_BLOCKS);
                continue;
            }
            let w = chunk.as_slice().get(((i % CHUNK_BLOCKS) / 64) as usize).copied();
            let w = w.unwrap_or(0);
            let hits = (if member { w } else { !w }) & (u64::MAX << (i % 64));
            if hits != 0 {
                return ((i - i % 64) + hits.trailing_zeros() as u64).min(end);
            }
            i = (i - i % 64).saturating_add(64);
        }
        end
    }

    /// Bytes of DRAM the set holds (for the mount message).
    pub(crate) fn bytes(&self) -> u64 {
        let chunks = self.chunks.as_slice();
        let used = chunks.iter().filter(|c| !c.is_empty()).count() as u64;
        (chunks.len() as u64)
            .saturating_mul(core::mem::size_of::<KVec<u64>>() as u64)
            .saturating_add(used.saturating_mul(CHUNK_BLOCKS / 8))
    }
}

/// One lane's free space: extents inside its region, its inode slots.
pub(crate) struct Lane {
    /// Free extents: start -> length.
    free: RBTree<u64, u64>,
    free_blocks: u64,
    /// Used inode slots of this lane (bit set = live or reserved).
    slots: Bitmap,
    free_slots: u64,
    /// No slot below this is free.
    slot_hint: u64,
    /// The node of the last removed free extent, for the next insertion:
    /// taking blocks from an extent or merging a freed range with its
    /// neighbours then allocates nothing.
    spare: Option<RBTreeNodeReservation<u64, u64>>,
}

impl Lane {
    /// No free blocks, no inode slots.
    fn empty() -> Result<Self> {
        Ok(Self {
            free: RBTree::new(),
            free_blocks: 0,
            slots: Bitmap::new(0)?,
            free_slots: 0,
            slot_hint: 0,
            spare: None,
        })
    }

    fn insert_free(&mut self, start: u64, len: u64) -> Result {
        let node = match self.spare.take() {
            Some(r) => r.into_node(start, len),
            None => RBTreeNode::new(start, len, GFP_KERNEL)?,
        };
        self.free.insert(node);
        self.free_blocks = self.free_blocks.saturating_add(len);
        Ok(())
    }

    /// Removes the free extent starting at `start`; returns its length.
    fn remove_free(&mut self, start: u64) -> Option<u64> {
        let entry = self.free.find_mut(&start)?;
        let len = *entry.get();
        let node = entry.remove_node();
        if self.spare.is_none() {
            self.spare = Some(node.into_reservation());
        }
        Some(len)
    }

    /// Up to `want` contiguous blocks (at least 1), preferring an extent
    /// that holds all of them. With `color`, prefer a first block congruent
    /// to it modulo [`HUGE`] (so file block `pg` lands on a device block of
    /// the same offset in its 2 MiB: DAX can map the pair with a PMD) in an
    /// extent with room to the end of that 2 MiB unit (so the file's next
    /// blocks can follow contiguously); with `strict`, only such a
    /// placement will do.
    fn alloc(&mut self, want: u64, color: Option<u64>, strict: bool) -> Result<(u64, u64)> {
        let want = want.max(1);
        // (extent start, len, alloc start): the first colored placement,
        // else the first extent holding `want`, else the largest.
        let mut pick: Option<(u64, u64, u64)> = None;
        let mut fit: Option<(u64, u64)> = None;
        let mut best: Option<(u64, u64)> = None;
        for (&s, &l) in self.free.iter() {
            let end = s.saturating_add(l);
            match color {
                Some(c) => {
                    let a = s.saturating_add((c % HUGE + HUGE - s % HUGE) % HUGE);
                    if a.saturating_add(want.max(HUGE - c % HUGE)) <= end {
                        pick = Some((s, l, a));
                        break;
                    }
                }
                None if l >= want => {
                    pick = Some((s, l, s));
                    break;
                }
                None => {}
            }
            if fit.is_none() && l >= want {
                fit = Some((s, l));
            }
            if best.is_none_or(|(_, bl)| l > bl) {
                best = Some((s, l));
            }
        }
        let (s, l, a, n) = match (pick, fit, best) {
            (Some((s, l, a)), _, _) => (s, l, a, want),
            _ if strict => return Err(ENOSPC),
            (None, Some((s, l)), _) => (s, l, s, want),
            (None, None, Some((s, l))) => (s, l, s, l.min(want)),
            (None, None, None) => return Err(ENOSPC),
        };
        self.take(s, l, a, n)
    }

    /// `want` blocks at `goal` (the block after the file's previous one:
    /// the file continues contiguously on the device), if the free extent
    /// holding `goal` has them all and `goal` has the `color` asked for.
    fn alloc_at(&mut self, goal: u64, want: u64, color: Option<u64>) -> Result<Option<(u64, u64)>> {
        let want = want.max(1);
        if color.is_some_and(|c| goal % HUGE != c % HUGE) {
            return Ok(None);
        }
        let found = match self.free.cursor_lower_bound(&goal) {
            Some(c) => {
                let (k, v) = c.current();
                if *k == goal {
                    Some((*k, *v))
                } else {
                    c.peek_prev().map(|(k, v)| (*k, *v))
                }
            }
            None => self.free.cursor_back().map(|c| {
                let (k, v) = c.current();
                (*k, *v)
            }),
        };
        match found {
            Some((s, l)) if s <= goal && goal.saturating_add(want) <= s.saturating_add(l) => {
                self.take(s, l, goal, want).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Takes `[a, a+n)` out of the free extent `[s, s+l)`.
    fn take(&mut self, s: u64, l: u64, a: u64, n: u64) -> Result<(u64, u64)> {
        self.remove_free(s);
        self.free_blocks = self.free_blocks.saturating_sub(l);
        if a > s {
            self.insert_free(s, a - s)?;
        }
        let end = s.saturating_add(l);
        let used = a.saturating_add(n);
        if used < end {
            self.insert_free(used, end - used)?;
        }
        Ok((a, n))
    }

    /// Returns `[start, start+len)` (inside this lane's region), merging
    /// neighbours.
    fn free(&mut self, start: u64, len: u64) -> Result {
        if len == 0 {
            return Ok(());
        }
        let (mut s, mut l) = (start, len);
        let end = start.saturating_add(len);
        // Merge with the extent ending at `start`.
        let (prev, next) = match self.free.cursor_lower_bound(&start) {
            Some(c) => (c.peek_prev().map(|(k, v)| (*k, *v)), Some(*c.current().0)),
            None => (
                self.free.cursor_back().map(|c| {
                    let (k, v) = c.current();
                    (*k, *v)
                }),
                None,
            ),
        };
        // Freeing what is free: two owners of one block (a damaged image
        // mounted from its allocator record) or a bug. The free space
        // stays as it is; fsck sorts out the owners.
        if prev.is_some_and(|(ps, pl)| ps.saturating_add(pl) > start)
            || next.is_some_and(|n| n < end)
        {
            pr_err!("novars: blocks {start}..{end} freed while free (claimed twice?); run fsck.novars\n");
            return Err(crate::shim::err(kernel::bindings::EUCLEAN));
        }
        if let Some((ps, pl)) = prev {
            if ps.saturating_add(pl) == start {
                self.remove_free(ps);
                self.free_blocks = self.free_blocks.saturating_sub(pl);
                s = ps;
                l = l.saturating_add(pl);
            }
        }
        // Merge with the extent starting at the end.
        if let Some(nl) = self.remove_free(start.saturating_add(len)) {
            self.free_blocks = self.free_blocks.saturating_sub(nl);
            l = l.saturating_add(nl);
        }
        self.insert_free(s, l)
    }

    fn alloc_slot(&mut self, first: u64) -> Option<u64> {
        let slot = self.slots.first_clear(self.slot_hint.max(first))?;
        self.slots.set(slot, true);
        self.slot_hint = slot + 1;
        self.free_slots = self.free_slots.saturating_sub(1);
        Some(slot)
    }

    fn free_slot(&mut self, slot: u64) {
        if slot < self.slots.len() && self.slots.get(slot) {
            self.slots.set(slot, false);
            self.free_slots = self.free_slots.saturating_add(1);
            self.slot_hint = self.slot_hint.min(slot);
        }
    }
}

/// Free blocks and inode slots of a mounted file system, per lane.
pub(crate) struct Allocator {
    lanes: KVec<Pin<KBox<Mutex<Lane>>>>,
    /// Free blocks in all lanes, kept as they change: [`Pool::General`]
    /// allocations leave [`Allocator::reserved`] of them.
    free_total: AtomicU64,
    reserve: u64,
    /// The data area: `[first, end)`, lane `i` owning
    /// `[first + i * region, first + (i + 1) * region)` (the last lane to
    /// `end`).
    first: u64,
    end: u64,
    region: u64,
}

impl Allocator {
    /// An allocator with no lanes (before mount has read the geometry).
    pub(crate) fn none() -> Self {
        Self {
            lanes: KVec::new(),
            free_total: AtomicU64::new(0),
            reserve: 0,
            first: 0,
            end: 0,
            region: 1,
        }
    }

    /// No free blocks; inode slots as in `slots` (one map per lane).
    pub(crate) fn new(geo: &Geometry, slots: KVec<Bitmap>) -> Result<Self> {
        let first = geo.first_data_block;
        let end = geo.backup_sb().max(first);
        let n = slots.len().max(1) as u64;
        let per = (end - first).div_ceil(n);
        let region = per.checked_next_multiple_of(HUGE).unwrap_or(per).max(HUGE);
        let mut lanes = KVec::new();
        for bm in slots {
            let free_slots = bm.len().saturating_sub(bm.count_set());
            let lane = Lane {
                free: RBTree::new(),
                free_blocks: 0,
                slots: bm,
                free_slots,
                slot_hint: 0,
                spare: None,
            };
            lanes.push(
                KBox::pin_init(kernel::new_mutex!(lane, "novars_alloc_lane"), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        if lanes.is_empty() {
            return Err(EINVAL);
        }
        let reserve = reserve_for(end - first);
        Ok(Self { lanes, free_total: AtomicU64::new(0), reserve, first, end, region })
    }

    /// Takes over `other`'s free blocks and inode slots (built for the
    /// same geometry), lane by lane: the lazy rebuild after a crash
    /// (`SbInfo::ensure_alloc`) fills the allocator mounted empty. Nothing
    /// else uses `self` meanwhile (every user waits for the rebuild).
    pub(crate) fn install(&self, other: Allocator) -> Result {
        if other.lanes.len() != self.lanes.len()
            || other.first != self.first
            || other.end != self.end
        {
            return Err(EINVAL);
        }
        for (mine, theirs) in self.lanes.iter().zip(other.lanes.iter()) {
            // One lane lock at a time (they share a lock class).
            let empty = Lane::empty()?;
            let content = core::mem::replace(&mut *theirs.lock(), empty);
            *mine.lock() = content;
        }
        self.free_total.store(other.free_total.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(())
    }

    /// Free space = data blocks not in `used`; slots from `slots`.
    pub(crate) fn from_used(geo: &Geometry, used: &BlockSet, slots: KVec<Bitmap>) -> Result<Self> {
        let a = Self::new(geo, slots)?;
        let mut b = a.first;
        let mut runs = 0u64;
        while b < a.end {
            let start = used.find(b, a.end, false);
            if start >= a.end {
                break;
            }
            let stop = used.find(start, a.end, true);
            a.free(start, stop - start)?;
            b = stop;
            runs += 1;
            crate::shim::resched_every(runs);
        }
        Ok(a)
    }

    fn lane(&self, i: usize) -> Result<&Mutex<Lane>> {
        self.lanes.as_slice().get(i).map(|l| &**l).ok_or(EINVAL)
    }

    /// The lane owning block `b` (the last one for anything past it).
    fn lane_of_block(&self, b: u64) -> usize {
        let i = b.saturating_sub(self.first).checked_div(self.region).unwrap_or(0);
        (i as usize).min(self.lanes.len().saturating_sub(1))
    }

    /// Blocks only [`Pool::Reserve`] allocations may take.
    pub(crate) fn reserved(&self) -> u64 {
        self.reserve
    }

    /// The lane of the running CPU (as `Geometry::lane_of_cpu`).
    pub(crate) fn local(&self) -> usize {
        // SAFETY: reading the CPU number has no preconditions; a stale
        // value only picks another lane, which is equally correct.
        let cpu = unsafe { shim::novars_cpu() };
        (cpu as usize).checked_rem(self.lanes.len()).unwrap_or(0)
    }

    /// Allocates up to `want` contiguous blocks (at least 1) from the
    /// running CPU's lane, or from another when it has none. Returns
    /// (first block, count).
    pub(crate) fn alloc(&self, want: u64, pool: Pool) -> Result<(u64, u64)> {
        self.alloc_in_lanes(want, None, false, None, pool)
    }

    /// Exactly `want` contiguous blocks, or `ENOSPC`.
    pub(crate) fn alloc_exact(&self, want: u64, pool: Pool) -> Result<(u64, u64)> {
        self.alloc_in_lanes(want, None, true, None, pool)
    }

    /// Allocates up to `want` blocks for file blocks starting at `pg`. A
    /// large request ([`COLOR_MIN`] blocks or more), or an `append` past
    /// the first 2 MiB of a file, is placed where free space allows so that
    /// `pg` and its device block share their offset in a 2 MiB unit: the
    /// file's 2 MiB-aligned ranges can then be mapped by PMD faults (and a
    /// file growing by small appends stays contiguous and aligned). Other
    /// small requests take the first fit, so small files and single-block
    /// copy-on-write do not fragment the free 2 MiB units. `goal` (the
    /// device block after the one of file block `pg - 1`) is tried first.
    pub(crate) fn alloc_for(
        &self,
        pg: u64,
        want: u64,
        append: bool,
        goal: Option<u64>,
        pool: Pool,
    ) -> Result<(u64, u64)> {
        let color = (want >= COLOR_MIN || (append && pg >= HUGE)).then_some(pg % HUGE);
        self.alloc_in_lanes(want, color, false, goal, pool)
    }

    /// Exactly [`HUGE`] blocks for the 2 MiB-aligned file block `pg`,
    /// device-aligned (a PMD fault), or `ENOSPC` when no lane has such an
    /// extent (the fault then falls back to 4 KiB pages).
    pub(crate) fn alloc_huge(&self, pg: u64, goal: Option<u64>, pool: Pool) -> Result<(u64, u64)> {
        self.alloc_in_lanes(HUGE, Some(pg % HUGE), true, goal, pool)
    }

    /// At `goal` if it is free (in whichever lane owns it), else from the
    /// running CPU's lane, or from another when it has nothing that fits.
    /// Returns (first block, count).
    fn alloc_in_lanes(
        &self,
        want: u64,
        color: Option<u64>,
        strict: bool,
        goal: Option<u64>,
        pool: Pool,
    ) -> Result<(u64, u64)> {
        let mut want = want.max(1);
        if pool == Pool::General {
            // Racing allocations may each see the same free count and dip
            // into the reserve by a little: it is a margin, not an account.
            let avail = self.free_total.load(Ordering::Relaxed).saturating_sub(self.reserve);
            if avail == 0 || (strict && avail < want) {
                return Err(ENOSPC);
            }
            want = want.min(avail);
        }
        let r = self.alloc_from_lanes(want, color, strict, goal);
        if let Ok((_, n)) = r {
            self.free_total.fetch_sub(n, Ordering::Relaxed);
        }
        r
    }

    fn alloc_from_lanes(
        &self,
        want: u64,
        color: Option<u64>,
        strict: bool,
        goal: Option<u64>,
    ) -> Result<(u64, u64)> {
        if let Some(g) = goal.filter(|g| *g >= self.first && *g < self.end) {
            if let Some(r) = self.lane(self.lane_of_block(g))?.lock().alloc_at(g, want, color)? {
                return Ok(r);
            }
        }
        let n = self.lanes.len();
        let me = self.local();
        for k in 0..n {
            match self.lane((me + k) % n)?.lock().alloc(want, color, strict) {
                Err(e) if e == ENOSPC => continue,
                r => return r,
            }
        }
        Err(ENOSPC)
    }

    /// Returns `[start, start+len)` to the free space (to the lanes owning
    /// it), merging neighbours.
    pub(crate) fn free(&self, start: u64, len: u64) -> Result {
        let end = start.checked_add(len).ok_or(EINVAL)?;
        let mut s = start;
        while s < end {
            let i = self.lane_of_block(s);
            let region_end = if i + 1 >= self.lanes.len() {
                u64::MAX
            } else {
                self.first.saturating_add((i as u64 + 1).saturating_mul(self.region))
            };
            let e = end.min(region_end);
            self.lane(i)?.lock().free(s, e - s)?;
            self.free_total.fetch_add(e - s, Ordering::Relaxed);
            s = e;
        }
        Ok(())
    }

    /// Free blocks in all lanes.
    pub(crate) fn free_blocks(&self) -> u64 {
        self.lanes.as_slice().iter().map(|l| l.lock().free_blocks).fold(0, u64::saturating_add)
    }

    /// Free blocks a [`Pool::General`] allocation may take.
    pub(crate) fn available(&self) -> u64 {
        self.free_total.load(Ordering::Relaxed).saturating_sub(self.reserve)
    }

    /// Free inode slots in all lanes.
    pub(crate) fn free_slots(&self) -> u64 {
        self.lanes.as_slice().iter().map(|l| l.lock().free_slots).fold(0, u64::saturating_add)
    }

    /// Free extents in block order (adjacent ones of two lanes merged), for
    /// the allocator record.
    pub(crate) fn extents(&self) -> Result<KVVec<(u64, u64)>> {
        let mut out: KVVec<(u64, u64)> = KVVec::new();
        let mut seen = 0u64;
        for l in self.lanes.as_slice() {
            let g = l.lock();
            for (&s, &n) in g.free.iter() {
                seen += 1;
                crate::shim::resched_every(seen);
                if let Some(last) = out.last_mut() {
                    if last.0.saturating_add(last.1) == s {
                        last.1 = last.1.saturating_add(n);
                        continue;
                    }
                }
                out.push((s, n), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Runs of free inode slots as (lane, first slot, count).
    pub(crate) fn free_slot_runs(&self) -> Result<KVec<(u16, u64, u64)>> {
        let mut out = KVec::new();
        for (lane, l) in self.lanes.as_slice().iter().enumerate() {
            let g = l.lock();
            let bm = &g.slots;
            let mut i = 0;
            while i < bm.len() {
                if bm.get(i) {
                    i += 1;
                    continue;
                }
                let s = i;
                while i < bm.len() && !bm.get(i) {
                    i += 1;
                }
                out.push((lane as u16, s, i - s), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Inode slots in all lanes' tables (inode 0's included).
    pub(crate) fn slots(&self) -> u64 {
        self.lanes.as_slice().iter().map(|l| l.lock().slots.len()).fold(0, u64::saturating_add)
    }

    /// Makes room for `n` more slots in lane `lane`, so that
    /// [`Allocator::add_slots`] cannot fail.
    pub(crate) fn reserve_slots(&self, lane: u32, n: u64) -> Result {
        let mut l = self.lane(lane as usize)?.lock();
        let len = l.slots.len().checked_add(n).ok_or(ENOSPC)?;
        l.slots.reserve_to(len)
    }

    /// `n` new free slots at the end of lane `lane`'s table (a segment
    /// just linked).
    pub(crate) fn add_slots(&self, lane: u32, n: u64) -> Result {
        let mut l = self.lane(lane as usize)?.lock();
        let len = l.slots.len().checked_add(n).ok_or(ENOSPC)?;
        l.slots.grow(len)?;
        l.free_slots = l.free_slots.saturating_add(n);
        Ok(())
    }

    /// Takes a free inode slot, from the running CPU's lane first. Returns
    /// (lane, slot); `ENOSPC` when every table is full (`itable::alloc_slot`
    /// then grows one).
    pub(crate) fn alloc_slot(&self) -> Result<(u32, u64)> {
        let n = self.lanes.len();
        let me = self.local();
        for k in 0..n {
            let lane = (me + k) % n;
            // Slot 0 of lane 0 is inode 0, never used (its bit is set).
            if let Some(slot) = self.lane(lane)?.lock().alloc_slot(0) {
                return Ok((lane as u32, slot));
            }
        }
        Err(ENOSPC)
    }

    /// Returns an inode slot.
    pub(crate) fn free_slot(&self, lane: u32, slot: u64) {
        if let Ok(l) = self.lane(lane as usize) {
            l.lock().free_slot(slot);
        }
    }
}
