// SPDX-License-Identifier: GPL-2.0

//! Extended attributes and POSIX ACLs (FORMAT.md "Extended attributes").
//!
//! An attribute is an `XATTR` entry in its inode's log: a set or a removal
//! is one entry and one tail commit, durable on return like every other
//! call; an ACL change that also changes the mode is a SETATTR and an
//! XATTR entry under the same commit. The attributes of an inode are read
//! into DRAM ([`Xattrs`]) on first use, by a walk of its log, not when the
//! inode is loaded. Log compaction keeps them (`gc.rs`).
//!
//! Values up to `XATTR_INLINE_MAX` bytes are written inside their entry,
//! larger ones (up to 64 KiB, as ext4 with `ea_inode` and xfs) into fresh
//! blocks, before the entry that names them commits; the blocks of a
//! replaced or removed value are freed after it, those of a freed inode
//! at evict.

use crate::alloc::Pool;
use crate::inode::{self, Inner, InodeInfo};
use crate::layout::append::{NewEntry, SetAttrs, XattrValue};
use crate::layout::log::{
    sa, xa, xattr_name_is_valid, xattr_value_blocks, XATTR_INLINE_MAX, XATTR_VALUE_MAX,
};
use crate::layout::walk::{walk_log, XattrIndex, XattrReplay};
use crate::layout::{inode::read_inode_at, Timespec, BLOCK_SIZE_U64};
use crate::locks::lock_logs;
use crate::log::Appender;
use crate::media::read_failed;
use crate::shim::{self, IAttr};
use crate::super_::{self, SbInfo};
use core::ffi::{c_char, c_int, c_void};
use kernel::bindings;
use kernel::prelude::*;

/// `XATTR_CREATE` / `XATTR_REPLACE` of setxattr(2).
const XATTR_CREATE: u32 = 1;
const XATTR_REPLACE: u32 = 2;
const _: () = {
    assert!(shim::shim_h("NOVARS_XATTR_CREATE") == XATTR_CREATE as u64);
    assert!(shim::shim_h("NOVARS_XATTR_REPLACE") == XATTR_REPLACE as u64);
};

fn enodata() -> Error {
    shim::err(bindings::ENODATA)
}

/// Removes element `i` of `v` (the last one takes its place).
fn remove_at<T>(v: &mut KVec<T>, i: usize) {
    let n = v.len();
    if i >= n {
        return;
    }
    v.as_mut_slice().swap(i, n - 1);
    // SAFETY: `n - 1 < len`: the last element is read out once, then no
    // longer counted, and dropped here.
    let last = unsafe {
        let last = core::ptr::read(v.as_ptr().add(n - 1));
        v.set_len(n - 1);
        last
    };
    drop(last);
}

/// An attribute's value as DRAM keeps it.
pub(crate) enum Value {
    Inline(KVec<u8>),
    /// In blocks from `block` on, `len` bytes.
    Blocks {
        block: u64,
        len: u32,
    },
}

impl Value {
    fn len(&self) -> usize {
        match self {
            Value::Inline(v) => v.len(),
            Value::Blocks { len, .. } => *len as usize,
        }
    }
}

/// One attribute.
pub(crate) struct Xattr {
    pub(crate) index: u8,
    pub(crate) name: KVec<u8>,
    pub(crate) value: Value,
}

/// An inode's attributes, in the order they were first set.
#[derive(Default)]
pub(crate) struct Xattrs {
    pub(crate) list: KVec<Xattr>,
    /// An allocation failed while the log was replayed.
    pub(crate) failed: bool,
}

impl Xattrs {
    fn find(&self, index: u8, name: &[u8]) -> Option<usize> {
        self.list.iter().position(|x| x.index == index && x.name.as_slice() == name)
    }

