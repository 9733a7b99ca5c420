//! Pass 5: link counts.
//!
//! A file's count is its number of names; a directory's is 2 plus its
//! subdirectories (the root's `..` is itself, so the same rule holds). A
//! live inode without names and with count 0 is an orphan: a file unlinked
//! while open (or an `O_TMPFILE`) when the system crashed. The kernel frees
//! orphans at mount, so fsck does the same (a note, not an error).

use crate::check::Fsck;
use crate::logwrite::NewEntry;
use crate::problem::Code;

pub const NAME: &str = "link counts";

pub fn run(f: &mut Fsck<'_, '_>) {
    let root = f.geo.root_ino;
    // Counted per position in the (number-ordered) live inodes.
    let idx = f.live_index();
    let mut names = vec![0u32; idx.len()];
    let mut subdirs = vec![0u32; idx.len()];
    for (d, r) in f.inodes.values().enumerate() {
        let Some(dir) = r.dir.as_ref() else { continue };
        for dent in dir.names.values() {
            let Some(t) = idx.find(dent.ino) else { continue };
            if let Some(n) = names.get_mut(t) {
                *n = n.saturating_add(1);
            }
            if idx.is_dir(t) && dent.ino != root {
                if let Some(s) = subdirs.get_mut(d) {
                    *s = s.saturating_add(1);
                }
            }
        }
    }
    for &(d, ino, delta) in &f.pending_names {
        let Some(t) = idx.find(ino) else { continue };
        if let Some(n) = names.get_mut(t) {
            *n = n.saturating_add_signed(delta);
        }
        if idx.is_dir(t) && d != 0 {
            if let Some(s) = idx.find(d).and_then(|d| subdirs.get_mut(d)) {
                *s = s.saturating_add_signed(delta);
            }
        }
    }
    let total = idx.len() as u64;
    // What the loop reads of each inode; a repair changes only its own.
    let snap: Vec<(u32, bool, u64, u64, bool)> = f
        .inodes
        .values()
        .map(|r| (r.view.nlink, r.is_dir(), r.pos, r.view.size, r.holds_names()))
        .collect();
    for (i, &(have, is_dir, pos, size, holds_names)) in snap.iter().enumerate() {
        let ino = idx.ino(i);
        if i % 4096 == 0 {
            f.progress(i as u64, total);
        }
        let n = names.get(i).copied().unwrap_or(0);
        // A directory holding names is not freed here (pass 4 reconnects
        // it): its names would stay counted for their inodes.
        if ino != root && n == 0 && have == 0 && !holds_names {
            let kind = if is_dir { "directory" } else { "inode" };
            f.problem(
                Code::OrphanInode,
                format!("inode {ino}"),
                format!("{kind} with no names and link count 0 (size {size})"),
                "freed, as a mount would",
                |f| f.free_inode(ino, pos),
            );
            continue;
        }
        let want =
            if is_dir { 2u32.saturating_add(subdirs.get(i).copied().unwrap_or(0)) } else { n };
        if have != want {
            let what = if is_dir {
                let sub = want - 2;
                let s = if sub == 1 { "subdirectory" } else { "subdirectories" };
                format!("link count is {have}, should be {want} (2 + {sub} {s})")
            } else {
                format!("link count is {have}, should be {want} (its names)")
            };
            f.problem(
                Code::LinkCount,
                format!("inode {ino}"),
                what,
                format!("set it to {want}"),
                |f| f.append(ino, NewEntry::Link { nlink: want }),
            );
        }
    }
    f.progress(total, total);
}
