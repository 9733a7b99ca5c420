// SPDX-License-Identifier: GPL-2.0

//! Namespace operations: create (files, directories, device nodes, fifos,
//! sockets, symlinks), link, unlink, rmdir, rename.
//!
//! Each writes its log entries past the committed tails first (invisible),
//! then commits every changed word in one journal transaction (FORMAT.md).
//! Each holds the log locks of every inode whose log it appends to
//! (`locks.rs`, ascending inode number), so operations on other inodes run
//! in parallel; an inode's `inner` lock is held only to read or publish its
//! DRAM state, so readers (lookup, readdir, iomap) run concurrently.
//!
//! Link counts are Rust's: `Inner::nlink`, read under the log locks,
//! checked (EMLINK at [`LINK_MAX`], EUCLEAN for a count that would go
//! below 0) and published with the commit; the entry points then set the
//! VFS inodes to the [`Nlinks`] and times of the operation
//! ([`IAttr::set`]). So are a new inode's owner (set-group-ID directories)
//! and the name and symlink limits.

use crate::alloc::Pool;
use crate::inode::{self, Index, Inner, InodeInfo};
use crate::journal::{Tx, MAX_WORDS};
use crate::layout::append::{LogOwner, NewEntry};
use crate::layout::inode::read_inode_at;
use crate::layout::inode::{
    dt, dt_of_mode, Inode, Timespec, INLINE_MAX, INODE_FREE, INODE_LIVE, INODE_STATE_OFF, LINK_MAX,
    SYMLINK_MAX, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_ISGID,
};
use crate::layout::log::{xa, DE_ADD, DE_DEL};
use crate::layout::walk::DirIndex;
use crate::layout::{BLOCK_SIZE, BLOCK_SIZE_U64};
use crate::locks::lock_logs;
use crate::log::{Appender, LogPos};
use crate::shim::{self, IAttr, OwnerFacts};
use crate::super_::{self, SbInfo};
use core::ffi::{c_int, c_void};
use kernel::bindings;
use kernel::prelude::*;

/// A timestamp from C.
pub(crate) fn ts(sec: i64, nsec: u32) -> Timespec {
    Timespec::new(sec, nsec.min(999_999_999))
}

/// Link counts after a namespace operation, from Rust's own state, for
/// the VFS inodes.
#[derive(Clone, Copy, Default)]
pub(crate) struct Nlinks {
    /// The (old) parent directory.
    pub(crate) dir: u32,
    /// rename: the new parent directory (equal to `dir` in one directory).
    pub(crate) new_dir: u32,
    /// link: the target; unlink and rmdir: the removed inode.
    pub(crate) inode: u32,
    /// rename: the inode the new name named before.
    pub(crate) victim: u32,
}

/// Sets a VFS inode an operation changed: its link count (if `nlink`) and
/// ctime, and mtime too for a directory whose entries changed.
///
/// # Safety
///
/// `inode` must be a live VFS inode the caller holds a reference to.
unsafe fn set_changed(inode: *mut bindings::inode, nlink: Option<u32>, now: Timespec, dir: bool) {
    let mut a = IAttr::default().changed(now, dir);
    if let Some(n) = nlink {
        a = a.nlink(n);
    }
    // SAFETY: per the contract.
    unsafe { a.set(inode) };
}

/// The committed log position of an inode (its lock held only briefly).
fn log_of(info: &InodeInfo) -> LogPos {
    info.inner.lock().log
}

/// The link count of an inode (read under its log lock: stable until the
/// operation publishes a new one).
fn nlink_of(info: &InodeInfo) -> u32 {
    info.inner.lock().nlink
}

/// Publishes an inode's log position and link count after a commit.
fn publish(info: &InodeInfo, pos: LogPos, nlink: u32) {
    let mut g = info.inner.lock();
    g.log = pos;
    g.nlink = nlink;
}

/// A link count one higher than `n`: EMLINK at [`LINK_MAX`].
fn inc_link(n: u32) -> Result<u32> {
    match n.checked_add(1) {
        Some(m) if m <= LINK_MAX => Ok(m),
        _ => Err(shim::err(bindings::EMLINK)),
    }
}

/// A link count one lower than `n` (of inode `ino`): EUCLEAN for 0, a
/// count the media should never have held for a linked inode.
fn dec_link(sbi: &SbInfo, ino: u64, n: u32) -> Result<u32> {
    n.checked_sub(1).ok_or_else(|| {
        sbi.fs_error(format_args!("inode {ino}: link count 0 while linked"));
        shim::err(bindings::EUCLEAN)
    })
}

/// A new inode's mode, uid and gid (as `inode_init_owner()` on a
/// non-idmapped mount): the caller's fsuid; the group of a set-group-ID
/// directory (and a new directory in it keeps the bit), else the caller's
/// fsgid.
fn owner(mode: u32, f: &OwnerFacts) -> (u32, u32, u32) {
    if f.dir_mode & S_ISGID == 0 {
        return (mode, f.fsuid, f.fsgid);
    }
    let mode = if mode & S_IFMT == S_IFDIR { mode | S_ISGID } else { mode };
    (mode, f.fsuid, f.dir_gid)
}

fn dentry(
    ap: &mut Appender<'_>,
    op: u8,
    ino: u64,
    ftype: u8,
    now: Timespec,
    name: &[u8],
) -> Result<u64> {
    ap.push(&NewEntry::Dentry { op, ino, ftype, mtime: now, name })
}

fn link_entry(ap: &mut Appender<'_>, nlink: u32, now: Timespec) -> Result {
    ap.push(&NewEntry::Link { nlink, ctime: now }).map(|_| ())
}

