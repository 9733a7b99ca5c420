//! Pass 4: the directory tree.
//!
//! The root must be a live directory whose `..` is itself. Every name must
//! refer to a live inode of the type the name records; a directory has at
//! most one name and its `..` is the directory that names it. The log of a
//! directory must not add a name twice or remove one that is not there.
//! `lost+found` must exist: a missing one is an error
//! (`LOST_FOUND_MISSING`; `-n` exits 4, `-p`/`-y` create it), as e2fsck
//! -n answers "/lost+found not found. Create? no" and exits 4, although
//! the kernel lets a user remove it (as ext4 does); the crash checker's
//! fuzzer leaves it alone for that reason. Everything live must be reachable from the
//! root; what is not is reconnected into `lost+found` as `#<ino>`
//! (directories first, at the top of each lost subtree). Inodes without
//! names and with link count 0 are orphans, left to pass 5, except a
//! directory that still holds names (damage, not an unlinked directory).

use std::collections::{BTreeMap, HashSet, VecDeque};

use layout::inode::{dt, dt_of_mode};

use crate::check::Fsck;
use crate::logwrite::NewEntry;
use crate::model::{Dent, LiveIndex, Name};
use crate::passes::show_name;
use crate::problem::Code;

pub const NAME: &str = "directory tree";

const LOST_FOUND: &[u8] = b"lost+found";

pub fn run(f: &mut Fsck<'_, '_>) {
    check_root(f);
    check_names(f);
    check_dir_names(f);
    check_lost_found(f);
    check_reachable(f);
}

fn is_dir(f: &Fsck<'_, '_>, ino: u64) -> bool {
    f.inodes.get(&ino).is_some_and(|r| r.is_dir())
}

fn check_root(f: &mut Fsck<'_, '_>) {
    let root = f.geo.root_ino;
    if !is_dir(f, root) {
        let what = match f.inodes.get(&root) {
            Some(_) => "the root inode is not a directory",
            None => "the root inode is not in use",
        };
        f.problem(
            Code::RootMissing,
            format!("inode {root}"),
            what,
            "create an empty root directory (everything is reconnected to lost+found)",
            |f| {
                f.inodes.remove(&root);
                f.create_dir(root, root, 0o755)
            },
        );
        if !is_dir(f, root) {
            return;
        }
    }
    let parent = f.inodes.get(&root).map(|r| r.view.parent).unwrap_or(root);
    if parent != root {
        f.problem(
            Code::RootBadParent,
            format!("inode {root}"),
            format!("'..' of the root is {parent}"),
            "set it to the root",
            |f| f.append(root, NewEntry::Parent { parent: root }),
        );
    }
}

fn dirs(f: &Fsck<'_, '_>) -> Vec<u64> {
    f.inodes.iter().filter(|(_, r)| r.is_dir()).map(|(&i, _)| i).collect()
}

fn type_name(t: u8) -> &'static str {
    match t {
        dt::REG => "regular file",
        dt::DIR => "directory",
        dt::LNK => "symlink",
        dt::CHR => "character device",
        dt::BLK => "block device",
        dt::FIFO => "fifo",
        dt::SOCK => "socket",
        _ => "unknown type",
    }
}

