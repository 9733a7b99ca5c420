// SPDX-License-Identifier: GPL-2.0

//! Recovery at mount: roll back open journal transactions, and learn the
//! free space, from the allocator record a clean unmount wrote or, after a
//! crash, by replaying every live inode's log (freeing orphans on a
//! read-write mount). Every value read here is checked by `layout` first.

use crate::alloc::{Allocator, Bitmap, BlockSet, Clean};
use crate::index::ExtentMap;
use crate::layout::alloc_rec::{self, KIND_BLOCKS};
use crate::layout::inode::{read_inode_at, INODE_FREE, INODE_STATE_OFF};
use crate::layout::journal::{self, CleanPool, JournalState, JOURNAL_STATE_OFF, POOL_START_OFF};
use crate::layout::log::Entry;
use crate::layout::sb::{Geometry, Superblock, STATE_CLEAN};
use crate::layout::walk::{Ignore, LogVisitor, Replay, WalkError, XattrReplay};
use crate::layout::{Media, MediaError, BLOCK_SIZE_U64};
use crate::media::DaxMedia;
use crate::pm::Pm;
use crate::smallvec::SmallVec;
use crate::super_::{euclean, SbInfo};
use kernel::prelude::*;

/// Rolls back every open journal transaction; a read-only mount (`rw`
/// false) refuses one instead, with EROFS: it writes nothing.
pub(crate) fn recover_journals(
    m: &DaxMedia,
    pm: &Pm,
    geo: &Geometry,
    dev: &str,
    rw: bool,
) -> Result {
    for lane in 0..geo.lanes {
        let jb = geo.journal_block(lane);
        let block = m.block(jb).map_err(|_| euclean())?;
        match journal::inspect(&block, geo, lane) {
            Ok(JournalState::Idle) => {}
            Ok(JournalState::Open { seq, .. }) if !rw => {
                // Rolling back writes: a read-only mount writes nothing.
                pr_err!(
                    "({dev}): unfinished transaction {seq} in lane {lane}; a read-only mount cannot roll it back: mount read-write or run fsck.novars\n"
                );
                return Err(EROFS);
            }
            Ok(JournalState::Open { seq, count }) => {
                for e in journal::undo_entries(&block, count) {
                    pm.store_u64(e.pos, e.old)?;
                    pm.flush(e.pos, 8)?;
                }
                pm.fence();
                pm.persist_u64(jb * BLOCK_SIZE_U64 + JOURNAL_STATE_OFF as u64, 0)?;
                pr_info!("({dev}): rolled back unfinished transaction {seq} of lane {lane} ({count} words)\n");
            }
            Err(_) => {
                pr_err!("({dev}): journal of lane {lane} is corrupt; run fsck.novars\n");
                return Err(euclean());
            }
        }
    }
    Ok(())
}

/// Empty slot maps (every slot free except inode 0) for each lane.
pub(crate) fn slot_maps(geo: &Geometry, segments: &KVec<KVec<u64>>) -> Result<KVec<Bitmap>> {
    let mut v = KVec::new();
    for segs in segments.as_slice() {
        let mut bm = Bitmap::new(segs.len() as u64 * geo.seg_inodes as u64)?;
        if v.is_empty() {
            bm.set(0, true); // inode 0 is never used
        }
        v.push(bm, GFP_KERNEL)?;
    }
    Ok(v)
}

