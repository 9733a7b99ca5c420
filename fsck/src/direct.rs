//! Reading blocks past the mapping, for the parallel scan of pass 2.
//!
//! A page fault on a mapped block device reads around the faulting page
//! (128 KiB by default): each log page brings the data blocks beside it
//! into the page cache, and a 1 GiB device with 100,000 small files is read
//! almost whole. On a device that is memory (pmem, where every byte read
//! is a copy by the CPU) that dominates the check. So when the device can
//! be read directly (`O_DIRECT` on a block device), pass 2 reads the inode
//! tables in large runs and each log page alone, into buffers of its own,
//! and touches the mapping only for what the overlay changed. What it reads
//! is the same bytes; a failed read falls back to the mapping.

use std::cell::{Cell, Ref, RefCell};
use std::io;

use layout::{Media, MediaError, BLOCK_SIZE};

use crate::overlay::Overlay;

/// Reads whole blocks of the device, bypassing the mapping.
pub trait ReadBlocks: Sync {
    /// Fills `buf` (a whole number of blocks, 4096-aligned in memory) with
    /// the blocks from `first` on.
    fn read_blocks(&self, first: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The smallest unit [`ReadBlocks::read_at`] reads: the device's
    /// logical block size (512 for pmem). Whole blocks by default.
    fn sector(&self) -> usize {
        BLOCK_SIZE
    }

    /// Fills `buf` with the bytes at `pos`; `pos`, `buf.len()` and `buf`'s
    /// address are multiples of [`ReadBlocks::sector`].
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A buffer of `blocks` blocks aligned to a block (as `O_DIRECT` wants).
pub struct Aligned {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    /// A zeroed buffer of `blocks` blocks.
    pub fn new(blocks: usize) -> Self {
        let len = blocks.saturating_mul(BLOCK_SIZE);
        let raw = vec![0u8; len + BLOCK_SIZE];
        let off = raw.as_ptr().align_offset(BLOCK_SIZE).min(BLOCK_SIZE);
        Self { raw, off, len }
    }

    /// The aligned bytes.
    pub fn bytes(&self) -> &[u8] {
        self.raw.get(self.off..self.off + self.len).unwrap_or(&[])
    }

    /// The aligned bytes, for writing.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.raw.get_mut(self.off..self.off + self.len).unwrap_or(&mut [])
    }
}

/// A block as [`PageReader`] hands it out: from the overlay (or mapping),
/// or from the reader's own buffer.
pub enum Block<'a> {
    Mapped(&'a [u8]),
    /// The first `.1` bytes of the buffer (a whole block, or a head).
    Read(Ref<'a, Aligned>, usize),
}

impl std::ops::Deref for Block<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Block::Mapped(b) => b,
            Block::Read(r, len) => r.bytes().get(..*len).unwrap_or(&[]),
        }
    }
}

/// The image for one thread of the scan: blocks the overlay changed come
/// from it, others are read with the device's reader into one buffer
/// (one block handed out at a time; a second one while the first is held
/// comes from the mapping).
///
/// The log walker reads a page's 64-byte tail, then the bytes it says are
/// used ([`Media::head`]): a small file's log page is a few hundred bytes
/// of 4096. Where the device reads by sectors, only the sectors those two
/// reads touch are read (on pmem every byte read is a CPU copy, and the
/// copies were most of a check's time).
pub struct PageReader<'m, 'a> {
    m: &'m Overlay<'a>,
    buf: RefCell<Aligned>,
    /// The block `buf` holds bytes of, and which: `lo..hi` of it. A read
    /// inside that range (the entries after the tail, when they reach the
    /// tail's sector) is served from the buffer.
    held: Cell<Option<(u64, usize, usize)>>,
}

impl<'m, 'a> PageReader<'m, 'a> {
    pub fn new(m: &'m Overlay<'a>) -> Self {
        Self { m, buf: RefCell::new(Aligned::new(1)), held: Cell::new(None) }
    }

    /// Makes the buffer hold bytes `lo..hi` of block `nr` (at least),
    /// reading the sectors around them; `false` if the device cannot be
    /// read directly for it (no reader, a block the overlay changed, a
    /// failed read, the buffer handed out).
    fn fill(&self, nr: u64, lo: usize, hi: usize) -> bool {
        let Some(reader) = self.m.reader() else { return false };
        if self.m.is_block_dirty(nr) {
            return false;
        }
        if let Some((b, l, h)) = self.held.get() {
            if b == nr && l <= lo && hi <= h {
                return true;
            }
        }
        let Ok(mut buf) = self.buf.try_borrow_mut() else { return false };
        let sector = reader.sector().clamp(1, BLOCK_SIZE);
        let lo = lo / sector * sector;
        let hi = hi.div_ceil(sector).saturating_mul(sector).min(BLOCK_SIZE);
        let pos = nr.checked_mul(BLOCK_SIZE as u64).and_then(|p| p.checked_add(lo as u64));
        let ok = match (pos, buf.bytes_mut().get_mut(lo..hi)) {
            (Some(pos), Some(dst)) => dst.is_empty() || reader.read_at(pos, dst).is_ok(),
            _ => false,
        };
        self.held.set(ok.then_some((nr, lo, hi)));
        ok
    }

    /// The first `len` bytes of block `nr`, read directly if possible.
    fn prefix(&self, nr: u64, len: usize) -> Result<Block<'_>, MediaError> {
        let mapped = self.m.block(nr)?; // range check; cheap (no access)
        let len = len.min(BLOCK_SIZE);
        match (self.fill(nr, 0, len), self.buf.try_borrow()) {
            (true, Ok(r)) => Ok(Block::Read(r, len)),
            _ => Ok(Block::Mapped(mapped)),
        }
    }
}

