//! Named problems, e2fsck style: every inconsistency fsck can find has a
//! code that tests, scripts (`--json`) and users can name.

use std::fmt;

/// How a problem may be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not an error: what a mount does anyway (journal rollback, freeing
    /// orphans). Applied to the overlay in every mode, written with `-p`/`-y`.
    Note,
    /// An error whose repair is safe without asking (`-p`).
    Preen,
    /// An error that is repaired only with `-y` or a yes at the prompt.
    Ask,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $v:ident = $name:literal, $pass:literal, $kind:ident; )*) => {
        /// A named problem.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $(#[$doc])* $v, )* }

        impl Code {
            /// Every code.
            pub const ALL: &'static [Code] = &[$(Code::$v),*];

            /// The SCREAMING_SNAKE name printed and put in JSON.
            pub fn name(self) -> &'static str {
                match self { $(Code::$v => $name,)* }
            }

            /// The pass that reports it.
            pub fn pass(self) -> u8 {
                match self { $(Code::$v => $pass,)* }
            }

            /// Whether it is a note, preen-safe, or needs a yes.
            pub fn kind(self) -> Kind {
                match self { $(Code::$v => Kind::$kind,)* }
            }
        }
    };
}

codes! {
    /// Primary superblock unusable, backup good: copy the backup.
    SbPrimaryBad = "SB_PRIMARY_BAD", 0, Preen;
    /// Backup superblock unusable: rewrite it from the primary.
    SbBackupBad = "SB_BACKUP_BAD", 0, Preen;
    /// Backup describes a different file system: rewrite it.
    SbBackupMismatch = "SB_BACKUP_MISMATCH", 0, Preen;
    /// The kernel flagged errors: a full check is forced.
    SbErrorFlag = "SB_ERROR_FLAG", 0, Note;

    /// An open transaction, rolled back as a mount would.
    JournalRollback = "JOURNAL_ROLLBACK", 1, Note;
    /// Open transaction whose checksum or count is wrong: drop it.
    JournalTorn = "JOURNAL_TORN", 1, Ask;
    /// Open transaction naming a word outside the file system: drop it.
    JournalBadEntry = "JOURNAL_BAD_ENTRY", 1, Ask;
    /// Journal block is not this lane's journal: reformat it idle.
    JournalBadHeader = "JOURNAL_BAD_HEADER", 1, Ask;

    /// Inode-table segment header corrupt.
    SegBadHeader = "SEG_BAD_HEADER", 2, Ask;
    /// Segment link points outside the data area.
    SegOutOfRange = "SEG_OUT_OF_RANGE", 2, Ask;
    /// Segment chain loops.
    SegCycle = "SEG_CYCLE", 2, Ask;
    /// Inode `state` word is neither FREE nor LIVE.
    InodeBadState = "INODE_BAD_STATE", 2, Ask;
    /// Inode checksum mismatch.
    InodeCsum = "INODE_CSUM", 2, Ask;
    /// Inode records a different number than its slot.
    InodeWrongIno = "INODE_WRONG_INO", 2, Ask;
    /// Unknown file type.
    InodeBadMode = "INODE_BAD_MODE", 2, Ask;
    /// Timestamp nanoseconds out of range.
    InodeBadTime = "INODE_BAD_TIME", 2, Ask;
    /// Inline symlink target invalid.
    InodeBadInline = "INODE_BAD_INLINE", 2, Ask;
    /// Exactly one of log head / log tail is zero.
    InodeBadLogPtr = "INODE_BAD_LOG_PTR", 2, Ask;
    /// Size beyond the format's largest file.
    InodeBadSize = "INODE_BAD_SIZE", 2, Ask;
    /// Inode flags the format does not define.
    InodeBadFlags = "INODE_BAD_FLAGS", 2, Ask;
    /// A log page could not be read.
    LogPageUnreadable = "LOG_PAGE_UNREADABLE", 2, Ask;
    /// Log head or a page link outside the data area.
    LogPageOutOfRange = "LOG_PAGE_OUT_OF_RANGE", 2, Ask;
    /// Log tail offset past the entry area of a page.
    LogTailOutOfRange = "LOG_TAIL_OUT_OF_RANGE", 2, Ask;
    /// Log page tail (magic, checksum) corrupt.
    LogPageTail = "LOG_PAGE_TAIL", 2, Ask;
    /// Log page owned by another inode or generation.
    LogWrongOwner = "LOG_WRONG_OWNER", 2, Ask;
    /// Log page out of order.
    LogOrdinal = "LOG_ORDINAL", 2, Ask;
    /// Log page chain loops back on itself.
    LogCycle = "LOG_CYCLE", 2, Ask;
    /// Log tail is not in the page chain.
    LogTailNotInChain = "LOG_TAIL_NOT_IN_CHAIN", 2, Ask;
    /// A sealed page claims more bytes than it has.
    LogUsed = "LOG_USED", 2, Ask;
    /// Log entry checksum mismatch.
    LogEntryCsum = "LOG_ENTRY_CSUM", 2, Ask;
    /// Log entry malformed or with impossible fields.
    LogEntryBad = "LOG_ENTRY_BAD", 2, Ask;
    /// Entry sequence numbers do not increase.
    LogSeq = "LOG_SEQ", 2, Ask;
    /// A symlink whose target cannot be read.
    SymlinkBad = "SYMLINK_BAD", 2, Ask;
    /// An entry that makes no sense for the inode's type.
    LogEntryKind = "LOG_ENTRY_KIND", 2, Ask;

    /// A block claimed by two owners.
    BlockMultiplyClaimed = "BLOCK_MULTIPLY_CLAIMED", 3, Ask;
    /// A default ACL on an inode that is not a directory.
    XattrAclNotDir = "XATTR_ACL_NOT_DIR", 3, Ask;

    /// The root inode is not a live directory.
    RootMissing = "ROOT_MISSING", 4, Ask;
    /// Root's `..` is not the root.
    RootBadParent = "ROOT_BAD_PARENT", 4, Preen;
    /// A name refers to a free or missing inode.
    DentryDeadInode = "DENTRY_DEAD_INODE", 4, Ask;
    /// A name's file type differs from the inode's.
    DentryWrongType = "DENTRY_WRONG_TYPE", 4, Ask;
    /// A name added twice.
    DentryDuplicate = "DENTRY_DUPLICATE", 4, Ask;
    /// A name removed that was not there.
    DentryDelMissing = "DENTRY_DEL_MISSING", 4, Ask;
    /// A name refers to the root directory.
    DentryToRoot = "DENTRY_TO_ROOT", 4, Ask;
    /// A directory with more than one name.
    DirMultipleNames = "DIR_MULTIPLE_NAMES", 4, Ask;
    /// A directory whose `..` is not the directory naming it.
    DirBadParent = "DIR_BAD_PARENT", 4, Preen;
    /// No `lost+found` in the root directory.
    LostFoundMissing = "LOST_FOUND_MISSING", 4, Preen;
    /// `lost+found` is not a directory.
    LostFoundNotDir = "LOST_FOUND_NOT_DIR", 4, Ask;
    /// The superblock names another lost+found inode.
    SbLostFound = "SB_LOST_FOUND", 4, Preen;
    /// A live inode not reachable from the root.
    InodeUnreachable = "INODE_UNREACHABLE", 4, Preen;

    /// Link count differs from the names.
    LinkCount = "LINK_COUNT", 5, Preen;
    /// Unlinked inode still live after a crash: a mount frees it.
    OrphanInode = "ORPHAN_INODE", 5, Note;

    /// Allocator record unreadable.
    AllocRecBad = "ALLOC_REC_BAD", 6, Preen;
    /// Allocator record differs from the computed free space.
    AllocRecMismatch = "ALLOC_REC_MISMATCH", 6, Preen;
    /// Superblock free counts wrong.
    SbCounts = "SB_COUNTS", 6, Preen;
    /// A lane's clean pool (what a mount after a crash allocates before
    /// it has read the logs) holds a block or inode slot in use: drop it.
    CleanPoolInUse = "CLEAN_POOL_IN_USE", 6, Preen;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What became of a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Repaired (or, for a note, applied).
    Fixed,
    /// A note in read-only mode: only in memory, as a mount would do it.
    Noted,
    /// `-n`: nothing is changed.
    ReadOnly,
    /// `-p`: this repair needs `-y` or a yes.
    NotPreenSafe,
    /// Answered no.
    Declined,
    /// The repair was attempted and failed.
    Failed(String),
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: Code,
    pub pass: u8,
    /// What it is about: "inode 57", "lane 0 journal", "superblock".
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// What the repair does, in a few words.
    pub action: String,
    pub resolution: Resolution,
}

