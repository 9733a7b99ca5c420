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

use crate::layout::journal::{
    self, POOL_END_OFF, POOL_MARK_OFF, POOL_NONE, POOL_START_OFF, POOL_TAG_OFF,
};
use crate::layout::sb::Geometry;
use crate::pm::Pm;
use crate::shim;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

    /// The highest set bit.
    pub(crate) fn last_set(&self) -> Option<u64> {
        let words = self.words.as_slice();
        let i = words.iter().rposition(|&w| w != 0)?;
        let w = *words.get(i)?;
        Some(i as u64 * 64 + 63 - w.leading_zeros() as u64)
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
    /// The lane's clean pool, as its journal block has it.
    clean: Clean,
}

/// A lane's clean pool (layout `CleanPool`, FORMAT.md "Clean pools"):
/// blocks `[start, end)` no committed state references and every slot
/// from `mark` on free. Kept by a read-write mount: what it hands out of
/// the pool moves `start` (or `mark`) past it first, with a store and a
/// flush that the commit's fence orders before the commit. A mount after
/// a crash allocates from it at once, while the logs are walked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clean {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) mark: u64,
    /// Byte position of the pool words on pmem (`journal::pool_word` of
    /// `POOL_START_OFF`); 0: not kept (read-only).
    pub(crate) pos: u64,
}

impl Clean {
    /// No pool, nothing kept.
    pub(crate) const NONE: Clean = Clean { start: 0, end: 0, mark: u64::MAX, pos: 0 };

    fn overlaps(&self, a: u64, n: u64) -> bool {
        a < self.end && a.saturating_add(n) > self.start
    }
}

/// Where word `off` (a `POOL_*_OFF`) of the pool words at `pos` lives.
fn pool_word(pos: u64, off: usize) -> u64 {
    pos + (off - journal::JOURNAL_POOL_OFF) as u64
}

impl Lane {
    /// Moves the pool's `start` past `[a, a+n)` (taken from it), to the
    /// next 2 MiB boundary so that the next takes store nothing.
    fn clean_take(&mut self, pm: &Pm, a: u64, n: u64) -> Result {
        let c = self.clean;
        if c.pos == 0 || !c.overlaps(a, n) || crate::pm::fault(crate::pm::Fault::PoolKeep) {
            return Ok(());
        }
        let end = a.saturating_add(n);
        let to = end.checked_next_multiple_of(HUGE).unwrap_or(end).min(c.end);
        let w = pool_word(c.pos, POOL_START_OFF);
        pm.store_u64(w, to)?;
        pm.flush(w, 8)?;
        self.clean.start = to;
        Ok(())
    }

    /// Makes `[start, end)` (free, every commit that freed it durable) the
    /// pool, with the other words in `more` (`(POOL_*_OFF, value)`):
    /// `start` is set to none and fenced before the others change, so a
    /// crash never leaves a pool that mixes old and new words.
    fn clean_declare(&mut self, pm: &Pm, start: u64, end: u64, more: &[(usize, u64)]) -> Result {
        let pos = self.clean.pos;
        if pos == 0 {
            return Ok(());
        }
        let ws = pool_word(pos, POOL_START_OFF);
        pm.store_u64(ws, POOL_NONE)?;
        pm.flush(ws, 8)?;
        pm.fence();
        // Nothing may be taken from the old pool now: it is gone.
        self.clean.start = self.clean.end;
        for &(off, v) in Iterator::chain(core::iter::once(&(POOL_END_OFF, end)), more) {
            let w = pool_word(pos, off);
            pm.store_u64(w, v)?;
            pm.flush(w, 8)?;
        }
        pm.fence();
        pm.store_u64(ws, start)?;
        pm.flush(ws, 8)?;
        (self.clean.start, self.clean.end) = (start, end);
        Ok(())
    }

