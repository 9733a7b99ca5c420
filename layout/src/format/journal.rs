//! Per-lane undo journals for operations that change several inodes.
//!
//! Protocol (one transaction, on the lane of the current CPU, lane lock held):
//! 1. write the entries `(position, old 8-byte value)` of every word the
//!    operation will change in place (log tails, inode `state`, ...) and the
//!    header with a new `seq` and `count`, state still 0; flush, fence;
//! 2. store `state = seq` (8 bytes); flush, fence: the transaction is open;
//! 3. append entries to the logs involved, change the words; flush, fence;
//! 4. store `state = 0`; flush, fence: committed.
//!
//! Recovery: a journal whose `state` equals its `seq` and whose checksum
//! holds is rolled back by writing every old value back, last entry first,
//! then `state = 0`. Because step 2 follows a fence after step 1, an open
//! journal with a bad checksum is corruption, not a crash artefact.

use super::crc::crc32_skip;
use super::sb::Geometry;
use super::{read_u64, BLOCK_SIZE, BLOCK_SIZE_U64};

/// `"NVJL"`: journal-block magic.
pub const JOURNAL_MAGIC: u32 = u32::from_le_bytes(*b"NVJL");
/// Byte offset of the checksum in a journal block.
pub const JOURNAL_CSUM_OFF: usize = 4;
/// Byte offset of the 8-byte `state` word in a journal block.
pub const JOURNAL_STATE_OFF: usize = 24;
/// Byte offset of the lane's clean-pool words ([`CleanPool`]) in its
/// journal block: the last 32 bytes, never part of a transaction.
pub const JOURNAL_POOL_OFF: usize = BLOCK_SIZE - CleanPool::SIZE;
/// Most words one transaction can change.
pub const MAX_JOURNAL_ENTRIES: usize =
    (JOURNAL_POOL_OFF - JournalHeader::SIZE) / JournalEntry::SIZE;
/// Offsets of the clean-pool words in the journal block.
pub const POOL_START_OFF: usize = JOURNAL_POOL_OFF;
/// `end`.
pub const POOL_END_OFF: usize = JOURNAL_POOL_OFF + 8;
/// `slot_mark`.
pub const POOL_MARK_OFF: usize = JOURNAL_POOL_OFF + 16;
/// `tag`.
pub const POOL_TAG_OFF: usize = JOURNAL_POOL_OFF + 24;
/// `start` of a pool being replaced (or never set): nothing in the words
/// may be trusted.
pub const POOL_NONE: u64 = u64::MAX;

ondisk! {
    /// Start of a journal block.
    pub struct JournalHeader {
        pub magic: u32,
        /// CRC-32 of bytes `[0, 32 + 16*count)` with `csum` and `state` zero.
        pub csum: u32,
        pub lane: u32,
        pub count: u32,
        /// Transaction sequence number (never 0 for a written transaction).
        pub seq: u64,
        /// 0: idle; equal to `seq`: transaction open (roll back on mount).
        pub state: u64,
    }
}

ondisk! {
    /// One word to restore on rollback.
    pub struct JournalEntry {
        /// Byte position of an 8-byte-aligned word on the device.
        pub pos: u64,
        /// Its value before the transaction.
        pub old: u64,
    }
}

ondisk! {
    /// A lane's clean pool (FORMAT.md "Clean pools"): what a mount after a
    /// crash may allocate at once, before the logs are walked. Blocks
    /// `[start, end)` of the lane are referenced by no committed state and
    /// every inode slot of the lane from `slot_mark` on is free. The
    /// kernel keeps it true by storing a higher `start` (or `slot_mark`)
    /// before anything it hands out from the pool is committed.
    pub struct CleanPool {
        /// First block of the pool; [`POOL_NONE`] while it is replaced.
        pub start: u64,
        pub end: u64,
        pub slot_mark: u64,
        /// The superblock's `mount_count` of the mount that declared it:
        /// a pool is only trusted by the mount after that one.
        pub tag: u64,
    }
}

/// Byte position on the device of word `off` (one of the `POOL_*_OFF`) of
/// lane `lane`'s clean-pool words.
pub fn pool_word(geo: &Geometry, lane: u32, off: usize) -> u64 {
    geo.journal_block(lane).saturating_mul(BLOCK_SIZE_U64).saturating_add(off as u64)
}

