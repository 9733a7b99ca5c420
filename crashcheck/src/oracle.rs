//! The oracle: is a crash image one the file system may legitimately be in?
//!
//! For each distinct crash image:
//!
//! 1. `fsck.novars -n` semantics ([`novars_fsck::check`] in read-only
//!    mode): the check rolls back open journals in its overlay exactly as
//!    the kernel's mount does, and it must find nothing but *notes*
//!    (`JOURNAL_ROLLBACK`, `ORPHAN_INODE`, `SB_ERROR_FLAG`): exit status 0.
//! 2. The image is recovered the way mount recovers it (open journals
//!    rolled back with `layout::journal`, the code the kernel runs) and its
//!    tree is listed with [`novars_fsck::tree::list`].
//!
//! The tree is then compared (by [`crate::replay`]) with the trees the
//! trace says are legal at that crash point: the state before or after each
//! system call in flight, with every completed call present.
//!
//! **What "equal" covers**: for every path reachable from the root, the
//! inode number, the full mode (type and permissions), uid, gid, size
//! (0 for directories), link count, a hash of the contents (files: every
//! mapped block inside the size; symlinks: the target), the symlink
//! target, the extended attributes (namespace, name, a hash of the value;
//! ACLs included) and the inode flags and project id. Not compared: timestamps (atime, mtime, ctime, btime, the
//! listing has none), `rdev`, the order of names, block placement, free
//! space, and inodes no name reaches (orphans a mount frees). Allocation is
//! still checked indirectly: fsck's pass 3 (a block claimed twice) and the
//! link-count and reachability passes are part of step 1.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use layout::journal::{self, JournalState, JOURNAL_STATE_OFF};
use layout::{Superblock, BLOCK_SIZE, BLOCK_SIZE_U64};
use novars_fsck::tree::Item;
use novars_fsck::{Mode, Options, Quiet};

use crate::model::Model;

/// A listed tree: path -> item.
pub type Tree = BTreeMap<PathBuf, Item>;

/// Index of an interned tree.
pub type TreeId = usize;

/// What the oracle found in one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// fsck could not check at all (no usable superblock, ...).
    pub fatal: Option<String>,
    /// fsck errors: `(code, headline)`.
    pub errors: Vec<(String, String)>,
    /// fsck notes (journal rollback, orphans): fine, kept for reports.
    pub notes: Vec<String>,
    /// The recovered tree.
    pub tree: TreeId,
}

impl Verdict {
    /// Whether fsck found the image clean (exit status 0).
    pub fn fsck_clean(&self) -> bool {
        self.fatal.is_none() && self.errors.is_empty()
    }
}

/// Interned trees: equal trees get one id.
#[derive(Default)]
pub struct Trees {
    list: Vec<Tree>,
    by_hash: HashMap<u64, Vec<TreeId>>,
}

fn tree_hash(t: &Tree) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (p, i) in t {
        p.hash(&mut h);
        (i.ino, i.mode, i.uid, i.gid, i.size, i.nlink, i.content, &i.target).hash(&mut h);
        (&i.xattrs, i.flags, i.projid).hash(&mut h);
    }
    h.finish()
}

impl Trees {
    /// The id of `t`, adding it if new.
    pub fn intern(&mut self, t: Tree) -> TreeId {
        let h = tree_hash(&t);
        let ids = self.by_hash.entry(h).or_default();
        if let Some(&id) = ids.iter().find(|&&id| self.list.get(id) == Some(&t)) {
            return id;
        }
        let id = self.list.len();
        self.list.push(t);
        ids.push(id);
        id
    }

    /// The tree `id`.
    pub fn get(&self, id: TreeId) -> &Tree {
        static EMPTY: Tree = BTreeMap::new();
        self.list.get(id).unwrap_or(&EMPTY)
    }

