// SPDX-License-Identifier: GPL-2.0

//! Mounting: map the DAX device, validate the superblock (or its backup),
//! roll back open journals, walk the inode tables, learn the free space
//! (from the allocator record on a clean file system, by replaying every
//! log otherwise), and make the root dentry. Also mount options
//! (`errors=`, `dax`), remount, unmount and statfs.
//!
//! Every number read from the media is validated by `layout` before use; a
//! foreign or damaged image fails with one log line and EINVAL/EUCLEAN.

use crate::alloc::{Allocator, Clean};
use crate::itable::Tables;
use crate::journal::Lane;
use crate::layout::alloc_rec::{self, ALLOC_PER_BLOCK, KIND_BLOCKS, KIND_INODES};
use crate::layout::inode::walk_segments;
use crate::layout::journal::{self, JournalHeader, POOL_START_OFF, POOL_TAG_OFF};
use crate::layout::log::MAX_FILE_SIZE;
use crate::layout::sb::{
    self, Geometry, SbError, Superblock, SB_ALLOC_HEAD_OFF, SB_ALLOC_SEQ_OFF, SB_FREE_BLOCKS_OFF,
    SB_FREE_INODES_OFF, SB_MOUNT_COUNT_OFF, SB_MOUNT_TIME_OFF, SB_STATE_OFF, SB_WRITE_TIME_OFF,
    STATE_CLEAN, STATE_ERROR,
};
use crate::layout::BLOCK_SIZE;
use crate::layout::{Media, MediaError, BLOCK_SIZE_U64};
use crate::media::DaxMedia;
use crate::pm::Pm;
use crate::recovery::Orphans;
use crate::shim::{self, Opts, SbC, StatFs};
use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Mutex;

/// Per-mount state; `sb->s_fs_info` points to it. `c` must stay first: C
/// reads it as `struct novars_sb_c`.
#[repr(C)]
pub(crate) struct SbInfo {
    pub(crate) c: SbC,
    pub(crate) geo: Geometry,
    /// The superblock has `INCOMPAT_UNWRITTEN`: fallocate may log
    /// unwritten extents (else it zeroes what it allocates, as modules
    /// before that feature read every extent as data).
    pub(crate) unwritten: bool,
    pub(crate) media: DaxMedia,
    pub(crate) pm: Pm,
    /// The inode tables: each lane's segments.
    pub(crate) tables: Tables,
    /// Free blocks and inode slots; empty until [`SbInfo::ensure_alloc`]
    /// has rebuilt them after a crash.
    pub(crate) alloc: Allocator,
    /// `alloc` holds the free space (from the record, or rebuilt).
    alloc_ready: AtomicBool,
    /// Changes wait for the rebuild (a mount after a crash without
    /// trusted clean pools); with them, only a change that finds the
    /// pools empty does.
    wait_rebuild: AtomicBool,
    /// The rebuild still owed after a mount without a valid record.
    rebuild: Pin<KBox<Mutex<Rebuild>>>,
    /// The kernel thread that starts that rebuild at mount (its
    /// `task_struct`, 0 if none); put_super stops it.
    rebuilder: AtomicUsize,
    /// Per-lane journal state.
    pub(crate) lanes: KVec<Pin<KBox<Mutex<Lane>>>>,
    /// Operations that may change the media, in flight
    /// ([`SbInfo::start_write`]); remount to read-only waits for none.
    writers: AtomicUsize,
    /// The superblock's mutable words as last stored, and what remount
    /// and unmount need to know.
    state: Pin<KBox<Mutex<MountState>>>,
    /// Read-write now (changes on remount); see [`SbInfo::start_write`].
    rw: AtomicBool,
    /// Shut down (`FS_IOC_SHUTDOWN`, fsioctl.rs): every call answers EIO
    /// and nothing more is written, not even at unmount.
    shutdown: AtomicBool,
    /// The `errors=` behaviour (`layout::sb::ERRORS_*`; a remount may
    /// change it).
    errors: AtomicU32,
    /// The VFS super block (its address), for `errors=remount-ro`.
    vfs_sb: AtomicUsize,
    dev: [u8; 32],
}

/// What changes between mount and unmount (behind `SbInfo::state`).
struct MountState {
    /// The superblock as last stored.
    sbk: Superblock,
    /// An inode with no links was left LIVE (found by a read-only mount's
    /// scan, or evicted while read-only): the allocator record must not be
    /// saved, so that the next mount scans and frees it.
    orphans_pending: bool,
}

/// The free-space rebuild a mount after a crash leaves to a kernel thread
/// and to whoever needs the free space first (behind `SbInfo::rebuild`).
struct Rebuild {
    /// Each lane's inode-table segments, while the rebuild is owed.
    segments: Option<KVec<KVec<u64>>>,
    /// Each lane's clean pool the mount started from (layout
    /// `CleanPool`): its blocks and slots from its mark on were free at
    /// once; the walk reads the slots below the marks. Without a trusted
    /// pool: nothing, and every slot is read.
    pools: KVec<Clean>,
    /// The mount started from trusted pools: operations run while the
    /// rebuild does (else every change waits for it).
    live: bool,
    /// The rebuild failed (damage, logged): every later use gets this.
    failed: Option<Error>,
}

/// An operation that may change the media is in flight (from
/// [`SbInfo::start_write`] or [`SbInfo::enter`] until dropped).
pub(crate) struct Writing<'a>(&'a SbInfo);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.writers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SbInfo {
    /// Mounted read-write now. Stable while a [`Writing`] is held that
    /// saw it true.
    pub(crate) fn rw(&self) -> bool {
        self.rw.load(Ordering::SeqCst)
    }