/// A change of `info`'s ctime alone (its log locked): a `LINK` entry with
/// the count it has, 40 bytes where a ctime-only `SETATTR` takes 88, so
/// that it fits a slot log beside another entry (a renamed file is then
/// unlinked without moving its log to a page first).
fn ctime_entry(ap: &mut Appender<'_>, info: &InodeInfo, now: Timespec) -> Result {
    link_entry(ap, nlink_of(info), now)
}

fn parent_entry(ap: &mut Appender<'_>, parent: u64, now: Timespec) -> Result {
    ap.push(&NewEntry::Parent { parent, ctime: now }).map(|_| ())
}

/// Commits several appenders (and extra words) in one transaction.
fn commit(sbi: &SbInfo, aps: &[&Appender<'_>], extra: &[(u64, u64)]) -> Result {
    let mut pos = [0u64; MAX_WORDS];
    let mut val = [0u64; MAX_WORDS];
    let mut n = 0;
    let mut add = |p: u64, v: u64| -> Result {
        if n >= MAX_WORDS {
            return Err(EINVAL);
        }
        pos[n] = p;
        val[n] = v;
        n += 1;
        Ok(())
    };
    for ap in aps {
        let (w, k) = ap.words();
        for &(p, v) in w.iter().take(k) {
            add(p, v)?;
        }
    }
    for &(p, v) in extra {
        add(p, v)?;
    }
    sbi.pm.fence();
    let tx = Tx::begin(sbi, &pos[..n])?;
    for i in 0..n {
        tx.store(pos[i], val[i])?;
    }
    tx.commit()
}

fn dir_index<'b>(inner: &'b mut Inner) -> Result<&'b mut crate::index::DirMap> {
    match &mut inner.index {
        Index::Dir(d) => Ok(d),
        _ => Err(ENOTDIR),
    }
}

/// Everything `create` needs from C (`struct novars_create_args`).
#[repr(C)]
pub(crate) struct CreateArgs {
    /// File type and the permission bits asked for.
    pub(crate) mode: u32,
    /// Symlinks: the target's length.
    pub(crate) tlen: u32,
    pub(crate) owner: OwnerFacts,
    pub(crate) rdev: u64,
    pub(crate) target: *const u8,
    /// The new inode's access and default ACLs as attribute values
    /// (`posix_acl_to_xattr`), or NULL: logged by the creating commit.
    pub(crate) acl: [*const c_void; 2],
    pub(crate) acl_len: [u32; 2],
}

const _: () = assert!(core::mem::size_of::<CreateArgs>() == 64);
const _: () = assert!(core::mem::offset_of!(CreateArgs, acl) == 40);
const _: () = assert!(core::mem::offset_of!(CreateArgs, target) == 32);

impl CreateArgs {
    /// The new inode's ACLs as attribute values, if any: (index, value)
    /// for the access and the default ACL.
    fn acls(&self) -> Result<[(u8, Option<&[u8]>); 2]> {
        let value = |i: usize| -> Result<Option<&[u8]>> {
            let (p, n) = (*self.acl.get(i).ok_or(EINVAL)?, *self.acl_len.get(i).ok_or(EINVAL)?);
            if p.is_null() || n == 0 {
                return Ok(None);
            }
            // SAFETY: C passes `acl_len[i]` bytes at `acl[i]` (its
            // `posix_acl_to_xattr` buffer), alive for the call.
            Ok(Some(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n as usize) }))
        };
        Ok([(xa::ACL_ACCESS, value(0)?), (xa::ACL_DEFAULT, value(1)?)])
    }
}

/// A new inode's own log while it is prepared, and the blocks its entries
/// name (a long symlink's target, large ACL values): all given back if
/// the creation does not commit.
struct NewLog<'a> {
    ap: Appender<'a>,
    /// (first block, count); count 0: none.
    blocks: [(u64, u64); 3],
}

impl<'a> NewLog<'a> {
    /// The log of `ni` (number `ino`, record at `rec`) in `d`, started
    /// (empty) if there is none yet: in the record while it fits, if the
    /// inode may have a slot log (the record is written after, around it).
    fn of<'d>(
        d: &'d mut Option<NewLog<'a>>,
        sbi: &'a SbInfo,
        ino: u64,
        ni: &Inode,
        rec: u64,
    ) -> &'d mut NewLog<'a> {
        let owner = LogOwner::of(&sbi.geo, ino, ni, rec);
        d.get_or_insert_with(|| NewLog {
            ap: Appender::new(sbi, owner, rec, Default::default()),
            blocks: [(0, 0); 3],
        })
    }

    fn abort(self, sbi: &SbInfo) {
        self.ap.abort();
        for (b, n) in self.blocks {
            if n != 0 {
                let _ = sbi.alloc.free(b, n);
            }
        }
    }
}

/// What a new inode record gets from its creator.
struct NewInode {
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
}

/// The record of a new inode in free slot `(lane, slot)`: attributes from
/// `a`, times `now`; the caller adds what else it needs and writes it with
/// [`write_record`]. Returns (ino, record position, record).
fn blank_inode(
    sbi: &SbInfo,
    lane: u32,
    slot: u64,
    a: &NewInode,
    nlink: u32,
    parent: u64,
    now: Timespec,
) -> Result<(u64, u64, Inode)> {
    let geo = &sbi.geo;
    let ino = geo.ino_of(lane, slot).ok_or(ENOSPC)?;
    let rec = sbi.tables.slot_pos(geo, lane, slot).ok_or(ENOSPC)?;
    let old = read_inode_at(&sbi.media, rec)
        .map_err(|e| crate::media::read_failed(sbi, format_args!("inode record {rec:#x}"), e))?;
    if old.state != INODE_FREE {
        sbi.fs_error(format_args!("inode {ino} allocated while live"));
        return Err(shim::err(bindings::EUCLEAN));
    }
    let mut ni = Inode::zeroed();
    ni.ino = ino;
    ni.generation = old.generation.wrapping_add(1);
    ni.mode = a.mode;
    ni.uid = a.uid;
    ni.gid = a.gid;
    ni.nlink = nlink;
    ni.rdev = a.rdev;
    ni.parent = parent;
    ni.atime = now;
    ni.mtime = now;
    ni.ctime = now;
    ni.btime = now;
    Ok((ino, rec, ni))
}