impl Media for PageReader<'_, '_> {
    type Block<'b>
        = Block<'b>
    where
        Self: 'b;

    fn block(&self, nr: u64) -> Result<Block<'_>, MediaError> {
        self.prefix(nr, BLOCK_SIZE)
    }

    fn head(&self, nr: u64, len: usize) -> Result<Block<'_>, MediaError> {
        self.prefix(nr, len)
    }

    fn read(&self, pos: u64, out: &mut [u8]) -> Result<(), MediaError> {
        let nr = pos / BLOCK_SIZE as u64;
        let off = (pos % BLOCK_SIZE as u64) as usize;
        let end = off.checked_add(out.len()).filter(|&e| e <= BLOCK_SIZE);
        let end = end.ok_or(MediaError::OutOfRange(nr))?;
        let mapped = self.m.block(nr)?;
        let held = if self.fill(nr, off, end) { self.buf.try_borrow().ok() } else { None };
        let src = match &held {
            Some(r) => r.bytes(),
            None => mapped,
        };
        out.copy_from_slice(src.get(off..end).ok_or(MediaError::OutOfRange(nr))?);
        Ok(())
    }

    fn blocks(&self) -> u64 {
        self.m.blocks()
    }
}

/// A [`ReadBlocks`] over bytes in memory (tests; an image already read).
pub struct SliceReader<'a>(pub &'a [u8]);

impl ReadBlocks for SliceReader<'_> {
    fn read_blocks(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(first)
            .ok()
            .and_then(|b| b.checked_mul(BLOCK_SIZE))
            .ok_or_else(|| io::Error::other("block out of range"))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or_else(|| io::Error::other("block out of range"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn sector(&self) -> usize {
        512
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = usize::try_from(pos)
            .ok()
            .and_then(|p| Some(p..p.checked_add(buf.len())?))
            .and_then(|r| self.0.get(r))
            .ok_or_else(|| io::Error::other("bytes out of range"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A reader that counts its reads.
    struct Counting<'a>(SliceReader<'a>, AtomicUsize);

    impl ReadBlocks for Counting<'_> {
        fn read_blocks(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.read_blocks(first, buf)
        }

        fn sector(&self) -> usize {
            self.0.sector()
        }

        fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.read_at(pos, buf)
        }
    }

    #[test]
    fn reads_through_the_reader_unless_dirty() {
        let mut img = vec![0u8; 4 * BLOCK_SIZE];
        img[BLOCK_SIZE] = 1;
        img[2 * BLOCK_SIZE] = 2;
        img[3 * BLOCK_SIZE] = 3;
        let other = {
            let mut o = img.clone();
            o[BLOCK_SIZE] = 11;
            o[3 * BLOCK_SIZE] = 33;
            o
        };
        let r = Counting(SliceReader(&other), AtomicUsize::new(0));
        let mut o = Overlay::with_reader(&img, Some(&r));
        o.write_u64(2 * BLOCK_SIZE as u64 + 8, 5).unwrap();
        let p = PageReader::new(&o);
        // Block 1 comes from the reader (here: other bytes, to tell).
        assert_eq!(p.block(1).unwrap()[0], 11);
        // Block 2 is dirty in the overlay: the overlay's copy.
        assert_eq!(p.block(2).unwrap()[8], 5);
        assert_eq!(r.1.load(Ordering::Relaxed), 1);
        // The block the buffer holds is not read again (the walker reads a
        // page's tail, then its entries).
        assert_eq!(p.head(1, 64).unwrap()[0], 11);
        assert_eq!(r.1.load(Ordering::Relaxed), 1);
        // Two blocks held at once: the second from the mapping.
        let a = p.block(1).unwrap();
        let b = p.block(3).unwrap();
        assert_eq!((a[0], b[0]), (11, 3));
        drop((a, b));
        assert_eq!(p.block(3).unwrap()[0], 33);
        assert_eq!(r.1.load(Ordering::Relaxed), 2);
        assert!(p.block(4).is_err());
        // A page's tail, then its head: the sectors around each, not the
        // block; a head that reaches the tail's sector is read once more.
        let p = PageReader::new(&o);
        let before = r.1.load(Ordering::Relaxed);
        let mut tail = [0u8; 64];
        p.read(BLOCK_SIZE as u64 + 4032, &mut tail).unwrap();
        assert_eq!(tail, other[BLOCK_SIZE + 4032..BLOCK_SIZE + 4096]);
        let head = p.head(1, 100).unwrap();
        assert_eq!((head.len(), head[0]), (100, 11));
        drop(head);
        assert_eq!(r.1.load(Ordering::Relaxed), before + 2);
        p.read(BLOCK_SIZE as u64 + 10, &mut tail).unwrap(); // inside the head's sector
        assert_eq!(r.1.load(Ordering::Relaxed), before + 2);
        // 4000 bytes round up to the whole block, which then serves it.
        assert_eq!(p.head(1, 4000).unwrap().len(), 4000);
        assert_eq!(p.block(1).unwrap().len(), BLOCK_SIZE);
        assert_eq!(r.1.load(Ordering::Relaxed), before + 3);
        assert_eq!(Aligned::new(3).bytes().as_ptr().align_offset(BLOCK_SIZE), 0);
    }
}
