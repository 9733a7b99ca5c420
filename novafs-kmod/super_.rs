// SPDX-License-Identifier: GPL-2.0

//! Mounting: map the DAX device, validate the superblock (or its backup),
//! roll back open journals, walk the inode tables, learn the free space
//! (from the allocator record on a clean file system, by replaying every
//! log otherwise), and make the root dentry. Also unmount and statfs.
//!
//! Every number read from the media is validated by `layout` before use; a
//! foreign or damaged image fails with one log line and EINVAL/EUCLEAN.

use crate::index::ExtentMap;
use crate::layout::alloc_rec::{self, KIND_BLOCKS, KIND_INODES};
use crate::layout::inode::{read_inode_at, walk_segments, INODE_FREE};
use crate::layout::journal::{self, JournalState, JOURNAL_STATE_OFF};
use crate::layout::log::MAX_FILE_SIZE;
use crate::layout::sb::{Geometry, Superblock, SbError, STATE_CLEAN};
use crate::layout::walk::{replay_inode, Ignore};
use crate::layout::{Media, BLOCK_SIZE_U64};
use crate::media::DaxMedia;
use crate::pm::Pm;
use crate::shim::{self, Opts, SbC, StatFs};
use core::ffi::{c_int, CStr};
use kernel::bindings;
use kernel::prelude::*;

/// Per-mount state; `sb->s_fs_info` points to it. `c` must stay first: C
/// reads it as `struct novars_sb_c`.
#[repr(C)]
pub(crate) struct SbInfo {
    pub(crate) c: SbC,
    pub(crate) geo: Geometry,
    pub(crate) media: DaxMedia,
    pub(crate) pm: Pm,
    /// Per lane: first block of each inode-table segment, in chain order.
    pub(crate) segments: KVec<KVec<u64>>,
    pub(crate) free_blocks: u64,
    pub(crate) total_inodes: u64,
    pub(crate) used_inodes: u64,
    dev: [u8; 32],
}

impl SbInfo {
    /// The device name, for log lines.
    pub(crate) fn dev(&self) -> &str {
        let end = self.dev.iter().position(|&b| b == 0).unwrap_or(self.dev.len());
        core::str::from_utf8(self.dev.get(..end).unwrap_or(&[])).unwrap_or("?")
    }
}

impl Drop for SbInfo {
    fn drop(&mut self) {
        if !self.c.dax.is_null() {
            // SAFETY: `c` was filled by `novars_dax_map` and is unmapped once.
            unsafe { shim::novars_dax_unmap(&mut self.c) };
        }
    }
}

/// The `SbInfo` of a mounted novars super block.
///
/// # Safety
///
/// `sb` must be a novars super block whose `fill_super` has set
/// `s_fs_info` and whose `put_super` has not run.
pub(crate) unsafe fn sbi<'a>(sb: *mut bindings::super_block) -> &'a SbInfo {
    // SAFETY: per the contract, s_fs_info points to a live SbInfo.
    unsafe { &*(*sb).s_fs_info.cast::<SbInfo>() }
}

fn dev_name(sb: *mut bindings::super_block) -> [u8; 32] {
    let mut out = [0u8; 32];
    // SAFETY: s_id is a NUL-terminated array inside the live super block.
    let id = unsafe { CStr::from_ptr(shim::novars_sb_id(sb)) };
    for (d, s) in out.iter_mut().take(31).zip(id.to_bytes()) {
        *d = *s;
    }
    out
}

fn as_str(d: &[u8; 32]) -> &str {
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    core::str::from_utf8(d.get(..end).unwrap_or(&[])).unwrap_or("?")
}

fn euclean() -> Error {
    shim::err(bindings::EUCLEAN)
}