    /// Whether two sets are the same (names, values or value blocks).
    pub(crate) fn same(&self, other: &Xattrs) -> bool {
        self.list.len() == other.list.len()
            && self.list.iter().all(|x| {
                other.find(x.index, &x.name).is_some_and(|i| {
                    match (&x.value, &other.list[i].value) {
                        (Value::Inline(a), Value::Inline(b)) => a.as_slice() == b.as_slice(),
                        (
                            Value::Blocks { block: a, len: l },
                            Value::Blocks { block: b, len: m },
                        ) => a == b && l == m,
                        _ => false,
                    }
                })
            })
    }

    /// The entries that set every attribute, for a compacted log.
    pub(crate) fn entries(&self, ctime: Timespec) -> impl Iterator<Item = NewEntry<'_>> {
        self.list.iter().map(move |x| NewEntry::Xattr {
            index: x.index,
            name: x.name.as_slice(),
            value: match &x.value {
                Value::Inline(v) => XattrValue::Inline(v.as_slice()),
                Value::Blocks { block, len } => XattrValue::Blocks { block: *block, len: *len },
            },
            ctime,
        })
    }

    /// Bytes of log the entries of [`Xattrs::entries`] take.
    pub(crate) fn log_bytes(&self) -> u64 {
        self.list.iter().fold(0u64, |a, x| {
            let inline = match &x.value {
                Value::Inline(v) => v.len(),
                Value::Blocks { .. } => 0,
            };
            a.saturating_add(crate::layout::log::xattr_len(x.name.len(), inline) as u64)
        })
    }

    /// A record for `index`/`name` with `value` inline, or in the blocks
    /// from `block` on (allocated up front, so that nothing can fail after
    /// the commit).
    fn record(index: u8, name: &[u8], value: &[u8], block: Option<u64>) -> Result<Xattr> {
        let mut n = KVec::new();
        n.extend_from_slice(name, GFP_KERNEL)?;
        let value = match block {
            Some(block) => Value::Blocks { block, len: value.len() as u32 },
            None => {
                let mut v = KVec::new();
                v.extend_from_slice(value, GFP_KERNEL)?;
                Value::Inline(v)
            }
        };
        Ok(Xattr { index, name: n, value })
    }

    /// The extents of the values kept in blocks.
    pub(crate) fn value_extents(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.list.iter().filter_map(|x| match x.value {
            Value::Blocks { block, len } => Some((block, xattr_value_blocks(len))),
            Value::Inline(_) => None,
        })
    }
}

impl XattrIndex for Xattrs {
    fn set(&mut self, index: u8, name: &[u8], value: XattrValue<'_>) {
        let value = match value {
            XattrValue::Inline(v) => {
                let mut k = KVec::new();
                if k.extend_from_slice(v, GFP_KERNEL).is_err() {
                    self.failed = true;
                    return;
                }
                Value::Inline(k)
            }
            XattrValue::Blocks { block, len } => Value::Blocks { block, len },
            XattrValue::Removed => return self.remove(index, name),
        };
        if let Some(i) = self.find(index, name) {
            self.list[i].value = value;
            return;
        }
        let mut n = KVec::new();
        if n.extend_from_slice(name, GFP_KERNEL).is_err()
            || self.list.push(Xattr { index, name: n, value }, GFP_KERNEL).is_err()
        {
            self.failed = true;
        }
    }

    fn remove(&mut self, index: u8, name: &[u8]) {
        if let Some(i) = self.find(index, name) {
            remove_at(&mut self.list, i);
        }
    }
}

/// Replays the attributes of the committed log of `info` (described by
/// the inode record with the log position of `g`).
pub(crate) fn replay(sbi: &SbInfo, info: &InodeInfo, g: &Inner) -> Result<Xattrs> {
    let mut raw = read_inode_at(&sbi.media, info.rec)
        .map_err(|e| read_failed(sbi, format_args!("inode {}", info.ino), e))?;
    (raw.log_head, raw.log_tail) = (g.log.head, g.log.tail);
    let mut xs = Xattrs::default();
    walk_log(&sbi.media, &sbi.geo, info.ino, &raw, &mut XattrReplay(&mut xs)).map_err(
        |w| match w {
            crate::layout::walk::WalkError::Media(e) => {
                read_failed(sbi, format_args!("inode {}: log", info.ino), e)
            }
            w => {
                sbi.fs_error(format_args!("inode {}: {}", info.ino, w.describe()));
                super_::euclean()
            }
        },
    )?;
    if xs.failed {
        return Err(ENOMEM);
    }
    Ok(xs)
}

