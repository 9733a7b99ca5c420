// SPDX-License-Identifier: GPL-2.0

//! Export operations: file handles for `name_to_handle_at(2)`,
//! `open_by_handle_at(2)` and knfsd (`sb->s_export_op`, the table in
//! `novars_shim.c`).
//!
//! Inode numbers are `lane + slot * lanes` (`Geometry::ino_of`) and grow
//! with the inode tables past 32 bits, so a handle is the kernel's
//! `FILEID_INO64_GEN`: the 64-bit inode number and the record's 32-bit
//! generation (bumped each time a slot is reused), 3 words; a connectable
//! handle adds the parent's (`FILEID_INO64_GEN_PARENT`, 6 words).
//!
//! A handle is user input: decoding reads the inode with
//! `novars_iget_handle`, for which a number beyond the tables, a free
//! slot, another generation or an unlinked inode is `ESTALE`, quietly
//! (`inode.rs`, `Source::Handle`). A directory's parent, for reconnecting
//! a decoded directory to the tree, is its `parent` in DRAM (`Inner`: the
//! log's last `PARENT` entry, kept by rename).
//!
//! No `commit_metadata`: every operation is durable when it returns.

use crate::inode;
use crate::shim::{self, shim_h};
use core::ffi::c_int;
use kernel::bindings;

/// `FILEID_INO64_GEN`, `FILEID_INO64_GEN_PARENT`, `FILEID_INVALID`.
const FH_INO64_GEN: c_int = 0x81;
const FH_INO64_GEN_PARENT: c_int = 0x82;
const FH_INVALID: c_int = 0xff;
const _: () = assert!(shim_h("NOVARS_FH_INO64_GEN") == FH_INO64_GEN as u64);
const _: () = assert!(shim_h("NOVARS_FH_INO64_GEN_PARENT") == FH_INO64_GEN_PARENT as u64);
const _: () = assert!(shim_h("NOVARS_FH_INVALID") == FH_INVALID as u64);

/// Words of one (ino, generation) pair in a handle.
const FH_WORDS: usize = 3;

/// The words of `(ino, gen)`, laid out as the kernel's `struct fid`
/// `i64` member (a native-endian u64, then the u32).
fn encode(ino: u64, gen: u32) -> [u32; FH_WORDS] {
    let b = ino.to_ne_bytes();
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        gen,
    ]
}

/// The `(ino, gen)` of [`encode`]'s words.
fn decode(w: &[u32]) -> Option<(u64, u32)> {
    let [lo, hi, gen] = *w.get(..FH_WORDS)? else {
        return None;
    };
    let (lo, hi) = (lo.to_ne_bytes(), hi.to_ne_bytes());
    let ino = u64::from_ne_bytes([lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]);
    Some((ino, gen))
}

/// `encode_fh`: the handle of `inode` (and of `parent`, if not NULL) in
/// `fh`; `*max_len` words of room in, words used out. Returns the handle
/// type, or `FILEID_INVALID` with the words needed in `*max_len`.
#[no_mangle]
extern "C" fn novars_rs_encode_fh(
    inode: *mut bindings::inode,
    fh: *mut u32,
    max_len: *mut c_int,
    parent: *mut bindings::inode,
) -> c_int {
    let (words, ty) = if parent.is_null() {
        (FH_WORDS, FH_INO64_GEN)
    } else {
        (2 * FH_WORDS, FH_INO64_GEN_PARENT)
    };
    // SAFETY: the VFS (exportfs) passes live novars inodes it holds
    // references to, `max_len` and, with room for `*max_len` words, `fh`.
    unsafe {
        let room = usize::try_from(*max_len).unwrap_or(0);
        // `words` is 3 or 6.
        *max_len = words as c_int;
        if room < words {
            return FH_INVALID;
        }
        let me = inode::of(inode);
        let up = if parent.is_null() {
            [0; FH_WORDS]
        } else {
            let p = inode::of(parent);
            encode(p.ino, p.gen)
        };
        let out = core::slice::from_raw_parts_mut(fh, words);
        for (o, w) in out.iter_mut().zip(encode(me.ino, me.gen).into_iter().chain(up)) {
            *o = w;
        }
    }
    ty
}

/// `fh_to_dentry` (`parent` false) and `fh_to_parent` (true): a dentry of
/// the inode the handle's `len` words at `fh` name, NULL for a handle that
/// is not novars's (exportfs: ESTALE), or an `ERR_PTR`.
#[no_mangle]
extern "C" fn novars_rs_fh_to_dentry(
    sb: *mut bindings::super_block,
    fh: *const u32,
    len: c_int,
    ty: c_int,
    parent: bool,
) -> *mut bindings::dentry {
    let Ok(len) = usize::try_from(len) else {
        return core::ptr::null_mut();
    };
    // SAFETY: exportfs passes the handle's `len` words.
    let words = unsafe { core::slice::from_raw_parts(fh, len) };
    let which = match (ty, parent) {
        (FH_INO64_GEN | FH_INO64_GEN_PARENT, false) => words.get(..FH_WORDS),
        (FH_INO64_GEN_PARENT, true) => words.get(FH_WORDS..),
        _ => None,
    };
    let Some((ino, gen)) = which.and_then(decode) else {
        return core::ptr::null_mut();
    };
    // SAFETY: as below, `sb` is mounted.
    if let Err(e) = unsafe { crate::super_::sbi(sb) }.live() {
        return shim::err_ptr(e.to_errno());
    }
    // SAFETY: `sb` is a mounted novars super block (exportfs holds the
    // mount). `novars_iget_handle` returns a referenced inode or an
    // ERR_PTR, which `d_obtain_alias` passes on; the reference is either
    // dropped here or consumed by `d_obtain_alias`.
    unsafe {
        let inode = shim::novars_iget_handle(sb, ino, gen);
        if !inode.is_null() && !shim::is_err(inode) && (*inode).i_generation != gen {
            // Found in the inode cache: the slot was reused since.
            bindings::iput(inode);
            return shim::err_ptr(shim::neg(bindings::ESTALE));
        }
        bindings::d_obtain_alias(inode)
    }
}

/// `get_parent`: a dentry of the parent of directory `child` (exportfs
/// holds its inode lock), or an `ERR_PTR`.
#[no_mangle]
extern "C" fn novars_rs_get_parent(child: *mut bindings::dentry) -> *mut bindings::dentry {
    // SAFETY: exportfs passes a positive dentry of a novars directory and
    // holds a reference to it for the call.
    let (sb, parent) = unsafe {
        let inode = (*child).d_inode;
        ((*inode).i_sb, inode::of(inode).inner.lock().parent)
    };
    if parent == 0 {
        return shim::err_ptr(shim::neg(bindings::ESTALE));
    }
    // SAFETY: `sb` is the child's, mounted.
    if let Err(e) = unsafe { crate::super_::sbi(sb) }.live() {
        return shim::err_ptr(e.to_errno());
    }
    // SAFETY: as above; the parent's number is the file system's own (a
    // bad one is corruption, reported by iget), and `d_obtain_alias`
    // consumes the reference (or passes the ERR_PTR on).
    unsafe { bindings::d_obtain_alias(shim::novars_iget(sb, parent)) }
}
