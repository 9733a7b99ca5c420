//! Superblock (block 0, copy in the last block) and the geometry it fixes.
//!
//! The geometry is fixed at mkfs time:
//!
//! ```text
//! block 0                      primary superblock
//! 1 ..= lanes                  one journal block per lane
//! then, per lane L             first inode-table segment of lane L
//!                              (1 header block + seg_inodes/16 inode blocks)
//! first_data_block ..          data blocks, log pages, later segments,
//!                              allocator-record blocks (all allocated)
//! blocks_count - 1             backup superblock
//! ```

use super::{BLOCK_SIZE, BLOCK_SIZE_U64};

/// `"NOVARSFS"` read as a little-endian u64.
pub const SB_MAGIC: u64 = u64::from_le_bytes(*b"NOVARSFS");
/// On-media format version written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// Byte offset of the checksum in the superblock block.
pub const SB_CSUM_OFF: usize = 8;
/// The mutable words `mount_time ..= free_inodes` (bytes 104..168) are
/// outside the checksum: mount and unmount change them with single 8-byte
/// stores (state last), so a crash never tears the superblock.
pub const SB_MUTABLE: core::ops::Range<usize> = 104..168;
/// Byte offset of `state`.
pub const SB_STATE_OFF: u64 = 128;
/// Byte offsets of the other mutable words.
pub const SB_MOUNT_TIME_OFF: u64 = 104;
/// `write_time`.
pub const SB_WRITE_TIME_OFF: u64 = 112;
/// `mount_count`.
pub const SB_MOUNT_COUNT_OFF: u64 = 120;
/// `alloc_rec_head`.
pub const SB_ALLOC_HEAD_OFF: u64 = 136;
/// `alloc_rec_seq`.
pub const SB_ALLOC_SEQ_OFF: u64 = 144;
/// `free_blocks`.
pub const SB_FREE_BLOCKS_OFF: u64 = 152;
/// `free_inodes`.
pub const SB_FREE_INODES_OFF: u64 = 160;

/// Bytes from the start of a device that [`foreign_signature`] looks at.
pub const SIGNATURE_BYTES: usize = 0x10048;

/// Another file system's (or swap's) signature in the first bytes of a
/// device (at most [`SIGNATURE_BYTES`]): what it is, for messages.
pub fn foreign_signature(buf: &[u8]) -> Option<&'static str> {
    if buf.get(1080..1082) == Some(&[0x53, 0xef]) {
        return Some("an ext2/ext3/ext4 file system");
    }
    if buf.get(..4) == Some(b"XFSB") {
        return Some("an xfs file system");
    }
    if buf.get(0x10040..0x10048) == Some(b"_BHRfS_M") {
        return Some("a btrfs file system");
    }
    if buf.get(4086..4096) == Some(b"SWAPSPACE2") {
        return Some("a swap area");
    }
    None
}

/// The superblock checksum: the block with `csum` and the mutable words
/// taken as zero.
pub fn sb_csum(block: &[u8]) -> u32 {
    let mut h = super::crc::Crc32::new();
    h.update(block.get(..SB_CSUM_OFF).unwrap_or(&[]));
    h.update_zeros(4);
    h.update(block.get(SB_CSUM_OFF + 4..SB_MUTABLE.start).unwrap_or(&[]));
    h.update_zeros(SB_MUTABLE.end - SB_MUTABLE.start);
    h.update(block.get(SB_MUTABLE.end..).unwrap_or(&[]));
    h.finish()
}
/// Most lanes (per-CPU journals and inode tables) an image can have.
pub const MAX_LANES: u32 = 64;
/// Size of an on-media inode.
pub const INODE_SIZE: u32 = 256;
/// Inodes per 4 KiB inode-table block.
pub const INODES_PER_BLOCK: u32 = (BLOCK_SIZE as u32) / INODE_SIZE;
/// Bounds on inodes per inode-table segment (multiple of `INODES_PER_BLOCK`).
pub const MIN_SEG_INODES: u32 = 64;
/// Upper bound on inodes per segment (1 Mi inodes = 256 MiB of table).
pub const MAX_SEG_INODES: u32 = 1 << 20;
/// Fewest data blocks an image may have.
pub const MIN_DATA_BLOCKS: u64 = 64;

