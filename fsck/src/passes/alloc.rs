//! Pass 6: the allocator record and the superblock counts.
//!
//! A CLEAN superblock promises that the allocator record (a checksummed
//! chain of extent lists, itself in free blocks) lists exactly the free
//! blocks and free inode slots; a mount trusts it without scanning. fsck
//! compares it with what passes 2-5 computed and rewrites it if it differs.
//! On an image that is not CLEAN the record means nothing (the kernel
//! scans); after a complete repairing check fsck writes a fresh record and
//! marks the file system clean, as e2fsck marks it valid.

use std::collections::{BTreeMap, HashSet};

use layout::alloc_rec::{self, AllocRecError, ALLOC_PER_BLOCK, KIND_BLOCKS, KIND_INODES};
use layout::inode::walk_segments;
use layout::journal::{self, CleanPool, JournalState};
use layout::sb::{STATE_CLEAN, STATE_ERROR};
use layout::Media;

use crate::check::{Counts, Fsck, Repair};
use crate::problem::Code;
use crate::space::merge;

pub const NAME: &str = "allocator record";

/// One record block: kind, lane, extents.
type RecordBlock = (u16, u16, Vec<(u64, u64)>);

/// What an allocator record lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Free block extents, sorted and merged.
    pub blocks: Vec<(u64, u64)>,
    /// Free inode-slot runs per lane, sorted and merged.
    pub inodes: BTreeMap<u32, Vec<(u64, u64)>>,
}

/// Reads the record named by the superblock.
pub fn read_record<M: Media + ?Sized>(
    m: &M,
    f_sb: &layout::Superblock,
    geo: &layout::Geometry,
) -> Result<Record, String> {
    let mut blk = f_sb.alloc_rec_head;
    if blk == 0 {
        return Err("the superblock names no record".into());
    }
    let mut seen = HashSet::new();
    let mut blocks = Vec::new();
    let mut inodes: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    while blk != 0 {
        if !geo.is_data_block(blk) {
            return Err(format!("record block {blk} lies outside the data area"));
        }
        if !seen.insert(blk) {
            return Err(format!("record chain loops at block {blk}"));
        }
        let b = m.block(blk).map_err(|e| format!("record block {blk} unreadable ({e:?})"))?;
        let (h, it) = alloc_rec::parse(&b, f_sb.alloc_rec_seq).map_err(|e| match e {
            AllocRecError::BadHeader => {
                format!("record block {blk}: bad header (magic, kind, count or sequence)")
            }
            AllocRecError::BadChecksum => format!("record block {blk}: checksum mismatch"),
        })?;
        match h.kind {
            KIND_BLOCKS => blocks.extend(it),
            _ => inodes.entry(h.lane as u32).or_default().extend(it),
        }
        blk = h.next;
    }
    blocks.sort_unstable();
    let blocks = merge(blocks);
    for v in inodes.values_mut() {
        v.sort_unstable();
        *v = merge(std::mem::take(v));
    }
    inodes.retain(|_, v| !v.is_empty());
    Ok(Record { blocks, inodes })
}

/// Without `-f`: a CLEAN image with no error flag, idle journals and a
/// readable allocator record needs no full check. Returns the counts.
pub fn quick_clean(f: &Fsck<'_, '_>) -> Option<Counts> {
    if f.sb.state & STATE_CLEAN == 0 || f.sb.state & STATE_ERROR != 0 {
        return None;
    }
    for lane in 0..f.geo.lanes {
        let b = f.m.block(f.geo.journal_block(lane)).ok()?;
        if journal::inspect(b, &f.geo, lane) != Ok(JournalState::Idle) {
            return None;
        }
    }
    read_record(&f.m, &f.sb, &f.geo).ok()?;
    let mut slots = 0u64;
    for lane in 0..f.geo.lanes {
        let n = walk_segments(&f.m, &f.geo, lane, |_, _| {}).ok()?;
        slots = slots.saturating_add(n as u64 * f.geo.seg_inodes as u64);
    }
    let inodes_total = slots.saturating_sub(1);
    Some(Counts {
        inodes_used: inodes_total.saturating_sub(f.sb.free_inodes),
        inodes_total,
        blocks_used: f.geo.blocks_count.saturating_sub(f.sb.free_blocks),
        blocks_total: f.geo.blocks_count,
    })
}

impl Fsck<'_, '_> {
    /// Free inode-slot runs per lane, from the model.
    fn free_inode_runs(&self) -> BTreeMap<u32, Vec<(u64, u64)>> {
        let lanes = self.geo.lanes as u64;
        let mut per: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &ino in &self.free_inos {
            let (lane, slot) = (ino % lanes, ino / lanes);
            per.entry(lane as u32).or_default().push(slot);
        }
        per.into_iter()
            .map(|(lane, mut slots)| {
                slots.sort_unstable();
                (lane, merge(slots.into_iter().map(|s| (s, 1))))
            })
            .collect()
    }

