//! Inode-table segments and on-media inodes.
//!
//! Each lane's inode table is a chain of segments. A segment is one header
//! block followed by `seg_inodes / 16` blocks of 256-byte inodes. The first
//! segment of every lane sits at a fixed place (see [`super::sb`]); later
//! ones are allocated from data blocks and linked by the previous header's
//! `next`, set with one 8-byte store after the new segment is durable.
//!
//! An inode is written whole, once, when it is created (state still FREE),
//! then made live by an 8-byte store of `state` inside a journal
//! transaction. After that only the three 8-byte words `state`, `log_head`
//! and `log_tail` change in place; everything else changes by log entries.

use super::sb::{Geometry, INODES_PER_BLOCK, INODE_SIZE};
use super::{Media, MediaError, BLOCK_SIZE, BLOCK_SIZE_U64};

/// `"NVSEGMT1"`: magic of an inode-table segment header.
pub const SEG_MAGIC: u32 = u32::from_le_bytes(*b"NVSG");
/// Byte offset of the checksum in a segment header.
pub const SEG_CSUM_OFF: usize = 4;
/// Offset of `next` in a segment header (the 8-byte link store).
pub const SEG_NEXT_OFF: usize = 8;
/// The header checksum covers bytes `[SEG_CSUM_START, SegmentHeader::SIZE)`.
pub const SEG_CSUM_START: usize = 16;

ondisk! {
    /// Start of the first block of every inode-table segment.
    pub struct SegmentHeader {
        pub magic: u32,
        /// CRC-32 of bytes 16..64 (not of `next`).
        pub csum: u32,
        /// Block of the next segment of this lane, 0 for none. Set once by an
        /// 8-byte store; validated by the header it points to.
        pub next: u64,
        pub lane: u32,
        /// Position in the lane's chain, from 0.
        pub index: u32,
        pub seg_inodes: u32,
        pub _pad: u32,
        pub _reserved: [u8; 32],
    }
}

const _: () = assert!(SegmentHeader::SIZE == 64);

impl SegmentHeader {
    /// A header for segment `index` of `lane`.
    pub fn new(lane: u32, index: u32, seg_inodes: u32) -> Self {
        let mut h = Self::zeroed();
        h.magic = SEG_MAGIC;
        h.lane = lane;
        h.index = index;
        h.seg_inodes = seg_inodes;
        h.csum = h.compute_csum();
        h
    }

    /// The checksum this header should carry.
    pub fn compute_csum(&self) -> u32 {
        let mut b = [0u8; Self::SIZE];
        self.encode(&mut b);
        super::crc::crc32(b.get(SEG_CSUM_START..).unwrap_or(&[]))
    }
}

/// Why a segment chain is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegError {
    /// The link points outside the data area.
    OutOfRange { block: u64 },
    /// Header magic, checksum, lane, index or size wrong.
    BadHeader { block: u64 },
    /// More segments than can fit on the device: a cycle.
    Cycle { block: u64 },
    /// The block could not be read.
    Media(MediaError),
}

/// Walks lane `lane`'s segment chain, calling `f(index, first_block)` for
/// each segment. Bounded: never loops on a cyclic chain.
pub fn walk_segments<M: Media + ?Sized>(
    m: &M,
    geo: &Geometry,
    lane: u32,
    mut f: impl FnMut(u32, u64),
) -> Result<u32, SegError> {
    let mut blk = geo.first_segment(lane);
    let max = geo.blocks_count / geo.seg_blocks() + 1;
    let mut index: u32 = 0;
    loop {
        if index as u64 > max {
            return Err(SegError::Cycle { block: blk });
        }
        if index > 0 && !geo.is_data_range(blk, geo.seg_blocks()) {
            return Err(SegError::OutOfRange { block: blk });
        }
        let mut b = [0u8; SegmentHeader::SIZE];
        m.read(blk.saturating_mul(BLOCK_SIZE_U64), &mut b).map_err(SegError::Media)?;
        let h = SegmentHeader::decode(&b).ok_or(SegError::BadHeader { block: blk })?;
        if h.magic != SEG_MAGIC
            || h.csum != h.compute_csum()
            || h.lane != lane
            || h.index != index
            || h.seg_inodes != geo.seg_inodes
        {
            return Err(SegError::BadHeader { block: blk });
        }
        f(index, blk);
        if h.next == 0 {
            return Ok(index + 1);
        }
        blk = h.next;
        index = index.checked_add(1).ok_or(SegError::Cycle { block: blk })?;
    }
}