/// The attributes of `info`, read on first use.
fn loaded<'g>(sbi: &SbInfo, info: &InodeInfo, g: &'g mut Inner) -> Result<&'g mut Xattrs> {
    if g.xattrs.is_none() {
        let xs = replay(sbi, info, g)?;
        g.xattrs = Some(xs);
    }
    g.xattrs.as_mut().ok_or(EINVAL)
}

/// The blocks of the current value of attribute `index` with an empty
/// name (an ACL), if it is kept in blocks: to free once an entry that
/// replaces it is committed.
pub(crate) fn acl_blocks(
    sbi: &SbInfo,
    info: &InodeInfo,
    g: &mut Inner,
    index: u8,
) -> Result<Option<(u64, u64)>> {
    let xs = loaded(sbi, info, g)?;
    Ok(xs.find(index, b"").and_then(|i| match xs.list.get(i)?.value {
        Value::Blocks { block, len } => Some((block, xattr_value_blocks(len))),
        Value::Inline(_) => None,
    }))
}

/// Copies `len` bytes of a value to `dst`.
fn copy_value(sbi: &SbInfo, v: &Value, dst: &mut [u8]) -> Result {
    match v {
        Value::Inline(b) => dst.copy_from_slice(b.get(..dst.len()).ok_or(EINVAL)?),
        Value::Blocks { block, .. } => {
            let pos = block.checked_mul(BLOCK_SIZE_U64).ok_or(EINVAL)?;
            // SAFETY: `dst` is a DRAM slice of `dst.len()` bytes.
            unsafe { sbi.media.copy_mc(dst.as_mut_ptr(), pos, dst.len()) }
                .map_err(|e| read_failed(sbi, format_args!("attribute value"), e))?;
        }
    }
    Ok(())
}

/// getxattr: the value's length if `buf` is empty, else the value copied
/// to `buf`; ENODATA if there is no such attribute, ERANGE if `buf` is
/// too small.
fn get(sbi: &SbInfo, info: &InodeInfo, index: u8, name: &[u8], buf: &mut [u8]) -> Result<usize> {
    let mut g = info.inner.lock();
    let xs = loaded(sbi, info, &mut g)?;
    let x = xs.find(index, name).and_then(|i| xs.list.get(i)).ok_or_else(enodata)?;
    let len = x.value.len();
    if buf.is_empty() {
        return Ok(len);
    }
    let dst = buf.get_mut(..len).ok_or(ERANGE)?;
    copy_value(sbi, &x.value, dst)?;
    Ok(len)
}

/// The prefix of namespace `index` (the ACLs' full names).
fn prefix(index: u8) -> &'static [u8] {
    match index {
        xa::USER => b"user.",
        xa::TRUSTED => b"trusted.",
        xa::SECURITY => b"security.",
        xa::ACL_ACCESS => b"system.posix_acl_access",
        xa::ACL_DEFAULT => b"system.posix_acl_default",
        _ => b"",
    }
}

