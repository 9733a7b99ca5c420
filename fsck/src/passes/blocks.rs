//! Pass 3: block ownership.
//!
//! Every later inode-table segment, every log page up to the tail page,
//! every mapped data block and every block of an extended attribute's
//! value is claimed; a block claimed twice is reported with both owners.
//! The one that keeps it is a segment before a log page before file data
//! before an attribute value (then the lower inode); a file that loses
//! gets a copy of the blocks (or, without room, a hole), an attribute
//! that loses a copy of its value (or, without room, is removed), a log
//! that loses is cut before that page. What nobody claims is free space
//! for the repairs of the later passes. Works on extents: `O(n log n)` in
//! the claims, never per block.
//!
//! Before the overlaps, attributes an inode may not have: a default ACL
//! on a non-directory (the kernel refuses to set one) is removed. That
//! needs room to append an entry, so it waits for this pass's free space;
//! its value blocks, if any, are then free.

use layout::append::XattrValue;
use layout::log::xa;

use crate::check::Fsck;
use crate::logwrite::NewEntry;
use crate::problem::Code;
use crate::space::{sweep, Claim, FreeSpace, Overlap, Owner};

pub const NAME: &str = "block ownership";

impl Fsck<'_, '_> {
    /// Everything that claims blocks, from the current model.
    pub(crate) fn claims(&self) -> Vec<Claim> {
        let mut v = Vec::new();
        let seg_blocks = self.geo.seg_blocks();
        for (lane, l) in self.lanes.iter().enumerate() {
            for (index, &s) in l.segments.iter().enumerate().skip(1) {
                let owner = Owner::Segment { lane: lane as u32, index: index as u32 };
                v.push(Claim { start: s, count: seg_blocks, owner });
            }
        }
        for (&ino, rec) in &self.inodes {
            for &p in &rec.pages {
                v.push(Claim { start: p, count: 1, owner: Owner::LogPage { ino } });
            }
            for x in rec.extents.iter() {
                v.push(Claim {
                    start: x.block,
                    count: x.count,
                    owner: Owner::Data { ino, pgoff: x.pgoff },
                });
            }
            for (start, count) in rec.xattrs.0.values().filter_map(|x| x.blocks()) {
                v.push(Claim { start, count, owner: Owner::Value { ino, block: start } });
            }
        }
        v
    }

    /// The free extents of the data area, from the current model (pass
    /// 3's if nothing was repaired since).
    pub(crate) fn free_extents(&self) -> Vec<(u64, u64)> {
        if let Some((at, free)) = &self.swept_free {
            if *at == self.repairs_run {
                return free.clone();
            }
        }
        let mut claims = self.claims();
        sweep(&mut claims, self.geo.first_data_block, self.geo.backup_sb()).2
    }

    /// The parts of `[start, start+count)` (inside `claim`) that `claim`
    /// still holds (an earlier repair may have moved some of it), in block
    /// order, each as `(block, count, file block)`; for file data, the
    /// parts the file still maps as the claim did (file block to block),
    /// each in one extent, with its first file block (0 for the others).
    fn still_claimed(&self, claim: &Claim, start: u64, count: u64) -> Vec<(u64, u64, u64)> {
        let owner = &claim.owner;
        let end = start.saturating_add(count);
        let clip = |s: u64, n: u64| {
            let (a, b) = (s.max(start), s.saturating_add(n).min(end));
            (a < b).then(|| (a, b - a))
        };
        let mut v = Vec::new();
        match *owner {
            Owner::Segment { .. } => v.push((start, count, 0)),
            Owner::LogPage { ino } => {
                if let Some(r) = self.inodes.get(&ino) {
                    v.extend(r.pages.iter().filter_map(|&p| clip(p, 1)).map(|(a, n)| (a, n, 0)));
                }
            }
            Owner::Data { ino, pgoff } => {
                if let Some(r) = self.inodes.get(&ino) {
                    // Same mapping: file block - block as in the claim.
                    let same = |x: &crate::model::Extent| {
                        x.pgoff.wrapping_sub(x.block) == pgoff.wrapping_sub(claim.start)
                    };
                    for x in r.extents.iter().filter(|x| same(x)) {
                        if let Some((a, n)) = clip(x.block, x.count) {
                            v.push((a, n, x.pgoff + (a - x.block)));
                        }
                    }
                }
            }
            Owner::Value { ino, block } => {
                let blocks = self
                    .inodes
                    .get(&ino)
                    .and_then(|r| r.xattrs.by_block(block))
                    .and_then(|(_, v)| v.blocks());
                if let Some((a, n)) = blocks.and_then(|(s, n)| clip(s, n)) {
                    v.push((a, n, 0));
                }
            }
        }
        v.sort_unstable();
        v
    }
}