    /// Starts an operation that changes the media, or EROFS. Remount to
    /// read-only clears `rw` and then waits until no operation is in
    /// flight: the two SeqCst pairs (count up then read `rw`; clear `rw`
    /// then read the count) make sure one of the two sees the other.
    /// After a shutdown: EIO, checked after the count went up (see
    /// [`SbInfo::shut_down`]).
    pub(crate) fn start_write(&self) -> Result<Writing<'_>> {
        let w = self.enter();
        self.live()?;
        if !self.rw() {
            return Err(EROFS);
        }
        self.wait_rebuild()?;
        Ok(w)
    }

    /// After a crash without trusted clean pools: waits for the rebuild
    /// (see [`SbInfo::ensure_alloc`]); else nothing.
    pub(crate) fn wait_rebuild(&self) -> Result {
        if self.wait_rebuild.load(Ordering::Acquire) {
            self.ensure_alloc()?;
        }
        Ok(())
    }

    /// `f` with the allocator; if it finds no space while the rebuild after
    /// a crash is still running, once more after it (the pools the mount
    /// started from ran out).
    pub(crate) fn with_space<T>(&self, f: impl Fn(&Allocator) -> Result<T>) -> Result<T> {
        match f(&self.alloc) {
            Err(e) if e == ENOSPC && !self.alloc_ready.load(Ordering::Acquire) => {
                self.ensure_alloc()?;
                f(&self.alloc)
            }
            r => r,
        }
    }

    /// The VFS super block.
    pub(crate) fn vfs_sb(&self) -> *mut bindings::super_block {
        self.vfs_sb.load(Ordering::Relaxed) as *mut bindings::super_block
    }

    /// Makes sure the allocator holds the free space: after a mount
    /// without a valid allocator record (a crash), the first caller (the
    /// rebuild thread, as a rule) walks the live inodes' logs (freeing
    /// orphans when read-write) and merges what it found into the
    /// allocator, and every other caller waits for that. With trusted
    /// clean pools changes go on meanwhile (frees deferred, see
    /// `recovery::scan_used`) and only one that empties the pools calls
    /// this ([`SbInfo::with_space`]); without, every change does first
    /// ([`SbInfo::wait_rebuild`]), so nothing is committed, allocated or
    /// freed before it ends. statfs, remount and unmount call it too.
    /// Damage it finds is logged once and fails this and every later
    /// call (EUCLEAN, or EIO for a media error).
    pub(crate) fn ensure_alloc(&self) -> Result {
        if self.alloc_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        // Counted as a writer: it may free orphans (remount to read-only
        // and shutdown wait for it).
        let _w = self.enter();
        let mut r = self.rebuild.lock();
        if self.alloc_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(e) = r.failed {
            return Err(e);
        }
        // After a shutdown nothing is written and nothing will use the
        // free space: the walk is not done (the next mount recovers).
        if self.is_shut_down() {
            return Err(EIO);
        }
        let Some(segments) = r.segments.as_ref() else {
            return Err(EINVAL);
        };
        let rw = self.rw() && !self.is_shut_down();
        let orphans = match (rw, r.live) {
            (false, _) => Orphans::Leave,
            (true, false) => Orphans::Free,
            (true, true) => Orphans::Live,
        };
        let res = crate::recovery::scan_used(self, &self.geo, segments, &r.pools, orphans)
            .and_then(|mut sc| self.alloc.merge(&mut sc.used, &r.pools, &sc.slots));
        match res {
            Ok(()) => {
                r.segments = None;
                if !r.live && rw {
                    // Changes waited for this; from now on the pools are
                    // kept (best effort: without them a crash waits).
                    let tag = self.state.lock().sbk.mount_count;
                    let _ = self.alloc.declare_pools(&self.geo, tag);
                }
                self.alloc_ready.store(true, Ordering::Release);
                self.wait_rebuild.store(false, Ordering::Release);
                pr_info!(
                    "({}): free space rebuilt: {} of {} blocks free\n",
                    self.dev(),
                    self.alloc.free_blocks(),
                    self.geo.data_blocks()
                );
                Ok(())
            }
            Err(e) if e == ENOMEM => Err(e),
            Err(e) if self.is_shut_down() => {
                // The walk stops at a shutdown (which waits for it, as
                // for any writer): not damage, and not to be kept.
                pr_info!("({}): free-space rebuild stopped by the shutdown\n", self.dev());
                Err(e)
            }
            Err(e) => {
                r.failed = Some(e);
                drop(r);
                // The scan logged what it found; errors= decides the rest.
                self.fs_error(format_args!("free space could not be rebuilt ({})", e.to_errno()));
                Err(e)
            }
        }
    }

    /// EIO once the file system is shut down: every entry point asks
    /// (those that change the media through [`SbInfo::start_write`]).
    pub(crate) fn live(&self) -> Result {
        if self.shutdown.load(Ordering::SeqCst) {
            return Err(EIO);
        }
        Ok(())
    }

    /// Shuts the file system down (`FS_IOC_SHUTDOWN`): no operation starts
    /// from now on, and when this returns none is in flight, so nothing
    /// more reaches the media (the caller then unmaps every mapping). The
    /// superblock is left as it is: not CLEAN since the mount, so the next
    /// mount recovers as after a crash. False if it was already down.
    pub(crate) fn shut_down(&self) -> bool {
        // Under the state lock: a superblock store (remount, errors, the
        // label) either finished before or sees the flag.
        let was = {
            let _st = self.state.lock();
            self.shutdown.swap(true, Ordering::SeqCst)
        };
        if was {
            return false;
        }
        // As remount to read-only: the flag, then no writer in flight.
        while self.writers.load(Ordering::SeqCst) != 0 {
            // SAFETY: sleeping has no preconditions; the caller (an ioctl)
            // holds nothing an operation in flight waits for.
            unsafe { bindings::msleep(1) };
        }
        true
    }

    /// The volume label (`FS_IOC_GETFSLABEL`), NUL-padded.
    pub(crate) fn label(&self) -> [u8; 64] {
        self.state.lock().sbk.label
    }

    /// Sets the volume label (`FS_IOC_SETFSLABEL`): EINVAL unless
    /// `Superblock::set_label` takes it. The whole superblock block is
    /// stored again, primary then backup, each durable before the next: a
    /// crash tears at most one copy, whose checksum then fails, and the
    /// mount takes the other (old label or new, never a mix).
    pub(crate) fn set_label(&self, label: &[u8]) -> Result {
        let mut st = self.state.lock();
        self.live()?;
        if !self.rw() {
            return Err(EROFS);
        }
        let mut sbk = st.sbk;
        if !sbk.set_label(label) {
            return Err(EINVAL);
        }
        let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
        if !sbk.write_block(buf.as_mut_slice()) {
            return Err(EINVAL);
        }
        for base in [0, self.geo.backup_sb() * BLOCK_SIZE_U64] {
            self.pm.write_nt(base, buf.as_slice())?;
            self.pm.fence();
        }
        st.sbk = sbk;
        Ok(())
    }

    /// Shut down and so writing nothing more.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Damage found while mounted (`what` says where and what, for the log
    /// line): the superblock records ERROR (fsck then checks in full and
    /// the allocator record is not trusted) and `errors=` decides, as on
    /// ext4: `continue` goes on (the caller returns EUCLEAN), `remount-ro`
    /// refuses every later change with EROFS and marks the mount
    /// read-only, `panic` stops the machine.
    pub(crate) fn fs_error(&self, what: core::fmt::Arguments<'_>) {
        let mode = self.errors.load(Ordering::Relaxed);
        let then = match mode {
            sb::ERRORS_CONTINUE => "",
            sb::ERRORS_PANIC => "; panic forced (errors=panic)",
            _ if self.rw() => "; remounting read-only (errors=remount-ro)",
            _ => "",
        };
        pr_err!("({}): {}; run fsck.novars{}\n", self.dev(), what, then);
        if self.rw() && !self.is_shut_down() {
            let mut st = self.state.lock();
            if st.sbk.state & STATE_ERROR == 0 && !self.is_shut_down() {
                st.sbk.state |= STATE_ERROR;
                let _ = store_sb_words(self, &[(SB_STATE_OFF, st.sbk.state)]);
            }
        }
        match mode {
            sb::ERRORS_CONTINUE => {}
            sb::ERRORS_PANIC => {
                // SAFETY: `panic` takes a NUL-terminated format without
                // conversions; it does not return.
                unsafe { bindings::panic(c"novars: panic forced after an error\n".as_ptr().cast()) }
            }
            _ => {
                if self.rw.swap(false, Ordering::SeqCst) {
                    // SAFETY: `vfs_sb` is the live super block this SbInfo
                    // belongs to (set at fill_super, freed after it).
                    unsafe {
                        shim::novars_sb_set_rdonly(self.vfs_sb.load(Ordering::Relaxed) as *mut _)
                    };
                }
            }
        }
    }

    /// Counts an operation in flight whatever the mount state (evict: on
    /// a read-only mount it only notes an orphan, see [`SbInfo::rw`]).
    pub(crate) fn enter(&self) -> Writing<'_> {
        self.writers.fetch_add(1, Ordering::SeqCst);
        Writing(self)
    }

    /// Notes an orphan left LIVE on a read-only file system.
    pub(crate) fn orphan_pending(&self) {
        self.state.lock().orphans_pending = true;
    }

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
    // SAFETY: `sb` is live; `s_id` is its NUL-terminated device name.
    let id = unsafe { &(*sb).s_id };
    for (d, s) in out.iter_mut().take(31).zip(id.iter().take_while(|b| **b != 0)) {
        *d = *s;
    }
    out
}

