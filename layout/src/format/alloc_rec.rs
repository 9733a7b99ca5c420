//! The allocator record written at clean unmount, so that a clean mount
//! knows the free space without reading every log.
//!
//! A chain of blocks taken from the free space itself (each record block is
//! listed as free in the record). The superblock's `alloc_rec_head` and
//! `alloc_rec_seq` name it, and it counts only while the superblock state is
//! CLEAN. Mount clears CLEAN (durably) before it allocates anything, so a
//! record whose blocks are being reused is never trusted again.

use super::{read_u64, BLOCK_SIZE};

/// `"NVAR"`: record-block magic.
pub const ALLOC_MAGIC: u32 = u32::from_le_bytes(*b"NVAR");
/// Byte offset of the checksum in a record block.
pub const ALLOC_CSUM_OFF: usize = 4;
/// Extents per record block.
pub const ALLOC_PER_BLOCK: usize = (BLOCK_SIZE - AllocRecHeader::SIZE) / 16;
/// Record kind: free block extents `(first block, count)`.
pub const KIND_BLOCKS: u16 = 1;
/// Record kind: free inode slots of `lane`: `(first slot, count)`.
pub const KIND_INODES: u16 = 2;

ondisk! {
    /// Start of a record block; `count` `(start, len)` pairs follow.
    pub struct AllocRecHeader {
        pub magic: u32,
        /// CRC-32 of bytes `[0, 32 + 16*count)` with this field zero.
        pub csum: u32,
        pub kind: u16,
        pub lane: u16,
        pub count: u32,
        /// Equals the superblock's `alloc_rec_seq`.
        pub seq: u64,
        /// Next record block, 0 at the end.
        pub next: u64,
    }
}

const _: () = assert!(AllocRecHeader::SIZE == 32);

/// Why a record block is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocRecError {
    /// Magic, kind, count or sequence wrong.
    BadHeader,
    /// Checksum mismatch.
    BadChecksum,
}

/// Writes a record block; `extents.len() <= ALLOC_PER_BLOCK`.
pub fn build(
    block: &mut [u8],
    kind: u16,
    lane: u16,
    seq: u64,
    next: u64,
    extents: &[(u64, u64)],
) -> bool {
    if extents.len() > ALLOC_PER_BLOCK || block.len() < BLOCK_SIZE {
        return false;
    }
    block.fill(0);
    let h = AllocRecHeader {
        magic: ALLOC_MAGIC,
        csum: 0,
        kind,
        lane,
        count: extents.len() as u32,
        seq,
        next,
    };
    h.encode(block);
    for (i, (s, l)) in extents.iter().enumerate() {
        let off = AllocRecHeader::SIZE + 16 * i;
        if let Some(b) = block.get_mut(off..off + 16) {
            b[..8].copy_from_slice(&s.to_le_bytes());
            b[8..].copy_from_slice(&l.to_le_bytes());
        }
    }
    let end = AllocRecHeader::SIZE + 16 * extents.len();
    let c = super::crc::crc32_skip(block.get(..end).unwrap_or(&[]), ALLOC_CSUM_OFF);
    if let Some(f) = block.get_mut(ALLOC_CSUM_OFF..ALLOC_CSUM_OFF + 4) {
        f.copy_from_slice(&c.to_le_bytes());
    }
    true
}

/// Parses a record block stamped `seq`; returns its header and extents.
pub fn parse(
    block: &[u8],
    seq: u64,
) -> Result<(AllocRecHeader, impl Iterator<Item = (u64, u64)> + '_), AllocRecError> {
    let h = AllocRecHeader::decode(block).ok_or(AllocRecError::BadHeader)?;
    let count = h.count as usize;
    if h.magic != ALLOC_MAGIC
        || h.seq != seq
        || count > ALLOC_PER_BLOCK
        || !(h.kind == KIND_BLOCKS || h.kind == KIND_INODES)
    {
        return Err(AllocRecError::BadHeader);
    }
    let end = AllocRecHeader::SIZE + 16 * count;
    let body = block.get(..end).ok_or(AllocRecError::BadHeader)?;
    if super::crc::crc32_skip(body, ALLOC_CSUM_OFF) != h.csum {
        return Err(AllocRecError::BadChecksum);
    }
    let it = (0..count).map(move |i| {
        let off = AllocRecHeader::SIZE + 16 * i;
        (read_u64(body, off).unwrap_or(0), read_u64(body, off + 8).unwrap_or(0))
    });
    Ok((h, it))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let mut b = vec![0u8; BLOCK_SIZE];
        let ex: Vec<(u64, u64)> = (0..ALLOC_PER_BLOCK as u64).map(|i| (i * 10, i + 1)).collect();
        assert!(build(&mut b, KIND_BLOCKS, 0, 9, 1234, &ex));
        let (h, it) = parse(&b, 9).unwrap();
        assert_eq!(h.next, 1234);
        assert_eq!(it.collect::<Vec<_>>(), ex);
        assert!(parse(&b, 8).is_err());
        b[100] ^= 4;
        assert_eq!(parse(&b, 9).err(), Some(AllocRecError::BadChecksum));
        assert!(!build(&mut b, KIND_BLOCKS, 0, 9, 0, &vec![(0, 0); ALLOC_PER_BLOCK + 1]));
    }
}
