//! Pass 0: the superblocks.
//!
//! The primary is block 0, the backup the last block of the file system.
//! If the primary is unusable the backup is looked for where its size
//! field points, then in the last block of the device, and must have its
//! uuid (`layout::sb::find_backup`). Both unusable: nothing can be checked
//! (exit 8).

use layout::{Geometry, Media, SbError, Superblock, BLOCK_SIZE};

use crate::check::Fsck;
use crate::overlay::Overlay;
use crate::problem::Code;

pub const NAME: &str = "superblocks";

/// What the backup superblock looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backup {
    Good,
    Bad(String),
    Mismatch(String),
}

/// The superblock to use, and what is wrong with the two copies.
#[derive(Clone, Debug)]
pub struct Found {
    pub sb: Superblock,
    pub geo: Geometry,
    /// Why the primary is unusable (the backup was taken instead).
    pub primary_bad: Option<String>,
    pub backup_block: u64,
    pub backup: Backup,
}

fn why(e: SbError) -> String {
    match e {
        SbError::BadChecksum { stored, computed } => {
            format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
        }
        SbError::BadVersion(v) => format!("unsupported format version {v}"),
        SbError::UnknownIncompat(f) => format!("unsupported incompatible features {f:#x}"),
        SbError::DeviceTooSmall { need, have } => {
            format!("file system of {need} blocks is larger than the device ({have} blocks)")
        }
        e => e.describe().to_string(),
    }
}

/// The first difference between two superblocks in what they describe.
fn differs(a: &Superblock, b: &Superblock) -> Option<&'static str> {
    let checks: [(&'static str, bool); 9] = [
        ("blocks_count", a.blocks_count == b.blocks_count),
        ("lanes", a.lanes == b.lanes),
        ("seg_inodes", a.seg_inodes == b.seg_inodes),
        ("first_data_block", a.first_data_block == b.first_data_block),
        ("root_ino", a.root_ino == b.root_ino),
        ("lost_found_ino", a.lost_found_ino == b.lost_found_ino),
        ("uuid", a.uuid == b.uuid),
        (
            "features",
            (a.feature_compat, a.feature_incompat, a.feature_ro_compat)
                == (b.feature_compat, b.feature_incompat, b.feature_ro_compat),
        ),
        ("label", a.label == b.label),
    ];
    checks.iter().find(|(_, same)| !same).map(|(f, _)| *f)
}

fn parse_at(m: &Overlay<'_>, nr: u64) -> Result<(Superblock, Geometry), String> {
    let blk = m.block(nr).map_err(|e| format!("unreadable ({e:?})"))?;
    Superblock::parse(blk, m.blocks()).map_err(why)
}

/// Finds a usable superblock, or says why there is none.
pub fn find(m: &Overlay<'_>) -> Result<Found, String> {
    let dev = m.blocks();
    if dev < 2 {
        return Err("device too small to hold a novars file system".into());
    }
    match parse_at(m, 0) {
        Ok((sb, geo)) => {
            let backup_block = geo.backup_sb();
            let backup = match parse_at(m, backup_block) {
                Ok((b, _)) => match differs(&sb, &b) {
                    None => Backup::Good,
                    Some(field) => {
                        Backup::Mismatch(format!("backup differs from the primary in {field}"))
                    }
                },
                Err(e) => Backup::Bad(e),
            };
            Ok(Found { sb, geo, primary_bad: None, backup_block, backup })
        }
        Err(primary) => {
            // Another file system over an old novars (its backup left in
            // the last block): not ours to repair, as the kernel refuses
            // to mount it.
            let mut head = Vec::new();
            for nr in 0..=(layout::sb::SIGNATURE_BYTES / BLOCK_SIZE) as u64 {
                match m.block(nr) {
                    Ok(b) => head.extend_from_slice(b),
                    Err(_) => break,
                }
            }
            if !Superblock::has_magic(&head) {
                if let Some(what) = layout::sb::foreign_signature(&head) {
                    return Err(format!(
                        "not a novars file system: the device holds {what} (a novars backup superblock in its last block, if any, is left from before)"
                    ));
                }
            }
            // The backup is in the last block of the file system: where
            // the damaged primary's size field points, else the device's
            // last block; and only the primary's own (its uuid), not one
            // an earlier, larger novars left at the end of the device.
            let last = dev - 1;
            let b0 = m.block(0).map(<[u8]>::to_vec).unwrap_or_default();
            let found = layout::sb::find_backup(&b0, dev, |b| m.block(b).ok());
            let (tried, miss) = match found {
                Ok((b, sb, geo)) => {
                    return Ok(Found {
                        sb,
                        geo,
                        primary_bad: Some(primary),
                        backup_block: b,
                        backup: Backup::Good,
                    });
                }
                Err(x) => x,
            };
            let candidates = [tried, last];
            let no_magic = |nr| m.block(nr).map(|b| !Superblock::has_magic(b)).unwrap_or(true);
            if no_magic(0) && candidates.iter().all(|&b| no_magic(b)) {
                return Err("not a novars file system (no superblock magic in block 0 or in the last block)".into());
            }
            let backup = match miss {
                layout::sb::BackupMiss::Invalid(e) => why(e),
                m => m.describe().to_string(),
            };
            Err(format!(
                "no valid superblock: primary (block 0): {primary}; backup (block {tried}): {backup}. \
                 Nothing can be repaired without one"
            ))
        }
    }
}

/// Reports what [`find`] saw and queues the repairs.
pub fn run(f: &mut Fsck<'_, '_>, found: &Found) {
    f.pass = 0;
    if let Some(why) = &found.primary_bad {
        let b = found.backup_block;
        f.problem(
            Code::SbPrimaryBad,
            "superblock",
            format!("primary superblock unusable: {why}; the backup in block {b} is valid"),
            "copy the backup to block 0",
            |f| {
                f.sb_dirty = true;
                Ok(())
            },
        );
    }
    let b = found.backup_block;
    match &found.backup {
        Backup::Good => {}
        Backup::Bad(why) => {
            f.problem(
                Code::SbBackupBad,
                "superblock",
                format!("backup superblock (block {b}) unusable: {why}"),
                "rewrite it from the primary",
                |f| {
                    f.sb_dirty = true;
                    Ok(())
                },
            );
        }
        Backup::Mismatch(why) => {
            f.problem(
                Code::SbBackupMismatch,
                "superblock",
                format!("backup superblock (block {b}): {why}"),
                "rewrite it from the primary",
                |f| {
                    f.sb_dirty = true;
                    Ok(())
                },
            );
        }
    }
}