impl Problem {
    /// Whether this is a note rather than an error.
    pub fn is_note(&self) -> bool {
        self.code.kind() == Kind::Note
    }

    /// Whether the problem was repaired (notes: applied to the image).
    pub fn fixed(&self) -> bool {
        self.resolution == Resolution::Fixed
    }

    /// The problem without its outcome: `Pass 2: inode 57: ... (CODE).`
    pub fn headline(&self) -> String {
        format!("Pass {}: {}: {} ({}).", self.pass, self.subject, self.message, self.code)
    }

    /// The outcome: `Fixed: truncated the log.`
    pub fn outcome(&self) -> String {
        match &self.resolution {
            Resolution::Fixed if self.is_note() => format!("Note: {}.", self.action),
            Resolution::Fixed => format!("Fixed: {}.", self.action),
            Resolution::Noted => {
                format!("Note: {} (mount-time recovery; nothing written).", self.action)
            }
            Resolution::ReadOnly => format!("Not fixed (read-only). Repair: {}.", self.action),
            Resolution::NotPreenSafe => format!("Not fixed (needs -y). Repair: {}.", self.action),
            Resolution::Declined => "Not fixed.".to_string(),
            Resolution::Failed(why) => format!("Not fixed: repair failed: {why}."),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.headline(), self.outcome())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_screaming_snake() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.name()), "{c:?}");
            assert!(c.name().bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
            assert!(c.pass() <= 6);
        }
        assert!(Code::ALL.len() >= 40);
    }
}