    /// The largest free extent.
    fn largest(&self) -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64)> = None;
        for (&s, &l) in self.free.iter() {
            if best.is_none_or(|(_, bl)| l > bl) {
                best = Some((s, l));
            }
        }
        best
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
    fn alloc(
        &mut self,
        pm: &Pm,
        want: u64,
        color: Option<u64>,
        strict: bool,
    ) -> Result<(u64, u64)> {
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
        self.take(pm, s, l, a, n)
    }

    /// `want` blocks at `goal` (the block after the file's previous one:
    /// the file continues contiguously on the device), if the free extent
    /// holding `goal` has them all and `goal` has the `color` asked for.
    fn alloc_at(
        &mut self,
        pm: &Pm,
        goal: u64,
        want: u64,
        color: Option<u64>,
    ) -> Result<Option<(u64, u64)>> {
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
                self.take(pm, s, l, goal, want).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Takes `[a, a+n)` out of the free extent `[s, s+l)`.
    fn take(&mut self, pm: &Pm, s: u64, l: u64, a: u64, n: u64) -> Result<(u64, u64)> {
        // First, while nothing has changed: the pool gives them up.
        self.clean_take(pm, a, n)?;
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
    /// neighbours; a merged extent of 2 MiB or more becomes the clean pool
    /// when the lane has less than that left in its pool.
    fn free(&mut self, pm: Option<&Pm>, start: u64, len: u64) -> Result {
        let (s, l) = self.free_merge(start, len)?;
        let c = self.clean;
        let left = c.end.saturating_sub(c.start);
        if let Some(pm) = pm.filter(|_| c.pos != 0 && left < HUGE && l >= HUGE) {
            // Best effort: without a pool a crash only waits longer.
            let _ = self.clean_declare(pm, s, s.saturating_add(l), &[]);
        }
        Ok(())
    }

    /// [`Lane::free`] without the pool: returns the merged extent.
    fn free_merge(&mut self, start: u64, len: u64) -> Result<(u64, u64)> {
        if len == 0 {
            return Ok((start, 0));
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
        self.insert_free(s, l)?;
        Ok((s, l))
    }

    fn alloc_slot(&mut self, pm: &Pm, first: u64) -> Result<Option<u64>> {
        let Some(slot) = self.slots.first_clear(self.slot_hint.max(first)) else {
            return Ok(None);
        };
        let c = self.clean;
        if c.pos != 0 && slot >= c.mark && !crate::pm::fault(crate::pm::Fault::PoolKeep) {
            // The pool's slots give it up first (64 at a time).
            let to = (slot + 1).next_multiple_of(64);
            let w = pool_word(c.pos, POOL_MARK_OFF);
            pm.store_u64(w, to)?;
            pm.flush(w, 8)?;
            self.clean.mark = to;
        }
        self.slots.set(slot, true);
        self.slot_hint = slot + 1;
        self.free_slots = self.free_slots.saturating_sub(1);
        Ok(Some(slot))
    }

    fn free_slot(&mut self, slot: u64) {
        if slot < self.slots.len() && self.slots.get(slot) {
            self.slots.set(slot, false);
            self.free_slots = self.free_slots.saturating_add(1);
            self.slot_hint = self.slot_hint.min(slot);
        }
    }
}

/// What is freed while the free space is rebuilt after a crash: given
/// to the lanes when the rebuild ends ([`Allocator::merge`]), so that
/// nothing freed meanwhile is taken again while the logs are read.
struct Deferred {
    blocks: KVVec<(u64, u64)>,
    slots: KVVec<(u32, u64)>,
}

/// Free blocks and inode slots of a mounted file system, per lane.
pub(crate) struct Allocator {
    lanes: KVec<Pin<KBox<Mutex<Lane>>>>,
    /// The stores that keep the clean pools (a second view of the
    /// mapping `SbInfo::pm` writes; `None` before mount has it).
    pm: Option<Pm>,
    /// Frees go to `deferred` (the rebuild after a crash is running).
    deferring: AtomicBool,
    deferred: Pin<KBox<Mutex<Deferred>>>,
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
    pub(crate) fn none() -> Result<Self> {
        Ok(Self {
            lanes: KVec::new(),
            pm: None,
            deferring: AtomicBool::new(false),
            deferred: Self::no_deferred()?,
            free_total: AtomicU64::new(0),
            reserve: 0,
            first: 0,
            end: 0,
            region: 1,
        })
    }

    fn no_deferred() -> Result<Pin<KBox<Mutex<Deferred>>>> {
        let d = Deferred { blocks: KVVec::new(), slots: KVVec::new() };
        Ok(KBox::pin_init(kernel::new_mutex!(d, "novars_alloc_deferred"), GFP_KERNEL)?)
    }

    /// The data area `[first, end)` and the size of each lane's region.
    fn regions(geo: &Geometry) -> (u64, u64, u64) {
        let first = geo.first_data_block;
        let end = geo.backup_sb().max(first);
        let n = (geo.lanes as u64).max(1);
        let per = (end - first).div_ceil(n);
        (first, end, per.checked_next_multiple_of(HUGE).unwrap_or(per).max(HUGE))
    }

    /// The blocks lane `lane` owns: `[start, end)`.
    pub(crate) fn lane_region(geo: &Geometry, lane: u32) -> (u64, u64) {
        let (first, end, region) = Self::regions(geo);
        let s = first.saturating_add((lane as u64).saturating_mul(region)).min(end);
        let e = if lane + 1 >= geo.lanes { end } else { s.saturating_add(region).min(end) };
        (s, e)
    }

    /// No free blocks; inode slots as in `slots` (one map per lane).
    pub(crate) fn new(geo: &Geometry, slots: KVec<Bitmap>) -> Result<Self> {
        if slots.len() != geo.lanes as usize {
            return Err(EINVAL);
        }
        let (first, end, region) = Self::regions(geo);
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
                clean: Clean::NONE,
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
        Ok(Self {
            lanes,
            pm: None,
            deferring: AtomicBool::new(false),
            deferred: Self::no_deferred()?,
            free_total: AtomicU64::new(0),
            reserve,
            first,
            end,
            region,
        })
    }

    /// The view of the mapping the clean pools are kept through.
    pub(crate) fn set_pm(&mut self, pm: Pm) {
        self.pm = Some(pm);
    }

    fn pm(&self) -> Result<&Pm> {
        self.pm.as_ref().ok_or(EINVAL)
    }

    /// Declares each lane's clean pool (a read-write mount with the free
    /// space known, or a remount read-write): its largest free extent and
    /// the slots past its last used one, tagged `tag` (the superblock's
    /// `mount_count` of this mount).
    pub(crate) fn declare_pools(&self, geo: &Geometry, tag: u64) -> Result {
        let pm = self.pm()?;
        for (i, l) in self.lanes.as_slice().iter().enumerate() {
            let mut g = l.lock();
            let pos = journal::pool_word(geo, i as u32, POOL_START_OFF);
            g.clean = Clean { start: 0, end: 0, mark: u64::MAX, pos };
            let (s, n) = g.largest().unwrap_or((0, 0));
            let mark = g.slots.last_set().map_or(0, |b| b + 1);
            g.clean_declare(pm, s, s + n, &[(POOL_MARK_OFF, mark), (POOL_TAG_OFF, tag)])?;
            pm.fence();
            g.clean.mark = mark;
        }
        Ok(())
    }

    /// After a crash: each lane's free space is its trusted clean pool
    /// (`pools[lane]`, or nothing), its free slots those from the pool's
    /// mark on (`slots[lane]` has every slot below it set); frees wait for
    /// [`Allocator::merge`]. The pools are kept from now on, re-tagged
    /// `tag` by the caller.
    pub(crate) fn start_from_pools(&self, pools: &[Clean]) -> Result {
        self.deferring.store(true, Ordering::Release);
        for (l, c) in self.lanes.as_slice().iter().zip(pools.iter()) {
            let mut g = l.lock();
            g.clean = *c;
            if c.start < c.end {
                g.insert_free(c.start, c.end - c.start)?;
                self.free_total.fetch_add(c.end - c.start, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Ends the rebuild after a crash: the free space is every data block
    /// not in `used` (what the walk of the logs found in use), outside the
    /// pools the mount started from (`pools`, whose blocks the lanes had
    /// from the start), plus everything freed meanwhile; a lane's slot
    /// below its pool's starting mark is free if `slots_used` has it clear
    /// or it was freed meanwhile.
    pub(crate) fn merge(
        &self,
        used: &mut BlockSet,
        pools: &[Clean],
        slots_used: &KVec<Bitmap>,
    ) -> Result {
        // Frees wait on this lock until the lanes have everything.
        let mut d = self.deferred.lock();
        for c in pools {
            if c.start < c.end {
                used.insert(c.start, c.end - c.start)?;
            }
        }
        for &(b, n) in d.blocks.iter() {
            used.insert(b, n)?;
        }
        let mut b = self.first;
        let mut runs = 0u64;
        while b < self.end {
            let start = used.find(b, self.end, false);
            if start >= self.end {
                break;
            }
            let stop = used.find(start, self.end, true);
            self.free_now(start, stop - start)?;
            b = stop;
            runs += 1;
            crate::shim::resched_every(runs);
        }
        for (i, &(b, n)) in d.blocks.iter().enumerate() {
            // A range freed twice (a bug) is logged by the lane, not fatal.
            let _ = self.free_now(b, n);
            crate::shim::resched_every(i as u64);
        }
        for (i, (l, c)) in self.lanes.as_slice().iter().zip(pools.iter()).enumerate() {
            let mut g = l.lock();
            let seen = slots_used.get(i);
            let top = c.mark.min(g.slots.len());
            for slot in 0..top {
                if !seen.is_some_and(|bm| bm.get(slot)) && !(i == 0 && slot == 0) {
                    g.free_slot(slot);
                }
                crate::shim::resched_every(slot);
            }
        }
        for &(lane, slot) in d.slots.iter() {
            if let Ok(l) = self.lane(lane as usize) {
                l.lock().free_slot(slot);
            }
        }
        d.blocks = KVVec::new();
        d.slots = KVVec::new();
        self.deferring.store(false, Ordering::Release);
        Ok(())
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
        let pm = self.pm()?;
        if let Some(g) = goal.filter(|g| *g >= self.first && *g < self.end) {
            if let Some(r) =
                self.lane(self.lane_of_block(g))?.lock().alloc_at(pm, g, want, color)?
            {
                return Ok(r);
            }
        }
        let n = self.lanes.len();
        let me = self.local();
        for k in 0..n {
            match self.lane((me + k) % n)?.lock().alloc(pm, want, color, strict) {
                Err(e) if e == ENOSPC => continue,
                r => return r,
            }
        }
        Err(ENOSPC)
    }

    /// Returns `[start, start+len)` to the free space (to the lanes owning
    /// it), merging neighbours; while the rebuild after a crash runs, when
    /// it ends.
    pub(crate) fn free(&self, start: u64, len: u64) -> Result {
        if self.deferring.load(Ordering::Acquire) {
            let mut d = self.deferred.lock();
            if self.deferring.load(Ordering::Acquire) {
                start.checked_add(len).ok_or(EINVAL)?;
                d.blocks.push((start, len), GFP_KERNEL)?;
                return Ok(());
            }
        }
        self.free_now(start, len)
    }

    fn free_now(&self, start: u64, len: u64) -> Result {
        let pm = self.pm.as_ref();
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
            self.lane(i)?.lock().free(pm, s, e - s)?;
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
            if let Some(slot) = self.lane(lane)?.lock().alloc_slot(self.pm()?, 0)? {
                return Ok((lane as u32, slot));
            }
        }
        Err(ENOSPC)
    }

    /// Returns an inode slot (while the rebuild after a crash runs, when it
    /// ends; if that list cannot grow, the slot stays taken until the next
    /// rebuild).
    pub(crate) fn free_slot(&self, lane: u32, slot: u64) {
        if self.deferring.load(Ordering::Acquire) {
            let mut d = self.deferred.lock();
            if self.deferring.load(Ordering::Acquire) {
                let _ = d.slots.push((lane, slot), GFP_KERNEL);
                return;
            }
        }
        if let Ok(l) = self.lane(lane as usize) {
            l.lock().free_slot(slot);
        }
    }
}