/// Writes a new inode's record, still FREE: the commit that names it makes
/// it LIVE with one 8-byte store.
fn write_record(sbi: &SbInfo, rec: u64, ni: &mut Inode) -> Result {
    ni.state = INODE_FREE;
    ni.seal();
    let mut bytes = [0u8; Inode::SIZE];
    ni.encode(&mut bytes);
    // Without an inline symlink target the inline area is the log's (a
    // new inode's first entries may be there already): left alone.
    sbi.pm.write_nt(rec, bytes.get(..ni.stored_len()).ok_or(EINVAL)?)
}

/// Creates an inode named `name` in `dinfo`, or (name `None`, O_TMPFILE)
/// an unnamed one with link count 0: live, but an orphan that the next
/// mount frees if it is never linked. `out.dir` gets the directory's link
/// count after the call.
fn create(
    sbi: &SbInfo,
    dinfo: &InodeInfo,
    name: Option<&[u8]>,
    a: &CreateArgs,
    now: Timespec,
    out: &mut Nlinks,
) -> Result<u64> {
    let _w = sbi.start_write()?;
    let (mode, uid, gid) = owner(a.mode, &a.owner);
    let new = NewInode { mode, uid, gid, rdev: a.rdev };
    let fmt = mode & S_IFMT;
    let ftype = dt_of_mode(mode).ok_or(EINVAL)?;
    let is_dir = fmt == S_IFDIR;
    let target = if fmt == S_IFLNK {
        if a.target.is_null() || a.tlen == 0 || a.tlen as usize > SYMLINK_MAX {
            return Err(shim::err(bindings::ENAMETOOLONG));
        }
        // SAFETY: C passes the symlink target, `tlen` bytes, alive for the call.
        Some(unsafe { core::slice::from_raw_parts(a.target, a.tlen as usize) })
    } else {
        None
    };
    let _l = lock_logs(&[dinfo])?;
    let (dlog, dnlink, (flags, projid)) = {
        let mut g = dinfo.inner.lock();
        if let Some(name) = name {
            if dir_index(&mut g)?.lookup(name).is_some() {
                return Err(EEXIST);
            }
        }
        (g.log, g.nlink, crate::iflags::inherited(g.flags, g.projid, fmt))
    };
    // A new subdirectory's ".." links to the directory.
    let dnlink = if is_dir && name.is_some() { inc_link(dnlink)? } else { dnlink };
    let (lane, slot) = crate::itable::alloc_slot(sbi)?;
    let release_slot = || sbi.alloc.free_slot(lane, slot);
    let prepared = (|| -> Result<(u64, u64, Option<NewLog<'_>>, Inode)> {
        let nlink = match (name, is_dir) {
            (None, _) => 0,
            (Some(_), true) => 2,
            (Some(_), false) => 1,
        };
        let parent = if is_dir { dinfo.ino } else { 0 };
        let (ino, rec, mut ni) = blank_inode(sbi, lane, slot, &new, nlink, parent, now)?;
        ni.flags = flags;
        // The new inode's log, if it starts with entries: a long
        // symlink's block, an inherited project id, the ACLs.
        let mut data: Option<NewLog<'_>> = None;
        let r = (|| -> Result {
            if let Some(t) = target {
                ni.size = t.len() as u64;
                if t.len() <= INLINE_MAX {
                    ni.inline.get_mut(..t.len()).ok_or(EINVAL)?.copy_from_slice(t);
                    ni.inline_len = t.len() as u32;
                } else {
                    let (blk, _) = sbi.with_space(|a| a.alloc(1, Pool::General))?;
                    let l = NewLog::of(&mut data, sbi, ino, &ni, rec);
                    l.blocks[0] = (blk, 1);
                    let mut page = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
                    page.as_mut_slice().get_mut(..t.len()).ok_or(EINVAL)?.copy_from_slice(t);
                    sbi.pm.write_nt(blk * BLOCK_SIZE_U64, page.as_slice())?;
                    l.ap.push_write(0, 0, blk, 1, t.len() as u64, now)?;
                }
            }
            if projid != 0 {
                NewLog::of(&mut data, sbi, ino, &ni, rec).ap.push(&NewEntry::Flags {
                    flags,
                    projid,
                    ctime: now,
                })?;
            }
            for (i, (index, value)) in a.acls()?.into_iter().enumerate() {
                if let Some(v) = value {
                    let l = NewLog::of(&mut data, sbi, ino, &ni, rec);
                    if let Some(b) = crate::xattr::push_new(sbi, &mut l.ap, index, v, now)? {
                        l.blocks[i + 1] = b;
                    }
                }
            }
            if let Some(l) = &data {
                let p = l.ap.pos();
                ni.log_head = p.head;
                ni.log_tail = p.tail;
            }
            write_record(sbi, rec, &mut ni)
        })();
        if let Err(e) = r {
            if let Some(l) = data {
                l.abort(sbi);
            }
            return Err(e);
        }
        Ok((ino, rec, data, ni))
    })();
    let (ino, rec, data, _ni) = match prepared {
        Ok(x) => x,
        Err(e) => {
            release_slot();
            return Err(e);
        }
    };
    let undo_data = |data: Option<NewLog<'_>>| {
        if let Some(l) = data {
            l.abort(sbi);
        }
    };
    let Some(name) = name else {
        // O_TMPFILE: the record is written; one 8-byte store makes it live.
        sbi.pm.fence();
        if let Err(e) = sbi.pm.persist_u64(rec + INODE_STATE_OFF, INODE_LIVE) {
            undo_data(data);
            release_slot();
            return Err(e);
        }
        return Ok(ino);
    };
    let mut dap = Appender::of(sbi, dinfo, dlog);
    let res = (|| -> Result<u64> {
        let seq = dentry(&mut dap, DE_ADD, ino, ftype, now, name)?;
        if is_dir {
            link_entry(&mut dap, dnlink, now)?;
        }
        commit(sbi, &[&dap], &[(rec + INODE_STATE_OFF, INODE_LIVE)])?;
        Ok(seq)
    })();
    let seq = match res {
        Ok(s) => s,
        Err(e) => {
            dap.abort();
            undo_data(data);
            release_slot();
            return Err(e);
        }
    };
    let mut g = dinfo.inner.lock();
    g.log = dap.pos();
    g.nlink = dnlink;
    out.dir = dnlink;
    dir_index(&mut g)?.add(name, ino, ftype, seq);
    crate::gc::maybe_compact(sbi, dinfo, &mut g);
    Ok(ino)
}

