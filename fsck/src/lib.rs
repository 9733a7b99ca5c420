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
//! | 3 | block ownership (data, log pages, attribute values): every block claimed once; attributes an inode may not have |
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
//! twice. Pass 2 reads the inode tables and walks the logs on several
//! threads and reports in table order afterwards, so the output does not
//! depend on them; on pmem it reads past the mapping ([`direct`]), which
//! would read the data blocks around every log page too.
//!
//! Decisions worth knowing:
//!
//! * An open journal transaction and an orphan inode (live, no names, link
//!   count 0) are what a crash leaves and what a mount recovers. They are
//!   *notes*, not errors: applied to the overlay in every mode (so `-n`
//!   checks the state the kernel will see), written with `-p`/`-y`, and they
//!   do not change the exit status. A crashed image that only needs
//!   mount-time recovery checks clean.
//! * `-p` repairs only problems whose [`problem::Kind`] is `Preen`; at the
//!   first other one it stops repairing (e2fsck's "UNEXPECTED
//!   INCONSISTENCY"), sets the superblock's error flag and exits 4.
//! * A broken log keeps its valid prefix; a duplicate name or the removal
//!   of a missing one (faults an append cannot undo) makes fsck rewrite the
//!   directory's log from what it means. Other repairs append entries
//!   (`DENTRY`, `LINK`, `PARENT`, `WRITE`, `PUNCH`, `XATTR`) with the log-append
//!   protocol of `layout::log` ([`logwrite`]). A rewrite keeps every live
//!   extended attribute (its value blocks where they are) and the flags.
//! * A repairing check that leaves nothing wrong on an image that was not
//!   CLEAN writes a fresh allocator record and marks it CLEAN, as e2fsck
//!   marks a file system valid.
//! * Declined repairs are remembered so later passes do not report their
//!   consequences as new problems.
#![deny(unsafe_code)]

pub mod check;
pub mod device;
pub mod direct;
pub mod logwrite;
pub mod model;
pub mod overlay;
pub mod passes;
pub mod problem;
pub mod space;
pub mod tree;

pub use check::{
    apply_writes, check, check_with_reader, Answer, Events, Mode, Options, Outcome, Quiet,
};
pub use layout::Media;
pub use problem::{Code, Problem};