/// The clean pools a mount after a crash may allocate from at once (layout
/// `CleanPool`): those the crashed mount declared and kept, inside their
/// lane's region and clear of every inode-table segment. None (every
/// change waits for the rebuild) if no lane has one.
pub(crate) fn trusted_pools(
    m: &DaxMedia,
    geo: &Geometry,
    sb: &Superblock,
    segments: &KVec<KVec<u64>>,
) -> Result<KVec<Clean>> {
    let mut out = KVec::with_capacity(geo.lanes as usize, GFP_KERNEL)?;
    let mut any = false;
    for (lane, segs) in segments.as_slice().iter().enumerate() {
        let lane32 = lane as u32;
        let mut w = [0u8; CleanPool::SIZE];
        let pos = journal::pool_word(geo, lane32, POOL_START_OFF);
        let p = m.read(pos, &mut w).ok().and_then(|()| CleanPool::decode(&w));
        let p = p.and_then(|p| p.trusted(sb.mount_count));
        let (rs, re) = Allocator::lane_region(geo, lane32);
        let table = (segs.len() as u64).saturating_mul(geo.seg_inodes as u64);
        let clear_of_tables = |p: &CleanPool| {
            segments
                .as_slice()
                .iter()
                .flat_map(|v| v.as_slice().iter())
                .all(|&seg| seg.saturating_add(geo.seg_blocks()) <= p.start || seg >= p.end)
        };
        let c = match p {
            Some(p) if p.start >= rs && p.end <= re && clear_of_tables(&p) => {
                any = true;
                Clean { start: p.start, end: p.end, mark: p.slot_mark.min(table), pos: 0 }
            }
            _ => Clean::NONE,
        };
        out.push(c, GFP_KERNEL)?;
    }
    Ok(if any { out } else { KVec::new() })
}

/// The allocator from the record written at clean unmount, if valid.
pub(crate) fn alloc_from_record(
    m: &DaxMedia,
    geo: &Geometry,
    sb: &Superblock,
    segments: &KVec<KVec<u64>>,
) -> Result<Option<Allocator>> {
    if sb.state & STATE_CLEAN == 0 || sb.alloc_rec_head == 0 {
        return Ok(None);
    }
    let mut slots = slot_maps(geo, segments)?;
    for bm in slots.as_mut_slice() {
        bm.set_range(0, bm.len());
    }
    let mut exts: KVVec<(u64, u64)> = KVVec::new();
    let mut b = sb.alloc_rec_head;
    let mut hops = 0u64;
    let mut last_end = 0u64;
    // A chain that loops (a damaged `next`) is found within twice its
    // length by Brent's method, in constant memory; then the scan decides.
    let (mut tortoise, mut power, mut lam) = (b, 1u64, 0u64);
    while b != 0 {
        hops += 1;
        crate::shim::resched_every(hops);
        if hops > geo.blocks_count || !geo.is_data_block(b) {
            return Ok(None);
        }
        let Ok(block) = m.block(b) else { return Ok(None) };
        let Ok((h, it)) = alloc_rec::parse(&block, sb.alloc_rec_seq) else { return Ok(None) };
        for (start, len) in it {
            match h.kind {
                KIND_BLOCKS => {
                    // Extents are sorted, disjoint and inside the data area.
                    if start < last_end || !geo.is_data_range(start, len) {
                        return Ok(None);
                    }
                    last_end = start + len;
                    exts.push((start, len), GFP_KERNEL)?;
                }
                _ => {
                    let Some(bm) = slots.as_mut_slice().get_mut(h.lane as usize) else {
                        return Ok(None);
                    };
                    if start.checked_add(len).is_none_or(|e| e > bm.len()) {
                        return Ok(None);
                    }
                    bm.clear_range(start, len);
                    if h.lane == 0 {
                        bm.set(0, true); // inode 0 is never used
                    }
                }
            }
        }
        b = h.next;
        if b == tortoise {
            return Ok(None);
        }
        lam += 1;
        if lam == power {
            (tortoise, power, lam) = (b, power.saturating_mul(2), 0);
        }
    }
    let a = Allocator::new(geo, slots)?;
    for (i, &(start, len)) in exts.as_slice().iter().enumerate() {
        a.free(start, len)?;
        crate::shim::resched_every(i as u64);
    }
    Ok(Some(a))
}

/// What the scan learns from one log, in one walk: the inode's state and
/// block map, its log pages and its attribute value blocks.
struct ScanLog<'a> {
    replay: Replay<'a, ExtentMap, Ignore>,
    /// The log's pages, in chain order (kept apart until the scan knows
    /// whether the inode is an orphan to free).
    pages: SmallVec<u64, 4>,
    /// Attributes, replayed only when the log has `XATTR` entries.
    xattrs: crate::xattr::Xattrs,
    /// Recording a page failed (out of memory).
    failed: Option<Error>,
}