fn as_str(d: &[u8; 32]) -> &str {
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    core::str::from_utf8(d.get(..end).unwrap_or(&[])).unwrap_or("?")
}

pub(crate) fn euclean() -> Error {
    shim::err(bindings::EUCLEAN)
}

/// Validates the primary superblock, falling back to the backup in the last
/// block of the device.
fn read_superblock(m: &DaxMedia, dev: &str, silent: bool) -> Result<(Superblock, Geometry)> {
    let blocks = m.blocks();
    let b0 = m.block(0).map_err(|e| {
        pr_err!("({dev}): the superblock is unreadable ({e:?})\n");
        if matches!(e, MediaError::NoMemory(_)) {
            ENOMEM
        } else {
            EIO
        }
    })?;
    let primary = Superblock::parse(&b0, blocks);
    let e = match primary {
        Ok(x) => return Ok(x),
        Err(e) => e,
    };
    let backup = sb::find_backup(&b0, blocks, |b| m.block(b).ok());
    // The backup stands in only for a primary that is novars's (it has
    // the magic) and damaged: a device another mkfs reformatted may keep
    // an old novars backup in its last block, and must not mount as novars.
    // And only its own backup (`find_backup`: same uuid, at the end of the
    // file system it describes), not an earlier, larger one's.
    match (e, backup) {
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
        (_, Ok((b, sbk, geo))) => {
            pr_warn!(
                "({dev}): primary superblock invalid ({}); using the backup in block {b}; run fsck.novars\n",
                e.describe()
            );
            Ok((sbk, geo))
        }
        (e, Err((b, miss))) => {
            pr_err!(
                "({dev}): corrupted superblock: {}; backup (block {b}): {}; run fsck.novars\n",
                e.describe(),
                miss.describe()
            );
            Err(euclean())
        }
    }
}

