// SPDX-License-Identifier: GPL-2.0

//! DRAM indexes rebuilt from an inode's log by `layout::walk::Replay`:
//! the file block map ([`ExtentMap`]) and the directory name index
//! ([`DirMap`]). Allocation failures during replay are remembered and
//! reported by the caller as ENOMEM.

use crate::layout::walk::{DirIndex, FileMap};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};

/// A run of file blocks mapped to device blocks.
#[derive(Clone, Copy)]
pub(crate) struct Ext {
    pub(crate) block: u64,
    pub(crate) count: u64,
    /// Unwritten (`WF_UNWRITTEN`): the file's blocks, reading as zeros.
    pub(crate) unwritten: bool,
}

/// What a file offset maps to.
pub(crate) enum Lookup {
    /// Mapped at `block`, for `run` blocks.
    Mapped { block: u64, run: u64 },
    /// Unwritten blocks from `block`, for `run` blocks: allocated, reading
    /// as zeros until a write converts them.
    Unwritten { block: u64, run: u64 },
    /// A hole for `run` blocks (`u64::MAX`: to the end of the file).
    Hole { run: u64 },
}

/// File block map: non-overlapping extents keyed by first file block.
pub(crate) struct ExtentMap {
    tree: RBTree<u64, Ext>,
    mapped: u64,
    /// An allocation failed while the map was rebuilt.
    pub(crate) failed: bool,
    /// Changes so far: a replay of a long log yields every few thousand.
    ops: u64,
    /// The node of the last removal, for the next insertion: a
    /// copy-on-write replaces an extent by another, and then allocates
    /// nothing.
    spare: Option<RBTreeNodeReservation<u64, Ext>>,
}

impl ExtentMap {
    pub(crate) fn new() -> Self {
        Self { tree: RBTree::new(), mapped: 0, failed: false, ops: 0, spare: None }
    }

    /// Blocks mapped in total.
    pub(crate) fn mapped_blocks(&self) -> u64 {
        self.mapped
    }

    /// Every mapped extent as (first device block, count).
    pub(crate) fn extents(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.tree.values().map(|e| (e.block, e.count))
    }

    /// Every mapped extent as (first file block, first device block,
    /// count, unwritten), in file order.
    pub(crate) fn extents_at(&self) -> impl Iterator<Item = (u64, u64, u64, bool)> + '_ {
        self.tree.iter().map(|(k, e)| (*k, e.block, e.count, e.unwritten))
    }

    /// The extent with the greatest start `<= p`.
    fn pred(&mut self, p: u64) -> Option<(u64, Ext)> {
        match self.tree.cursor_lower_bound(&p) {
            Some(c) => {
                let (k, v) = c.current();
                if *k == p {
                    Some((*k, *v))
                } else {
                    c.peek_prev().map(|(k, v)| (*k, *v))
                }
            }
            None => self.tree.cursor_back().map(|c| {
                let (k, v) = c.current();
                (*k, *v)
            }),
        }
    }

    fn insert(&mut self, k: u64, e: Ext) {
        let node = match self.spare.take() {
            Some(r) => r.into_node(k, e),
            None => match RBTreeNode::new(k, e, GFP_KERNEL) {
                Ok(n) => n,
                Err(_) => {
                    self.failed = true;
                    return;
                }
            },
        };
        self.mapped = self.mapped.saturating_add(e.count);
        if let Some(old) = self.tree.insert(node) {
            let (_, o) = old.to_key_value();
            self.mapped = self.mapped.saturating_sub(o.count);
        }
    }

    fn remove(&mut self, k: u64) {
        if let Some(entry) = self.tree.find_mut(&k) {
            self.mapped = self.mapped.saturating_sub(entry.get().count);
            let node = entry.remove_node();
            if self.spare.is_none() {
                self.spare = Some(node.into_reservation());
            }
        }
    }

    /// The device block that would continue file block `pg - 1`
    /// contiguously (an allocation goal for `pg`), if `pg - 1` is mapped.
    pub(crate) fn goal(&mut self, pg: u64) -> Option<u64> {
        match self.lookup(pg.checked_sub(1)?) {
            Lookup::Mapped { block, .. } | Lookup::Unwritten { block, .. } => block.checked_add(1),
            Lookup::Hole { .. } => None,
        }
    }

    /// What file block `pg` maps to.
    pub(crate) fn lookup(&mut self, pg: u64) -> Lookup {
        if let Some((k, e)) = self.pred(pg) {
            let off = pg - k;
            if off < e.count {
                let (block, run) = (e.block.saturating_add(off), e.count - off);
                return if e.unwritten {
                    Lookup::Unwritten { block, run }
                } else {
                    Lookup::Mapped { block, run }
                };
            }
        }
        match self.tree.cursor_lower_bound(&pg) {
            Some(c) => Lookup::Hole { run: c.current().0.saturating_sub(pg).max(1) },
            None => Lookup::Hole { run: u64::MAX },
        }
    }
}