/// Creates `name` in `dir`; returns the new VFS inode (or an `ERR_PTR`)
/// for C's `d_instantiate`.
#[no_mangle]
extern "C" fn novars_rs_create(
    dir: *mut bindings::inode,
    name: *const u8,
    len: usize,
    args: *const CreateArgs,
) -> *mut bindings::inode {
    // SAFETY: C passes a live novars directory (its inode lock held), the
    // dentry name and the arguments, all alive for the call.
    let (sbi, dinfo, name, a, now) = unsafe {
        (
            super_::sbi((*dir).i_sb),
            inode::of(dir),
            core::slice::from_raw_parts(name, len),
            &*args,
            shim::now(dir),
        )
    };
    let mut out = Nlinks::default();
    match create(sbi, dinfo, Some(name), a, now, &mut out) {
        Ok(ino) => {
            // SAFETY: as above; the new inode is committed, so iget reads it.
            unsafe {
                set_changed(dir, Some(out.dir), now, true);
                shim::novars_iget((*dir).i_sb, ino)
            }
        }
        Err(e) => shim::err_ptr(e.to_errno()),
    }
}

/// O_TMPFILE in `dir`: returns the new VFS inode (or an `ERR_PTR`) with a
/// link count of 1, the VFS's convention: `d_tmpfile` drops it to the 0 it
/// has in Rust and on the media.
#[no_mangle]
extern "C" fn novars_rs_tmpfile(
    dir: *mut bindings::inode,
    args: *const CreateArgs,
) -> *mut bindings::inode {
    // SAFETY: as in `novars_rs_create`.
    let (sbi, dinfo, a, now) =
        unsafe { (super_::sbi((*dir).i_sb), inode::of(dir), &*args, shim::now(dir)) };
    let ino = match create(sbi, dinfo, None, a, now, &mut Nlinks::default()) {
        Ok(ino) => ino,
        Err(e) => return shim::err_ptr(e.to_errno()),
    };
    // SAFETY: `dir` is live, so is its mounted super block.
    let inode = unsafe { shim::novars_iget((*dir).i_sb, ino) };
    if !shim::is_err(inode) {
        // SAFETY: `inode` is the live inode iget returned a reference to.
        unsafe { IAttr::default().nlink(1).set(inode) };
    }
    inode
}

fn link(
    sbi: &SbInfo,
    dinfo: &InodeInfo,
    name: &[u8],
    tinfo: &InodeInfo,
    ftype: u8,
    now: Timespec,
    out: &mut Nlinks,
) -> Result {
    let _w = sbi.start_write()?;
    let _l = lock_logs(&[dinfo, tinfo])?;
    let nlink = inc_link(nlink_of(tinfo))?;
    let dlog = log_of(dinfo);
    let tlog = log_of(tinfo);
    let mut dap = Appender::of(sbi, dinfo, dlog);
    let mut tap = Appender::of(sbi, tinfo, tlog);
    let r = (|| -> Result<u64> {
        let seq = dentry(&mut dap, DE_ADD, tinfo.ino, ftype, now, name)?;
        link_entry(&mut tap, nlink, now)?;
        commit(sbi, &[&dap, &tap], &[])?;
        Ok(seq)
    })();
    match r {
        Ok(seq) => {
            {
                let mut g = dinfo.inner.lock();
                g.log = dap.pos();
                dir_index(&mut g)?.add(name, tinfo.ino, ftype, seq);
                crate::gc::maybe_compact(sbi, dinfo, &mut g);
                out.dir = g.nlink;
            }
            publish(tinfo, tap.pos(), nlink);
            out.inode = nlink;
            Ok(())
        }
        Err(e) => {
            dap.abort();
            tap.abort();
            Err(e)
        }
    }
}

