// SPDX-License-Identifier: GPL-2.0

//! novars: a NOVA-style log-structured file system for persistent memory.
//!
//! Status: mounts novars images read-only (lookup, readdir, read through
//! DAX, statfs, journal rollback); read-write operation is issue 4's next
//! step. See `DESIGN.md` for the module's structure. The on-media format is the
//! `layout` crate of the workspace, compiled in from its source so that the
//! module and the userspace tools share one definition of a valid image.
//! The VFS glue the Rust bindings of 6.12 cannot express lives in
//! `novars_shim.c`, declared in `novars_shim.h`.

use kernel::error::to_result;
use kernel::prelude::*;

// The shared format crate, compiled from its source (Kbuild cannot link a
// separate crate into an out-of-tree module). Its items are `pub` for the
// userspace tools and re-exported; here most are unused so far.
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../layout/src/format/mod.rs"]
mod layout;

// A novars block is mapped into user space as one page (DAX).
const _: () = assert!(layout::BLOCK_SIZE == kernel::page::PAGE_SIZE);

module! {
    type: NovaRs,
    name: "novars",
    author: "novars developers",
    description: "NOVA-style persistent-memory file system",
    // GPL: the DAX symbols novars needs are EXPORT_SYMBOL_GPL.
    license: "GPL",
}

mod alloc;
mod dir;
mod export;
mod falloc;
mod file;
mod filetx;
mod fsioctl;
mod gc;
mod iflags;
mod index;
mod inode;
mod itable;
mod journal;
mod locks;
mod log;
mod media;
mod mmap;
mod namei;
mod pm;
mod recovery;
mod seal;
mod setattr;
mod shim;
mod smallvec;
mod super_;
mod xattr;

/// The loaded module.
///
/// # Invariants
///
/// While a `NovaRs` exists, file-system type `novars` is registered.
struct NovaRs;

impl kernel::Module for NovaRs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: registers a static `file_system_type`; called once, from
        // module init, before anything else in this module can use it.
        to_result(unsafe { shim::novars_register_fs() })?;
        pr_info!("registered file system type novars\n");
        // INVARIANT: registration succeeded just above.
        Ok(NovaRs)
    }
}

impl Drop for NovaRs {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the type is registered; this runs
        // once, at module exit, when no mount can hold a module reference.
        unsafe { shim::novars_unregister_fs() };
        pr_info!("unregistered file system type novars\n");
    }
}
