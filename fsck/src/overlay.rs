//! A copy-on-write view of the image.
//!
//! Every change fsck makes — the journal rollback a mount would do, and
//! every repair — goes into the overlay first, so later passes see the
//! repaired state while the image itself stays untouched. In `-n` mode the
//! overlay is simply dropped; otherwise its dirty blocks are written back at
//! the end (see [`crate::device`]).

use std::collections::{BTreeMap, HashMap};

use layout::{Media, MediaError, BLOCK_SIZE, BLOCK_SIZE_U64};

use crate::direct::ReadBlocks;

/// The image (a mapping or a byte slice) plus the blocks changed so far.
pub struct Overlay<'a> {
    base: &'a [u8],
    blocks: u64,
    dirty: HashMap<u64, Box<[u8]>>,
    /// Reads the same bytes as `base` without the mapping (see
    /// [`crate::direct`]).
    reader: Option<&'a dyn ReadBlocks>,
}

impl<'a> Overlay<'a> {
    /// An overlay over `base`; a trailing partial block is ignored.
    pub fn new(base: &'a [u8]) -> Self {
        Self::with_reader(base, None)
    }

    /// An overlay over `base`, whose blocks `reader` can also read.
    pub fn with_reader(base: &'a [u8], reader: Option<&'a dyn ReadBlocks>) -> Self {
        Self { base, blocks: (base.len() / BLOCK_SIZE) as u64, dirty: HashMap::new(), reader }
    }

    /// The reader of the base, if there is one.
    pub fn reader(&self) -> Option<&'a dyn ReadBlocks> {
        self.reader
    }

    fn base_block(&self, nr: u64) -> Result<&'a [u8], MediaError> {
        let start = usize::try_from(nr)
            .ok()
            .and_then(|n| n.checked_mul(BLOCK_SIZE))
            .ok_or(MediaError::OutOfRange(nr))?;
        let end = start.checked_add(BLOCK_SIZE).ok_or(MediaError::OutOfRange(nr))?;
        self.base.get(start..end).ok_or(MediaError::OutOfRange(nr))
    }

    /// Block `nr` for writing; copied from the image on first use.
    pub fn block_mut(&mut self, nr: u64) -> Result<&mut [u8], MediaError> {
        if !self.dirty.contains_key(&nr) {
            let copy: Box<[u8]> = self.base_block(nr)?.into();
            self.dirty.insert(nr, copy);
        }
        self.dirty.get_mut(&nr).map(|b| &mut b[..]).ok_or(MediaError::OutOfRange(nr))
    }

    /// Writes `bytes` at byte position `pos`; they must not cross a block.
    pub fn write_at(&mut self, pos: u64, bytes: &[u8]) -> Result<(), MediaError> {
        let nr = pos / BLOCK_SIZE_U64;
        let off = (pos % BLOCK_SIZE_U64) as usize;
        let end = off
            .checked_add(bytes.len())
            .filter(|&e| e <= BLOCK_SIZE)
            .ok_or(MediaError::OutOfRange(nr))?;
        let blk = self.block_mut(nr)?;
        blk.get_mut(off..end).ok_or(MediaError::OutOfRange(nr))?.copy_from_slice(bytes);
        Ok(())
    }

    /// Stores the little-endian word `v` at byte position `pos`.
    pub fn write_u64(&mut self, pos: u64, v: u64) -> Result<(), MediaError> {
        self.write_at(pos, &v.to_le_bytes())
    }

    /// Reads the little-endian word at byte position `pos`.
    pub fn read_u64(&self, pos: u64) -> Result<u64, MediaError> {
        let nr = pos / BLOCK_SIZE_U64;
        let off = (pos % BLOCK_SIZE_U64) as usize;
        layout::read_u64(self.block(nr)?, off).ok_or(MediaError::OutOfRange(nr))
    }

    /// Copies block `from` over block `to`.
    pub fn copy_block(&mut self, from: u64, to: u64) -> Result<(), MediaError> {
        let src: Box<[u8]> = self.block(from)?.into();
        self.block_mut(to)?.copy_from_slice(&src);
        Ok(())
    }

    /// Whether any block was changed.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Whether block `nr` was changed.
    pub fn is_block_dirty(&self, nr: u64) -> bool {
        self.dirty.contains_key(&nr)
    }

    /// The changed blocks, by block number.
    pub fn into_dirty(self) -> BTreeMap<u64, Box<[u8]>> {
        self.dirty.into_iter().collect()
    }
}

impl Media for Overlay<'_> {
    type Block<'b>
        = &'b [u8]
    where
        Self: 'b;

    fn block(&self, nr: u64) -> Result<&[u8], MediaError> {
        if self.dirty.is_empty() {
            return self.base_block(nr);
        }
        match self.dirty.get(&nr) {
            Some(b) => Ok(b),
            None => self.base_block(nr),
        }
    }

    fn blocks(&self) -> u64 {
        self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_on_write() {
        let img = vec![7u8; 3 * BLOCK_SIZE + 100];
        let mut o = Overlay::new(&img);
        assert_eq!(o.blocks(), 3);
        assert!(o.block(3).is_err());
        o.write_u64(BLOCK_SIZE_U64 + 8, 0x1122).unwrap();
        assert_eq!(o.read_u64(BLOCK_SIZE_U64 + 8).unwrap(), 0x1122);
        assert_eq!(o.block(1).unwrap()[0], 7);
        assert!(o.write_at(BLOCK_SIZE_U64 - 4, &[0; 8]).is_err());
        o.copy_block(1, 2).unwrap();
        assert_eq!(o.read_u64(2 * BLOCK_SIZE_U64 + 8).unwrap(), 0x1122);
        let d = o.into_dirty();
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(img[BLOCK_SIZE + 8], 7);
    }
}
