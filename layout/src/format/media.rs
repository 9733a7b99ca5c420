//! Read access to an image, as the walkers need it.

/// Why a block could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// The block lies beyond the end of the device.
    OutOfRange(u64),
    /// The device reported an error (e.g. a poisoned pmem line).
    Io(u64),
    /// No memory for a copy of the block.
    NoMemory(u64),
}

/// A device or image, read one 4 KiB block at a time.
///
/// The tools implement it over an mmap'd or in-memory image (a block is a
/// borrowed slice); the kernel over the DAX mapping, where a block is a
/// copy made with machine-check-safe loads, so that a poisoned pmem line
/// becomes [`MediaError::Io`] instead of a machine check in the kernel.
pub trait Media {
    /// A block's bytes as [`Media::block`] hands them out.
    type Block<'a>: core::ops::Deref<Target = [u8]>
    where
        Self: 'a;

    /// The bytes of block `nr`; exactly `BLOCK_SIZE` of them.
    fn block(&self, nr: u64) -> Result<Self::Block<'_>, MediaError>;

    /// Copies the `buf.len()` bytes at byte position `pos` into `buf`; the
    /// range must lie inside one block. For reads of a few bytes, where
    /// a whole block would be wasted.
    fn read(&self, pos: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let nr = pos / super::BLOCK_SIZE_U64;
        let off = (pos % super::BLOCK_SIZE_U64) as usize;
        let b = self.block(nr)?;
        let src = off
            .checked_add(buf.len())
            .and_then(|end| b.get(off..end))
            .ok_or(MediaError::OutOfRange(nr))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// The first `len` bytes (at most `BLOCK_SIZE`) of block `nr`; an
    /// implementation may hand out more, up to the whole block, as the
    /// default does. The log walker reads a page's entries with it: a
    /// small inode's log fills a few hundred bytes of its page, and where
    /// every read is a copy (the kernel's machine-check-safe loads) the
    /// rest of the page is wasted work.
    fn head(&self, nr: u64, len: usize) -> Result<Self::Block<'_>, MediaError> {
        let _ = len;
        self.block(nr)
    }

    /// Device size in blocks.
    fn blocks(&self) -> u64;
}

/// A `Media` over a byte slice (an image in memory or an mmap).
#[derive(Clone, Copy, Debug)]
pub struct SliceMedia<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceMedia<'a> {
    /// Wraps `bytes`; a trailing partial block is ignored.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl Media for SliceMedia<'_> {
    type Block<'b>
        = &'b [u8]
    where
        Self: 'b;

    fn block(&self, nr: u64) -> Result<&[u8], MediaError> {
        let start = usize::try_from(nr)
            .ok()
            .and_then(|n| n.checked_mul(super::BLOCK_SIZE))
            .ok_or(MediaError::OutOfRange(nr))?;
        let end = start.checked_add(super::BLOCK_SIZE).ok_or(MediaError::OutOfRange(nr))?;
        self.bytes.get(start..end).ok_or(MediaError::OutOfRange(nr))
    }

    fn blocks(&self) -> u64 {
        (self.bytes.len() / super::BLOCK_SIZE) as u64
    }
}
