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
    Read(Ref<'a, Aligned>),
}

impl std::ops::Deref for Block<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Block::Mapped(b) => b,
            Block::Read(r) => r.bytes(),
        }
    }
}

/// The image for one thread of the scan: blocks the overlay changed come
/// from it, others are read with the device's reader into one buffer
/// (one block handed out at a time; a second one while the first is held
/// comes from the mapping).
pub struct PageReader<'m, 'a> {
    m: &'m Overlay<'a>,
    buf: RefCell<Aligned>,
    /// The block `buf` holds: the log walker reads a page's tail, then its
    /// entries, and the second read is served from the first.
    held: Cell<Option<u64>>,
}

impl<'m, 'a> PageReader<'m, 'a> {
    pub fn new(m: &'m Overlay<'a>) -> Self {
        Self { m, buf: RefCell::new(Aligned::new(1)), held: Cell::new(None) }
    }
}

impl Media for PageReader<'_, '_> {
    type Block<'b>
        = Block<'b>
    where
        Self: 'b;

    fn block(&self, nr: u64) -> Result<Block<'_>, MediaError> {
        let mapped = self.m.block(nr)?; // range check; cheap (no access)
        let Some(reader) = self.m.reader() else { return Ok(Block::Mapped(mapped)) };
        if self.m.is_block_dirty(nr) {
            return Ok(Block::Mapped(mapped));
        }
        let read = self.held.get() == Some(nr)
            || match self.buf.try_borrow_mut() {
                Ok(mut b) => {
                    let ok = reader.read_blocks(nr, b.bytes_mut()).is_ok();
                    self.held.set(ok.then_some(nr));
                    ok
                }
                Err(_) => false,
            };
        match (read, self.buf.try_borrow()) {
            (true, Ok(r)) => Ok(Block::Read(r)),
            _ => Ok(Block::Mapped(mapped)),
        }
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
        assert_eq!(Aligned::new(3).bytes().as_ptr().align_offset(BLOCK_SIZE), 0);
    }
}