ondisk! {
    /// A timestamp: seconds since the epoch (signed) and nanoseconds.
    pub struct Timespec {
        pub sec: i64,
        pub nsec: u32,
        pub _pad: u32,
    }
}

impl Timespec {
    /// A timestamp from seconds and nanoseconds.
    pub const fn new(sec: i64, nsec: u32) -> Self {
        Self { sec, nsec, _pad: 0 }
    }

    /// Whether `nsec` is below one second.
    pub fn is_valid(&self) -> bool {
        self.nsec < 1_000_000_000
    }
}

/// `state` of a free inode slot.
pub const INODE_FREE: u64 = 0;
/// `state` of a live inode: `"NVINODE1"`.
pub const INODE_LIVE: u64 = u64::from_le_bytes(*b"NVINODE1");
/// Byte offset of `state` within an inode.
pub const INODE_STATE_OFF: u64 = 0;
/// Byte offset of `log_head` within an inode.
pub const INODE_HEAD_OFF: u64 = 8;
/// Byte offset of `log_tail` within an inode.
pub const INODE_TAIL_OFF: u64 = 16;
/// The inode checksum covers bytes `[INODE_CSUM_START, 256)`, the inline
/// area read as zeros when `inline_len` is 0 (it may hold a slot log).
pub const INODE_CSUM_START: usize = 32;
/// Longest fast-symlink target kept inside the inode.
pub const INLINE_MAX: usize = 96;
/// Byte offset of the inline area within an inode (a fast symlink's
/// target, or the entries of a slot log).
pub const INODE_INLINE_OFF: u64 = 160;

/// File-type bits of `mode` (as in Linux).
pub const S_IFMT: u32 = 0o170000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010000;
/// Set-group-ID bit of `mode`: on a directory, new entries take its group.
pub const S_ISGID: u32 = 0o2000;

/// Most links an inode may have (EMLINK beyond, as ext4).
pub const LINK_MAX: u32 = 65000;
/// Longest symlink target in bytes (one block, less its NUL).
pub const SYMLINK_MAX: usize = BLOCK_SIZE - 1;

/// Directory-entry file types (as `DT_*` in Linux).
pub mod dt {
    /// FIFO.
    pub const FIFO: u8 = 1;
    /// Character device.
    pub const CHR: u8 = 2;
    /// Directory.
    pub const DIR: u8 = 4;
    /// Block device.
    pub const BLK: u8 = 6;
    /// Regular file.
    pub const REG: u8 = 8;
    /// Symbolic link.
    pub const LNK: u8 = 10;
    /// Socket.
    pub const SOCK: u8 = 12;
}

/// The `DT_*` type for a mode, or `None` for an invalid file type.
pub fn dt_of_mode(mode: u32) -> Option<u8> {
    Some(match mode & S_IFMT {
        S_IFREG => dt::REG,
        S_IFDIR => dt::DIR,
        S_IFLNK => dt::LNK,
        S_IFCHR => dt::CHR,
        S_IFBLK => dt::BLK,
        S_IFIFO => dt::FIFO,
        S_IFSOCK => dt::SOCK,
        _ => return None,
    })
}

ondisk! {
    /// An inode as stored in an inode-table block (256 bytes).
    pub struct Inode {
        /// `INODE_FREE` or `INODE_LIVE`; flipped by an 8-byte store.
        pub state: u64,
        /// First log page (block), 0 while the log is empty.
        pub log_head: u64,
        /// Commit point: byte position just after the last committed entry,
        /// 0 while the log is empty. Committed by an 8-byte store.
        pub log_tail: u64,
        /// CRC-32 of bytes 32..256.
        pub csum: u32,
        pub _pad0: u32,
        /// The inode's own number (cross-check of its slot).
        pub ino: u64,
        /// Incremented each time the slot is reused.
        pub generation: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        /// Link count at creation; link entries in the log override it.
        pub nlink: u32,
        pub flags: u32,
        /// Size at creation; log entries override it.
        pub size: u64,
        /// Device number for char/block devices (Linux `new_encode_dev`).
        pub rdev: u64,
        /// Parent directory at creation (directories only).
        pub parent: u64,
        pub atime: Timespec,
        pub mtime: Timespec,
        pub ctime: Timespec,
        /// Creation time (statx btime); never changes.
        pub btime: Timespec,
        /// Length of the inline fast-symlink target (0: none).
        pub inline_len: u32,
        pub _pad1: u32,
        pub inline: [u8; 96],
    }
}