/// listxattr: the NUL-terminated names (`trusted.` ones only for a caller
/// with CAP_SYS_ADMIN, as ext4); their total length if `buf` is empty,
/// ERANGE if it is too small.
fn list(sbi: &SbInfo, info: &InodeInfo, trusted: bool, buf: &mut [u8]) -> Result<usize> {
    let mut g = info.inner.lock();
    let xs = loaded(sbi, info, &mut g)?;
    let mut at = 0usize;
    for x in xs.list.iter().filter(|x| trusted || x.index != xa::TRUSTED) {
        let (p, n) = (prefix(x.index), x.name.as_slice());
        let len = p.len() + n.len() + 1;
        if !buf.is_empty() {
            let d = buf.get_mut(at..at + len).ok_or(ERANGE)?;
            d[..p.len()].copy_from_slice(p);
            d[p.len()..p.len() + n.len()].copy_from_slice(n);
            d[len - 1] = 0;
        }
        at += len;
    }
    Ok(at)
}

/// The mode an access ACL change sets as well (`posix_acl_update_mode`).
pub(crate) struct ModeChange {
    pub(crate) mode: u32,
}

/// A value too large for its entry goes to fresh blocks first
/// (non-temporal: the commit's fence makes it durable before the entry can
/// be seen): their (first block, count), freed by the caller if the entry
/// is not committed.
fn store_value(sbi: &SbInfo, v: &[u8]) -> Result<Option<(u64, u64)>> {
    if v.len() <= XATTR_INLINE_MAX {
        return Ok(None);
    }
    let n = xattr_value_blocks(v.len() as u32);
    let (b, _) = sbi.with_space(|a| a.alloc_exact(n, Pool::General))?;
    if let Err(e) = sbi.pm.write_nt(b * BLOCK_SIZE_U64, v) {
        let _ = sbi.alloc.free(b, n);
        return Err(e);
    }
    Ok(Some((b, n)))
}

/// A new inode's attribute (its ACLs, from `posix_acl_create`), appended
/// to its log before the commit that creates it: the blocks of a large
/// value (to free if that commit does not happen), or None.
pub(crate) fn push_new(
    sbi: &SbInfo,
    ap: &mut Appender<'_>,
    index: u8,
    value: &[u8],
    now: Timespec,
) -> Result<Option<(u64, u64)>> {
    if value.len() > XATTR_VALUE_MAX {
        return Err(E2BIG);
    }
    let block = store_value(sbi, value)?;
    let v = match block {
        Some((b, _)) => XattrValue::Blocks { block: b, len: value.len() as u32 },
        None => XattrValue::Inline(value),
    };
    if let Err(e) = ap.push(&NewEntry::Xattr { index, name: b"", value: v, ctime: now }) {
        if let Some((b, n)) = block {
            let _ = sbi.alloc.free(b, n);
        }
        return Err(e);
    }
    Ok(block)
}