/// Compat features: an unknown bit may be ignored.
pub const COMPAT_KNOWN: u64 = 0;
/// Incompat feature: WRITE entries may carry the UNWRITTEN flag
/// (FORMAT.md "Unwritten extents"); a module or fsck that reads them as
/// data would expose stale bytes. mkfs sets it; without it the module
/// zeroes what fallocate allocates.
pub const INCOMPAT_UNWRITTEN: u64 = 1;
/// Incompat feature: a log may live in its inode's record (FORMAT.md
/// "Slot logs"); code without it would read the tail as corrupt. mkfs sets
/// it; without it the module keeps every log in pages.
pub const INCOMPAT_SLOT_LOG: u64 = 2;
/// Incompat features: an unknown bit forbids mounting and checking.
pub const INCOMPAT_KNOWN: u64 = INCOMPAT_UNWRITTEN | INCOMPAT_SLOT_LOG;
/// Ro-compat features: an unknown bit allows read-only mounts only.
pub const RO_COMPAT_KNOWN: u64 = 0;

/// `state`: unmounted cleanly; the allocator record is valid.
pub const STATE_CLEAN: u64 = 1;
/// `state`: errors were detected; a full check is needed.
pub const STATE_ERROR: u64 = 2;

/// `errors`: behaviour when the kernel detects corruption.
pub const ERRORS_CONTINUE: u32 = 1;
/// Remount read-only on error (the default).
pub const ERRORS_RO: u32 = 2;
/// Panic on error.
pub const ERRORS_PANIC: u32 = 3;

ondisk! {
    /// The first 512 bytes of the superblock block; the rest is zero.
    pub struct Superblock {
        pub magic: u64,
        /// CRC-32 of the 4 KiB block with this field and the mutable
        /// words (bytes 104..168) zero.
        pub csum: u32,
        pub version: u32,
        pub feature_compat: u64,
        pub feature_incompat: u64,
        pub feature_ro_compat: u64,
        /// Size of the file system in blocks (backup superblock included).
        pub blocks_count: u64,
        pub block_size: u32,
        /// Number of lanes: per-CPU journals and inode tables.
        pub lanes: u32,
        pub journal_start: u64,
        pub first_data_block: u64,
        pub root_ino: u64,
        pub lost_found_ino: u64,
        pub inode_size: u32,
        /// Inodes per inode-table segment.
        pub seg_inodes: u32,
        pub mkfs_time: i64,
        pub mount_time: i64,
        pub write_time: i64,
        pub mount_count: u64,
        /// `STATE_*` bits.
        pub state: u64,
        /// First block of the allocator record (0: none), valid when CLEAN.
        pub alloc_rec_head: u64,
        /// Sequence stamped in every record block; must match.
        pub alloc_rec_seq: u64,
        /// Free blocks / inodes as of the last clean unmount (advisory).
        pub free_blocks: u64,
        pub free_inodes: u64,
        /// `ERRORS_*`.
        pub errors: u32,
        pub _pad0: u32,
        pub uuid: [u8; 16],
        /// NUL-padded UTF-8 volume label.
        pub label: [u8; 64],
        pub _reserved: [u8; 256],
    }
}

const _: () = assert!(Superblock::SIZE == 512);

/// The longest label, in bytes (the field keeps a NUL after it).
pub const LABEL_MAX: usize = 63;

/// Why a superblock was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbError {
    /// Fewer than 4096 bytes.
    Short,
    /// Not a novars superblock at all.
    BadMagic,
    /// Checksum mismatch.
    BadChecksum { stored: u32, computed: u32 },
    /// A format version this code does not know.
    BadVersion(u32),
    /// Incompat feature bits this code does not know.
    UnknownIncompat(u64),
    /// A geometry field is impossible; names the field.
    BadGeometry(&'static str),
    /// The superblock claims more blocks than the device has.
    DeviceTooSmall { need: u64, have: u64 },
}