    /// The record fsck computes: free blocks and free slots now.
    fn computed_record(&self) -> Record {
        Record { blocks: merge(self.free_extents()), inodes: self.free_inode_runs() }
    }

    fn total_slots(&self) -> u64 {
        self.lanes.iter().map(|l| l.segments.len() as u64 * self.geo.seg_inodes as u64).sum()
    }

    fn update_counts(&mut self, rec: &Record) {
        let free_blocks = total(&rec.blocks);
        let inodes_total = self.total_slots().saturating_sub(1);
        self.counts = Counts {
            inodes_used: inodes_total.saturating_sub(self.free_inos.len() as u64),
            inodes_total,
            blocks_used: self.geo.blocks_count.saturating_sub(free_blocks),
            blocks_total: self.geo.blocks_count,
        };
    }

    /// Writes `rec` as a new allocator record in blocks taken from the end
    /// of the free space (and still listed as free), with a new sequence;
    /// points the superblock at it, sets its counts, marks it CLEAN.
    fn write_record(&mut self, rec: &Record) -> Repair {
        // (kind, lane, extents) per record block.
        let mut chunks: Vec<RecordBlock> = Vec::new();
        for c in rec.blocks.chunks(ALLOC_PER_BLOCK) {
            chunks.push((KIND_BLOCKS, 0, c.to_vec()));
        }
        for (&lane, runs) in &rec.inodes {
            for c in runs.chunks(ALLOC_PER_BLOCK) {
                chunks.push((KIND_INODES, lane as u16, c.to_vec()));
            }
        }
        if chunks.is_empty() {
            chunks.push((KIND_BLOCKS, 0, Vec::new()));
        }
        // Record blocks: the last free blocks.
        let mut places = Vec::with_capacity(chunks.len());
        'outer: for &(s, l) in rec.blocks.iter().rev() {
            for b in (s..s.saturating_add(l)).rev() {
                if places.len() == chunks.len() {
                    break 'outer;
                }
                places.push(b);
            }
        }
        if places.len() < chunks.len() {
            return Err("not enough free blocks for the allocator record".into());
        }
        let seq = self.sb.alloc_rec_seq.wrapping_add(1).max(1);
        for (i, ((kind, lane, ex), &at)) in chunks.iter().zip(&places).enumerate() {
            let next = places.get(i + 1).copied().unwrap_or(0);
            let b = self.m.block_mut(at).map_err(|e| format!("cannot write the record ({e:?})"))?;
            if !alloc_rec::build(b, *kind, *lane, seq, next, ex) {
                return Err("record block does not encode".into());
            }
        }
        self.sb.alloc_rec_head = places.first().copied().unwrap_or(0);
        self.sb.alloc_rec_seq = seq;
        self.sb.free_blocks = total(&rec.blocks);
        self.sb.free_inodes = self.free_inos.len() as u64;
        self.sb.state = (self.sb.state | STATE_CLEAN) & !STATE_ERROR;
        self.sb_dirty = true;
        Ok(())
    }
}

/// Blocks (or slots) in `extents`, saturating: the lists may come from a
/// damaged record.
fn total<'a>(extents: impl IntoIterator<Item = &'a (u64, u64)>) -> u64 {
    extents.into_iter().fold(0u64, |a, e| a.saturating_add(e.1))
}

/// First difference between two extent lists, for the message.
fn first_difference(a: &[(u64, u64)], b: &[(u64, u64)]) -> Option<u64> {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    match (a.get(i), b.get(i)) {
        (Some(x), Some(y)) => Some(x.0.min(y.0)),
        (Some(x), None) | (None, Some(x)) => Some(x.0),
        (None, None) => None,
    }
}

/// Lane `lane`'s clean pool, if a mount after a crash would trust it.
fn trusted_pool(f: &Fsck<'_, '_>, lane: u32) -> Option<CleanPool> {
    let b = f.m.block(f.geo.journal_block(lane)).ok()?;
    CleanPool::of_block(b).and_then(|p| p.trusted(f.sb.mount_count))
}

/// Drops lane `lane`'s clean pool (its `start` word to none).
fn drop_pool(f: &mut Fsck<'_, '_>, lane: u32) -> Repair {
    let pos = journal::pool_word(&f.geo, lane, journal::POOL_START_OFF);
    f.m.write_u64(pos, journal::POOL_NONE)
        .map_err(|e| format!("cannot write the journal block ({e:?})"))
}