/// Stores mutable superblock words (outside the checksum) in the primary
/// and then the backup, each durable before the next; `state` is the
/// caller's last word.
fn store_sb_words(sbi: &SbInfo, words: &[(u64, u64)]) -> Result {
    for base in [0, sbi.geo.backup_sb() * BLOCK_SIZE_U64] {
        for &(off, v) in words {
            sbi.pm.store_u64(base + off, v)?;
            sbi.pm.flush(base + off, 8)?;
        }
        sbi.pm.fence();
    }
    Ok(())
}

fn now_sec() -> i64 {
    // SAFETY: reading the clock has no preconditions.
    unsafe { bindings::ktime_get_real_seconds() }
}

/// Saves the allocator record and marks the file system CLEAN (unmount,
/// remount read-only). The caller keeps changes out (no operation in
/// flight and `rw` false, or the last reference gone).
fn save_record(sbi: &SbInfo) -> Result {
    let mut st = sbi.state.lock();
    if sbi.is_shut_down() {
        return Ok(());
    }
    if st.orphans_pending {
        pr_info!("({}): orphan inodes left by a read-only mount; the next mount rebuilds free space and frees them\n", sbi.dev());
        return Ok(());
    }
    let lanes = sbi.geo.lanes;
    let a = &sbi.alloc;
    let blocks = a.extents()?;
    let inodes = a.free_slot_runs()?;
    let free_blocks = a.free_blocks();
    let free_inodes = a.free_slots();
    // Free slot runs, up to ALLOC_PER_BLOCK to a block of one lane:
    // (lane, first run, end) into `runs`.
    let mut runs: KVVec<(u64, u64)> = KVVec::with_capacity(inodes.len(), GFP_KERNEL)?;
    let mut slot_chunks: KVVec<(u16, usize, usize)> = KVVec::new();
    for (i, &(lane, s, l)) in inodes.as_slice().iter().enumerate() {
        runs.push((s, l), GFP_KERNEL)?;
        match slot_chunks.last_mut() {
            Some(c) if c.0 == lane && i - c.1 < ALLOC_PER_BLOCK => c.2 = i + 1,
            _ => slot_chunks.push((lane, i, i + 1), GFP_KERNEL)?,
        }
    }
    // Record blocks: taken from the free space, which they stay part of
    // (the record lists the extents as they were before taking them).
    let need = blocks.len().div_ceil(ALLOC_PER_BLOCK).max(1) + slot_chunks.len();
    let mut rec = KVVec::with_capacity(need, GFP_KERNEL)?;
    for i in 0..need {
        // Unmount must work on a full file system: the reserve too.
        rec.push(a.alloc(1, crate::alloc::Pool::Reserve)?.0, GFP_KERNEL)?;
        crate::shim::resched_every(i as u64);
    }
    for &b in rec.as_slice() {
        a.free(b, 1)?;
    }
    let seq = st.sbk.alloc_rec_seq.wrapping_add(1).max(1);
    let mut buf = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    let mut chunks: KVVec<(u16, u16, &[(u64, u64)])> = KVVec::with_capacity(need, GFP_KERNEL)?;
    for c in blocks.as_slice().chunks(ALLOC_PER_BLOCK) {
        chunks.push((KIND_BLOCKS, 0, c), GFP_KERNEL)?;
    }
    if blocks.is_empty() {
        chunks.push((KIND_BLOCKS, 0, &[]), GFP_KERNEL)?;
    }
    for &(lane, first, end) in slot_chunks.as_slice() {
        chunks.push(
            (KIND_INODES, lane, runs.as_slice().get(first..end).ok_or(EINVAL)?),
            GFP_KERNEL,
        )?;
    }
    let n = chunks.len();
    for (i, (kind, lane, ex)) in chunks.as_slice().iter().enumerate() {
        crate::shim::resched_every(i as u64);
        let next = if i + 1 < n { rec.as_slice().get(i + 1).copied().unwrap_or(0) } else { 0 };
        let b = rec.as_slice().get(i).copied().ok_or(EINVAL)?;
        if !alloc_rec::build(buf.as_mut_slice(), *kind, *lane, seq, next, ex) {
            return Err(EINVAL);
        }
        sbi.pm.write_nt(b * BLOCK_SIZE_U64, buf.as_slice())?;
    }
    sbi.pm.fence();
    let _ = lanes;
    let mut sbk = st.sbk;
    sbk.alloc_rec_head = rec.as_slice().first().copied().unwrap_or(0);
    sbk.alloc_rec_seq = seq;
    sbk.free_blocks = free_blocks;
    sbk.free_inodes = free_inodes;
    sbk.write_time = now_sec();
    store_sb_words(
        sbi,
        &[
            (SB_ALLOC_HEAD_OFF, sbk.alloc_rec_head),
            (SB_ALLOC_SEQ_OFF, seq),
            (SB_FREE_BLOCKS_OFF, free_blocks),
            (SB_FREE_INODES_OFF, free_inodes),
            (SB_WRITE_TIME_OFF, sbk.write_time as u64),
        ],
    )?;
    // The record is durable and named: now (and only now) CLEAN.
    sbk.state |= STATE_CLEAN;
    store_sb_words(sbi, &[(SB_STATE_OFF, sbk.state)])?;
    st.sbk = sbk;
    Ok(())
}

