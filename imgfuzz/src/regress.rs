//! Named cases: every image that ever failed, rebuilt by its own rule so
//! that it stays the same case when the random rules change.

use layout::log::et;
use layout::BLOCK_SIZE;

use crate::map::Map;
use crate::mutate::{record_loop, share_block};
use crate::{fix, Image};

/// Where a superblock keeps `feature_ro_compat` (FORMAT.md).
const SB_RO_COMPAT_OFF: usize = 32;

/// A named case. Issue 14 named the first five (each crashed or confused
/// the kernel or fsck once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regression {
    /// A file's size is u64::MAX (the exercise then punches a hole: the
    /// end of the range overflowed).
    SizeMax,
    /// A named inode with link count 0, in its record and in every LINK
    /// entry of its log (not an orphan: a link-count error).
    NamedNlink0,
    /// The allocator record's block names itself as the next.
    RecordLoop,
    /// Two files' WRITE entries map the same block.
    SharedBlock,
    /// A primary superblock without magic (a reformatted device) over
    /// an old novars backup.
    Reformatted,
    /// An unusable primary over a backup with read-only-compatible
    /// features nobody knows (vm:fuzz_images, case 1765:178: `fsck -y`
    /// said it copied the backup, exit 9, and wrote nothing).
    UnknownRoBackup,
}

impl Regression {
    pub const ALL: [Regression; 6] = [
        Regression::SizeMax,
        Regression::NamedNlink0,
        Regression::RecordLoop,
        Regression::SharedBlock,
        Regression::Reformatted,
        Regression::UnknownRoBackup,
    ];

    /// The case's name, as `Case` parses and prints it.
    pub fn name(self) -> &'static str {
        match self {
            Regression::SizeMax => "size-max",
            Regression::NamedNlink0 => "named-nlink0",
            Regression::RecordLoop => "record-loop",
            Regression::SharedBlock => "shared-block",
            Regression::Reformatted => "reformatted",
            Regression::UnknownRoBackup => "unknown-ro-backup",
        }
    }

    /// Applies the case to `img` (a copy of the base `map` describes);
    /// says what it did, or why the base has nothing to apply it to.
    pub(crate) fn apply(self, map: &Map, img: &mut Image) -> String {
        match self {
            Regression::SizeMax => {
                let Some(f) = map.files().next() else { return "no regular file".into() };
                img.put_u64(f.pos + 64, u64::MAX);
                fix::inode(img, f.pos);
                format!("inode {}: size u64::MAX", f.ino)
            }
            Regression::NamedNlink0 => {
                let Some(f) = map.files().last() else { return "no regular file".into() };
                img.put_u32(f.pos + 56, 0);
                fix::inode(img, f.pos);
                let links = map.entries.iter().filter(|e| e.ino == f.ino && e.etype == et::LINK);
                for e in links {
                    img.put_u32(e.pos + 16, 0);
                    fix::entry(img, e.pos, e.len);
                }
                format!("inode {}: link count 0, still named", f.ino)
            }
            Regression::RecordLoop => {
                let Some(&b) = map.records.first() else { return "no allocator record".into() };
                record_loop(img, b);
                format!("allocator record block {b} links to itself")
            }
            Regression::SharedBlock => {
                let writes: Vec<_> = map.writes().collect();
                let pair = writes
                    .iter()
                    .find_map(|p| writes.iter().find(|q| q.ino != p.ino).map(|q| (**p, **q)));
                let Some((p, q)) = pair else { return "no two files with data".into() };
                share_block(img, p, q);
                format!(
                    "the WRITE at {} (inode {}) maps the block of the WRITE at {} (inode {})",
                    p.pos, p.ino, q.pos, q.ino
                )
            }
            Regression::Reformatted => {
                img.write(0, &[0; BLOCK_SIZE]);
                "primary superblock zeroed, the novars backup kept".into()
            }
            Regression::UnknownRoBackup => {
                let backup = map.blocks - 1;
                let at = backup as usize * BLOCK_SIZE;
                img.put_u64(at + SB_RO_COMPAT_OFF, 1 << 40);
                fix::superblock(img, backup);
                img.write(0, &[0; 8]);
                "primary superblock without magic, backup with an unknown read-only feature".into()
            }
        }
    }
}
