//! Opening a device or image file, mapping it, writing repairs back.
//!
//! `-n` opens the file read-only and never writes. The other modes open it
//! read-write (block devices with `O_EXCL`, so a mounted device is refused,
//! as e2fsck does) but still map it read-only: repairs are collected in the
//! overlay and written with `pwrite` at the end, every other block first,
//! then the backup superblock, then the primary, with an fsync before and
//! after the primary.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use layout::{BLOCK_SIZE, BLOCK_SIZE_U64};

use crate::direct::ReadBlocks;

/// An open device or image, mapped read-only.
pub struct Device {
    pub path: PathBuf,
    file: File,
    map: Mmap,
    /// Size in bytes.
    pub size: u64,
    pub is_block_device: bool,
}

impl Device {
    /// Opens `path`, for writing if `write`.
    pub fn open(path: &Path, write: bool) -> Result<Self, String> {
        let show = path.display();
        let md = std::fs::metadata(path).map_err(|e| format!("{show}: {e}"))?;
        let is_block_device = md.file_type().is_block_device();
        if !is_block_device && !md.is_file() {
            return Err(format!("{show}: not a block device or regular file"));
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(write);
        if write && is_block_device {
            opts.custom_flags(libc::O_EXCL);
        }
        let mut file = opts.open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => {
                format!("{show}: device is in use (mounted?); refusing to repair it")
            }
            _ => format!("{show}: {e}"),
        })?;
        // A block device's size is where a seek to its end lands (the
        // BLKGETSIZE64 value), without an ioctl.
        let size = if is_block_device {
            file.seek(SeekFrom::End(0))
                .map_err(|e| format!("{show}: cannot size the device: {e}"))?
        } else {
            md.len()
        };
        if size < 2 * BLOCK_SIZE_U64 {
            return Err(format!("{show}: too small ({size} bytes) to hold a novars file system"));
        }
        let len = usize::try_from(size).map_err(|_| format!("{show}: too large to map"))?;
        if is_block_device {
            drop_page_cache(&file);
        }
        // SAFETY: the mapping is read-only (PROT_READ) and `len` is the
        // size of the file or device. It stays valid while `self` lives (it
        // owns both map and file). fsck only reads it through `&[u8]` and
        // parses every byte as untrusted input. The bytes could change under
        // us only if another party wrote the device concurrently; the
        // repairing modes prevent that for block devices with O_EXCL (a
        // mounted device is refused), and fsck's own writes happen after
        // the last read, through the file rather than the mapping.
        #[allow(unsafe_code)]
        let map = unsafe { MmapOptions::new().len(len).map(&file) }
            .map_err(|e| format!("{show}: cannot map: {e}"))?;
        Ok(Self { path: path.to_path_buf(), file, map, size, is_block_device })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Writes `writes` (block, bytes) in order; block 0 (the primary
    /// superblock) is expected last and is fenced by fsyncs.
    pub fn write_back(&self, writes: &[(u64, Box<[u8]>)]) -> io::Result<()> {
        for (b, data) in writes {
            if *b == 0 {
                self.file.sync_all()?;
            }
            let pos = b
                .checked_mul(BLOCK_SIZE_U64)
                .ok_or_else(|| io::Error::other("block out of range"))?;
            self.file.write_all_at(data, pos)?;
        }
        self.file.sync_all()
    }
}

/// Direct reads of a block device (`O_DIRECT`: no page cache, no
/// read-around), for [`crate::direct`].
pub struct DirectReader {
    file: File,
    /// The device's logical block size: the unit of a direct read.
    sector: usize,
}

impl ReadBlocks for DirectReader {
    fn read_blocks(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
        let pos = first
            .checked_mul(BLOCK_SIZE_U64)
            .ok_or_else(|| io::Error::other("block out of range"))?;
        self.file.read_exact_at(buf, pos)
    }

    fn sector(&self) -> usize {
        self.sector
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, pos)
    }
}

impl Device {
    /// A reader of a block device's blocks past the page cache, for a
    /// device that is memory (pmem: DAX-capable, where a read is a CPU
    /// copy and costs what it copies, so reading only the blocks needed
    /// wins). `None` for image files (their page cache is where the bytes
    /// are), for other devices (a disk or a loop device has a latency per
    /// read: read-around through the mapping is faster there) or if the
    /// device cannot be opened so. `NOVARS_FSCK_DIRECT=1` or `=0` forces
    /// the choice (measurements; an image file is then read with plain
    /// `pread`).
    pub fn direct_reader(&self) -> Option<DirectReader> {
        let forced = std::env::var("NOVARS_FSCK_DIRECT").ok();
        let want = match forced.as_deref() {
            Some("1") => true,
            Some("0") => false,
            _ => self.is_block_device && is_dax(&self.path),
        };
        if !want {
            return None;
        }
        // An image file is read through its page cache (forced only).
        let flags = if self.is_block_device { libc::O_DIRECT } else { 0 };
        let file = OpenOptions::new().read(true).custom_flags(flags).open(&self.path).ok()?;
        let sector = if self.is_block_device { logical_block_size(&self.path) } else { 512 };
        Some(DirectReader { file, sector })
    }
}

/// The logical block size of block device `path` (the alignment `O_DIRECT`
/// needs), from sysfs; a whole block if it cannot be read or is not a
/// power of two up to a block.
fn logical_block_size(path: &Path) -> usize {
    queue_attr(path, "logical_block_size")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|s| s.is_power_of_two() && *s <= BLOCK_SIZE)
        .unwrap_or(BLOCK_SIZE)
}

/// Whether block device `path` is DAX-capable (pmem in fsdax mode).
fn is_dax(path: &Path) -> bool {
    queue_attr(path, "dax").is_some_and(|v| v.trim() == "1")
}

/// Request-queue attribute `name` of block device `path` from sysfs:
/// `queue/NAME` of the device, or of the disk a partition belongs to (a
/// partition has no queue of its own).
fn queue_attr(path: &Path, name: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(path).ok()?.rdev();
    let dev = PathBuf::from(format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev)));
    [dev.join("queue").join(name), dev.join("../queue").join(name)]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
}

/// Drops the clean pages of a block device's page cache before it is
/// mapped. The kernel module stores to the device through DAX, past the
/// block device's page cache, so pages cached by an earlier reader (a
/// previous fsck, mkfs, blkid) would show fsck the device as it was
/// then. e2fsck flushes its device's buffers on open for the same reason.
/// Dirty pages (a writer through the block device that has not synced)
/// stay; they are newer than the media.
fn drop_page_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is
    // open for as long as `file` is borrowed. Its result is advisory: on
    // failure fsck reads what the cache holds, as before.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Whether the block device `path` is mounted (per /proc/self/mounts).
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(path) else { return false };
    if !md.file_type().is_block_device() {
        return false;
    }
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    mounts.lines().filter_map(|l| l.split_whitespace().next()).filter(|s| s.starts_with('/')).any(
        |src| {
            std::fs::metadata(src)
                .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == md.rdev())
        },
    )
}