/// Makes the file system writable: the allocator record is stale from now
/// on, so CLEAN is cleared durably before anything can be allocated; the
/// mount count and time are updated as by a read-write mount.
fn start_writing(sbi: &SbInfo) -> Result {
    let mut st = sbi.state.lock();
    sbi.live()?;
    let mut s2 = st.sbk;
    s2.state &= !STATE_CLEAN;
    s2.mount_count = s2.mount_count.wrapping_add(1);
    s2.mount_time = now_sec();
    store_sb_words(sbi, &[(SB_STATE_OFF, s2.state)])?;
    store_sb_words(
        sbi,
        &[(SB_MOUNT_COUNT_OFF, s2.mount_count), (SB_MOUNT_TIME_OFF, s2.mount_time as u64)],
    )?;
    st.sbk = s2;
    Ok(())
}

/// Keeps the clean pools from now on, tagged with this mount's count (set
/// by [`start_writing`]): after a crash, those the mount started from
/// (`pools`, re-tagged, so that a crash during the rebuild finds them
/// again); else each lane's largest free extent and the slots past its
/// last used one.
fn keep_pools(sbi: &SbInfo, pools: &[Clean]) -> Result {
    let tag = sbi.state.lock().sbk.mount_count;
    let geo = &sbi.geo;
    if pools.is_empty() {
        if !sbi.alloc_ready.load(Ordering::Acquire) {
            // A rebuild that every change waits for: no pools until the
            // next mount (or remount read-write) after it.
            return Ok(());
        }
        return sbi.alloc.declare_pools(geo, tag);
    }
    let mut kept = KVec::with_capacity(pools.len(), GFP_KERNEL)?;
    for (lane, c) in pools.iter().enumerate() {
        let pos = journal::pool_word(geo, lane as u32, POOL_START_OFF);
        let w = journal::pool_word(geo, lane as u32, POOL_TAG_OFF);
        sbi.pm.store_u64(w, tag)?;
        sbi.pm.flush(w, 8)?;
        kept.push(Clean { pos, ..*c }, GFP_KERNEL)?;
    }
    sbi.pm.fence();
    sbi.alloc.start_from_pools(&kept)
}

/// Remount between read-write and read-only (`s_umount` held; the VFS has
/// checked that nothing is open for writing when going read-only, and that
/// the device is writable when going read-write).
fn remount(sbi: &SbInfo, ro: bool) -> Result {
    if ro == !sbi.rw() {
        return Ok(());
    }
    if sbi.is_shut_down() {
        // Nothing more is written: read-only is what it already is.
        if ro {
            sbi.rw.store(false, Ordering::SeqCst);
            return Ok(());
        }
        return Err(EIO);
    }
    if ro {
        // The record needs the free space (and a rebuild frees orphans
        // while still read-write); without it (damage, logged) the file
        // system goes read-only all the same, unclean.
        let rebuilt = sbi.ensure_alloc();
        // No new operation starts; wait for those in flight (the VFS has
        // refused the remount if any file is open for writing, so these
        // are at most a few short calls, or none).
        sbi.rw.store(false, Ordering::SeqCst);
        while sbi.writers.load(Ordering::SeqCst) != 0 {
            // SAFETY: sleeping has no preconditions; `s_umount` is held,
            // which no operation in flight waits for.
            unsafe { bindings::msleep(1) };
        }
        // As a clean unmount leaves it: the record, then CLEAN.
        if let Err(e) = rebuilt {
            pr_info!(
                "({}): remounted read-only without an allocator record ({}); the next mount scans\n",
                sbi.dev(),
                e.to_errno()
            );
            return Ok(());
        }
        if let Err(e) = save_record(sbi) {
            sbi.rw.store(true, Ordering::SeqCst);
            pr_err!(
                "({}): could not save the allocator record ({}); staying read-write\n",
                sbi.dev(),
                e.to_errno()
            );
            return Err(e);
        }
        pr_info!("({}): remounted read-only\n", sbi.dev());
    } else {
        if sbi.geo.read_only {
            pr_err!(
                "({}): unknown read-only-compatible features; cannot remount read-write\n",
                sbi.dev()
            );
            return Err(EROFS);
        }
        // The pools need the free space known (a read-only mount after a
        // crash may still be rebuilding it).
        sbi.ensure_alloc()?;
        start_writing(sbi)?;
        keep_pools(sbi, &[])?;
        sbi.rw.store(true, Ordering::SeqCst);
        pr_info!("({}): remounted read-write\n", sbi.dev());
    }
    Ok(())
}

/// `Opts::flags`: `errors=` was given.
const OPT_ERRORS_SET: u32 = 1;
/// `Opts::flags`: `dax` or `dax=always` was given (novars is always DAX;
/// accepted for scripts written for ext4 and xfs).
const OPT_DAX: u32 = 2;

/// The `errors=` values by the names mount(8) and /proc/mounts use.
const ERRORS_NAMES: [(&[u8], u32); 3] = [
    (b"continue", sb::ERRORS_CONTINUE),
    (b"remount-ro", sb::ERRORS_RO),
    (b"panic", sb::ERRORS_PANIC),
];

/// One mount option into `opts`: `errors=continue|remount-ro|panic`,
/// `dax`, `dax=always`. Not a novars option: `ENOPARAM`; a bad value:
/// `EINVAL`.
fn parse_param(opts: &mut Opts, key: &[u8], value: Option<&[u8]>) -> Result {
    match (key, value) {
        (b"errors", Some(v)) => {
            let (_, e) = ERRORS_NAMES.iter().find(|(name, _)| *name == v).ok_or(EINVAL)?;
            opts.errors = *e;
            opts.flags |= OPT_ERRORS_SET;
        }
        (b"dax", None) | (b"dax", Some(b"always")) => opts.flags |= OPT_DAX,
        (b"errors", _) | (b"dax", _) => return Err(EINVAL),
        _ => return Err(shim::err(bindings::ENOPARAM)),
    }
    Ok(())
}