/// setxattr/removexattr (`value` None), with `flags` XATTR_CREATE /
/// XATTR_REPLACE, and the mode change that goes with an access ACL: one
/// commit.
#[allow(clippy::too_many_arguments)]
fn set(
    sbi: &SbInfo,
    info: &InodeInfo,
    index: u8,
    name: &[u8],
    value: Option<&[u8]>,
    flags: u32,
    mode: Option<ModeChange>,
    now: Timespec,
) -> Result {
    if !xattr_name_is_valid(index, name) {
        return Err(if name.len() > crate::layout::log::XATTR_NAME_MAX { ERANGE } else { EINVAL });
    }
    if value.is_some_and(|v| v.len() > XATTR_VALUE_MAX) {
        return Err(E2BIG);
    }
    let _w = sbi.start_write()?;
    let _l = lock_logs(&[info])?;
    let mut g = info.inner.lock();
    let g = &mut *g;
    if index == xa::ACL_DEFAULT && !matches!(g.index, crate::inode::Index::Dir(_)) {
        // Only a directory has a default ACL (as ext4).
        return if value.is_some() { Err(EACCES) } else { Ok(()) };
    }
    let found = loaded(sbi, info, g)?.find(index, name);
    if flags & XATTR_CREATE != 0 && found.is_some() {
        return Err(EEXIST);
    }
    if found.is_none() {
        if flags & XATTR_REPLACE != 0 {
            return Err(enodata());
        }
        // Removing an absent ACL is no error (set_acl with no ACL, as
        // ext4); removexattr(2) passes XATTR_REPLACE, so ENODATA above.
        if value.is_none() && mode.is_none() {
            return Ok(());
        }
    }
    let block = match value {
        Some(v) => store_value(sbi, v)?,
        None => None,
    };
    let free_new = |b: Option<(u64, u64)>| {
        if let Some((b, n)) = b {
            let _ = sbi.alloc.free(b, n);
        }
    };
    let record = match value.map(|v| Xattrs::record(index, name, v, block.map(|b| b.0))) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            free_new(block);
            return Err(e);
        }
        None => None,
    };
    // A removal frees log space in the end: it may use the reserve.
    let pool = if value.is_none() { Pool::Reserve } else { Pool::General };
    let mut ap = Appender::of(sbi, info, g.log).with_pool(pool);
    let pushed = (|| -> Result {
        if let Some(m) = &mode {
            ap.push(&NewEntry::SetAttr(SetAttrs {
                mode: m.mode & 0o7777,
                ctime: now,
                ..SetAttrs::only(sa::MODE | sa::CTIME)
            }))?;
        }
        let v = match (value, block) {
            (Some(v), Some((b, _))) => XattrValue::Blocks { block: b, len: v.len() as u32 },
            (Some(v), None) => XattrValue::Inline(v),
            (None, _) if found.is_some() => XattrValue::Removed,
            (None, _) => return Ok(()),
        };
        ap.push(&NewEntry::Xattr { index, name, value: v, ctime: now })?;
        Ok(())
    })();
    let pos = match pushed.and_then(|()| ap.commit()) {
        Ok(p) => p,
        Err(e) => {
            ap.abort();
            free_new(block);
            return Err(e);
        }
    };
    g.log = pos;
    // The old value's blocks are free once the entry replacing or removing
    // it is committed (readers copy values under the same lock).
    let old_blocks = found.and_then(|i| match g.xattrs.as_ref()?.list.get(i)?.value {
        Value::Blocks { block, len } => Some((block, xattr_value_blocks(len))),
        Value::Inline(_) => None,
    });
    free_new(old_blocks);
    if let Some(xs) = g.xattrs.as_mut() {
        match (found, record) {
            (Some(i), Some(r)) => xs.list[i] = r,
            (Some(i), None) => remove_at(&mut xs.list, i),
            (None, Some(r)) => {
                // Allocated before the commit; a failed push only loses the
                // DRAM copy, which the next use reads again.
                if xs.list.push(r, GFP_KERNEL).is_err() {
                    g.xattrs = None;
                }
            }
            (None, None) => {}
        }
    }
    crate::gc::maybe_compact(sbi, info, g);
    Ok(())
}

/// The extents of `info`'s attribute values kept in blocks, for evict to
/// free (none if they cannot be read: then the blocks stay allocated until
/// fsck, which is safer than guessing).
pub(crate) fn value_blocks(sbi: &SbInfo, info: &InodeInfo, g: &mut Inner) -> KVec<(u64, u64)> {
    let mut v = KVec::new();
    match loaded(sbi, info, g) {
        Ok(xs) => {
            for e in xs.value_extents() {
                if v.push(e, GFP_KERNEL).is_err() {
                    break;
                }
            }
        }
        Err(e) => pr_warn!(
            "({}): inode {}: attribute values not freed ({:?}); fsck.novars frees them\n",
            sbi.dev(),
            info.ino,
            e
        ),
    }
    v
}

/// The namespace index of a handler's flags (`novars_shim.c` passes the
/// layout's `xa` values) or EOPNOTSUPP.
fn index_of(flags: c_int) -> Result<u8> {
    match u8::try_from(flags) {
        Ok(i @ (xa::USER | xa::TRUSTED | xa::SECURITY | xa::ACL_ACCESS | xa::ACL_DEFAULT)) => Ok(i),
        _ => Err(shim::err(bindings::EOPNOTSUPP)),
    }
}

