// SPDX-License-Identifier: GPL-2.0

//! Per-inode log locks (DESIGN.md "Concurrency").
//!
//! Every operation that appends to an inode's log holds that inode's log
//! lock from reading the committed log position until it has published
//! the new one; an operation on several inodes (link, unlink, rename, ...)
//! holds all of theirs, taken in ascending inode number. Operations on
//! different inodes therefore run in parallel; only the inodes they share
//! serialise them.
//!
//! The lock is a C `struct mutex` taken with `mutex_lock_nested`: the
//! 6.12 Rust `Mutex` has no lockdep subclasses, and lockdep would call two
//! locks of one class held at once a deadlock. All log locks are one
//! lockdep class; the k-th lock an operation takes (in inode order) is
//! subclass k, so lockdep checks the same ordering the code relies on.

use crate::inode::InodeInfo;
use core::marker::PhantomData;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// Most inodes one operation locks (rename: two directories, the moved
/// inode and the replaced one); each takes its own lockdep subclass.
pub(crate) const MAX_LOCKED: usize = 4;
const _: () = assert!(MAX_LOCKED <= bindings::MAX_LOCKDEP_SUBCLASSES as usize);

extern "C" {
    fn novars_log_lock_init(m: *mut bindings::mutex);
    fn novars_log_lock(m: *mut bindings::mutex, subclass: u32);
    fn novars_log_unlock(m: *mut bindings::mutex);
}

/// The log lock of one inode (inside its pinned `InodeInfo`).
///
/// # Invariants
///
/// `m` was initialised by `novars_log_lock_init` and is never moved.
#[pin_data]
pub(crate) struct LogLock {
    #[pin]
    m: Opaque<bindings::mutex>,
}

// SAFETY: a kernel mutex may be locked and unlocked from any thread.
unsafe impl Send for LogLock {}
// SAFETY: as above; all access goes through the mutex functions.
unsafe impl Sync for LogLock {}

impl LogLock {
    /// An initialiser for a new, unlocked log lock.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid, pinned memory for a `struct mutex`
            // that nothing uses before this initialises it.
            m <- Opaque::ffi_init(|slot| unsafe { novars_log_lock_init(slot) }),
        })
        // INVARIANT: initialised above; `Opaque` is pinned in place.
    }
}

/// The log locks of up to [`MAX_LOCKED`] inodes, held until dropped.
pub(crate) struct LogGuard<'a> {
    held: [Option<&'a InodeInfo>; MAX_LOCKED],
    /// Not `Send`: a mutex is unlocked by the task that locked it.
    _not_send: PhantomData<*mut ()>,
}

/// Locks the logs of `infos` (duplicates allowed, at most [`MAX_LOCKED`]
/// distinct) in ascending inode number. Callers hold no log lock already.
pub(crate) fn lock_logs<'a>(infos: &[&'a InodeInfo]) -> Result<LogGuard<'a>> {
    let mut v: [Option<&'a InodeInfo>; MAX_LOCKED] = [None; MAX_LOCKED];
    let mut n = 0usize;
    for &i in infos {
        if v.iter().take(n).flatten().any(|h| core::ptr::eq(*h, i)) {
            continue;
        }
        let slot = v.get_mut(n).ok_or(EINVAL)?;
        *slot = Some(i);
        n += 1;
    }
    // Ascending (ino, address): a total order every operation shares.
    let key = |i: &InodeInfo| (i.ino, i as *const InodeInfo as usize);
    v.get_mut(..n).ok_or(EINVAL)?.sort_unstable_by_key(|i| i.map(key));
    for (sub, i) in v.iter().take(n).flatten().enumerate() {
        // SAFETY: the mutex was initialised with its `InodeInfo` (type
        // invariant), which outlives `'a`; subclasses 0..MAX_LOCKED are
        // within lockdep's 8.
        unsafe { novars_log_lock(i.log_lock.m.get(), sub as u32) };
    }
    Ok(LogGuard { held: v, _not_send: PhantomData })
}

impl Drop for LogGuard<'_> {
    fn drop(&mut self) {
        for i in self.held.iter().rev().flatten() {
            // SAFETY: `lock_logs` locked this mutex in this task.
            unsafe { novars_log_unlock(i.log_lock.m.get()) };
        }
    }
}