const _: () = assert!(Inode::SIZE == INODE_SIZE as usize);
const _: () = assert!(INODE_INLINE_OFF as usize + INLINE_MAX == Inode::SIZE);
const _: () = assert!(INODES_PER_BLOCK as usize * Inode::SIZE == BLOCK_SIZE);

/// Why an inode record is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeError {
    /// `state` is neither FREE nor LIVE.
    BadState,
    /// Checksum mismatch.
    BadChecksum,
    /// `ino` does not match the slot.
    WrongIno,
    /// Unknown file type in `mode`.
    BadMode,
    /// Timestamp nanoseconds out of range.
    BadTime,
    /// Inline target too long, or inline data on a non-symlink.
    BadInline,
    /// `log_tail` is set but `log_head` is 0, or a slot log's tail is out
    /// of range or on an inode that cannot have one.
    BadLogPointers,
    /// `size` beyond the largest file the format allows.
    BadSize,
    /// `flags` has bits the format does not define.
    BadFlags,
}

impl Inode {
    /// The checksum this inode should carry. Without an inline symlink
    /// target (`inline_len` 0) the inline area counts as zeros: it may hold
    /// a slot log, written after the record (an image from before slot logs
    /// has zeros there).
    pub fn compute_csum(&self) -> u32 {
        let mut b = [0u8; Self::SIZE];
        self.encode(&mut b);
        if let Some(area) = b.get_mut(self.stored_len()..) {
            area.fill(0);
        }
        super::crc::crc32(b.get(INODE_CSUM_START..).unwrap_or(&[]))
    }

    /// Sets `csum` from the other fields.
    pub fn seal(&mut self) {
        self.csum = self.compute_csum();
    }

    /// Whether the slot holds a live inode.
    pub fn is_live(&self) -> bool {
        self.state == INODE_LIVE
    }

    /// Checks a live inode found in the slot of `ino`.
    pub fn validate(&self, ino: u64) -> Result<(), InodeError> {
        if self.state != INODE_LIVE {
            return Err(InodeError::BadState);
        }
        if self.csum != self.compute_csum() {
            return Err(InodeError::BadChecksum);
        }
        if self.ino != ino {
            return Err(InodeError::WrongIno);
        }
        if dt_of_mode(self.mode).is_none() {
            return Err(InodeError::BadMode);
        }
        if ![self.atime, self.mtime, self.ctime, self.btime].iter().all(Timespec::is_valid) {
            return Err(InodeError::BadTime);
        }
        if self.inline_len as usize > INLINE_MAX
            || (self.inline_len > 0 && self.mode & S_IFMT != S_IFLNK)
        {
            return Err(InodeError::BadInline);
        }
        // `log_head` set with `log_tail` 0 is a first page allocated but
        // not yet committed: the log is empty (see FORMAT.md). A slot log
        // ignores `log_head` (a first page may be allocated to move it).
        if super::log::slot_len(self.log_tail).is_some() {
            self.validate_slot_log()?;
        } else if self.log_head == 0 && self.log_tail != 0 {
            return Err(InodeError::BadLogPointers);
        }
        if self.size > super::log::MAX_FILE_SIZE {
            return Err(InodeError::BadSize);
        }
        if self.flags & !super::log::fl::ALL != 0 {
            return Err(InodeError::BadFlags);
        }
        Ok(())
    }