impl LogVisitor for ScanLog<'_> {
    fn page(&mut self, block: u64, ordinal: u64) {
        crate::shim::resched_every(ordinal);
        if let Err(e) = self.pages.push(block) {
            self.failed.get_or_insert(e);
        }
    }
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        self.replay.entry(pos, e);
        if let Entry::Xattr(..) = e {
            XattrReplay(&mut self.xattrs).entry(pos, e);
        }
    }
}

/// What to do with an orphan (a live inode with link count 0: unlinked
/// while open, or O_TMPFILE, when the system went down).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orphans {
    /// Free it now (read-write, nothing else running yet).
    Free,
    /// Leave it for a later mount (read-only).
    Leave,
    /// Read-write while operations run: an inode with no links that is in
    /// the inode cache is one they unlinked (its evict frees it) and
    /// counts as live; one that is not is an orphan of the crash, freed.
    Live,
}

/// The blocks and slots in use, as the logs say.
pub(crate) struct Scanned {
    pub(crate) used: BlockSet,
    /// Per lane, the slots found live.
    pub(crate) slots: KVec<Bitmap>,
}

/// Whether inode `ino` is in the inode cache (in use since the mount).
fn cached(sbi: &SbInfo, ino: u64) -> bool {
    let sb = sbi.vfs_sb();
    // SAFETY: `sb` is this mounted super block (alive while SbInfo is);
    // ilookup returns a referenced inode or NULL, and waits for one being
    // evicted to be gone.
    let i = unsafe { kernel::bindings::ilookup(sb, ino as usize) };
    if i.is_null() {
        return false;
    }
    // SAFETY: `i` is the reference ilookup took.
    unsafe { kernel::bindings::iput(i) };
    true
}

/// One inode's log, read.
struct Read {
    map: ExtentMap,
    pages: SmallVec<u64, 4>,
    xattrs: crate::xattr::Xattrs,
    nlink: u32,
}

/// Why one inode could not be read (logged by the caller, once).
enum Unread {
    Error(Error),
    Inode(MediaError),
    Corrupt,
    Walk(WalkError),
}

/// Reads the slot at `pos` (inode `ino`) and walks its log once: `None`
/// for a free slot.
fn read_one(sbi: &SbInfo, geo: &Geometry, ino: u64, pos: u64) -> Result<Option<Read>, Unread> {
    let m = &sbi.media;
    let raw = read_inode_at(m, pos).map_err(Unread::Inode)?;
    if raw.state == INODE_FREE {
        return Ok(None);
    }
    if raw.validate(ino).is_err() {
        return Err(Unread::Corrupt);
    }
    let mut map = ExtentMap::new();
    let mut ignore = Ignore;
    let mut scan = ScanLog {
        replay: Replay::new(&raw, &mut map, &mut ignore),
        pages: SmallVec::new(0),
        xattrs: crate::xattr::Xattrs::default(),
        failed: None,
    };
    crate::layout::walk::walk_log(m, geo, ino, &raw, &mut scan).map_err(Unread::Walk)?;
    let ScanLog { replay, pages, xattrs, failed } = scan;
    let nlink = replay.view.nlink;
    if let Some(e) = failed {
        return Err(Unread::Error(e));
    }
    if map.failed || xattrs.failed {
        return Err(Unread::Error(ENOMEM));
    }
    Ok(Some(Read { map, pages, xattrs, nlink }))
}

