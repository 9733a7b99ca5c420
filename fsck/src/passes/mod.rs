//! The passes, in order. Each is a unit with its own problem codes
//! (see [`crate::problem::Code`]):
//!
//! 0. [`superblock`]: primary and backup superblock, geometry;
//! 1. [`journal`]: per-lane journals (open transactions are rolled back,
//!    as a mount would);
//! 2. [`inodes`]: inode-table segments, every inode record and its log;
//! 3. [`blocks`]: every block claimed at most once;
//! 4. [`dirs`]: names, `..`, the root, `lost+found`, reachability;
//! 5. [`links`]: link counts and orphans;
//! 6. [`alloc`]: the allocator record and the superblock counts.

pub mod alloc;
pub mod blocks;
pub mod dirs;
pub mod inodes;
pub mod journal;
pub mod links;
pub mod superblock;

/// Printable form of a name: lossy UTF-8, control characters escaped.
pub(crate) fn show_name(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.chars().count() > 80 {
        let short: String = out.chars().take(60).collect();
        format!("'{short}...' ({} bytes)", name.len())
    } else {
        format!("'{out}'")
    }
}
