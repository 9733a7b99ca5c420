//! Read access to an image, as the walkers need it.

/// Why a block could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// The block lies beyond the end of the device.
    OutOfRange(u64),
    /// The device reported an error (e.g. a poisoned pmem line).
    Io(u64),
}

/// A device or image, read one 4 KiB block at a time.
///
/// The kernel implements it over the DAX mapping (no copy), the tools over
/// an mmap'd or in-memory image.
pub trait Media {
    /// The bytes of block `nr`; the slice is exactly `BLOCK_SIZE` long.
    fn block(&self, nr: u64) -> Result<&[u8], MediaError>;
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