/// fs_context `parse_param` (C hands over the key and the string value,
/// NULL for a flag): 0 or -errno as [`parse_param`].
#[no_mangle]
extern "C" fn novars_rs_parse_param(opts: *mut Opts, key: *const u8, value: *const u8) -> c_int {
    // SAFETY: C passes the fs_context's options and the parameter's
    // NUL-terminated key and value (or NULL), alive for the call.
    let (opts, key, value) = unsafe {
        let value = (!value.is_null()).then(|| CStr::from_char_ptr(value).as_bytes());
        (&mut *opts, CStr::from_char_ptr(key).as_bytes(), value)
    };
    match parse_param(opts, key, value) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `show_options`: the options in force, as [`parse_param`] reads them.
#[no_mangle]
extern "C" fn novars_rs_show_options(
    m: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> c_int {
    // SAFETY: the VFS passes the root dentry of a mounted novars file
    // system.
    let sbi = unsafe { sbi((*root).d_sb) };
    let errors = sbi.errors.load(Ordering::Relaxed);
    let put = |s: &[u8]| {
        // SAFETY: `m` is the VFS's seq_file for this call; `s` is valid for
        // reading. An overflow is noted in `m` (the VFS retries).
        unsafe { bindings::seq_write(m, s.as_ptr().cast(), s.len()) };
    };
    if let Some((name, _)) = ERRORS_NAMES.iter().find(|(_, e)| *e == errors) {
        put(b",errors=");
        put(name);
    }
    put(b",dax");
    0
}

/// `reconfigure` (remount): when the request says read-only or read-write
/// (`ro_given`, `ro`) and that is a change, switch; then the new options
/// apply (an `errors=` given replaces the current one). 0 or -errno.
#[no_mangle]
extern "C" fn novars_rs_reconfigure(
    sb: *mut bindings::super_block,
    opts: *const Opts,
    ro_given: bool,
    ro: bool,
) -> c_int {
    // SAFETY: called on a mounted novars super block, `s_umount` held,
    // with the options parsed for this call.
    let (sbi, opts, was_ro) = unsafe { (sbi(sb), &*opts, shim::novars_sb_rdonly(sb)) };
    if ro_given && ro != was_ro {
        if let Err(e) = remount(sbi, ro) {
            return e.to_errno();
        }
    }
    if opts.flags & OPT_ERRORS_SET != 0 {
        sbi.errors.store(opts.errors, Ordering::Relaxed);
    }
    0
}

fn setup(
    sb: *mut bindings::super_block,
    c: SbC,
    opts: &Opts,
    silent: bool,
    dev: [u8; 32],
) -> Result {
    let blocks = c.size / BLOCK_SIZE_U64;
    // SAFETY: `novars_dax_map` mapped `[kaddr, kaddr + size)`; the mapping
    // lives until `SbInfo` (which owns `c`) is dropped, after every user.
    let media = unsafe { DaxMedia::new(c.kaddr.cast::<u8>().cast_const(), blocks) };
    // SAFETY: as above; the mapping is writable pmem.
    let pm = unsafe { Pm::new(c.kaddr.cast::<u8>(), c.size) };
    // SAFETY: `sb` is live.
    let rw = !unsafe { shim::novars_sb_rdonly(sb) };
    let mut sbi = KBox::new(
        SbInfo {
            c,
            geo: Geometry::plan(256, 1, 64).map_err(|_| EINVAL)?,
            unwritten: false,
            media,
            pm,
            tables: Tables::none()?,
            alloc: Allocator::none()?,
            alloc_ready: AtomicBool::new(true),
            wait_rebuild: AtomicBool::new(false),
            rebuild: KBox::pin_init(
                kernel::new_mutex!(
                    Rebuild { segments: None, pools: KVec::new(), live: false, failed: None },
                    "novars_rebuild"
                ),
                GFP_KERNEL,
            )?,
            rebuilder: AtomicUsize::new(0),
            lanes: KVec::new(),
            writers: AtomicUsize::new(0),
            vfs_sb: AtomicUsize::new(sb as usize),
            state: KBox::pin_init(
                kernel::new_mutex!(
                    MountState { sbk: Superblock::zeroed(), orphans_pending: false },
                    "novars_mount_state"
                ),
                GFP_KERNEL,
            )?,
            rw: AtomicBool::new(rw),
            shutdown: AtomicBool::new(false),
            errors: AtomicU32::new(0),
            dev,
        },
        GFP_KERNEL,
    )?;
    let name = as_str(&dev);
    let (sbk, geo) = read_superblock(&sbi.media, name, silent)?;
    if geo.read_only && rw {
        pr_err!("({name}): unknown read-only-compatible features; mount read-only\n");
        return Err(EROFS);
    }
    crate::recovery::recover_journals(&sbi.media, &sbi.pm, &geo, name, rw)?;
    let mut segments = KVec::new();
    let mut total_inodes = 0u64;
    for lane in 0..geo.lanes {
        let mut segs = KVec::new();
        let mut oom = false;
        let r =
            walk_segments(&sbi.media, &geo, lane, |_, b| oom |= segs.push(b, GFP_KERNEL).is_err());
        if oom {
            return Err(ENOMEM);
        }
        if r.is_err() {
            pr_err!("({name}): inode table of lane {lane} is corrupt; run fsck.novars\n");
            return Err(euclean());
        }
        total_inodes = total_inodes.saturating_add(segs.len() as u64 * geo.seg_inodes as u64);
        segments.push(segs, GFP_KERNEL)?;
        let jb = sbi.media.block(geo.journal_block(lane)).map_err(|_| euclean())?;
        let seq = JournalHeader::decode(&jb).map(|h| h.seq).unwrap_or(0);
        sbi.lanes.push(
            KBox::pin_init(kernel::new_mutex!(Lane { seq }, "novars_lane"), GFP_KERNEL)?,
            GFP_KERNEL,
        )?;
    }
    sbi.geo = geo;
    sbi.unwritten = sbk.feature_incompat & crate::layout::sb::INCOMPAT_UNWRITTEN != 0;
    if sbk.state & STATE_ERROR != 0 {
        pr_warn!("({name}): errors were found while mounted before; run fsck.novars\n");
    }
    let mut pools = KVec::new();
    let alloc = match crate::recovery::alloc_from_record(&sbi.media, &geo, &sbk, &segments)? {
        Some(a) => a,
        None => {
            // No valid record (a crash): the free space is rebuilt from
            // the logs in the background (`SbInfo::ensure_alloc`, started
            // at the end of mount); until then the allocator has the clean
            // pools the crashed mount kept, if they can be trusted, and
            // else nothing to give (every change waits).
            if rw {
                pools = crate::recovery::trusted_pools(&sbi.media, &geo, &sbk, &segments)?;
            }
            let live = !pools.is_empty();
            if sbk.state & STATE_CLEAN == 0 {
                let how = if live {
                    "changes go on meanwhile, from the clean pools"
                } else {
                    "changes wait for it"
                };
                pr_info!("({name}): not cleanly unmounted; free space is rebuilt from the logs in the background ({how})\n");
            }
            let mut copy = KVec::with_capacity(segments.len(), GFP_KERNEL)?;
            for segs in segments.as_slice() {
                let mut v = KVec::with_capacity(segs.len(), GFP_KERNEL)?;
                v.extend_from_slice(segs.as_slice(), GFP_KERNEL)?;
                copy.push(v, GFP_KERNEL)?;
            }
            // Each lane's starting pool (none where it is not trusted) and
            // its slots below the mark, taken until the walk ends.
            let mut from = KVec::with_capacity(geo.lanes as usize, GFP_KERNEL)?;
            let mut none = crate::recovery::slot_maps(&geo, &segments)?;
            for (i, bm) in none.as_mut_slice().iter_mut().enumerate() {
                let c = pools.get(i).copied().unwrap_or(Clean::NONE);
                bm.set_range(0, c.mark.min(bm.len()));
                from.push(c, GFP_KERNEL)?;
            }
            {
                let mut r = sbi.rebuild.lock();
                r.segments = Some(copy);
                r.pools = from;
                r.live = live;
            }
            *sbi.alloc_ready.get_mut() = false;
            *sbi.wait_rebuild.get_mut() = !live;
            Allocator::new(&geo, none)?
        }
    };
    sbi.alloc = alloc;
    // SAFETY: as for `pm` above: the same mapping, for as long as SbInfo
    // (which holds the allocator) lives.
    let view = unsafe { Pm::new(sbi.c.kaddr.cast::<u8>(), sbi.c.size) };
    sbi.alloc.set_pm(view);
    sbi.tables = Tables::new(segments)?;
    *sbi.errors.get_mut() = if opts.flags & OPT_ERRORS_SET != 0 { opts.errors } else { sbk.errors };
    sbi.c.uuid = sbk.uuid;
    sbi.state.lock().sbk = sbk;
    if rw {
        // From now on the allocator record is stale: say so durably before
        // anything is allocated.
        start_writing(&sbi)?;
        keep_pools(&sbi, &pools)?;
    }
    let (free_blocks, free_inodes) = (sbi.alloc.free_blocks(), sbi.alloc.free_slots());
    let ready = *sbi.alloc_ready.get_mut();
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
    if root.is_null() || shim::is_err(root) {
        let errno =
            if root.is_null() { shim::neg(bindings::ENOMEM) } else { root as isize as c_int };
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
    let how = if rw { "read-write" } else { "read-only" };
    if ready {
        pr_info!(
            "({name}): mounted {how}; {} lanes, {} of {} inodes free, {} of {} blocks free\n",
            geo.lanes,
            free_inodes,
            total_inodes.saturating_sub(1),
            free_blocks,
            geo.data_blocks()
        );
    } else {
        pr_info!(
            "({name}): mounted {how}; {} lanes, {} inodes, {} blocks (free space: being rebuilt)\n",
            geo.lanes,
            total_inodes.saturating_sub(1),
            geo.data_blocks()
        );
        // The rebuild starts now in the background; the first change
        // waits only for what is left of it. Without the thread, the
        // first change runs it.
        // SAFETY: `sb` is fully set up (s_fs_info, s_root); put_super
        // stops the thread before s_fs_info goes.
        let t = unsafe { shim::novars_rebuild_start(sb) };
        // SAFETY: s_fs_info is set (above).
        unsafe { self::sbi(sb) }.rebuilder.store(t as usize, Ordering::SeqCst);
    }
    Ok(())
}

/// The super block's `s_magic` and statfs `f_type`: "NVRS".
const STATFS_MAGIC: u32 = u32::from_be_bytes(*b"NVRS");

/// `fill_super` (called by `novars_fill_super_c` with `s_umount` held).
#[no_mangle]
extern "C" fn novars_rs_fill_super(
    sb: *mut bindings::super_block,
    opts: *const Opts,
    silent: c_int,
) -> c_int {
    let dev = dev_name(sb);
    let name = as_str(&dev);
    // SAFETY: C passes the fs_context's options, alive for the call.
    let opts = unsafe { &*opts };
    // SAFETY: `sb` is live and being set up, locked by the VFS.
    unsafe {
        // u32 to unsigned long: lossless.
        (*sb).s_magic = STATFS_MAGIC as usize;
        // Inode times are kept to the nanosecond (`layout::Timespec`).
        (*sb).s_time_gran = 1;
    }
    // SAFETY: `sb` is live and being set up.
    if unsafe { bindings::sb_set_blocksize(sb, 4096) } == 0 {
        pr_err!("({name}): cannot use 4096-byte blocks on this device\n");
        return shim::neg(bindings::EINVAL);
    }
    let mut c = SbC::empty();
    // SAFETY: `sb` is live; `c` is ours to fill.
    let got = unsafe { shim::novars_dax_map(sb, &mut c) };
    if got == shim::neg(bindings::EOPNOTSUPP).into() {
        pr_err!(
            "({name}): device does not support DAX; novars needs a pmem device in fsdax mode\n"
        );
        return shim::neg(bindings::EINVAL);
    }
    // The whole device or nothing: every block is addressed through the one
    // mapping (a page is a block: novars_main.rs).
    let whole = u64::try_from(got).is_ok_and(|pages| pages >= c.size / BLOCK_SIZE_U64);
    if !whole {
        pr_err!("({name}): cannot map the whole device ({got})\n");
        if !c.dax.is_null() {
            // SAFETY: `novars_dax_map` took the device; nothing uses it.
            unsafe { shim::novars_dax_unmap(&mut c) };
        }
        let e = if got < 0 { got } else { shim::neg(bindings::ERANGE).into() };
        return c_int::try_from(e).unwrap_or(shim::neg(bindings::EIO));
    }
    // From here `c` is owned by SbInfo, whose Drop unmaps the device on
    // any failure.
    match setup(sb, c, opts, silent != 0, dev) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The background free-space rebuild after a crash (the thread
/// `novars_rebuild_start` started at mount): an error is logged and left
/// for the first change to return.
#[no_mangle]
extern "C" fn novars_rs_rebuild(sb: *mut bindings::super_block) {
    // SAFETY: the thread runs between the end of mount and put_super,
    // which stops it before freeing SbInfo.
    let s = unsafe { sbi(sb) };
    let _ = s.ensure_alloc();
}

/// `put_super`: the last reference is gone; free the per-mount state.
#[no_mangle]
extern "C" fn novars_rs_put_super(sb: *mut bindings::super_block) {
    // SAFETY: called once by the VFS at unmount, after every inode is
    // evicted; s_fs_info is ours.
    let p = unsafe { (*sb).s_fs_info.cast::<SbInfo>() };
    if p.is_null() {
        return;
    }
    // SAFETY: as above; only the rebuild thread may still use SbInfo:
    // stopped first (kthread_stop waits for it to end).
    let t = unsafe { &*p }.rebuilder.swap(0, Ordering::SeqCst);
    if t != 0 {
        // SAFETY: `t` came from novars_rebuild_start and is stopped once.
        unsafe { shim::novars_rebuild_stop(t as *mut bindings::task_struct) };
    }
    // SAFETY: as above; nothing else uses SbInfo any more.
    let sbi = unsafe { KBox::from_raw(p) };
    if sbi.is_shut_down() {
        pr_info!(
            "({}): unmounted after a shutdown; the next mount recovers as after a crash\n",
            sbi.dev()
        );
    } else if sbi.rw() {
        if let Err(e) = sbi.ensure_alloc().and_then(|()| save_record(&sbi)) {
            pr_err!(
                "({}): could not save the allocator record ({}); the next mount scans\n",
                sbi.dev(),
                e.to_errno()
            );
        }
    }
    // SAFETY: as above.
    unsafe { (*sb).s_fs_info = core::ptr::null_mut() };
    drop(sbi);
}

/// statfs numbers.
#[no_mangle]
extern "C" fn novars_rs_statfs(sb: *mut bindings::super_block, out: *mut StatFs) {
    // SAFETY: called on a mounted novars super block.
    let s = unsafe { sbi(sb) };
    // After a crash the first statfs may rebuild the free space; if that
    // fails (logged), the counts stay those of an empty allocator.
    let _ = s.ensure_alloc();
    // O(lanes): each lane keeps its free counts as they change.
    let geo = &s.geo;
    let bfree = s.alloc.free_blocks();
    let bavail = bfree.saturating_sub(s.alloc.reserved());
    // Inode tables grow into free space (itable.rs): as on file systems
    // with dynamic inodes (xfs), the free inodes are the free slots plus
    // those the available space could still hold as new segments, and the
    // total is the inodes in use plus those.
    let free_slots = s.alloc.free_slots();
    let used = s.alloc.slots().saturating_sub(free_slots).saturating_sub(1); // inode 0
    let growable = (bavail / geo.seg_blocks()).saturating_mul(geo.seg_inodes as u64);
    let ffree = free_slots.saturating_add(growable);
    let st = StatFs {
        blocks: geo.data_blocks(),
        bfree,
        files: used.saturating_add(ffree),
        ffree,
        // The reserve is for operations that free space (alloc.rs Pool).
        bavail,
        namelen: crate::layout::log::NAME_MAX as u64,
    };
    // SAFETY: `out` points to the caller's struct.
    unsafe { out.write(st) };
}