/// The blocks and slots in use, by replaying the log of every live inode
/// of each lane's slots below its pool's mark in `pools` (mount after a crash or
/// without a valid record). With [`Orphans::Collect`] operations run
/// meanwhile: an inode whose log is compacted while it is read is read
/// again (nothing freed meanwhile is reused before the rebuild ends, so
/// what a read finds was that log at some moment; blocks it dropped since
/// were freed, and the merge gives them back once).
pub(crate) fn scan_used(
    sbi: &SbInfo,
    geo: &Geometry,
    segments: &KVec<KVec<u64>>,
    pools: &[Clean],
    orphans: Orphans,
) -> Result<Scanned> {
    let name = sbi.dev();
    let mut used = BlockSet::new(geo.blocks_count)?;
    let mut slots = slot_maps(geo, segments)?;
    let mut freed = 0u64;
    let mut seen = 0u64;
    for (lane, segs) in segments.as_slice().iter().enumerate() {
        let mark = pools.get(lane).map_or(u64::MAX, |c| c.mark);
        for (si, &seg) in segs.as_slice().iter().enumerate() {
            if si > 0 {
                if used.insert(seg, geo.seg_blocks())? {
                    pr_err!("({name}): inode-table segment at block {seg} overlaps another; run fsck.novars\n");
                    return Err(euclean());
                }
            }
            for s in 0..geo.seg_inodes {
                seen += 1;
                crate::shim::resched_every(seen);
                // A shutdown waits for this walk (it counts as a writer):
                // stop at once; the next mount recovers as after a crash.
                if sbi.is_shut_down() {
                    return Err(EIO);
                }
                let slot = si as u64 * geo.seg_inodes as u64 + s as u64;
                if slot >= mark {
                    break;
                }
                let Some(ino) = geo.ino_of(lane as u32, slot) else { continue };
                if ino == 0 {
                    continue;
                }
                let pos = geo.slot_pos(seg, s);
                let mut tries = 0;
                let r = loop {
                    match read_one(sbi, geo, ino, pos) {
                        Err(Unread::Walk(_) | Unread::Corrupt)
                            if orphans == Orphans::Live && tries < 8 =>
                        {
                            // Changed under the read (its log compacted):
                            // read it again.
                            tries += 1;
                            // SAFETY: sleeping has no preconditions; the
                            // scan holds no lock an operation waits for.
                            unsafe { kernel::bindings::msleep(1) };
                        }
                        r => break r,
                    }
                };
                let r = match r {
                    Ok(None) => continue,
                    Ok(Some(r)) => r,
                    Err(Unread::Error(e)) => return Err(e),
                    Err(Unread::Inode(e)) => {
                        pr_err!("({name}): inode {ino} unreadable ({e:?}); run fsck.novars\n");
                        return Err(if matches!(e, MediaError::Io(_)) { EIO } else { euclean() });
                    }
                    Err(Unread::Corrupt) => {
                        pr_err!("({name}): inode {ino} is corrupt; run fsck.novars\n");
                        return Err(euclean());
                    }
                    Err(Unread::Walk(WalkError::Media(MediaError::Io(b)))) => {
                        pr_err!("({name}): inode {ino}: uncorrectable media error in log page {b}; run fsck.novars\n");
                        return Err(EIO);
                    }
                    Err(Unread::Walk(w)) => {
                        pr_err!("({name}): inode {ino}: {}; run fsck.novars\n", w.describe());
                        return Err(euclean());
                    }
                };
                if r.nlink == 0 {
                    match orphans {
                        Orphans::Live if cached(sbi, ino) => {}
                        Orphans::Free | Orphans::Live => {
                            // Its blocks are free by not being counted (an
                            // evict that ran meanwhile deferred its frees,
                            // and the slot is FREE already).
                            sbi.pm.persist_u64(pos + INODE_STATE_OFF, INODE_FREE)?;
                            freed += 1;
                            continue;
                        }
                        Orphans::Leave => sbi.orphan_pending(),
                    }
                }
                for &b in r.pages.iter() {
                    if used.insert(b, 1)? {
                        pr_err!(
                            "({name}): inode {ino}: log page {b} is claimed twice; run fsck.novars\n"
                        );
                        return Err(euclean());
                    }
                }
                for (b, c) in r.map.extents() {
                    if used.insert(b, c)? {
                        pr_err!("({name}): inode {ino}: blocks {b}+{c} are claimed twice; run fsck.novars\n");
                        return Err(euclean());
                    }
                }
                // Attribute values kept in blocks are the inode's too.
                for (b, c) in r.xattrs.value_extents() {
                    if used.insert(b, c)? {
                        pr_err!("({name}): inode {ino}: attribute value blocks {b}+{c} are claimed twice; run fsck.novars\n");
                        return Err(euclean());
                    }
                }
                if let Some(bm) = slots.as_mut_slice().get_mut(lane) {
                    bm.set(slot, true);
                }
            }
        }
    }
    if freed > 0 {
        pr_info!("({name}): freed {freed} orphan inode(s)\n");
    }
    pr_info!("({name}): scanned {seen} inode slots; used-block map {} KiB\n", used.bytes() / 1024);
    Ok(Scanned { used, slots })
}
