//! `fsck.novars`: check and repair a novars file system.
//!
//! The check runs in passes in the manner of e2fsck, each with named
//! problem codes ([`problem::Code`]):
//!
//! | pass | checks |
//! |------|--------|
//! | 0 | superblock and its backup, geometry |
//! | 1 | per-lane journals (open transactions are rolled back as a mount would) |
//! | 2 | inode-table segments, inode records, every inode's log |
//! | 3 | block ownership: every block claimed once |
//! | 4 | directory tree: names, `..`, root, `lost+found`, reachability |
//! | 5 | link counts, orphans |
//! | 6 | allocator record and superblock counts |
//!
//! Everything reads the image through an [`overlay::Overlay`]: the journal
//! rollback and every repair land there first, so later passes see the
//! repaired state and `-n` can still check what the kernel will see after
//! its mount-time recovery. [`check::check`] returns the blocks to write;
//! [`device`] opens, maps and writes back devices and image files.
//!
//! Only metadata is read: inode tables, log pages, journals, superblocks,
//! the allocator record. Data blocks are read only to copy a block claimed
//! twice.
#![deny(unsafe_code)]

pub mod check;
pub mod device;
mod logwrite;
pub mod model;
pub mod overlay;
pub mod passes;
pub mod problem;
pub mod space;
pub mod tree;

pub use check::{apply_writes, check, Answer, Events, Mode, Options, Outcome, Quiet};
pub use layout::Media;
pub use problem::{Code, Problem};