fn check_names(f: &mut Fsck<'_, '_>) {
    let root = f.geo.root_ino;
    // Repairs here change names, never which inodes live or their types.
    let idx = f.live_index();
    for d in dirs(f) {
        let subject = || format!("directory {d}");
        // Faults inside the log: only a rewrite of the log removes them.
        let faults = f
            .inodes
            .get(&d)
            .and_then(|r| r.dir.as_ref())
            .map(|x| x.faults.clone())
            .unwrap_or_default();
        for fault in faults {
            let (code, msg) = if fault.duplicate {
                (
                    Code::DentryDuplicate,
                    format!(
                        "name {} added again (to inode {}) at {:#x}",
                        show_name(&fault.name),
                        fault.ino,
                        fault.pos
                    ),
                )
            } else {
                (
                    Code::DentryDelMissing,
                    format!(
                        "removal of name {} (inode {}) that is not there, at {:#x}",
                        show_name(&fault.name),
                        fault.ino,
                        fault.pos
                    ),
                )
            };
            f.problem(code, subject(), msg, "rewrite the directory's log without it", |f| {
                let pending = f
                    .inodes
                    .get(&d)
                    .and_then(|r| r.dir.as_ref())
                    .is_some_and(|x| !x.faults.is_empty());
                if pending {
                    f.rewrite_log(d)
                } else {
                    Ok(())
                }
            });
        }
        // Only the names with something wrong are copied out of the model.
        let bad: Vec<(Name, Dent, Option<u32>)> =
            match f.inodes.get(&d).and_then(|r| r.dir.as_ref()) {
                Some(names) => names
                    .names
                    .iter()
                    .filter_map(|(name, dent)| {
                        let mode = idx.find(dent.ino).map(|t| idx.mode(t));
                        let ok = match mode {
                            None => false,
                            Some(_) if dent.ino == root => false,
                            Some(mode) => dt_of_mode(mode).unwrap_or(0) == dent.ftype,
                        };
                        (!ok).then(|| (name.clone(), *dent, mode))
                    })
                    .collect(),
                None => Vec::new(),
            };
        for (name, dent, target) in bad {
            match target {
                None => {
                    f.problem(
                        Code::DentryDeadInode,
                        subject(),
                        format!(
                            "name {} refers to inode {}, which is not in use",
                            show_name(&name),
                            dent.ino
                        ),
                        "remove the name",
                        |f| f.remove_name(d, &name, dent.ino, dent.ftype),
                    );
                }
                Some(_) if dent.ino == root => {
                    f.problem(
                        Code::DentryToRoot,
                        subject(),
                        format!("name {} refers to the root directory", show_name(&name)),
                        "remove the name",
                        |f| f.remove_name(d, &name, dent.ino, dent.ftype),
                    );
                }
                Some(mode) => {
                    let want = dt_of_mode(mode).unwrap_or(0);
                    if want != dent.ftype {
                        f.problem(
                            Code::DentryWrongType,
                            subject(),
                            format!(
                                "name {} says {} but inode {} is a {}",
                                show_name(&name),
                                type_name(dent.ftype),
                                dent.ino,
                                type_name(want)
                            ),
                            "correct the type",
                            |f| {
                                f.remove_name(d, &name, dent.ino, dent.ftype)?;
                                f.add_name(d, &name, dent.ino)
                            },
                        );
                    }
                }
            }
        }
    }
}

/// The names of an inode: (directory, name, entry).
type NamedBy = Vec<(u64, Name, Dent)>;

/// For every live directory (but the root): the directories naming it.
fn dir_refs(f: &Fsck<'_, '_>) -> BTreeMap<u64, NamedBy> {
    let idx = f.live_index();
    let mut refs: BTreeMap<u64, NamedBy> = BTreeMap::new();
    for (&d, r) in &f.inodes {
        let Some(names) = r.dir.as_ref() else { continue };
        for (name, dent) in &names.names {
            if dent.ino != f.geo.root_ino && idx.find(dent.ino).is_some_and(|t| idx.is_dir(t)) {
                refs.entry(dent.ino).or_default().push((d, name.clone(), *dent));
            }
        }
    }
    refs
}

fn check_dir_names(f: &mut Fsck<'_, '_>) {
    for (x, names) in dir_refs(f) {
        let parent = f.inodes.get(&x).map(|r| r.view.parent).unwrap_or(0);
        let keep = names.iter().position(|(p, _, _)| *p == parent).unwrap_or(0);
        let subject = format!("directory {x}");
        if names.len() > 1 {
            let list: Vec<String> =
                names.iter().map(|(p, n, _)| format!("{} in {p}", show_name(n))).collect();
            for (i, (p, name, dent)) in names.iter().enumerate() {
                if i == keep {
                    continue;
                }
                let fixed = f.problem(
                    Code::DirMultipleNames,
                    subject.clone(),
                    format!("directory has {} names: {}", names.len(), list.join(", ")),
                    format!("remove the name {} from directory {p}", show_name(name)),
                    |f| f.remove_name(*p, name, x, dent.ftype),
                );
                if !fixed {
                    f.pending_names.push((*p, x, -1));
                }
            }
        }
        let Some((p, name, _)) = names.get(keep) else { continue };
        if parent != *p {
            let p = *p;
            f.problem(
                Code::DirBadParent,
                subject,
                format!("'..' is {parent}, but the directory is named {} in {p}", show_name(name)),
                format!("set '..' to {p}"),
                |f| f.append(x, NewEntry::Parent { parent: p }),
            );
        }
    }
}

/// The inode of `/lost+found`, if it is a directory.
pub(crate) fn lost_found(f: &Fsck<'_, '_>) -> Option<u64> {
    let root = f.inodes.get(&f.geo.root_ino)?;
    let d = root.dir.as_ref()?.names.get(LOST_FOUND)?;
    is_dir(f, d.ino).then_some(d.ino)
}

