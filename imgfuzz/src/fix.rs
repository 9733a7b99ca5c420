//! Checksum fix-ups: after a field changed, the structure's checksum is
//! recomputed (for most mutations) so that the checks behind the
//! checksum are reached. Each follows the format's rule from `layout`.

use layout::alloc_rec::{AllocRecHeader, ALLOC_CSUM_OFF, ALLOC_PER_BLOCK};
use layout::crc::{crc32, crc32_skip};
use layout::inode::{INODE_CSUM_START, SEG_CSUM_OFF, SEG_CSUM_START};
use layout::journal::{self, JOURNAL_CSUM_OFF, MAX_JOURNAL_ENTRIES};
use layout::log::{LOG_AREA, PAGE_CSUM_START};
use layout::sb::{sb_csum, SB_CSUM_OFF};
use layout::{read_u32, Inode, BLOCK_SIZE};

use crate::Image;

/// Where an inode record keeps its checksum (FORMAT.md; no `layout` name).
const INODE_CSUM_OFF: usize = 24;

fn block(img: &Image, b: u64) -> (usize, &[u8]) {
    let s = b as usize * BLOCK_SIZE;
    (s, &img.bytes()[s..s + BLOCK_SIZE])
}

/// The superblock copy in block `b`.
pub fn superblock(img: &mut Image, b: u64) {
    let (s, blk) = block(img, b);
    let c = sb_csum(blk);
    img.put_u32(s + SB_CSUM_OFF, c);
}

/// A journal block; a `count` past the maximum is read as the maximum.
pub fn journal(img: &mut Image, b: u64) {
    let (s, blk) = block(img, b);
    let count = read_u32(blk, 12).unwrap_or(0) as usize;
    let c = journal::csum_of(blk, count.min(MAX_JOURNAL_ENTRIES));
    img.put_u32(s + JOURNAL_CSUM_OFF, c);
}

/// A segment header.
pub fn segment(img: &mut Image, b: u64) {
    let (s, blk) = block(img, b);
    let c = crc32(&blk[SEG_CSUM_START..64]);
    img.put_u32(s + SEG_CSUM_OFF, c);
}

/// The inode record at `pos`.
pub fn inode(img: &mut Image, pos: usize) {
    let c = crc32(&img.bytes()[pos + INODE_CSUM_START..pos + Inode::SIZE]);
    img.put_u32(pos + INODE_CSUM_OFF, c);
}

/// A log page's tail.
pub fn page(img: &mut Image, b: u64) {
    let (s, blk) = block(img, b);
    let c = crc32(&blk[LOG_AREA + PAGE_CSUM_START..]);
    img.put_u32(s + LOG_AREA + 4, c);
}

/// The entry of `len` bytes at `pos`.
pub fn entry(img: &mut Image, pos: usize, len: usize) {
    let mut e = img.bytes()[pos..pos + len].to_vec();
    layout::log::seal_entry(&mut e);
    img.write(pos, &e);
}

/// An allocator-record block; a `count` past the maximum is read as the
/// maximum.
pub fn record(img: &mut Image, b: u64) {
    let (s, blk) = block(img, b);
    let count = read_u32(blk, 12).unwrap_or(0) as usize;
    let end = AllocRecHeader::SIZE + 16 * count.min(ALLOC_PER_BLOCK);
    let c = crc32_skip(&blk[..end], ALLOC_CSUM_OFF);
    img.put_u32(s + ALLOC_CSUM_OFF, c);
}