impl SbError {
    /// One-line description for logs and tools.
    pub fn describe(&self) -> &'static str {
        match self {
            SbError::Short => "superblock truncated",
            SbError::BadMagic => "no novars magic",
            SbError::BadChecksum { .. } => "superblock checksum mismatch",
            SbError::BadVersion(_) => "unsupported format version",
            SbError::UnknownIncompat(_) => "unsupported incompatible features",
            SbError::BadGeometry(f) => f,
            SbError::DeviceTooSmall { .. } => "file system larger than the device",
        }
    }
}

/// Why no backup superblock could stand in for a damaged primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupMiss {
    /// The block could not be read.
    Unreadable,
    /// Not a valid superblock.
    Invalid(SbError),
    /// Valid, but not in the last block of the file system it describes.
    NotAtEnd,
    /// Valid, but of another file system than the primary (another uuid):
    /// left at the end of the device by an earlier, larger mkfs.
    OtherFileSystem,
}

impl BackupMiss {
    /// One-line description for logs and tools.
    pub fn describe(&self) -> &'static str {
        match self {
            BackupMiss::Unreadable => "unreadable",
            BackupMiss::Invalid(e) => e.describe(),
            BackupMiss::NotAtEnd => "not at the end of the file system it describes",
            BackupMiss::OtherFileSystem => "of another file system (another uuid)",
        }
    }
}

/// The backup superblock that stands in for a damaged primary (`block0`
/// as read; the caller has checked its magic). The backup is the last
/// block of the file system: where the primary's size field points (a
/// file system smaller than its device), else the device's last block. A
/// candidate is taken only if it is valid, lies at the end of the file
/// system it describes and, when block 0 still decodes, has its uuid.
/// Returns (block, superblock, geometry), or the block last tried and why
/// it was not taken.
pub fn find_backup<B: core::ops::Deref<Target = [u8]>>(
    block0: &[u8],
    device_blocks: u64,
    mut read: impl FnMut(u64) -> Option<B>,
) -> Result<(u64, Superblock, Geometry), (u64, BackupMiss)> {
    let last = device_blocks.saturating_sub(1);
    let primary = Superblock::decode(block0).filter(|_| Superblock::has_magic(block0));
    let sized = primary.map(|p| p.blocks_count.saturating_sub(1)).filter(|&b| b >= 1 && b < last);
    let mut miss = (last, BackupMiss::Unreadable);
    for b in [sized, Some(last)].into_iter().flatten() {
        let Some(blk) = read(b) else {
            miss = (b, BackupMiss::Unreadable);
            continue;
        };
        match Superblock::parse(&blk, device_blocks) {
            Err(e) => miss = (b, BackupMiss::Invalid(e)),
            Ok((_, geo)) if geo.backup_sb() != b => miss = (b, BackupMiss::NotAtEnd),
            Ok((sb, _)) if primary.is_some_and(|p| p.uuid != sb.uuid) => {
                miss = (b, BackupMiss::OtherFileSystem)
            }
            Ok((sb, geo)) => return Ok((b, sb, geo)),
        }
    }
    Err(miss)
}

/// Everything derived from a valid superblock that the code needs to find
/// things on the media. All positions are checked to lie on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub blocks_count: u64,
    pub lanes: u32,
    pub journal_start: u64,
    pub first_data_block: u64,
    pub seg_inodes: u32,
    pub root_ino: u64,
    pub lost_found_ino: u64,
    /// Unknown ro-compat features: mount read-only only.
    pub read_only: bool,
    /// [`INCOMPAT_SLOT_LOG`]: logs may live in inode records.
    pub slot_logs: bool,
}