impl ExtentMap {
    /// Maps `[pgoff, pgoff+count)` to `block..` (`unwritten` or not),
    /// merged with a neighbour of the same kind that continues it on the
    /// device too: a run of extents written separately (appends, faults) is
    /// then one run for `lookup`, which is what lets DAX map a 2 MiB range
    /// with one PMD.
    pub(crate) fn map_as(&mut self, pgoff: u64, block: u64, count: u64, unwritten: bool) {
        self.ops = self.ops.wrapping_add(1);
        crate::shim::resched_every(self.ops);
        self.unmap(pgoff, count);
        if count == 0 {
            return;
        }
        let (mut k, mut e) = (pgoff, Ext { block, count, unwritten });
        if let Some(p) = pgoff.checked_sub(1) {
            if let Some((pk, pe)) = self.pred(p) {
                if pk.checked_add(pe.count) == Some(pgoff)
                    && pe.block.checked_add(pe.count) == Some(block)
                    && pe.unwritten == unwritten
                {
                    if let Some(c) = pe.count.checked_add(count) {
                        self.remove(pk);
                        (k, e) = (pk, Ext { block: pe.block, count: c, unwritten });
                    }
                }
            }
        }
        if let Some(next) = pgoff.checked_add(count) {
            let ne = self.tree.get(&next).copied();
            if let Some(ne) = ne {
                if block.checked_add(count) == Some(ne.block) && ne.unwritten == unwritten {
                    if let Some(c) = e.count.checked_add(ne.count) {
                        self.remove(next);
                        e.count = c;
                    }
                }
            }
        }
        self.insert(k, e);
    }
}

impl FileMap for ExtentMap {
    fn map(&mut self, pgoff: u64, block: u64, count: u64) {
        self.map_as(pgoff, block, count, false);
    }

    fn map_unwritten(&mut self, pgoff: u64, block: u64, count: u64) {
        self.map_as(pgoff, block, count, true);
    }

    fn unmap(&mut self, p: u64, c: u64) {
        let end = p.saturating_add(c);
        // An extent starting before p and reaching into the range.
        if let Some((k, e)) = self.pred(p) {
            let e_end = k.saturating_add(e.count);
            if k < p && e_end > p {
                if let Some(v) = self.tree.get_mut(&k) {
                    v.count = p - k;
                }
                self.mapped = self.mapped.saturating_sub(e_end - p);
                if e_end > end {
                    self.insert(
                        end,
                        Ext {
                            block: e.block.saturating_add(end - k),
                            count: e_end - end,
                            unwritten: e.unwritten,
                        },
                    );
                }
            }
        }
        // Extents starting inside the range.
        loop {
            let next = self.tree.cursor_lower_bound(&p).map(|c| {
                let (k, v) = c.current();
                (*k, *v)
            });
            match next {
                Some((k, e)) if k < end => {
                    self.remove(k);
                    let e_end = k.saturating_add(e.count);
                    if e_end > end {
                        self.insert(
                            end,
                            Ext {
                                block: e.block.saturating_add(end - k),
                                count: e_end - end,
                                unwritten: e.unwritten,
                            },
                        );
                    }
                }
                _ => break,
            }
        }
    }
}

/// One name in a directory.
pub(crate) struct DirEnt {
    pub(crate) name: KVec<u8>,
    pub(crate) ino: u64,
    pub(crate) ftype: u8,
}

/// Directory index: names by the sequence number of their ADD entry (the
/// readdir cookie) and by name hash (collisions kept apart by the sequence
/// in the key and resolved by comparing names).
pub(crate) struct DirMap {
    by_seq: RBTree<u64, DirEnt>,
    by_hash: RBTree<u128, ()>,
    /// An allocation failed while the index was rebuilt.
    pub(crate) failed: bool,
    /// Names added so far: a replay of a long log yields every few
    /// thousand.
    ops: u64,
}