/// Adds hard link `name` in `dir` to `target`, which gets its new link
/// count.
#[no_mangle]
extern "C" fn novars_rs_link(
    dir: *mut bindings::inode,
    name: *const u8,
    len: usize,
    target: *mut bindings::inode,
) -> c_int {
    // SAFETY: as in `novars_rs_create`; `target` is a live novars inode,
    // its inode lock held.
    let (sbi, dinfo, tinfo, name, mode, now) = unsafe {
        (
            super_::sbi((*dir).i_sb),
            inode::of(dir),
            inode::of(target),
            core::slice::from_raw_parts(name, len),
            u32::from((*target).i_mode),
            shim::now(dir),
        )
    };
    let ftype = dt_of_mode(mode).unwrap_or(dt::REG);
    let mut out = Nlinks::default();
    match link(sbi, dinfo, name, tinfo, ftype, now, &mut out) {
        Ok(()) => {
            // SAFETY: as above.
            unsafe {
                set_changed(target, Some(out.inode), now, false);
                set_changed(dir, None, now, true);
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Removes `name` from `dir`: the victim loses a link (rmdir: all, and
/// it must be empty; the parent loses the victim's ".."). `out` gets the
/// directory's and the victim's new counts.
#[allow(clippy::too_many_arguments)]
fn unlink(
    sbi: &SbInfo,
    dinfo: &InodeInfo,
    name: &[u8],
    vinfo: &InodeInfo,
    rmdir: bool,
    now: Timespec,
    out: &mut Nlinks,
) -> Result {
    let _w = sbi.start_write()?;
    let _l = lock_logs(&[dinfo, vinfo])?;
    if rmdir && dir_index(&mut vinfo.inner.lock())?.first().is_some() {
        return Err(shim::err(bindings::ENOTEMPTY));
    }
    let (vlog, vn) = {
        let g = vinfo.inner.lock();
        (g.log, g.nlink)
    };
    let (dlog, ftype, vino, dn) = {
        let mut g = dinfo.inner.lock();
        let e = dir_index(&mut g)?.entry(name).ok_or(ENOENT)?;
        (g.log, e.1, e.0, g.nlink)
    };
    if vino != vinfo.ino {
        return Err(ENOENT);
    }
    let vnlink = if rmdir { 0 } else { dec_link(sbi, vinfo.ino, vn)? };
    let dir_nlink = if rmdir { dec_link(sbi, dinfo.ino, dn)? } else { dn };
    // Frees space: the reserve lets a full file system be emptied.
    let mut dap = Appender::of(sbi, dinfo, dlog).with_pool(Pool::Reserve);
    let mut vap = Appender::of(sbi, vinfo, vlog).with_pool(Pool::Reserve);
    let r = (|| -> Result {
        dentry(&mut dap, DE_DEL, vinfo.ino, ftype, now, name)?;
        if rmdir {
            link_entry(&mut dap, dir_nlink, now)?;
        }
        link_entry(&mut vap, vnlink, now)?;
        commit(sbi, &[&dap, &vap], &[])
    })();
    if let Err(e) = r {
        dap.abort();
        vap.abort();
        return Err(e);
    }
    {
        let mut g = dinfo.inner.lock();
        g.log = dap.pos();
        g.nlink = dir_nlink;
        dir_index(&mut g)?.remove(name, vinfo.ino);
        crate::gc::maybe_compact(sbi, dinfo, &mut g);
    }
    publish(vinfo, vap.pos(), vnlink);
    *out = Nlinks { dir: dir_nlink, new_dir: dir_nlink, inode: vnlink, victim: 0 };
    Ok(())
}

/// unlink(2) and rmdir(2) of `name` in `dir`, naming `victim`.
#[no_mangle]
extern "C" fn novars_rs_unlink(
    dir: *mut bindings::inode,
    name: *const u8,
    len: usize,
    victim: *mut bindings::inode,
    rmdir: bool,
) -> c_int {
    // SAFETY: as in `novars_rs_create`; `victim` is a live novars inode,
    // its inode lock held.
    let (sbi, dinfo, vinfo, name, now) = unsafe {
        (
            super_::sbi((*dir).i_sb),
            inode::of(dir),
            inode::of(victim),
            core::slice::from_raw_parts(name, len),
            shim::now(dir),
        )
    };
    let mut out = Nlinks::default();
    match unlink(sbi, dinfo, name, vinfo, rmdir, now, &mut out) {
        Ok(()) => {
            // SAFETY: as above.
            unsafe {
                set_changed(victim, Some(out.inode), now, false);
                set_changed(dir, Some(out.dir), now, true);
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Everything `rename` needs from C.
#[repr(C)]
pub(crate) struct RenameArgs {
    pub(crate) old_dir: *mut bindings::inode,
    pub(crate) new_dir: *mut bindings::inode,
    pub(crate) moved: *mut bindings::inode,
    /// The inode `new_name` named before (NULL if none).
    pub(crate) victim: *mut bindings::inode,
    pub(crate) old_name: *const u8,
    pub(crate) new_name: *const u8,
    pub(crate) old_len: u32,
    pub(crate) new_len: u32,
    /// `RENAME_*` as the VFS gives them.
    pub(crate) flags: u32,
    pub(crate) pad: u32,
    /// `RENAME_WHITEOUT`: what the whiteout's owner is decided from.
    pub(crate) owner: OwnerFacts,
}

const _: () = assert!(core::mem::size_of::<RenameArgs>() == 80);
const _: () = assert!(core::mem::offset_of!(RenameArgs, old_len) == 48);
const _: () = assert!(core::mem::offset_of!(RenameArgs, owner) == 64);

/// `RENAME_*` (`linux/fs.h`).
const RENAME_NOREPLACE: u32 = bindings::RENAME_NOREPLACE;
const RENAME_EXCHANGE: u32 = bindings::RENAME_EXCHANGE;
const RENAME_WHITEOUT: u32 = bindings::RENAME_WHITEOUT;
// A whiteout as the VFS defines it (what `new_whiteout` writes), and the
// mode bits the owner rules read from C: the layout's values are the VFS's.
const _: () = assert!(bindings::WHITEOUT_MODE == 0 && bindings::WHITEOUT_DEV == 0);
const _: () = assert!(S_ISGID == bindings::S_ISGID && S_IFDIR == bindings::S_IFDIR);
const _: () = assert!(S_IFCHR == bindings::S_IFCHR && S_IFMT == bindings::S_IFMT);

/// A whiteout (character device 0:0, mode 0) written for a rename, FREE
/// until the rename's transaction makes it LIVE.
#[derive(Clone, Copy)]
struct Whiteout {
    lane: u32,
    slot: u64,
    ino: u64,
    rec: u64,
}

fn new_whiteout(sbi: &SbInfo, a: &RenameArgs, now: Timespec) -> Result<Whiteout> {
    let (lane, slot) = crate::itable::alloc_slot(sbi)?;
    // A whiteout is a character device 0:0 with mode 0 (WHITEOUT_MODE).
    let (mode, uid, gid) = owner(S_IFCHR, &a.owner);
    let c = NewInode { mode, uid, gid, rdev: 0 };
    let r = blank_inode(sbi, lane, slot, &c, 1, 0, now).and_then(|(ino, rec, mut ni)| {
        write_record(sbi, rec, &mut ni)?;
        Ok(Whiteout { lane, slot, ino, rec })
    });
    if r.is_err() {
        sbi.alloc.free_slot(lane, slot);
    }
    r
}

/// Swaps two names (both exist); in one transaction. A directory moving
/// to the other parent takes its ".." link along.
#[allow(clippy::too_many_arguments)]
fn exchange(
    sbi: &SbInfo,
    out: &mut Nlinks,
    odir: &InodeInfo,
    ndir: &InodeInfo,
    moved: &InodeInfo,
    other: &InodeInfo,
    oname: &[u8],
    nname: &[u8],
    now: Timespec,
) -> Result {
    let same = odir.ino == ndir.ino;
    let (mtype, otype) = {
        let mt = dir_index(&mut odir.inner.lock())?.entry(oname).ok_or(ENOENT)?;
        let ot = dir_index(&mut ndir.inner.lock())?.entry(nname).ok_or(ENOENT)?;
        if mt.0 != moved.ino || ot.0 != other.ino {
            return Err(ENOENT);
        }
        (mt.1, ot.1)
    };
    let (on, nn) = (out.dir, out.new_dir);
    let (old_n, new_n) = match (mtype == dt::DIR, otype == dt::DIR) {
        _ if same => (on, nn),
        (true, false) => (dec_link(sbi, odir.ino, on)?, inc_link(nn)?),
        (false, true) => (inc_link(on)?, dec_link(sbi, ndir.ino, nn)?),
        _ => (on, nn),
    };
    let mut oap = Appender::of(sbi, odir, log_of(odir));
    let mut nap = Appender::of(sbi, ndir, log_of(ndir));
    let mut map = Appender::of(sbi, moved, log_of(moved));
    let mut vap = Appender::of(sbi, other, log_of(other));
    let r = (|| -> Result<(u64, u64)> {
        dentry(&mut oap, DE_DEL, moved.ino, mtype, now, oname)?;
        let s1 = dentry(&mut oap, DE_ADD, other.ino, otype, now, oname)?;
        let dst = if same { &mut oap } else { &mut nap };
        dentry(dst, DE_DEL, other.ino, otype, now, nname)?;
        let s2 = dentry(dst, DE_ADD, moved.ino, mtype, now, nname)?;
        if !same {
            link_entry(&mut oap, old_n, now)?;
            link_entry(&mut nap, new_n, now)?;
        }
        if !same && mtype == dt::DIR {
            parent_entry(&mut map, ndir.ino, now)?;
        } else {
            ctime_entry(&mut map, moved, now)?;
        }
        if !same && otype == dt::DIR {
            parent_entry(&mut vap, odir.ino, now)?;
        } else {
            ctime_entry(&mut vap, other, now)?;
        }
        if same {
            commit(sbi, &[&oap, &map, &vap], &[])?;
        } else {
            commit(sbi, &[&oap, &nap, &map, &vap], &[])?;
        }
        Ok((s1, s2))
    })();
    let (s1, s2) = match r {
        Ok(x) => x,
        Err(e) => {
            oap.abort();
            nap.abort();
            map.abort();
            vap.abort();
            return Err(e);
        }
    };
    {
        let mut g = odir.inner.lock();
        g.log = oap.pos();
        g.nlink = old_n;
        let d = dir_index(&mut g)?;
        d.remove(oname, moved.ino);
        d.add(oname, other.ino, otype, s1);
        if same {
            d.remove(nname, other.ino);
            d.add(nname, moved.ino, mtype, s2);
        }
        crate::gc::maybe_compact(sbi, odir, &mut g);
    }
    if !same {
        let mut g = ndir.inner.lock();
        g.log = nap.pos();
        g.nlink = new_n;
        let d = dir_index(&mut g)?;
        d.remove(nname, other.ino);
        d.add(nname, moved.ino, mtype, s2);
        crate::gc::maybe_compact(sbi, ndir, &mut g);
    }
    {
        let mut g = moved.inner.lock();
        g.log = map.pos();
        if !same && mtype == dt::DIR {
            g.parent = ndir.ino;
        }
    }
    {
        let mut g = other.inner.lock();
        g.log = vap.pos();
        if !same && otype == dt::DIR {
            g.parent = odir.ino;
        }
    }
    out.dir = old_n;
    out.new_dir = if same { old_n } else { new_n };
    Ok(())
}

/// `out` gets the link counts after the call (also when nothing changes).
fn rename(sbi: &SbInfo, a: &RenameArgs, now: Timespec, out: &mut Nlinks) -> Result {
    if a.flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
        return Err(EINVAL);
    }
    let _w = sbi.start_write()?;
    // SAFETY: C passes live novars inodes (the VFS holds their locks) and
    // the dentry names.
    let (odir, ndir, moved, victim, oname, nname, moved_mode) = unsafe {
        (
            inode::of(a.old_dir),
            inode::of(a.new_dir),
            inode::of(a.moved),
            if a.victim.is_null() { None } else { Some(inode::of(a.victim)) },
            core::slice::from_raw_parts(a.old_name, a.old_len as usize),
            core::slice::from_raw_parts(a.new_name, a.new_len as usize),
            u32::from((*a.moved).i_mode),
        )
    };
    let is_dir = moved_mode & S_IFMT == S_IFDIR;
    let ftype = dt_of_mode(moved_mode).ok_or(EINVAL)?;
    let same = odir.ino == ndir.ino;
    // The whiteout is new: nothing else can reach it before the commit.
    let _l = match victim {
        Some(v) => lock_logs(&[odir, ndir, moved, v])?,
        None => lock_logs(&[odir, ndir, moved])?,
    };
    let (on, nn) = (nlink_of(odir), nlink_of(ndir));
    let vn = victim.map(nlink_of).unwrap_or(0);
    *out = Nlinks { dir: on, new_dir: nn, inode: nlink_of(moved), victim: vn };
    if a.flags & RENAME_EXCHANGE != 0 {
        let other = victim.ok_or(ENOENT)?;
        if other.ino == moved.ino {
            return Ok(());
        }
        return exchange(sbi, out, odir, ndir, moved, other, oname, nname, now);
    }
    if let Some(v) = victim {
        if v.ino == moved.ino {
            return Ok(()); // two names of one inode: nothing to do (POSIX)
        }
        if is_dir && dir_index(&mut v.inner.lock())?.first().is_some() {
            return Err(shim::err(bindings::ENOTEMPTY));
        }
    }
    let vftype = match victim {
        Some(v) => {
            let e = dir_index(&mut ndir.inner.lock())?.entry(nname).ok_or(ENOENT)?;
            if e.0 != v.ino {
                return Err(ENOENT);
            }
            e.1
        }
        None => 0,
    };
    // The victim loses the link (a directory all of them, and its ".." in
    // the new parent); a directory moving to another parent takes its ".."
    // link along.
    let vdir = victim.is_some() && vftype == dt::DIR;
    let victim_nlink = match victim {
        Some(v) if !vdir => dec_link(sbi, v.ino, vn)?,
        _ => 0,
    };
    let (old_n, new_n) = if same {
        let o = if vdir { dec_link(sbi, odir.ino, on)? } else { on };
        (o, o)
    } else {
        let o = if is_dir { dec_link(sbi, odir.ino, on)? } else { on };
        let n = match (is_dir, vdir) {
            (true, false) => inc_link(nn)?,
            (false, true) => dec_link(sbi, ndir.ino, nn)?,
            _ => nn,
        };
        (o, n)
    };
    // RENAME_WHITEOUT (overlayfs): the old name then names a new whiteout,
    // made live by the rename's own transaction.
    let wh = if a.flags & RENAME_WHITEOUT != 0 { Some(new_whiteout(sbi, a, now)?) } else { None };
    let drop_whiteout = || {
        if let Some(w) = wh {
            sbi.alloc.free_slot(w.lane, w.slot);
        }
    };
    #[cfg(novars_trace)]
    if let (true, false, Some(v)) = (same, is_dir, victim) {
        if crate::pm::fault(crate::pm::Fault::DentryInPlace) {
            crate::pm::inject::rename_in_place(
                sbi,
                odir,
                moved,
                v,
                oname,
                nname,
                ftype,
                victim_nlink,
                now,
            )?;
            out.victim = victim_nlink;
            return Ok(());
        }
    }
    let olog = log_of(odir);
    let nlog = log_of(ndir);
    let mlog = log_of(moved);
    // Over an existing name it frees space: the reserve lets a full file
    // system replace files.
    let pool = if victim.is_some() { Pool::Reserve } else { Pool::General };
    let mut oap = Appender::of(sbi, odir, olog).with_pool(pool);
    let mut nap = Appender::of(sbi, ndir, nlog).with_pool(pool);
    let mut map = Appender::of(sbi, moved, mlog).with_pool(pool);
    let mut vap = victim.map(|v| Appender::of(sbi, v, log_of(v)).with_pool(pool));
    let r = (|| -> Result<(u64, u64)> {
        // In one directory, all its entries go to one log.
        let dst = if same { &mut oap } else { &mut nap };
        if let Some(v) = victim {
            dentry(dst, DE_DEL, v.ino, vftype, now, nname)?;
        }
        let seq = dentry(dst, DE_ADD, moved.ino, ftype, now, nname)?;
        dentry(&mut oap, DE_DEL, moved.ino, ftype, now, oname)?;
        let wseq = match wh {
            Some(w) => dentry(&mut oap, DE_ADD, w.ino, dt::CHR, now, oname)?,
            None => 0,
        };
        if !same || (is_dir && victim.is_some()) {
            link_entry(&mut oap, old_n, now)?;
            if !same {
                link_entry(&mut nap, new_n, now)?;
            }
        }
        if is_dir && !same {
            parent_entry(&mut map, ndir.ino, now)?;
        } else {
            // The moved inode's ctime changes (as on ext4).
            ctime_entry(&mut map, moved, now)?;
        }
        if let Some(vap) = vap.as_mut() {
            link_entry(vap, victim_nlink, now)?;
        }
        let mut aps: [&Appender<'_>; 4] = [&oap, &oap, &map, &map];
        let mut n = 1;
        if !same {
            aps[n] = &nap;
            n += 1;
        }
        aps[n] = &map;
        n += 1;
        if let Some(vap) = vap.as_ref() {
            aps[n] = vap;
            n += 1;
        }
        match wh {
            Some(w) => commit(sbi, &aps[..n], &[(w.rec + INODE_STATE_OFF, INODE_LIVE)])?,
            None if crate::pm::fault(crate::pm::Fault::RenameNoJournal) => {
                // Deliberate fault (tracing build only): each log on its own.
                for ap in &aps[..n] {
                    sbi.pm.fence();
                    let (w, k) = ap.words();
                    for &(p, v) in w.iter().take(k) {
                        sbi.pm.persist_u64(p, v)?;
                    }
                }
            }
            None => commit(sbi, &aps[..n], &[])?,
        }
        Ok((seq, wseq))
    })();
    let (seq, wseq) = match r {
        Ok(s) => s,
        Err(e) => {
            oap.abort();
            nap.abort();
            map.abort();
            if let Some(v) = vap {
                v.abort();
            }
            drop_whiteout();
            return Err(e);
        }
    };
    let (opos, npos, mpos) = (oap.pos(), nap.pos(), map.pos());
    let vpos = vap.as_ref().map(|v| v.pos());
    {
        let mut g = odir.inner.lock();
        g.log = opos;
        g.nlink = old_n;
        let od = dir_index(&mut g)?;
        od.remove(oname, moved.ino);
        if same {
            if let Some(v) = victim {
                od.remove(nname, v.ino);
            }
            od.add(nname, moved.ino, ftype, seq);
        }
        if let Some(w) = wh {
            od.add(oname, w.ino, dt::CHR, wseq);
        }
        crate::gc::maybe_compact(sbi, odir, &mut g);
    }
    if !same {
        let mut g = ndir.inner.lock();
        g.log = npos;
        g.nlink = new_n;
        let nd = dir_index(&mut g)?;
        if let Some(v) = victim {
            nd.remove(nname, v.ino);
        }
        nd.add(nname, moved.ino, ftype, seq);
        crate::gc::maybe_compact(sbi, ndir, &mut g);
    }
    {
        let mut g = moved.inner.lock();
        g.log = mpos;
        if is_dir && !same {
            g.parent = ndir.ino;
        }
    }
    if let (Some(v), Some(p)) = (victim, vpos) {
        publish(v, p, victim_nlink);
    }
    *out = Nlinks { dir: old_n, new_dir: new_n, victim: victim_nlink, ..*out };
    Ok(())
}

/// rename(2) without flags, with RENAME_NOREPLACE (checked by the VFS),
/// RENAME_EXCHANGE or RENAME_WHITEOUT; sets the link counts and times of
/// the VFS inodes it names.
#[no_mangle]
extern "C" fn novars_rs_rename(args: *const RenameArgs) -> c_int {
    // SAFETY: C passes the arguments: live novars inodes (the VFS holds
    // their locks and references) and the dentry names.
    let (a, sbi, now) =
        unsafe { (&*args, super_::sbi((*(*args).old_dir).i_sb), shim::now((*args).old_dir)) };
    let mut n = Nlinks::default();
    if let Err(e) = rename(sbi, a, now, &mut n) {
        return e.to_errno();
    }
    // SAFETY: as above.
    unsafe {
        if !a.victim.is_null() {
            set_changed(a.victim, Some(n.victim), now, false);
        }
        set_changed(a.moved, None, now, false);
        set_changed(a.old_dir, Some(n.dir), now, true);
        set_changed(a.new_dir, Some(n.new_dir), now, true);
    }
    0
}

/// Frees an inode whose last link and last user are gone (from evict).
/// On a read-only file system it stays an orphan for the next mount.
pub(crate) fn free_inode(sbi: &SbInfo, info: &InodeInfo) -> Result {
    let _w = sbi.enter();
    let _l = lock_logs(&[info])?;
    if sbi.is_shut_down() {
        // Nothing more is written; the next mount's scan frees it.
        return Ok(());
    }
    if !sbi.rw() {
        sbi.orphan_pending();
        return Ok(());
    }
    // After a crash its frees wait for the rebuild (alloc.rs `Deferred`),
    // or, without clean pools, it waits (and if the rebuild fails, it
    // stays an orphan for fsck or the next mount).
    sbi.wait_rebuild()?;
    let mut g = info.inner.lock();
    // Attribute values in blocks are found in the log, read before it goes.
    let value_blocks = crate::xattr::value_blocks(sbi, info, &mut g);
    // State first: once FREE, a crash leaves its blocks free by scan.
    sbi.pm.persist_u64(info.rec + INODE_STATE_OFF, INODE_FREE)?;
    let a = &sbi.alloc;
    if let Index::File(m) = &g.index {
        for (b, c) in m.extents() {
            let _ = a.free(b, c);
        }
    }
    for &(b, c) in value_blocks.iter() {
        let _ = a.free(b, c);
    }
    // The log pages.
    let log = g.log;
    if log.tail != 0 {
        let mut blk = log.head;
        let mut n = 0;
        while n < log.pages {
            n += 1;
            // The next link is read before the page is freed (and maybe
            // taken and written by another CPU).
            let next = if n < log.pages {
                let word = blk
                    .saturating_mul(crate::layout::BLOCK_SIZE_U64)
                    .saturating_add(crate::layout::log::PAGE_NEXT_OFF as u64);
                crate::media::read_word(&sbi.media, word)
                    .map(|w| crate::layout::log::unpack_next(w).0)
                    .unwrap_or(0)
            } else {
                0
            };
            let _ = a.free(blk, 1);
            if next == 0 {
                break;
            }
            blk = next;
        }
    }
    let (lane, slot) = sbi.geo.ino_split(info.ino);
    a.free_slot(lane, slot);
    g.index = Index::None;
    g.log = Default::default();
    Ok(())
}