impl Geometry {
    /// Lays out a new file system (what mkfs writes).
    pub fn plan(blocks_count: u64, lanes: u32, seg_inodes: u32) -> Result<Self, SbError> {
        if lanes == 0 || lanes > MAX_LANES {
            return Err(SbError::BadGeometry("lane count out of range"));
        }
        if !(MIN_SEG_INODES..=MAX_SEG_INODES).contains(&seg_inodes)
            || !seg_inodes.is_multiple_of(INODES_PER_BLOCK)
        {
            return Err(SbError::BadGeometry("inodes per segment out of range"));
        }
        let journal_start = 1u64;
        let seg_blocks = Self::seg_blocks_for(seg_inodes);
        let first_data_block = (lanes as u64)
            .checked_mul(seg_blocks)
            .and_then(|t| t.checked_add(journal_start + lanes as u64))
            .ok_or(SbError::BadGeometry("inode tables overflow"))?;
        let need = first_data_block
            .checked_add(MIN_DATA_BLOCKS + 1)
            .ok_or(SbError::BadGeometry("inode tables overflow"))?;
        if blocks_count < need {
            return Err(SbError::DeviceTooSmall { need, have: blocks_count });
        }
        // Root is the first slot after the reserved inode 0.
        let root_ino = 1;
        Ok(Self {
            blocks_count,
            lanes,
            journal_start,
            first_data_block,
            seg_inodes,
            root_ino,
            lost_found_ino: 2,
            read_only: false,
            slot_logs: true,
        })
    }

    fn seg_blocks_for(seg_inodes: u32) -> u64 {
        1 + (seg_inodes / INODES_PER_BLOCK) as u64
    }

    /// `lanes` as a non-zero divisor (a validated geometry has `lanes >= 1`;
    /// this keeps the arithmetic below free of panics regardless).
    fn lanes_nz(&self) -> u64 {
        (self.lanes as u64).max(1)
    }

    /// Blocks in one inode-table segment, header block included.
    pub fn seg_blocks(&self) -> u64 {
        Self::seg_blocks_for(self.seg_inodes)
    }

    /// Block of the backup superblock.
    pub fn backup_sb(&self) -> u64 {
        self.blocks_count.saturating_sub(1)
    }

    /// Journal block of `lane` (`lane < lanes`).
    pub fn journal_block(&self, lane: u32) -> u64 {
        self.journal_start.saturating_add(lane as u64 % self.lanes_nz())
    }

    /// The lane a CPU uses: any CPU count works, CPUs share lanes.
    pub fn lane_of_cpu(&self, cpu: u32) -> u32 {
        (cpu as u64 % self.lanes_nz()) as u32
    }

    /// First block of lane `lane`'s first inode-table segment.
    pub fn first_segment(&self, lane: u32) -> u64 {
        let l = lane as u64 % self.lanes_nz();
        self.journal_start
            .saturating_add(self.lanes as u64)
            .saturating_add(l.saturating_mul(self.seg_blocks()))
    }

    /// Whether `b` may hold data, log pages or later segments.
    pub fn is_data_block(&self, b: u64) -> bool {
        b >= self.first_data_block && b < self.backup_sb()
    }

    /// Whether the `count` blocks starting at `b` are all data blocks.
    pub fn is_data_range(&self, b: u64, count: u64) -> bool {
        count > 0
            && self.is_data_block(b)
            && b.checked_add(count).is_some_and(|e| e <= self.backup_sb())
    }

    /// Data blocks in the file system.
    pub fn data_blocks(&self) -> u64 {
        self.backup_sb().saturating_sub(self.first_data_block)
    }

    /// Splits an inode number into (lane, slot within the lane's table).
    pub fn ino_split(&self, ino: u64) -> (u32, u64) {
        ((ino % self.lanes_nz()) as u32, ino / self.lanes_nz())
    }

    /// The inode number of `slot` in `lane`'s table, if representable.
    pub fn ino_of(&self, lane: u32, slot: u64) -> Option<u64> {
        slot.checked_mul(self.lanes as u64)?.checked_add(lane as u64)
    }