impl CleanPool {
    /// The pool words of a journal block.
    pub fn of_block(block: &[u8]) -> Option<Self> {
        block.get(JOURNAL_POOL_OFF..).and_then(Self::decode)
    }

    /// The pool a mount after a crash may use, if these words are one:
    /// declared by the mount that crashed (`tag` is the superblock's
    /// `mount_count`, never 0) and not half replaced. The caller still
    /// checks the range against the lane's region and the slot mark
    /// against its table.
    pub fn trusted(&self, mount_count: u64) -> Option<Self> {
        (self.tag != 0
            && self.tag == mount_count
            && self.start != POOL_NONE
            && self.start <= self.end)
            .then_some(*self)
    }
}

const _: () = assert!(JournalHeader::SIZE == 32 && JournalEntry::SIZE == 16);
const _: () = assert!(CleanPool::SIZE == 32 && tx_len(MAX_JOURNAL_ENTRIES) <= JOURNAL_POOL_OFF);

/// What a journal block says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalState {
    /// Nothing to do.
    Idle,
    /// An open transaction to roll back: `count` entries.
    Open { seq: u64, count: usize },
}

/// Why a journal block is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalError {
    /// Magic or lane wrong: the block is not this lane's journal.
    BadHeader,
    /// Open, but checksum, count or state do not hold: torn or corrupt.
    Torn(&'static str),
    /// An entry names a word that may not be journaled.
    BadEntry { index: usize, pos: u64 },
}

/// The checksum a journal block holding `count` entries should carry
/// (bytes `0..32 + 16*count`, `csum` and `state` as zero).
pub fn csum_of(block: &[u8], count: usize) -> u32 {
    let end = JournalHeader::SIZE + count * JournalEntry::SIZE;
    let mut tmp = [0u8; JournalHeader::SIZE];
    if let Some(h) = block.get(..JournalHeader::SIZE) {
        tmp.copy_from_slice(h);
    }
    tmp[JOURNAL_STATE_OFF..].fill(0);
    let mut c = super::crc::Crc32::new();
    c.update(&tmp[..JOURNAL_CSUM_OFF]);
    c.update_zeros(4);
    c.update(&tmp[JOURNAL_CSUM_OFF + 4..]);
    c.update(block.get(JournalHeader::SIZE..end).unwrap_or(&[]));
    let _ = crc32_skip; // same rule as every object: checksum field as zero
    c.finish()
}

/// Whether `pos` may be the target of a journal entry: 8-byte aligned and
/// past the superblock and journals, before the backup superblock.
pub fn pos_journalable(geo: &Geometry, pos: u64) -> bool {
    pos.is_multiple_of(8)
        && pos >= geo.first_segment(0).saturating_mul(BLOCK_SIZE_U64)
        && pos < geo.backup_sb().saturating_mul(BLOCK_SIZE_U64)
}

/// Writes an idle journal block for `lane` (what mkfs writes).
pub fn format_block(block: &mut [u8], lane: u32) -> bool {
    build(block, lane, 0, &[])
}

/// Writes a transaction (entries and header, state 0) into `block`.
/// The caller then stores `state = seq` at [`JOURNAL_STATE_OFF`].
/// `block` may be shorter than a block: it needs `32 + 16 * entries.len()`
/// bytes, which is also what must be written to the media.
pub fn build(block: &mut [u8], lane: u32, seq: u64, entries: &[JournalEntry]) -> bool {
    if entries.len() > MAX_JOURNAL_ENTRIES || block.len() < tx_len(entries.len()) {
        return false;
    }
    let h = JournalHeader {
        magic: JOURNAL_MAGIC,
        csum: 0,
        lane,
        count: entries.len() as u32,
        seq,
        state: 0,
    };
    h.encode(block);
    for (i, e) in entries.iter().enumerate() {
        let off = JournalHeader::SIZE + i * JournalEntry::SIZE;
        if let Some(b) = block.get_mut(off..) {
            e.encode(b);
        }
    }
    let c = csum_of(block, entries.len());
    if let Some(f) = block.get_mut(JOURNAL_CSUM_OFF..JOURNAL_CSUM_OFF + 4) {
        f.copy_from_slice(&c.to_le_bytes());
    }
    true
}

/// Bytes of a journal block a transaction of `n` entries occupies.
pub const fn tx_len(n: usize) -> usize {
    JournalHeader::SIZE + n * JournalEntry::SIZE
}