/// Validates the primary superblock, falling back to the backup in the last
/// block of the device.
fn read_superblock(m: &DaxMedia, dev: &str, silent: bool) -> Result<(Superblock, Geometry)> {
    let blocks = m.blocks();
    let b0 = m.block(0).map_err(|_| EINVAL)?;
    let primary = Superblock::parse(b0, blocks);
    let e = match primary {
        Ok(x) => return Ok(x),
        Err(e) => e,
    };
    let backup = blocks.checked_sub(1).and_then(|b| m.block(b).ok()).map(|b| Superblock::parse(b, blocks));
    match (e, backup) {
        (_, Some(Ok(x))) => {
            pr_warn!("({dev}): primary superblock invalid ({}); using the backup; run fsck.novars\n", e.describe());
            Ok(x)
        }
        (SbError::BadMagic, _) => {
            if !silent {
                pr_err!("({dev}): not a novars file system (no magic number)\n");
            }
            Err(EINVAL)
        }
        (SbError::BadVersion(v), _) => {
            pr_err!("({dev}): unsupported novars format version {v}\n");
            Err(EINVAL)
        }
        (SbError::UnknownIncompat(f), _) => {
            pr_err!("({dev}): unsupported incompatible features {f:#x}\n");
            Err(EINVAL)
        }
        (e, _) => {
            pr_err!("({dev}): corrupted superblock: {}; run fsck.novars\n", e.describe());
            Err(euclean())
        }
    }
}