fn check_lost_found(f: &mut Fsck<'_, '_>) {
    let root = f.geo.root_ino;
    if !is_dir(f, root) {
        return;
    }
    let named = f
        .inodes
        .get(&root)
        .and_then(|r| r.dir.as_ref())
        .and_then(|d| d.names.get(LOST_FOUND).copied());
    match named {
        None => {
            f.problem(
                Code::LostFoundMissing,
                format!("directory {root}"),
                "no lost+found in the root directory",
                "create it",
                create_lost_found,
            );
        }
        Some(d) if !is_dir(f, d.ino) => {
            let live = f.inodes.contains_key(&d.ino);
            f.problem(
                Code::LostFoundNotDir,
                format!("directory {root}"),
                format!("lost+found (inode {}) is not a directory", d.ino),
                format!("unlink it, create a new lost+found and reconnect inode {} there", d.ino),
                |f| {
                    f.remove_name(root, LOST_FOUND, d.ino, d.ftype)?;
                    create_lost_found(f)?;
                    if live {
                        reconnect(f, d.ino)?;
                    }
                    Ok(())
                },
            );
        }
        Some(d) if f.sb.lost_found_ino != sb_lost_found(f, d.ino) => {
            let old = f.sb.lost_found_ino;
            let want = sb_lost_found(f, d.ino);
            f.problem(
                Code::SbLostFound,
                "superblock",
                format!(
                    "superblock names inode {old} as lost+found, the root names inode {}",
                    d.ino
                ),
                format!("set it to {want}"),
                |f| {
                    f.sb.lost_found_ino = want;
                    f.sb_dirty = true;
                    Ok(())
                },
            );
        }
        Some(_) => {}
    }
}

/// What the superblock should say for lost+found inode `ino`: the
/// superblock can only name an inode of the first segments (0: none).
fn sb_lost_found(f: &Fsck<'_, '_>, ino: u64) -> u64 {
    let (lane, slot) = f.geo.ino_split(ino);
    if lane < f.geo.lanes && slot < f.geo.seg_inodes as u64 {
        ino
    } else {
        0
    }
}

fn create_lost_found(f: &mut Fsck<'_, '_>) -> crate::check::Repair {
    let root = f.geo.root_ino;
    let hint = f.sb.lost_found_ino;
    // Prefer the superblock's number, then one the superblock can name.
    let ino = if hint != 0 && f.free_inos.contains(&hint) {
        hint
    } else {
        let first = f.free_inos.iter().copied().find(|&i| sb_lost_found(f, i) == i);
        first.or_else(|| f.free_inos.iter().next().copied()).ok_or("no free inode")?
    };
    f.create_dir(ino, root, 0o700)?;
    f.add_name(root, LOST_FOUND, ino)?;
    let nlink = f.inodes.get(&root).map(|r| r.view.nlink).unwrap_or(2);
    f.append(root, NewEntry::Link { nlink: nlink.saturating_add(1) })?;
    let want = sb_lost_found(f, ino);
    if f.sb.lost_found_ino != want {
        f.sb.lost_found_ino = want;
        f.sb_dirty = true;
    }
    Ok(())
}

/// Links `ino` into lost+found as `#<ino>`; a directory gets its `..`
/// pointed there and lost+found's link count goes up.
fn reconnect(f: &mut Fsck<'_, '_>, ino: u64) -> crate::check::Repair {
    let lf = lost_found(f).ok_or("no lost+found directory")?;
    let mut name = format!("#{ino}");
    let taken = |f: &Fsck<'_, '_>, n: &str| {
        f.inodes
            .get(&lf)
            .and_then(|r| r.dir.as_ref())
            .is_some_and(|d| d.names.contains_key(n.as_bytes()))
    };
    let mut k = 0;
    while taken(f, &name) {
        k += 1;
        name = format!("#{ino}.{k}");
    }
    f.add_name(lf, name.as_bytes(), ino)?;
    if is_dir(f, ino) {
        f.append(ino, NewEntry::Parent { parent: lf })?;
        let nlink = f.inodes.get(&lf).map(|r| r.view.nlink).unwrap_or(2);
        f.append(lf, NewEntry::Link { nlink: nlink.saturating_add(1) })?;
    }
    Ok(())
}

/// Marks everything reachable from `start` (a directory): `reached` is
/// indexed by position in `idx`.
fn mark_from(f: &Fsck<'_, '_>, idx: &LiveIndex, start: u64, reached: &mut [bool]) {
    let mut queue = VecDeque::from([start]);
    mark(idx, reached, start);
    while let Some(d) = queue.pop_front() {
        let Some(names) = f.inodes.get(&d).and_then(|r| r.dir.as_ref()) else {
            continue;
        };
        for dent in names.names.values() {
            let Some(t) = idx.find(dent.ino) else { continue };
            if reached.get(t) == Some(&false) {
                reached[t] = true;
                if idx.is_dir(t) {
                    queue.push_back(dent.ino);
                }
            }
        }
    }
}