    /// Byte position of slot `slot_in_seg` of the segment starting at
    /// block `seg`.
    pub fn slot_pos(&self, seg: u64, slot_in_seg: u32) -> u64 {
        let blk = seg.saturating_add(1 + (slot_in_seg / INODES_PER_BLOCK) as u64);
        blk.saturating_mul(BLOCK_SIZE_U64)
            .saturating_add(((slot_in_seg % INODES_PER_BLOCK) * INODE_SIZE) as u64)
    }

    /// Total bytes of the file system.
    pub fn bytes(&self) -> u64 {
        self.blocks_count.saturating_mul(BLOCK_SIZE_U64)
    }
}

impl Superblock {
    /// A superblock describing `geo` (times, uuid, label left for the caller).
    pub fn new(geo: &Geometry) -> Self {
        let mut sb = Superblock::zeroed();
        sb.magic = SB_MAGIC;
        sb.version = FORMAT_VERSION;
        sb.blocks_count = geo.blocks_count;
        sb.block_size = BLOCK_SIZE as u32;
        sb.lanes = geo.lanes;
        sb.journal_start = geo.journal_start;
        sb.first_data_block = geo.first_data_block;
        sb.root_ino = geo.root_ino;
        sb.lost_found_ino = geo.lost_found_ino;
        sb.inode_size = INODE_SIZE;
        sb.seg_inodes = geo.seg_inodes;
        sb.feature_incompat = INCOMPAT_UNWRITTEN;
        if geo.slot_logs {
            sb.feature_incompat |= INCOMPAT_SLOT_LOG;
        }
        sb.errors = ERRORS_RO;
        sb
    }

    /// Writes the superblock into a full 4 KiB block, zero tail, checksum set.
    pub fn write_block(&self, block: &mut [u8]) -> bool {
        let Some(block) = block.get_mut(..BLOCK_SIZE) else { return false };
        block.fill(0);
        let mut sb = *self;
        sb.csum = 0;
        sb.encode(block);
        sb.encode(block);
        sb.csum = sb_csum(block);
        sb.encode(block)
    }

    /// Whether `block` starts with the novars magic (for signature probes).
    pub fn has_magic(block: &[u8]) -> bool {
        super::read_u64(block, 0) == Some(SB_MAGIC)
    }

    /// Parses and validates a superblock block against a device of
    /// `device_blocks` blocks.
    pub fn parse(block: &[u8], device_blocks: u64) -> Result<(Superblock, Geometry), SbError> {
        let block = block.get(..BLOCK_SIZE).ok_or(SbError::Short)?;
        let sb = Superblock::decode(block).ok_or(SbError::Short)?;
        if sb.magic != SB_MAGIC {
            return Err(SbError::BadMagic);
        }
        let computed = sb_csum(block);
        if computed != sb.csum {
            return Err(SbError::BadChecksum { stored: sb.csum, computed });
        }
        if sb.version != FORMAT_VERSION {
            return Err(SbError::BadVersion(sb.version));
        }
        if sb.feature_incompat & !INCOMPAT_KNOWN != 0 {
            return Err(SbError::UnknownIncompat(sb.feature_incompat & !INCOMPAT_KNOWN));
        }
        if sb.block_size != BLOCK_SIZE as u32 {
            return Err(SbError::BadGeometry("block size is not 4096"));
        }
        if sb.inode_size != INODE_SIZE {
            return Err(SbError::BadGeometry("inode size is not 256"));
        }
        let mut geo = Geometry::plan(sb.blocks_count, sb.lanes, sb.seg_inodes)?;
        if sb.journal_start != geo.journal_start || sb.first_data_block != geo.first_data_block {
            return Err(SbError::BadGeometry(
                "region layout does not match lanes and segment size",
            ));
        }
        if sb.blocks_count > device_blocks {
            return Err(SbError::DeviceTooSmall { need: sb.blocks_count, have: device_blocks });
        }
        // A fixed number (FORMAT.md): another directory named as the root
        // would mount a subtree as the whole file system.
        if sb.root_ino != 1 {
            return Err(SbError::BadGeometry("root inode number is not 1"));
        }
        let (lf_lane, lf_slot) = geo.ino_split(sb.lost_found_ino);
        if sb.lost_found_ino != 0 && (lf_slot >= sb.seg_inodes as u64 || lf_lane >= sb.lanes) {
            return Err(SbError::BadGeometry("lost+found inode number out of range"));
        }
        if sb.errors == 0 || sb.errors > ERRORS_PANIC {
            return Err(SbError::BadGeometry("unknown errors= behaviour"));
        }
        geo.root_ino = sb.root_ino;
        geo.lost_found_ino = sb.lost_found_ino;
        geo.read_only = sb.feature_ro_compat & !RO_COMPAT_KNOWN != 0;
        geo.slot_logs = sb.feature_incompat & INCOMPAT_SLOT_LOG != 0;
        Ok((sb, geo))
    }