/// Reads lane `lane`'s journal block and says whether it must be rolled back.
pub fn inspect(block: &[u8], geo: &Geometry, lane: u32) -> Result<JournalState, JournalError> {
    let h = JournalHeader::decode(block).ok_or(JournalError::BadHeader)?;
    if h.magic != JOURNAL_MAGIC || h.lane != lane {
        return Err(JournalError::BadHeader);
    }
    if h.state == 0 {
        return Ok(JournalState::Idle);
    }
    if h.state != h.seq {
        return Err(JournalError::Torn("state does not match sequence"));
    }
    let count = h.count as usize;
    if count > MAX_JOURNAL_ENTRIES {
        return Err(JournalError::Torn("entry count too large"));
    }
    if csum_of(block, count) != h.csum {
        return Err(JournalError::Torn("checksum mismatch"));
    }
    for i in 0..count {
        let pos = read_u64(block, JournalHeader::SIZE + i * JournalEntry::SIZE).unwrap_or(0);
        if !pos_journalable(geo, pos) {
            return Err(JournalError::BadEntry { index: i, pos });
        }
    }
    Ok(JournalState::Open { seq: h.seq, count })
}

/// The rollback of an open journal: `(pos, old)` pairs, last entry first.
/// Only meaningful after [`inspect`] returned `Open`.
pub fn undo_entries(block: &[u8], count: usize) -> impl Iterator<Item = JournalEntry> + '_ {
    (0..count.min(MAX_JOURNAL_ENTRIES)).rev().filter_map(move |i| {
        block.get(JournalHeader::SIZE + i * JournalEntry::SIZE..).and_then(JournalEntry::decode)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_journal_rolls_back_in_reverse() {
        let geo = Geometry::plan(1 << 16, 2, 256).unwrap();
        let base = geo.first_data_block * 4096;
        let mut blk = vec![0u8; BLOCK_SIZE];
        let es = [JournalEntry { pos: base, old: 1 }, JournalEntry { pos: base + 8, old: 2 }];
        assert!(build(&mut blk, 1, 77, &es));
        assert_eq!(inspect(&blk, &geo, 1), Ok(JournalState::Idle));
        blk[JOURNAL_STATE_OFF..JOURNAL_STATE_OFF + 8].copy_from_slice(&77u64.to_le_bytes());
        assert_eq!(inspect(&blk, &geo, 1), Ok(JournalState::Open { seq: 77, count: 2 }));
        let u: Vec<_> = undo_entries(&blk, 2).collect();
        assert_eq!(u, vec![es[1], es[0]]);
        assert_eq!(inspect(&blk, &geo, 0), Err(JournalError::BadHeader));
        let mut torn = blk.clone();
        torn[40] ^= 1;
        assert!(matches!(inspect(&torn, &geo, 1), Err(JournalError::Torn(_))));
        // The pool words sit past the largest transaction.
        let mut full = vec![0u8; BLOCK_SIZE];
        let many = vec![JournalEntry { pos: base, old: 9 }; MAX_JOURNAL_ENTRIES];
        assert!(build(&mut full, 1, 6, &many));
        assert!(full[JOURNAL_POOL_OFF..].iter().all(|&b| b == 0));
        assert!(!build(&mut full, 1, 6, &[many.as_slice(), &many[..1]].concat()));
        let p = CleanPool { start: 100, end: 200, slot_mark: 7, tag: 3 };
        p.encode(&mut full[JOURNAL_POOL_OFF..]);
        assert_eq!(CleanPool::of_block(&full), Some(p));
        assert_eq!(p.trusted(3), Some(p));
        assert_eq!(p.trusted(4), None);
        assert_eq!(CleanPool { tag: 0, ..p }.trusted(0), None);
        assert_eq!(CleanPool { start: POOL_NONE, ..p }.trusted(3), None);
        assert_eq!(CleanPool { start: 201, ..p }.trusted(3), None);
        let mut bad = vec![0u8; BLOCK_SIZE];
        build(&mut bad, 1, 5, &[JournalEntry { pos: 8, old: 0 }]);
        bad[JOURNAL_STATE_OFF..JOURNAL_STATE_OFF + 8].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(inspect(&bad, &geo, 1), Err(JournalError::BadEntry { index: 0, pos: 8 }));
    }
}