/// Rolls back every open journal transaction.
fn recover_journals(m: &DaxMedia, pm: &Pm, geo: &Geometry, dev: &str) -> Result {
    for lane in 0..geo.lanes {
        let jb = geo.journal_block(lane);
        let block = m.block(jb).map_err(|_| euclean())?;
        match journal::inspect(block, geo, lane) {
            Ok(JournalState::Idle) => {}
            Ok(JournalState::Open { seq, count }) => {
                for e in journal::undo_entries(block, count) {
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

/// Free blocks and free inode slots from the allocator record, if valid.
fn counts_from_record(m: &DaxMedia, geo: &Geometry, sb: &Superblock) -> Option<(u64, u64)> {
    if sb.state & STATE_CLEAN == 0 || sb.alloc_rec_head == 0 {
        return None;
    }
    let (mut blocks, mut inodes) = (0u64, 0u64);
    let mut b = sb.alloc_rec_head;
    let mut hops = 0u64;
    while b != 0 {
        hops += 1;
        if hops > geo.blocks_count || !geo.is_data_block(b) {
            return None;
        }
        let (h, it) = alloc_rec::parse(m.block(b).ok()?, sb.alloc_rec_seq).ok()?;
        for (_, len) in it {
            match h.kind {
                KIND_BLOCKS => blocks = blocks.checked_add(len)?,
                KIND_INODES => inodes = inodes.checked_add(len)?,
                _ => return None,
            }
        }
        b = h.next;
    }
    (blocks <= geo.data_blocks()).then_some((blocks, inodes))
}

/// Used data blocks and live inodes, by replaying every live inode's log.
fn scan_usage(m: &DaxMedia, geo: &Geometry, segments: &KVec<KVec<u64>>, dev: &str) -> Result<(u64, u64)> {
    let (mut used, mut live) = (0u64, 0u64);
    for (lane, segs) in segments.as_slice().iter().enumerate() {
        // Segments after the first of a lane are allocated data blocks.
        used = used.saturating_add((segs.len() as u64).saturating_sub(1).saturating_mul(geo.seg_blocks()));
        for (si, &seg) in segs.as_slice().iter().enumerate() {
            for s in 0..geo.seg_inodes {
                let slot = si as u64 * geo.seg_inodes as u64 + s as u64;
                let Some(ino) = geo.ino_of(lane as u32, slot) else { continue };
                if ino == 0 {
                    continue;
                }
                let raw = read_inode_at(m, geo.slot_pos(seg, s)).map_err(|_| euclean())?;
                if raw.state == INODE_FREE {
                    continue;
                }
                if raw.validate(ino).is_err() {
                    pr_err!("({dev}): inode {ino} is corrupt; run fsck.novars\n");
                    return Err(euclean());
                }
                let mut map = ExtentMap::new();
                let (_, rep) = replay_inode(m, geo, ino, &raw, &mut map, &mut Ignore).map_err(|w| {
                    pr_err!("({dev}): inode {ino}: {}; run fsck.novars\n", w.describe());
                    euclean()
                })?;
                if map.failed {
                    return Err(ENOMEM);
                }
                used = used.saturating_add(map.mapped_blocks()).saturating_add(rep.pages);
                live += 1;
            }
        }
    }
    Ok((used, live))
}

fn setup(sb: *mut bindings::super_block, c: SbC, opts: &Opts, silent: bool, dev: [u8; 32]) -> Result {
    let name = as_str(&dev);
    let blocks = c.size / BLOCK_SIZE_U64;
    // SAFETY: `novars_dax_map` mapped `[kaddr, kaddr + size)`; the mapping
    // lives until `SbInfo` (which owns `c`) is dropped, after every user.
    let media = unsafe { DaxMedia::new(c.kaddr.cast::<u8>().cast_const(), blocks) };
    // SAFETY: as above; the mapping is writable pmem.
    let pm = unsafe { Pm::new(c.kaddr.cast::<u8>(), c.size) };
    let mut sbi = KBox::new(
        SbInfo {
            c,
            geo: Geometry::plan(256, 1, 64).map_err(|_| EINVAL)?,
            media,
            pm,
            segments: KVec::new(),
            free_blocks: 0,
            total_inodes: 0,
            used_inodes: 0,
            dev,
        },
        GFP_KERNEL,
    )?;
    let (sbk, geo) = read_superblock(&sbi.media, name, silent)?;
    if geo.read_only {
        pr_info!("({name}): unknown read-only-compatible features; read-only mount only\n");
    }
    recover_journals(&sbi.media, &sbi.pm, &geo, name)?;
    let mut segments = KVec::new();
    let mut total_inodes = 0u64;
    for lane in 0..geo.lanes {
        let mut segs = KVec::new();
        let mut oom = false;
        let r = walk_segments(&sbi.media, &geo, lane, |_, b| oom |= segs.push(b, GFP_KERNEL).is_err());
        if oom {
            return Err(ENOMEM);
        }
        if r.is_err() {
            pr_err!("({name}): inode table of lane {lane} is corrupt; run fsck.novars\n");
            return Err(euclean());
        }
        total_inodes = total_inodes.saturating_add(segs.len() as u64 * geo.seg_inodes as u64);
        segments.push(segs, GFP_KERNEL)?;
    }
    total_inodes = total_inodes.saturating_sub(1); // inode 0 is never used
    let (free_blocks, used_inodes) = match counts_from_record(&sbi.media, &geo, &sbk) {
        Some((free, free_inodes)) => (free, total_inodes.saturating_sub(free_inodes.min(total_inodes))),
        None => {
            let (used, live) = scan_usage(&sbi.media, &geo, &segments, name)?;
            (geo.data_blocks().saturating_sub(used), live)
        }
    };
    sbi.geo = geo;
    sbi.segments = segments;
    sbi.free_blocks = free_blocks;
    sbi.total_inodes = total_inodes;
    sbi.used_inodes = used_inodes;
    sbi.c.errors = if opts.flags & shim::OPT_ERRORS_SET != 0 { opts.errors } else { sbk.errors };
    sbi.c.uuid = sbk.uuid;
    // SAFETY: `sb` is the super block being set up, locked by the VFS.
    unsafe {
        (*sb).s_maxbytes = MAX_FILE_SIZE as i64;
        (*sb).s_fs_info = KBox::into_raw(sbi).cast();
    }
    // SAFETY: s_fs_info is set; `novars_iget` reads the root through it.
    let root = unsafe { shim::novars_iget(sb, geo.root_ino) };
    let fail = |e: Error| {
        // SAFETY: undo the s_fs_info assignment above; no inode of this
        // super block holds a reference to SbInfo any more.
        unsafe {
            let p = (*sb).s_fs_info.cast::<SbInfo>();
            (*sb).s_fs_info = core::ptr::null_mut();
            drop(KBox::from_raw(p));
        }
        e
    };
    if root.is_null() || (root as usize) >= (-4095isize) as usize {
        let errno = if root.is_null() { shim::neg(bindings::ENOMEM) } else { root as isize as c_int };
        return Err(fail(Error::from_errno(errno)));
    }
    // SAFETY: `root` is a live inode reference from novars_iget.
    let is_dir = unsafe { (*root).i_mode as u32 & bindings::S_IFMT == bindings::S_IFDIR };
    if !is_dir {
        pr_err!("({name}): root inode is not a directory; run fsck.novars\n");
        // SAFETY: drop the reference novars_iget returned.
        unsafe { bindings::iput(root) };
        return Err(fail(euclean()));
    }
    // SAFETY: d_make_root consumes the inode reference (iput on failure).
    let dentry = unsafe { bindings::d_make_root(root) };
    if dentry.is_null() {
        return Err(fail(ENOMEM));
    }
    // SAFETY: as above.
    unsafe { (*sb).s_root = dentry };
    pr_info!(
        "({name}): mounted read-only; {} lanes, {} of {} inodes used, {} of {} blocks free\n",
        geo.lanes,
        used_inodes,
        total_inodes,
        free_blocks,
        geo.data_blocks()
    );
    Ok(())
}

/// `fill_super` (called by `novars_fill_super_c` with `s_umount` held).
#[no_mangle]
extern "C" fn novars_rs_fill_super(sb: *mut bindings::super_block, opts: *const Opts, silent: c_int) -> c_int {
    let dev = dev_name(sb);
    let name = as_str(&dev);
    // SAFETY: C passes the fs_context's options, alive for the call.
    let opts = unsafe { &*opts };
    // SAFETY: `sb` is live and being set up.
    if unsafe { bindings::sb_set_blocksize(sb, 4096) } == 0 {
        pr_err!("({name}): cannot use 4096-byte blocks on this device\n");
        return shim::neg(bindings::EINVAL);
    }
    // SAFETY: as above.
    if !unsafe { shim::novars_sb_rdonly(sb) } {
        pr_err!("({name}): read-write mounts are not implemented yet; mount with -o ro\n");
        return shim::neg(bindings::EROFS);
    }
    let mut c = SbC::empty();
    // SAFETY: `sb` is live; `c` is ours to fill.
    let r = unsafe { shim::novars_dax_map(sb, &mut c) };
    if r == shim::neg(bindings::EOPNOTSUPP) {
        pr_err!("({name}): device does not support DAX; novars needs a pmem device in fsdax mode\n");
        return shim::neg(bindings::EINVAL);
    }
    if r != 0 {
        pr_err!("({name}): cannot map the device ({r})\n");
        return r;
    }
    // From here `c` is owned by SbInfo, whose Drop unmaps the device on
    // any failure.
    match setup(sb, c, opts, silent != 0, dev) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `put_super`: the last reference is gone; free the per-mount state.
#[no_mangle]
extern "C" fn novars_rs_put_super(sb: *mut bindings::super_block) {
    // SAFETY: called once by the VFS at unmount; s_fs_info is ours.
    unsafe {
        let p = (*sb).s_fs_info.cast::<SbInfo>();
        if !p.is_null() {
            (*sb).s_fs_info = core::ptr::null_mut();
            drop(KBox::from_raw(p));
        }
    }
}

/// statfs numbers.
#[no_mangle]
extern "C" fn novars_rs_statfs(sb: *mut bindings::super_block, out: *mut StatFs) {
    // SAFETY: called on a mounted novars super block.
    let s = unsafe { sbi(sb) };
    let st = StatFs {
        blocks: s.geo.data_blocks(),
        bfree: s.free_blocks,
        files: s.total_inodes,
        ffree: s.total_inodes.saturating_sub(s.used_inodes),
    };
    // SAFETY: `out` points to the caller's struct.
    unsafe { out.write(st) };
}