    /// Distinct trees seen.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no tree was seen.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The superblock a mount would use: the primary, else the backup in the
/// last block of the device.
fn superblock(img: &[u8]) -> Option<(Superblock, layout::Geometry)> {
    let blocks = (img.len() / BLOCK_SIZE) as u64;
    let at = |b: u64| {
        let s = usize::try_from(b).ok()?.checked_mul(BLOCK_SIZE)?;
        Superblock::parse(img.get(s..s.checked_add(BLOCK_SIZE)?)?, blocks).ok()
    };
    at(0).or_else(|| at(blocks.checked_sub(1)?))
}

/// Rolls back every open journal of the image in `m`, as mount does, with
/// patches ([`Model::patch`]); the caller reverts them.
pub fn recover(m: &mut Model) {
    let Some((_, geo)) = superblock(m.bytes()) else {
        return;
    };
    for lane in 0..geo.lanes {
        let jb = geo.journal_block(lane);
        let Some(start) = usize::try_from(jb).ok().and_then(|b| b.checked_mul(BLOCK_SIZE)) else {
            continue;
        };
        let Some(block) = m.bytes().get(start..start + BLOCK_SIZE) else {
            continue;
        };
        let undo: Vec<_> = match journal::inspect(block, &geo, lane) {
            Ok(JournalState::Open { count, .. }) => journal::undo_entries(block, count).collect(),
            _ => continue,
        };
        for e in undo {
            m.patch(e.pos, &e.old.to_le_bytes());
        }
        m.patch(jb * BLOCK_SIZE_U64 + JOURNAL_STATE_OFF as u64, &0u64.to_le_bytes());
    }
}

/// Checks the image currently in `m` (durable state plus the crash patch).
/// Leaves `m` as it found it.
pub fn check(m: &mut Model, trees: &mut Trees) -> Verdict {
    let out = novars_fsck::check(m.bytes(), &Options::new(Mode::ReadOnly), &mut Quiet);
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for p in &out.problems {
        if p.is_note() {
            notes.push(p.code.name().to_string());
        } else {
            errors.push((p.code.name().to_string(), p.headline()));
        }
    }
    // Recovery patches go on top of the crash patch; list, then undo only
    // the recovery patches by reverting to a marked depth.
    let depth = m.undo_depth();
    recover(m);
    let tree = novars_fsck::tree::list(m.bytes());
    m.revert_to(depth);
    Verdict { fatal: out.fatal, errors, notes, tree: trees.intern(tree) }
}

/// The tree of the image the CPU sees (every pending write applied), as
/// the trace's before/after states are defined. Leaves `m` unchanged.
pub fn volatile_tree(m: &mut Model, trees: &mut Trees) -> TreeId {
    let depth = m.undo_depth();
    m.patch_volatile();
    let t = novars_fsck::tree::list(m.bytes());
    m.revert_to(depth);
    trees.intern(t)
}

fn show(i: &Item) -> String {
    let mut s = format!(
        "ino {} mode {:o} uid {} gid {} size {} nlink {} content {:016x}",
        i.ino, i.mode, i.uid, i.gid, i.size, i.nlink, i.content
    );
    if let Some(t) = &i.target {
        let _ = write!(s, " target {:?}", String::from_utf8_lossy(t));
    }
    if i.flags != 0 || i.projid != 0 {
        let _ = write!(s, " flags {:#x} projid {}", i.flags, i.projid);
    }
    for (index, name, hash) in &i.xattrs {
        let _ = write!(s, " xattr {index}:{:?}={hash:016x}", String::from_utf8_lossy(name));
    }
    s
}

/// The differences between a recovered tree and an expected one, at most
/// `max` lines.
pub fn diff(got: &Tree, want: &Tree, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => out.push(format!("missing {}: {}", p.display(), show(w))),
            Some(g) if g != w => {
                out.push(format!("differs {}: got {}; want {}", p.display(), show(g), show(w)))
            }
            _ => {}
        }
    }
    for (p, g) in got {
        if !want.contains_key(p) {
            out.push(format!("extra {}: {}", p.display(), show(g)));
        }
    }
    let n = out.len();
    if n > max {
        out.truncate(max);
        out.push(format!("... and {} more", n - max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use layout::inode::{INODE_TAIL_OFF, S_IFREG};
    use layout::journal::JournalEntry;
    use novars_mkfs::{Attrs, Builder, Options};

    fn image() -> (Vec<u8>, u64) {
        let mut img = vec![0u8; 1 << 20];
        let mut o = Options::defaults(256, 1);
        o.seg_inodes = 64;
        let mut b = Builder::format(&mut img, o).unwrap();
        let r = b.root();
        let f = b
            .add_file(
                r,
                b"f",
                Attrs::new(S_IFREG | 0o644, 0, 0, layout::Timespec::new(0, 0)),
                b"data",
            )
            .unwrap();
        b.finish().unwrap();
        crate::synth::mark_mounted(&mut img).unwrap();
        (img, f)
    }

    #[test]
    fn open_journal_is_rolled_back_for_the_listing() {
        let (mut img, f) = image();
        let reader = novars_fsck::tree::Reader::new(&img).unwrap();
        let tail_pos = reader.slot_pos(f).unwrap() + INODE_TAIL_OFF;
        let old = layout::read_u64(&img, tail_pos as usize).unwrap();
        let jb = reader.geo.journal_block(0) as usize * BLOCK_SIZE;
        drop(reader);
        // An open transaction that moved the file's tail to 0 (empty log).
        let e = [JournalEntry { pos: tail_pos, old }];
        assert!(journal::build(&mut img[jb..jb + BLOCK_SIZE], 0, 5, &e));
        img[jb + JOURNAL_STATE_OFF..jb + JOURNAL_STATE_OFF + 8]
            .copy_from_slice(&5u64.to_le_bytes());
        img[tail_pos as usize..tail_pos as usize + 8].copy_from_slice(&0u64.to_le_bytes());
        let mut m = Model::new(img.clone());
        let mut trees = Trees::default();
        let v = check(&mut m, &mut trees);
        assert!(v.fsck_clean(), "{v:?}");
        assert_eq!(v.notes, vec!["JOURNAL_ROLLBACK".to_string()]);
        let t = trees.get(v.tree);
        let f = std::path::Path::new("/f");
        let data = novars_fsck::tree::list(&image().0)[f].content;
        assert_eq!(t[f].content, data, "the rolled-back tail shows the data");
        assert_eq!(m.bytes(), &img[..], "the model is left as it was");
        // Without recovery the listing would have shown no data.
        let raw = novars_fsck::tree::list(&img);
        assert_ne!(raw[f].content, data);
        let d = diff(&raw, t, 8);
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("differs /f:"), "{d:?}");
    }

    #[test]
    fn equal_trees_intern_once() {
        let (img, _) = image();
        let mut trees = Trees::default();
        let a = trees.intern(novars_fsck::tree::list(&img));
        let b = trees.intern(novars_fsck::tree::list(&img));
        assert_eq!(a, b);
        assert_eq!(trees.len(), 1);
        let c = trees.intern(Tree::new());
        assert_ne!(a, c);
    }
}