/// FNV-1a: cheap and good enough; collisions are handled.
fn name_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl DirMap {
    pub(crate) fn new() -> Self {
        Self { by_seq: RBTree::new(), by_hash: RBTree::new(), failed: false, ops: 0 }
    }

    /// The sequence number of `name`, if present.
    fn find(&mut self, name: &[u8]) -> Option<u64> {
        let h = name_hash(name) as u128;
        let mut cur = self.by_hash.cursor_lower_bound(&(h << 64))?;
        loop {
            let k = *cur.current().0;
            if k >> 64 != h {
                return None;
            }
            let seq = k as u64;
            if self.by_seq.get(&seq).is_some_and(|e| e.name.as_slice() == name) {
                return Some(seq);
            }
            cur = cur.move_next()?;
        }
    }

    /// The inode `name` refers to.
    pub(crate) fn lookup(&mut self, name: &[u8]) -> Option<u64> {
        let seq = self.find(name)?;
        self.by_seq.get(&seq).map(|e| e.ino)
    }

    /// The (inode, type) `name` refers to.
    pub(crate) fn entry(&mut self, name: &[u8]) -> Option<(u64, u8)> {
        let seq = self.find(name)?;
        self.by_seq.get(&seq).map(|e| (e.ino, e.ftype))
    }

    /// Any name (to test for emptiness).
    pub(crate) fn first(&self) -> Option<u64> {
        self.by_seq.keys().next().copied()
    }

    /// Up to `max` entries with sequence `>= from`, copied out (so the
    /// caller can emit them without holding the directory's lock).
    pub(crate) fn batch(&mut self, from: u64, max: usize) -> Result<KVVec<(u64, DirEnt)>> {
        let mut out = KVVec::new();
        let Some(mut cur) = self.by_seq.cursor_lower_bound(&from) else { return Ok(out) };
        loop {
            let (seq, e) = cur.current();
            let mut name = KVec::new();
            name.extend_from_slice(e.name.as_slice(), GFP_KERNEL)?;
            out.push((*seq, DirEnt { name, ino: e.ino, ftype: e.ftype }), GFP_KERNEL)?;
            crate::shim::resched_every(out.len() as u64);
            if out.len() >= max {
                return Ok(out);
            }
            match cur.move_next() {
                Some(c) => cur = c,
                None => return Ok(out),
            }
        }
    }
}

impl DirIndex for DirMap {
    fn add(&mut self, name: &[u8], ino: u64, ftype: u8, seq: u64) {
        // A replay of a directory of millions of names takes seconds:
        // let others run (RCU stalls otherwise).
        self.ops = self.ops.wrapping_add(1);
        crate::shim::resched_every(self.ops);
        if self.find(name).is_some() {
            // A second ADD of a live name is invalid (fsck: DENTRY_DUPLICATE);
            // like fsck, keep the first binding.
            return;
        }
        let mut n = KVec::new();
        if n.extend_from_slice(name, GFP_KERNEL).is_err() {
            self.failed = true;
            return;
        }
        if self
            .by_seq
            .try_create_and_insert(seq, DirEnt { name: n, ino, ftype }, GFP_KERNEL)
            .is_err()
        {
            self.failed = true;
            return;
        }
        let key = ((name_hash(name) as u128) << 64) | seq as u128;
        if self.by_hash.try_create_and_insert(key, (), GFP_KERNEL).is_err() {
            self.by_seq.remove(&seq);
            self.failed = true;
        }
    }

    fn remove(&mut self, name: &[u8], _ino: u64) {
        self.ops = self.ops.wrapping_add(1);
        crate::shim::resched_every(self.ops);
        if let Some(seq) = self.find(name) {
            self.by_seq.remove(&seq);
            self.by_hash.remove(&(((name_hash(name) as u128) << 64) | seq as u128));
        }
    }
}

impl ExtentMap {
    /// Passes each device range currently mapped (written or not) in
    /// file blocks `[p, p+c)` to `out` (first block, count).
    pub(crate) fn collect(
        &mut self,
        p: u64,
        c: u64,
        mut out: impl FnMut(u64, u64) -> Result,
    ) -> Result {
        let end = p.saturating_add(c);
        let mut pg = p;
        while pg < end {
            match self.lookup(pg) {
                Lookup::Mapped { block, run } | Lookup::Unwritten { block, run } => {
                    let n = run.min(end - pg);
                    out(block, n)?;
                    pg += n;
                }
                Lookup::Hole { run } => pg = pg.saturating_add(run),
            }
        }
        Ok(())
    }
}