    /// Sets the label (`FS_IOC_SETFSLABEL`, `mkfs -L`): at most
    /// [`LABEL_MAX`] bytes of UTF-8 without NUL, else false (unchanged).
    /// The caller stores the block again ([`Superblock::write_block`]):
    /// the label is under the checksum.
    pub fn set_label(&mut self, label: &[u8]) -> bool {
        if label.len() > LABEL_MAX || label.contains(&0) || core::str::from_utf8(label).is_err() {
            return false;
        }
        self.label = [0; 64];
        match self.label.get_mut(..label.len()) {
            Some(dst) => dst.copy_from_slice(label),
            None => return false,
        }
        true
    }

    /// The label as text (up to the first NUL), if valid UTF-8.
    pub fn label_str(&self) -> Option<&str> {
        let end = self.label.iter().position(|&b| b == 0).unwrap_or(self.label.len());
        core::str::from_utf8(self.label.get(..end)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device of `dev` blocks: a small file system (uuid 1, 64 MiB) over
    /// an earlier, larger one (uuid 2, the whole device) whose backup is
    /// still in the device's last block.
    fn stale_backup_device(dev: u64) -> std::collections::BTreeMap<u64, Vec<u8>> {
        let mut blocks = std::collections::BTreeMap::new();
        for (count, uuid) in [(dev, 2u8), (16384, 1)] {
            let geo = Geometry::plan(count, 1, 1024).unwrap();
            let mut sb = Superblock::new(&geo);
            sb.uuid = [uuid; 16];
            let mut blk = vec![0u8; BLOCK_SIZE];
            assert!(sb.write_block(&mut blk));
            blocks.insert(0, blk.clone());
            blocks.insert(geo.backup_sb(), blk);
        }
        blocks
    }

    #[test]
    fn backup_of_the_same_file_system_only() {
        let dev = 262144;
        let mut d = stale_backup_device(dev);
        // The primary is damaged (a torn label write): its own backup, at
        // the end of the 64 MiB file system, stands in.
        d.get_mut(&0).unwrap()[200] ^= 1;
        let read = |d: &std::collections::BTreeMap<u64, Vec<u8>>, b: u64| d.get(&b).cloned();
        let (b, sb, geo) = find_backup(&d[&0], dev, |b| read(&d, b)).unwrap();
        assert_eq!((b, sb.uuid, geo.blocks_count), (16383, [1; 16], 16384));
        // Without it, the old file system's backup at the end of the device
        // is refused: another uuid.
        d.remove(&16383);
        assert_eq!(
            find_backup(&d[&0], dev, |b| read(&d, b)).unwrap_err(),
            (dev - 1, BackupMiss::OtherFileSystem)
        );
        // A primary without even the magic cannot say whose backup is
        // whose: the one at the end of the device is taken if valid (the
        // callers refuse a primary without magic unless asked).
        d.get_mut(&0).unwrap()[..8].fill(0);
        assert_eq!(find_backup(&d[&0], dev, |b| read(&d, b)).unwrap().0, dev - 1);
        // A valid superblock that is not at the end of its file system.
        let mut d = stale_backup_device(dev);
        d.get_mut(&0).unwrap()[200] ^= 1;
        let moved = d.remove(&16383).unwrap();
        d.insert(dev - 1, moved);
        assert_eq!(
            find_backup(&d[&0], dev, |b| read(&d, b)).unwrap_err(),
            (dev - 1, BackupMiss::NotAtEnd)
        );
    }

    #[test]
    fn roundtrip_and_validate() {
        let geo = Geometry::plan(262144, 2, 4096).unwrap();
        let mut sb = Superblock::new(&geo);
        sb.uuid = [7; 16];
        sb.label[..4].copy_from_slice(b"test");
        let mut blk = vec![0u8; BLOCK_SIZE];
        assert!(sb.write_block(&mut blk));
        let (back, g2) = Superblock::parse(&blk, 262144).unwrap();
        assert_eq!(back.label_str(), Some("test"));
        let mut l = back;
        assert!(l.set_label("données".as_bytes()));
        assert_eq!(l.label_str(), Some("données"));
        assert!(l.set_label(&[b'x'; LABEL_MAX]));
        assert_eq!(l.label_str().map(str::len), Some(LABEL_MAX));
        for bad in [&[b'x'; LABEL_MAX + 1][..], b"a\0b", &[0xff, 0xfe]] {
            assert!(!l.set_label(bad));
            assert_eq!(l.label_str().map(str::len), Some(LABEL_MAX), "unchanged");
        }
        assert!(l.set_label(b""));
        assert_eq!(l.label_str(), Some(""));
        assert_eq!(g2, geo);
        assert_eq!(back.uuid, [7; 16]);
        // Every single-bit flip outside the mutable words is caught.
        for bit in (0..BLOCK_SIZE * 8).step_by(61).filter(|b| !SB_MUTABLE.contains(&(b / 8))) {
            let mut b = blk.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Superblock::parse(&b, 262144).is_err(), "bit {bit}");
        }
        assert_eq!(
            Superblock::parse(&blk, 1000),
            Err(SbError::DeviceTooSmall { need: 262144, have: 1000 })
        );
        // The mutable words change without a new checksum.
        let mut m = blk.clone();
        m[SB_STATE_OFF as usize] ^= 1;
        m[SB_FREE_BLOCKS_OFF as usize + 3] ^= 0x40;
        assert!(Superblock::parse(&m, 262144).is_ok());
    }

    #[test]
    fn geometry_regions_do_not_overlap() {
        for lanes in [1, 2, 3, 64] {
            let g = Geometry::plan(1 << 20, lanes, 1024).unwrap();
            let mut prev_end = g.journal_start + lanes as u64;
            for l in 0..lanes {
                assert_eq!(g.first_segment(l), prev_end);
                prev_end += g.seg_blocks();
            }
            assert_eq!(prev_end, g.first_data_block);
            assert!(g.is_data_block(g.first_data_block));
            assert!(!g.is_data_block(g.backup_sb()));
            assert!(!g.is_data_range(g.backup_sb() - 1, 2));
            assert_eq!(g.lane_of_cpu(130), 130 % lanes);
        }
        assert!(Geometry::plan(10, 1, 64).is_err());
        assert!(Geometry::plan(1 << 20, 0, 64).is_err());
        assert!(Geometry::plan(1 << 20, 65, 64).is_err());
        assert!(Geometry::plan(1 << 20, 1, 100).is_err());
    }

    #[test]
    fn ino_mapping_roundtrips() {
        let g = Geometry::plan(1 << 20, 3, 1024).unwrap();
        for ino in 0..10_000u64 {
            let (l, s) = g.ino_split(ino);
            assert_eq!(g.ino_of(l, s), Some(ino));
        }
    }
}
