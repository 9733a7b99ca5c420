// SPDX-License-Identifier: GPL-2.0

//! Reading inodes: find the slot, validate the record, replay the log into
//! the DRAM index, and hand the attributes to C (`novars_iget`).

use crate::index::{DirMap, ExtentMap, Lookup};
use crate::layout::append::{LogEnd, LogOwner};
use crate::layout::inode::{read_inode_at, Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::layout::log::fl;
use crate::layout::walk::{replay_inode, Ignore, WalkError};
use crate::layout::{Media, Timespec, BLOCK_SIZE};
use crate::locks::LogLock;
use crate::log::LogPos;
use crate::media::read_failed;
use crate::shim::{self, IAttr, I_ATIME, I_BLOCKS, I_CTIME, I_FLAGS, I_MTIME, I_NLINK, I_SIZE};
use crate::super_::{self, SbInfo};
use core::ffi::{c_int, c_void};
use core::pin::Pin;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// The index an inode's log rebuilds.
pub(crate) enum Index {
    /// Regular files and long symlinks.
    File(ExtentMap),
    /// Directories.
    Dir(DirMap),
    /// Device nodes, fifos, sockets, inline symlinks.
    None,
}

/// What the inode lock protects.
pub(crate) struct Inner {
    pub(crate) index: Index,
    pub(crate) log: LogPos,
    /// The link count as last committed: read under the log lock by the
    /// operations that change it (`namei.rs`), published with their commit;
    /// C copies it into the VFS inode.
    pub(crate) nlink: u32,
    /// Open files holding a seal on the block map (`seal.rs`; DRAM only).
    pub(crate) seals: u32,
    /// The extended attributes, once read (`xattr.rs`; None: not yet).
    pub(crate) xattrs: Option<crate::xattr::Xattrs>,
    /// Inode flags (`layout::log::fl`) and project id as last committed
    /// (`iflags.rs`).
    pub(crate) flags: u32,
    pub(crate) projid: u32,
    /// Directories: the parent's inode number as last committed (the
    /// `PARENT` entries of the log; rename publishes a move), for
    /// `get_parent` (`export.rs`). 0 for other inodes.
    pub(crate) parent: u64,
}

/// Per-inode state owned by `struct novars_inode.info`.
#[pin_data]
pub(crate) struct InodeInfo {
    pub(crate) ino: u64,
    pub(crate) gen: u32,
    /// Birth time (statx `btime`; never changes).
    pub(crate) btime: Timespec,
    /// Byte position of the inode record.
    pub(crate) rec: u64,
    /// `rec` if the log may live in the record (FORMAT.md "Slot logs": the
    /// image has them, not a directory, no inline symlink target), else 0.
    pub(crate) slot: u64,
    /// Held by every operation that appends to this inode's log, from
    /// reading the committed position to publishing the new one
    /// (`locks.rs`; several inodes: ascending `ino`).
    #[pin]
    pub(crate) log_lock: LogLock,
    /// The DRAM index and log position, for readers (iomap, readdir,
    /// lookup) and for publishing changes. Taken after the log lock, held
    /// briefly, never two at once.
    #[pin]
    pub(crate) inner: Mutex<Inner>,
}

/// `struct novars_inode` (`novars_shim.c`): every VFS inode of a novars
/// super block is the `vfs` field of one (`alloc_inode`), `info` right
/// after it (asserted on both sides).
#[repr(C)]
struct VfsInode {
    vfs: bindings::inode,
    info: *mut c_void,
}

const _: () =
    assert!(core::mem::offset_of!(VfsInode, info) == core::mem::size_of::<bindings::inode>());

/// The `InodeInfo` of a VFS inode.
///
/// # Safety
///
/// `inode` must be a live inode of a novars super block that `novars_iget`
/// has read (its `info` set; C frees it only after the VFS is done with
/// the inode).
pub(crate) unsafe fn of<'a>(inode: *mut bindings::inode) -> &'a InodeInfo {
    // SAFETY: per the contract `inode` is the first field of a live
    // `struct novars_inode` whose `info` points to a pinned `InodeInfo`.
    unsafe { &*(*inode.cast::<VfsInode>()).info.cast::<InodeInfo>() }
}

fn corrupt(sbi: &SbInfo, ino: u64, what: &str) -> Error {
    sbi.fs_error(format_args!("inode {ino}: {what}"));
    shim::err(bindings::EUCLEAN)
}

/// The symlink target of `raw` as a kmalloc'd NUL-terminated string.
fn link_target(
    sbi: &SbInfo,
    ino: u64,
    raw: &Inode,
    size: u64,
    index: &mut Index,
) -> Result<*mut u8> {
    let mut t = KVec::new();
    if let Some(inline) = raw.inline_target() {
        t.extend_from_slice(inline, GFP_KERNEL)?;
    } else {
        let len = usize::try_from(size).ok().filter(|l| *l > 0 && *l < BLOCK_SIZE);
        let Some(len) = len else {
            return Err(corrupt(sbi, ino, "symlink target length out of range"));
        };
        let Index::File(map) = index else {
            return Err(corrupt(sbi, ino, "symlink without a block map"));
        };
        let Lookup::Mapped { block, .. } = map.lookup(0) else {
            return Err(corrupt(sbi, ino, "symlink target block missing"));
        };
        let b = sbi
            .media
            .block(block)
            .map_err(|e| read_failed(sbi, format_args!("inode {ino}: symlink target"), e))?;
        t.extend_from_slice(b.get(..len).unwrap_or(&[]), GFP_KERNEL)?;
    }
    if t.is_empty() || t.as_slice().contains(&0) {
        return Err(corrupt(sbi, ino, "symlink target empty or contains NUL"));
    }
    t.push(0, GFP_KERNEL)?;
    let (ptr, _, _) = t.into_raw_parts();
    Ok(ptr)
}

/// Where the number `ino` came from, for `load`.
#[derive(Clone, Copy)]
enum Source {
    /// The file system itself (a directory entry, "..", the root): a number
    /// that leads nowhere is corruption (`fs_error`, `errors=`).
    Media,
    /// A file handle (`export.rs`) with this generation: user input. A
    /// number beyond the tables, a slot not in use, another generation or
    /// an inode with no links left is `ESTALE`, quietly; a live record
    /// that fails its checks is still corruption.
    Handle(u32),
}

fn stale() -> Error {
    shim::err(bindings::ESTALE)
}

fn load(sbi: &SbInfo, ino: u64, src: Source) -> Result<(*mut c_void, IAttr)> {
    let geo = &sbi.geo;
    let (lane, slot) = geo.ino_split(ino);
    let handle = matches!(src, Source::Handle(_));
    let pos = if lane >= geo.lanes { None } else { sbi.tables.slot_pos(geo, lane, slot) };
    let pos = match pos {
        Some(p) => p,
        None if handle => return Err(stale()),
        None if lane >= geo.lanes => return Err(corrupt(sbi, ino, "no such lane")),
        None => return Err(corrupt(sbi, ino, "beyond the inode table")),
    };
    let raw = read_inode_at(&sbi.media, pos)
        .map_err(|e| read_failed(sbi, format_args!("inode {ino}"), e))?;
    if let Source::Handle(gen) = src {
        // A slot in use and not reused since the handle was made; the
        // record itself is checked below as for any other read.
        if !raw.is_live() || raw.generation != gen {
            return Err(stale());
        }
    }
    if let Err(e) = raw.validate(ino) {
        let _ = e;
        return Err(corrupt(sbi, ino, "invalid inode record"));
    }
    let fmt = raw.mode & S_IFMT;
    let mut index = match fmt {
        S_IFREG => Index::File(ExtentMap::new()),
        S_IFLNK if raw.inline_len == 0 => Index::File(ExtentMap::new()),
        S_IFDIR => Index::Dir(DirMap::new()),
        _ => Index::None,
    };
    let m = &sbi.media;
    let res = match &mut index {
        Index::File(map) => replay_inode(m, geo, ino, &raw, map, &mut Ignore),
        Index::Dir(dir) => replay_inode(m, geo, ino, &raw, &mut Ignore, dir),
        Index::None => replay_inode(m, geo, ino, &raw, &mut Ignore, &mut Ignore),
    };
    let (view, rep) = res.map_err(|w| match w {
        WalkError::Media(e) => read_failed(sbi, format_args!("inode {ino}: log"), e),
        w => corrupt(sbi, ino, w.describe()),
    })?;
    let (failed, data_blocks) = match &index {
        Index::File(map) => (map.failed, map.mapped_blocks()),
        Index::Dir(dir) => (dir.failed, 0),
        Index::None => (false, 0),
    };
    if failed {
        return Err(ENOMEM);
    }
    if handle && view.nlink == 0 {
        // Unlinked and not in the inode cache (else iget had found it):
        // an orphan that the next mount frees, gone for a handle.
        return Err(stale());
    }
    let link = if fmt == S_IFLNK {
        link_target(sbi, ino, &raw, view.size, &mut index)?
    } else {
        core::ptr::null_mut()
    };
    let attr = IAttr {
        mode: view.mode,
        uid: view.uid,
        gid: view.gid,
        nlink: view.nlink,
        size: view.size,
        rdev: raw.rdev,
        blocks: data_blocks.saturating_add(rep.pages).saturating_mul(8),
        generation: raw.generation,
        valid: I_NLINK | I_SIZE | I_BLOCKS | I_ATIME | I_MTIME | I_CTIME | I_FLAGS,
        atime_sec: view.atime.sec,
        mtime_sec: view.mtime.sec,
        ctime_sec: view.ctime.sec,
        atime_nsec: view.atime.nsec,
        mtime_nsec: view.mtime.nsec,
        ctime_nsec: view.ctime.nsec,
        flags: view.flags,
        link: link.cast(),
    };
    let log = LogPos::default().at(LogEnd::walked(raw.log_head, raw.log_tail, &rep));
    // A log without XATTR entries has no attributes: nothing to read later.
    let xattrs = (rep.xattr_entries == 0).then(crate::xattr::Xattrs::default);
    let inner = Inner {
        index,
        log,
        nlink: view.nlink,
        seals: 0,
        xattrs,
        flags: view.flags,
        projid: view.projid,
        parent: if fmt == S_IFDIR { view.parent } else { 0 },
    };
    let gen = raw.generation;
    let slot = LogOwner::of(&sbi.geo, ino, &raw, pos).slot;
    let boxed = match KBox::pin_init(
        pin_init!(InodeInfo {
            ino,
            gen,
            btime: view.btime,
            rec: pos,
            slot,
            log_lock <- LogLock::new(),
            inner <- kernel::new_mutex!(inner, "novars_inode"),
        }),
        GFP_KERNEL,
    ) {
        Ok(b) => b,
        Err(e) => {
            if !link.is_null() {
                // SAFETY: `link` came from `KVec::into_raw_parts` (kmalloc).
                unsafe { bindings::kfree(link.cast()) };
            }
            return Err(e);
        }
    };
    // SAFETY: the box is never moved out of: C keeps the pointer until
    // `novars_rs_free_inode_info` turns it back into a box and drops it.
    let raw_box = unsafe { Pin::into_inner_unchecked(boxed) };
    Ok((KBox::into_raw(raw_box).cast(), attr))
}

/// Reads inode `ino` for `novars_iget` (`gen` NULL) or for
/// `novars_iget_handle` (`gen`: the file handle's generation): fills
/// `*attr`, returns the `InodeInfo` (or NULL with `*err` set to a negative
/// errno).
#[no_mangle]
extern "C" fn novars_rs_read_inode(
    sb: *mut bindings::super_block,
    ino: u64,
    gen: *const u32,
    attr: *mut IAttr,
    err: *mut c_int,
) -> *mut c_void {
    // SAFETY: C calls this for a mounted novars super block; `gen` is NULL
    // or points to the caller's generation.
    let (sbi, src) = unsafe {
        let src = if gen.is_null() { Source::Media } else { Source::Handle(*gen) };
        (super_::sbi(sb), src)
    };
    match load(sbi, ino, src) {
        Ok((p, a)) => {
            // SAFETY: `attr` points to the caller's `struct novars_iattr`.
            unsafe { attr.write(a) };
            p
        }
        Err(e) => {
            // SAFETY: `err` points to the caller's int.
            unsafe { err.write(e.to_errno()) };
            core::ptr::null_mut()
        }
    }
}

/// `getattr`: the VFS's attributes (`generic_fillattr`) plus the birth
/// time and the DAX attribute (every regular file is DAX).
#[no_mangle]
extern "C" fn novars_rs_getattr(
    idmap: *mut bindings::mnt_idmap,
    path: *const bindings::path,
    stat: *mut bindings::kstat,
    mask: u32,
    _flags: core::ffi::c_uint,
) -> c_int {
    let dax = u64::from(bindings::STATX_ATTR_DAX);
    // SAFETY: the VFS passes a path to a live novars inode (read by iget)
    // and the kstat to fill, both alive for the call.
    unsafe {
        let inode = (*(*path).dentry).d_inode;
        // As xfs: a shut-down file system answers EIO here too.
        if let Err(e) = super_::sbi((*inode).i_sb).live() {
            return e.to_errno();
        }
        bindings::generic_fillattr(idmap, mask, inode, stat);
        let stat = &mut *stat;
        if mask & bindings::STATX_BTIME != 0 {
            let b = of(inode).btime;
            stat.result_mask |= bindings::STATX_BTIME;
            stat.btime = bindings::timespec64 {
                tv_sec: b.sec,
                tv_nsec: isize::try_from(b.nsec).unwrap_or(0),
            };
        }
        if (*inode).i_flags & bindings::S_DAX != 0 {
            stat.attributes |= dax;
        }
        stat.attributes_mask |= dax;
        // The inode flags statx reports, as chattr set them.
        let flags = of(inode).inner.lock().flags;
        for (f, a) in [
            (fl::IMMUTABLE, bindings::STATX_ATTR_IMMUTABLE),
            (fl::APPEND, bindings::STATX_ATTR_APPEND),
            (fl::NODUMP, bindings::STATX_ATTR_NODUMP),
        ] {
            let a = u64::from(a);
            stat.attributes_mask |= a;
            if flags & f != 0 {
                stat.attributes |= a;
            }
        }
    }
    0
}

/// Frees what `novars_rs_read_inode` returned (from `free_inode`).
#[no_mangle]
extern "C" fn novars_rs_free_inode_info(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: `p` came from `KBox::into_raw` in `load` and C frees it
        // exactly once, after the last user of the inode.
        drop(unsafe { KBox::from_raw(p.cast::<InodeInfo>()) });
    }
}

/// evict: an inode with no links left is freed with everything it holds
/// (nothing for one that iget failed to read: it has no `InodeInfo`).
#[no_mangle]
extern "C" fn novars_rs_evict(inode: *mut bindings::inode) {
    // SAFETY: C passes a live inode of a novars super block being evicted;
    // `info` is set by iget before the inode is unlocked, or stays NULL.
    let (sbi, info) = unsafe {
        let info = (*inode.cast::<VfsInode>()).info.cast::<InodeInfo>();
        if info.is_null() || bindings::is_bad_inode(inode) {
            return;
        }
        (super_::sbi((*inode).i_sb), &*info)
    };
    if info.inner.lock().nlink != 0 {
        return;
    }
    if let Err(e) = crate::namei::free_inode(sbi, info) {
        pr_err!("({}): could not free inode {} ({})\n", sbi.dev(), info.ino, e.to_errno());
    }
}