    /// Whether a slot log (FORMAT.md "Slot logs") may be what `log_tail`
    /// says: a length from 1 to the inline area, on an inode that is not a
    /// directory and has no inline symlink target.
    pub fn validate_slot_log(&self) -> Result<(), InodeError> {
        let len = super::log::slot_len(self.log_tail).ok_or(InodeError::BadLogPointers)?;
        if len == 0 || len > INLINE_MAX as u64 || !self.may_slot_log() {
            return Err(InodeError::BadLogPointers);
        }
        Ok(())
    }

    /// Whether this inode may start a slot log: not a directory (a name's
    /// position is its identity there), no inline symlink target.
    pub fn may_slot_log(&self) -> bool {
        self.inline_len == 0 && self.mode & S_IFMT != S_IFDIR
    }

    /// The bytes of the record that are the record's own: all 256 with an
    /// inline symlink target; else those before the inline area, which may
    /// hold a slot log (outside the checksum, and left alone by whoever
    /// writes the record).
    pub fn stored_len(&self) -> usize {
        if self.inline_len == 0 {
            INODE_INLINE_OFF as usize
        } else {
            Self::SIZE
        }
    }

    /// The inline symlink target, if any.
    pub fn inline_target(&self) -> Option<&[u8]> {
        if self.inline_len == 0 {
            return None;
        }
        self.inline.get(..self.inline_len as usize)
    }

    /// Whether `state` is one of the two defined values.
    pub fn state_known(&self) -> bool {
        self.state == INODE_FREE || self.state == INODE_LIVE
    }
}

/// Reads the inode at byte position `pos` (must be 256-aligned).
pub fn read_inode_at<M: Media + ?Sized>(m: &M, pos: u64) -> Result<Inode, MediaError> {
    let mut rec = [0u8; Inode::SIZE];
    m.read(pos, &mut rec)?;
    Inode::decode(&rec).ok_or(MediaError::OutOfRange(pos / BLOCK_SIZE_U64))
}

/// Position of inode slot `slot` of a lane whose segments start at the
/// blocks in `segments` (in chain order).
pub fn slot_pos_in(geo: &Geometry, segments: &[u64], slot: u64) -> Option<u64> {
    let per = geo.seg_inodes as u64;
    let seg = *segments.get(usize::try_from(slot.checked_div(per)?).ok()?)?;
    Some(geo.slot_pos(seg, slot.checked_rem(per)? as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inode {
        let mut i = Inode::zeroed();
        i.state = INODE_LIVE;
        i.ino = 5;
        i.mode = S_IFREG | 0o644;
        i.nlink = 1;
        i.mtime = Timespec::new(1_700_000_000, 999_999_999);
        i.seal();
        i
    }

    #[test]
    fn inode_roundtrip_and_checks() {
        let i = sample();
        let mut b = [0u8; 256];
        assert!(i.encode(&mut b));
        let back = Inode::decode(&b).unwrap();
        assert_eq!(back, i);
        assert_eq!(back.validate(5), Ok(()));
        assert_eq!(back.validate(6), Err(InodeError::WrongIno));
        // The 8-byte words outside the checksum may change freely.
        let mut t = back;
        t.log_head = 100;
        t.log_tail = 100 * 4096 + 64;
        assert_eq!(t.validate(5), Ok(()));
        t.log_tail = 0;
        assert_eq!(t.validate(5), Ok(()), "head without tail: empty log");
        t.log_head = 0;
        t.log_tail = 4096 * 100;
        assert_eq!(t.validate(5), Err(InodeError::BadLogPointers));
        let mut c = back;
        c.uid = 1;
        assert_eq!(c.validate(5), Err(InodeError::BadChecksum));
        let mut m = back;
        m.mode = 0o777;
        m.seal();
        assert_eq!(m.validate(5), Err(InodeError::BadMode));
    }

    #[test]
    fn segment_header_roundtrip() {
        let h = SegmentHeader::new(1, 3, 1024);
        let mut b = [0u8; 64];
        h.encode(&mut b);
        let mut back = SegmentHeader::decode(&b).unwrap();
        assert_eq!(back.csum, back.compute_csum());
        back.next = 12345; // not covered
        assert_eq!(back.csum, back.compute_csum());
        back.index = 4;
        assert_ne!(back.csum, back.compute_csum());
    }
}