const _: () = {
    assert!(shim::shim_h("NOVARS_XA_USER") == xa::USER as u64);
    assert!(shim::shim_h("NOVARS_XA_TRUSTED") == xa::TRUSTED as u64);
    assert!(shim::shim_h("NOVARS_XA_SECURITY") == xa::SECURITY as u64);
    assert!(shim::shim_h("NOVARS_XA_ACL_ACCESS") == xa::ACL_ACCESS as u64);
    assert!(shim::shim_h("NOVARS_XA_ACL_DEFAULT") == xa::ACL_DEFAULT as u64);
};

/// # Safety
///
/// `name` is NUL-terminated (the VFS's suffix after the prefix; ACLs: "").
unsafe fn name_of<'a>(name: *const c_char) -> &'a [u8] {
    if name.is_null() {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { core::ffi::CStr::from_ptr(name) }.to_bytes()
}

/// getxattr for namespace `flags`: length or -errno.
#[no_mangle]
extern "C" fn novars_rs_getxattr(
    inode: *mut bindings::inode,
    flags: c_int,
    name: *const c_char,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    // SAFETY: C passes a live novars inode, the VFS's name and a buffer of
    // `size` bytes (or size 0).
    let (sbi, info, name) =
        unsafe { (super_::sbi((*inode).i_sb), inode::of(inode), name_of(name)) };
    let buf: &mut [u8] = if size == 0 || buf.is_null() {
        &mut []
    } else {
        // SAFETY: as above.
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) }
    };
    match sbi.live().and_then(|()| index_of(flags)).and_then(|i| get(sbi, info, i, name, buf)) {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => e.to_errno(),
    }
}

/// setxattr/removexattr (`value` NULL) for namespace `flags`; `mode`
/// is the new mode for an access ACL that changes it, else `u32::MAX`.
/// 0 or -errno; on success the VFS inode's ctime is set (C sets the mode).
#[no_mangle]
extern "C" fn novars_rs_setxattr(
    inode: *mut bindings::inode,
    flags: c_int,
    name: *const c_char,
    value: *const c_void,
    size: usize,
    xflags: c_int,
    mode: u32,
) -> c_int {
    // SAFETY: C passes a live novars inode (its inode lock held), the
    // VFS's name and a value of `size` bytes (or NULL for a removal).
    let (sbi, info, name, now) =
        unsafe { (super_::sbi((*inode).i_sb), inode::of(inode), name_of(name), shim::now(inode)) };
    let value: Option<&[u8]> = if value.is_null() {
        None
    } else if size == 0 {
        Some(&[])
    } else {
        // SAFETY: as above.
        Some(unsafe { core::slice::from_raw_parts(value.cast::<u8>(), size) })
    };
    let change = (mode != u32::MAX).then_some(ModeChange { mode });
    let r =
        index_of(flags).and_then(|i| set(sbi, info, i, name, value, xflags as u32, change, now));
    match r {
        Ok(()) => {
            // SAFETY: as above.
            unsafe { IAttr::default().changed(now, false).set(inode) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// listxattr: length or -errno; `trusted` whether `trusted.` names are
/// listed (the caller has CAP_SYS_ADMIN).
#[no_mangle]
extern "C" fn novars_rs_listxattr(
    inode: *mut bindings::inode,
    trusted: bool,
    buf: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: C passes a live novars inode and a buffer of `size` bytes
    // (or size 0).
    let (sbi, info) = unsafe { (super_::sbi((*inode).i_sb), inode::of(inode)) };
    let buf: &mut [u8] = if size == 0 || buf.is_null() {
        &mut []
    } else {
        // SAFETY: as above.
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) }
    };
    match sbi.live().and_then(|()| list(sbi, info, trusted, buf)) {
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(e) => e.to_errno() as isize,
    }
}