/// The clean pools of an image that was not cleanly unmounted: a mount
/// allocates from a pool at once, so every block of it must be free and
/// every inode slot from its mark on (FORMAT.md "Clean pools").
fn check_pools(f: &mut Fsck<'_, '_>, free: &[(u64, u64)]) {
    for lane in 0..f.geo.lanes {
        let Some(p) = trusted_pool(f, lane) else { continue };
        let mut why = None;
        if p.start < p.end {
            // The free extent holding the pool's first block must hold it all.
            let i = free.partition_point(|&(s, _)| s <= p.start);
            let inside =
                i > 0 && free.get(i - 1).is_some_and(|&(s, l)| s.saturating_add(l) >= p.end);
            if !inside {
                why = Some(format!("blocks {}..{} are not all free", p.start, p.end));
            }
        }
        let slots = f.lanes.get(lane as usize).map_or(0, |l| l.segments.len() as u64)
            * f.geo.seg_inodes as u64;
        if why.is_none() {
            let live = (p.slot_mark..slots)
                .filter_map(|s| f.geo.ino_of(lane, s))
                .find(|ino| *ino != 0 && !f.free_inos.contains(ino));
            if let Some(ino) = live {
                why = Some(format!("inode {ino} is in use past slot mark {}", p.slot_mark));
            }
        }
        if let Some(why) = why {
            f.problem(
                Code::CleanPoolInUse,
                format!("clean pool of lane {lane}"),
                why,
                "drop the pool (the next mount after a crash waits for the rebuild)",
                |f| drop_pool(f, lane),
            );
        }
    }
}

/// Drops every lane's clean pool a mount would trust, if a repair ran: a
/// writing check of an image it does not leave CLEAN may have taken free
/// blocks or slots a pool promised.
fn drop_pools(f: &mut Fsck<'_, '_>) {
    if f.repairs_run == 0 {
        return;
    }
    for lane in 0..f.geo.lanes {
        if trusted_pool(f, lane).is_some() {
            let _ = drop_pool(f, lane);
        }
    }
}

pub fn run(f: &mut Fsck<'_, '_>) {
    let computed = f.computed_record();
    f.update_counts(&computed);
    if !f.was_clean {
        check_pools(f, &computed.blocks);
        return;
    }
    let free_blocks = total(&computed.blocks);
    let free_inodes = f.free_inos.len() as u64;
    let mut rewritten = false;
    match read_record(&f.m, &f.sb, &f.geo) {
        Err(why) => {
            rewritten = f.problem(
                Code::AllocRecBad,
                "allocator record",
                why,
                "rewrite it from the computed free space",
                |f| f.write_record(&computed),
            );
        }
        Ok(rec) if rec != computed => {
            let rb = total(&rec.blocks);
            let ri = total(rec.inodes.values().flatten());
            let mut msg = format!(
                "record lists {rb} free blocks and {ri} free inodes, the file system has {free_blocks} and {free_inodes}"
            );
            if let Some(b) = first_difference(&rec.blocks, &computed.blocks) {
                msg.push_str(&format!("; first difference at block {b}"));
            } else {
                msg.push_str("; the free inode slots differ");
            }
            rewritten = f.problem(
                Code::AllocRecMismatch,
                "allocator record",
                msg,
                "rewrite it from the computed free space",
                |f| f.write_record(&computed),
            );
        }
        Ok(_) => {}
    }
    if !rewritten && (f.sb.free_blocks != free_blocks || f.sb.free_inodes != free_inodes) {
        let msg = format!(
            "superblock counts {} free blocks and {} free inodes, the file system has {free_blocks} and {free_inodes}",
            f.sb.free_blocks, f.sb.free_inodes
        );
        f.problem(Code::SbCounts, "superblock", msg, "correct the counts", |f| {
            f.sb.free_blocks = free_blocks;
            f.sb.free_inodes = free_inodes;
            f.sb_dirty = true;
            Ok(())
        });
    }
}

/// After a complete check that left nothing wrong, in a mode that writes:
/// an image that was not CLEAN (or carried the error flag) gets a fresh
/// record and is marked CLEAN. A preen run that had to stop sets the
/// error flag so the next boot checks again.
pub fn finish(f: &mut Fsck<'_, '_>) {
    if !f.repairing() {
        return;
    }
    if f.preen_halted {
        f.sb.state |= STATE_ERROR;
        f.sb.state &= !STATE_CLEAN;
        f.sb_dirty = true;
        drop_pools(f);
        return;
    }
    let unresolved = f.problems.iter().any(|p| !p.is_note() && !p.fixed());
    if unresolved {
        drop_pools(f);
        return;
    }
    let clean = f.sb.state & STATE_CLEAN != 0 && f.sb.state & STATE_ERROR == 0;
    if clean {
        return;
    }
    let computed = f.computed_record();
    match f.write_record(&computed) {
        Ok(()) => {
            if !clean {
                f.info("marking the file system clean (allocator record written)");
            }
        }
        Err(why) => {
            f.sb.state &= !STATE_CLEAN;
            f.sb_dirty = true;
            drop_pools(f);
            f.info(&format!(
                "cannot write an allocator record ({why}); leaving the file system to be scanned at mount"
            ));
        }
    }
}
