// SPDX-License-Identifier: GPL-2.0

//! Inode tables at run time (FORMAT.md "Inode numbers and inode tables"):
//! where an inode's record lives, and growing a lane's table by one
//! segment when every slot of every lane is taken, so that the number of
//! files is bounded by space alone.
//!
//! A segment is added by `layout::append::grow_segment`: its blocks zeroed
//! and its header written, a fence, then the previous segment's `next`
//! persisted. Only then do its slots become allocatable, so no inode is
//! ever created in a segment a crash could lose; a crash before the link
//! leaves blocks that nothing reaches, which the next mount's scan frees.

use crate::alloc::Pool;
use crate::layout::append::grow_segment;
use crate::layout::inode::slot_pos_in;
use crate::layout::sb::Geometry;
use crate::log::PmLog;
use crate::super_::SbInfo;
use core::pin::Pin;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// The segments of every lane's table.
pub(crate) struct Tables {
    /// Per lane: first block of each segment, in chain order.
    lanes: KVec<Pin<KBox<Mutex<KVec<u64>>>>>,
    /// Held while a segment is added: one at a time.
    grow: Pin<KBox<Mutex<()>>>,
}

impl Tables {
    /// The tables whose segments (per lane, in chain order) mount found.
    pub(crate) fn new(segments: KVec<KVec<u64>>) -> Result<Self> {
        let mut lanes = KVec::with_capacity(segments.len(), GFP_KERNEL)?;
        for segs in segments {
            lanes.push(
                KBox::pin_init(kernel::new_mutex!(segs, "novars_itable_lane"), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let grow = KBox::pin_init(kernel::new_mutex!((), "novars_itable_grow"), GFP_KERNEL)?;
        Ok(Self { lanes, grow })
    }

    /// Tables of no lane (before mount has read the geometry).
    pub(crate) fn none() -> Result<Self> {
        Self::new(KVec::new())
    }

    fn lane(&self, lane: u32) -> Option<&Mutex<KVec<u64>>> {
        self.lanes.as_slice().get(lane as usize).map(|l| &**l)
    }

    /// Byte position of the record of slot `slot` of lane `lane`, if the
    /// table has that slot.
    pub(crate) fn slot_pos(&self, geo: &Geometry, lane: u32, slot: u64) -> Option<u64> {
        slot_pos_in(geo, self.lane(lane)?.lock().as_slice(), slot)
    }
}

/// Takes a free inode slot (lane, slot), adding a segment to a table when
/// every slot is taken. `ENOSPC` when there is no room for one.
pub(crate) fn alloc_slot(sbi: &SbInfo) -> Result<(u32, u64)> {
    // Others may take the new slots before this caller does: try again,
    // a bounded number of times.
    for _ in 0..4 {
        // After a crash, the slots below the pools' marks are free again
        // only when the rebuild ends: wait for it before growing a table.
        match sbi.with_space(|a| a.alloc_slot()) {
            Err(e) if e == ENOSPC => grow(sbi)?,
            r => return r,
        }
    }
    sbi.alloc.alloc_slot()
}

/// Adds one segment to the running CPU's lane, unless another caller has
/// made slots free meanwhile.
fn grow(sbi: &SbInfo) -> Result {
    let t = &sbi.tables;
    let _g = t.grow.lock();
    if sbi.alloc.free_slots() > 0 {
        return Ok(());
    }
    let geo = &sbi.geo;
    let lane = u32::try_from(sbi.alloc.local()).map_err(|_| EINVAL)?;
    let segs = t.lane(lane).ok_or(EINVAL)?;
    let (prev, index) = {
        let mut g = segs.lock();
        // Room for the new entry now: after the link nothing may fail.
        g.reserve(1, GFP_KERNEL)?;
        (*g.last().ok_or(EINVAL)?, g.len())
    };
    let index = u32::try_from(index).map_err(|_| ENOSPC)?;
    sbi.alloc.reserve_slots(lane, geo.seg_inodes as u64)?;
    let (seg, n) = sbi.with_space(|a| a.alloc_exact(geo.seg_blocks(), Pool::General))?;
    if let Err(e) = grow_segment(&mut PmLog::new(sbi), geo, lane, index, prev, seg) {
        let _ = sbi.alloc.free(seg, n);
        return Err(e);
    }
    // Capacity reserved above: neither can fail now.
    segs.lock().push(seg, GFP_KERNEL)?;
    sbi.alloc.add_slots(lane, geo.seg_inodes as u64)
}