/// The parts of `lose` (as [`Fsck::still_claimed`] gives them) that some
/// part of `keep` also covers, keeping `lose`'s file blocks.
fn intersect(keep: &[(u64, u64, u64)], lose: &[(u64, u64, u64)]) -> Vec<(u64, u64, u64)> {
    let mut v = Vec::new();
    for &(ls, ln, lp) in lose {
        for &(ks, kn, _) in keep {
            let (a, b) = (ls.max(ks), (ls + ln).min(ks + kn));
            if a < b {
                v.push((a, b - a, lp + (a - ls)));
            }
        }
    }
    v
}

/// Removes default ACLs from inodes that are not directories.
fn default_acls(f: &mut Fsck<'_, '_>) {
    let bad: Vec<u64> = f
        .inodes
        .iter()
        .filter(|(_, r)| {
            !r.is_dir() && r.xattrs.0.contains_key(&(xa::ACL_DEFAULT, Box::from(&[][..])))
        })
        .map(|(&ino, _)| ino)
        .collect();
    for ino in bad {
        f.problem(
            Code::XattrAclNotDir,
            format!("inode {ino}"),
            "a default ACL (system.posix_acl_default) on an inode that is not a directory",
            "remove the default ACL",
            |f| {
                f.append(
                    ino,
                    NewEntry::Xattr {
                        index: xa::ACL_DEFAULT,
                        name: &[],
                        value: XattrValue::Removed,
                    },
                )
            },
        );
    }
}

pub fn run(f: &mut Fsck<'_, '_>) {
    let mut claims = f.claims();
    let total = claims.len() as u64;
    f.progress(0, total);
    let (overlaps, more, free) = sweep(&mut claims, f.geo.first_data_block, f.geo.backup_sb());
    f.space = FreeSpace::new(&free);
    f.swept_free = Some((f.repairs_run, free));
    default_acls(f);
    for ov in overlaps {
        resolve(f, &ov);
    }
    if more > 0 {
        f.info(&format!("Pass 3: {more} more overlapping claims not listed"));
    }
    f.progress(total, total);
}

fn resolve(f: &mut Fsck<'_, '_>, ov: &Overlap) {
    let (keep, lose) =
        if ov.a.owner.priority() <= ov.b.owner.priority() { (ov.a, ov.b) } else { (ov.b, ov.a) };
    // Earlier repairs may have moved part of the overlap: what is left of
    // it is resolved, part by part.
    let parts = intersect(
        &f.still_claimed(&keep, ov.start, ov.count),
        &f.still_claimed(&lose, ov.start, ov.count),
    );
    for (i, &(start, count, file_block)) in parts.iter().enumerate() {
        // An attribute value or a log loses as a whole, once.
        if i > 0 && !matches!(lose.owner, Owner::Data { .. }) {
            break;
        }
        resolve_part(f, &keep, &lose, start, count, file_block);
    }
}

/// Resolves `[start, start+count)`, claimed by both `keep` and `lose`
/// (`file_block`: where it is in `lose`'s file, for file data).
fn resolve_part(
    f: &mut Fsck<'_, '_>,
    keep: &Claim,
    lose: &Claim,
    start: u64,
    count: u64,
    file_block: u64,
) {
    let what = if count == 1 {
        format!("block {start}")
    } else {
        format!("blocks {start}..={}", start + count - 1)
    };
    let msg =
        format!("{what} claimed by {} and by {}", keep.owner.describe(), lose.owner.describe());
    let subject = match lose.owner.ino() {
        Some(ino) => format!("inode {ino}"),
        None => what.clone(),
    };
    match lose.owner {
        Owner::Data { ino, .. } => {
            let action = if f.space.total() >= count {
                format!("give inode {ino} its own copy of the data")
            } else {
                format!("unmap the blocks from inode {ino} (no free space for a copy: that data is lost)")
            };
            f.problem(Code::BlockMultiplyClaimed, subject, msg, action, |f| {
                f.clone_blocks(ino, file_block, start, count)
            });
        }
        Owner::Value { ino, block } => {
            let action = if f.space.total() >= lose.count {
                format!("give the attribute of inode {ino} its own copy of the value")
            } else {
                format!("remove the attribute from inode {ino} (no free space for a copy)")
            };
            f.problem(Code::BlockMultiplyClaimed, subject, msg, action, |f| {
                f.clone_value(ino, block)
            });
        }
        Owner::LogPage { ino } => {
            let page = start;
            f.problem(
                Code::BlockMultiplyClaimed,
                subject,
                msg,
                format!("cut inode {ino}'s log before page {page} (later entries are lost)"),
                |f| f.truncate_before_page(ino, page),
            );
        }
        Owner::Segment { .. } => {
            f.problem(
                Code::BlockMultiplyClaimed,
                subject,
                msg,
                "none possible (an inode-table segment cannot move)",
                |_| Err("two inode-table segments overlap".into()),
            );
        }
    }
}