/// Marks `ino` reached; whether it was not before.
fn mark(idx: &LiveIndex, reached: &mut [bool], ino: u64) -> bool {
    match idx.find(ino).and_then(|i| reached.get_mut(i)) {
        Some(r) if !*r => {
            *r = true;
            true
        }
        _ => false,
    }
}

fn is_reached(idx: &LiveIndex, reached: &[bool], ino: u64) -> bool {
    idx.find(ino).and_then(|i| reached.get(i)).copied().unwrap_or(false)
}

/// Who names a live inode first: directory, name (kept for directories
/// only: the top of a lost tree is one), type.
type NamedIn = Vec<Option<(u64, Option<Name>, u8)>>;

fn check_reachable(f: &mut Fsck<'_, '_>) {
    let root = f.geo.root_ino;
    let idx = f.live_index();
    let mut reached = vec![false; idx.len()];
    if f.inodes.contains_key(&root) {
        mark_from(f, &idx, root, &mut reached);
    }
    // Who names whom, for orphans and for finding the top of lost trees.
    let mut named_in: NamedIn = vec![None; idx.len()];
    for (&d, r) in &f.inodes {
        if let Some(names) = r.dir.as_ref() {
            for (n, dent) in &names.names {
                let Some(t) = idx.find(dent.ino) else { continue };
                if let Some(slot @ None) = named_in.get_mut(t) {
                    let name = idx.is_dir(t).then(|| n.clone());
                    *slot = Some((d, name, dent.ftype));
                }
            }
        }
    }
    let named = |ino: u64| idx.find(ino).and_then(|t| named_in.get(t)).and_then(|n| n.as_ref());
    let lost: Vec<u64> = f
        .inodes
        .iter()
        .enumerate()
        // Not reached, and not an orphan (no names, count 0: pass 5's). A
        // directory with names in it is no orphan (rmdir needs it empty):
        // freeing it would leave its names counted, so it is reconnected.
        .filter(|(i, (_, r))| {
            !reached.get(*i).copied().unwrap_or(false)
                && (r.view.nlink != 0
                    || named_in.get(*i).is_some_and(|n| n.is_some())
                    || r.holds_names())
        })
        .map(|(_, (&i, _))| i)
        .collect();
    // Directories first: reconnect the top of each lost subtree.
    let lost_dirs: Vec<u64> = lost.iter().copied().filter(|&x| is_dir(f, x)).collect();
    for x in lost_dirs {
        if is_reached(&idx, &reached, x) {
            continue;
        }
        let mut top = x;
        let mut seen = HashSet::from([x]);
        let mut loop_name = None;
        while let Some((p, n, t)) = named(top) {
            if is_reached(&idx, &reached, *p) || !is_dir(f, *p) {
                break;
            }
            if !seen.insert(*p) {
                loop_name = Some((*p, n.clone().unwrap_or_default(), *t));
                break;
            }
            top = *p;
        }
        let msg = match &loop_name {
            Some(_) => {
                "directory not reachable from the root (its parents form a loop)".to_string()
            }
            None => "directory not reachable from the root".to_string(),
        };
        let fixed = f.problem(
            Code::InodeUnreachable,
            format!("inode {top}"),
            msg,
            format!("reconnect it as lost+found/#{top}"),
            |f| {
                if let Some((p, n, t)) = &loop_name {
                    f.remove_name(*p, n, top, *t)?;
                }
                reconnect(f, top)
            },
        );
        if !fixed {
            f.pending_names.push((lost_found(f).unwrap_or(0), top, 1));
            if let Some((p, _, _)) = &loop_name {
                f.pending_names.push((*p, top, -1));
            }
        }
        mark_from(f, &idx, top, &mut reached);
    }
    for &x in &lost {
        if is_reached(&idx, &reached, x) {
            continue;
        }
        let kind = f
            .inodes
            .get(&x)
            .and_then(|r| dt_of_mode(r.view.mode))
            .map(type_name)
            .unwrap_or("inode");
        let fixed = f.problem(
            Code::InodeUnreachable,
            format!("inode {x}"),
            format!("{kind} not reachable from the root"),
            format!("reconnect it as lost+found/#{x}"),
            |f| reconnect(f, x),
        );
        if !fixed {
            f.pending_names.push((lost_found(f).unwrap_or(0), x, 1));
        }
        mark(&idx, &mut reached, x);
    }
}
