//! Pass 5: link counts.
//!
//! A file's count is its number of names; a directory's is 2 plus its
//! subdirectories (the root's `..` is itself, so the same rule holds). A
//! live inode without names and with count 0 is an orphan: a file unlinked
//! while open (or an `O_TMPFILE`) when the system crashed. The kernel frees
//! orphans at mount, so fsck does the same (a note, not an error).

use std::collections::HashMap;

use crate::check::Fsck;
use crate::logwrite::NewEntry;
use crate::problem::Code;

pub const NAME: &str = "link counts";

pub fn run(f: &mut Fsck<'_, '_>) {
    let root = f.geo.root_ino;
    let mut names: HashMap<u64, u32> = HashMap::with_capacity(f.inodes.len());
    let mut subdirs: HashMap<u64, u32> = HashMap::new();
    for (&d, r) in &f.inodes {
        let Some(dir) = r.dir.as_ref() else { continue };
        for dent in dir.names.values() {
            let Some(t) = f.inodes.get(&dent.ino) else { continue };
            *names.entry(dent.ino).or_default() += 1;
            if t.is_dir() && dent.ino != root {
                *subdirs.entry(d).or_default() += 1;
            }
        }
    }
    for &(d, ino, delta) in &f.pending_names {
        let Some(t) = f.inodes.get(&ino) else { continue };
        let n = names.entry(ino).or_default();
        *n = n.saturating_add_signed(delta);
        if t.is_dir() && d != 0 {
            let s = subdirs.entry(d).or_default();
            *s = s.saturating_add_signed(delta);
        }
    }
    let inos: Vec<u64> = f.inodes.keys().copied().collect();
    let total = inos.len() as u64;
    for (i, ino) in inos.into_iter().enumerate() {
        if i % 4096 == 0 {
            f.progress(i as u64, total);
        }
        let Some(rec) = f.inodes.get(&ino) else { continue };
        let n = names.get(&ino).copied().unwrap_or(0);
        let have = rec.view.nlink;
        let subject = format!("inode {ino}");
        if ino != root && n == 0 && have == 0 {
            let (pos, size) = (rec.pos, rec.view.size);
            let kind = if rec.is_dir() { "directory" } else { "inode" };
            f.problem(
                Code::OrphanInode,
                subject,
                format!("{kind} with no names and link count 0 (size {size})"),
                "freed, as a mount would",
                |f| f.free_inode(ino, pos),
            );
            continue;
        }
        let want = if rec.is_dir() {
            2u32.saturating_add(subdirs.get(&ino).copied().unwrap_or(0))
        } else {
            n
        };
        if have != want {
            let what = if rec.is_dir() {
                let sub = want - 2;
                let s = if sub == 1 { "subdirectory" } else { "subdirectories" };
                format!("link count is {have}, should be {want} (2 + {sub} {s})")
            } else {
                format!("link count is {have}, should be {want} (its names)")
            };
            f.problem(Code::LinkCount, subject, what, format!("set it to {want}"), |f| {
                f.append(ino, NewEntry::Link { nlink: want })
            });
        }
    }
    f.progress(total, total);
}
