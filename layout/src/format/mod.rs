//! Everything that defines a novars image. See `layout/FORMAT.md`.
//!
//! Conventions: all integers little-endian; "block" means a 4 KiB block
//! numbered from the start of the device; a "position" is a byte offset on
//! the device. Every checksum is CRC-32 ([`crc::crc32`]) over the object with
//! its own checksum field taken as zero. Fields that are changed later by a
//! single atomic 8-byte store (log tails, `next` links, state words) are kept
//! out of the checksum they sit beside and are validated by what they point
//! to instead.
#![forbid(unsafe_code)]
#![allow(clippy::len_without_is_empty)]

#[macro_use]
mod codec;
pub mod alloc_rec;
pub mod append;
pub mod crc;
pub mod inode;
pub mod journal;
pub mod log;
pub mod media;
pub mod sb;
pub mod trace;
pub mod walk;

pub use self::codec::{read_u32, read_u64, Field};
pub use self::inode::{Inode, Timespec};
pub use self::media::{Media, MediaError};
pub use self::sb::{Geometry, SbError, Superblock};

/// Size of every block: data blocks, log pages, inode-table blocks.
pub const BLOCK_SIZE: usize = 4096;
/// `BLOCK_SIZE` as a `u64`, for position arithmetic.
pub const BLOCK_SIZE_U64: u64 = BLOCK_SIZE as u64;
/// log2 of [`BLOCK_SIZE`].
pub const BLOCK_SHIFT: u32 = 12;

const _: () = assert!(1usize << BLOCK_SHIFT == BLOCK_SIZE);
// The format is defined little-endian; the structs are laid out natively.
#[cfg(not(target_endian = "little"))]
compile_error!("novars layout assumes a little-endian machine");
