//! Finding and erasing other file systems' signatures before formatting.
//!
//! A stale signature outlives a format that does not erase it: e2fsck falls
//! back on an ext2/3/4 *backup* superblock when the primary is gone,
//! xfs_repair looks for secondary superblocks at allocation-group starts,
//! btrfs keeps superblock mirrors at 64 MiB and 256 GiB, and blkid reports
//! whatever magic it recognises. mkfs.novars therefore looks at every place
//! where such a signature can be, reads only those places (no scan of the
//! device), and zeroes what it finds, plus the first and last
//! [`EDGE_BYTES`] of the device, where libblkid finds most other formats
//! (partition tables, RAID and LVM labels, ZFS labels, LUKS headers).
//!
//! Where the signatures are (from the formats' documentation):
//! - ext2/3/4: a 1024-byte superblock with magic 0xEF53 at byte 56. The
//!   primary is at byte 1024. A backup starts block group `g` (at block
//!   `first_data_block + g * blocks_per_group`, `first_data_block` being 1
//!   for 1 KiB blocks and 0 otherwise); mke2fs's default is 8 * block size
//!   blocks per group. With `sparse_super` the backups are in groups 1 and
//!   the powers of 3, 5 and 7; with `sparse_super2` in the (at most two)
//!   groups the superblock names; without either, in every group. e2fsck
//!   without a primary tries group 1 for each block size.
//! - xfs: "XFSB" at byte 0 of the primary superblock, and a secondary copy
//!   at the start of every allocation group (AG `a` at byte
//!   `a * agblocks * blocksize`). Without a primary, xfs_repair first
//!   checks where mkfs.xfs's default geometry for the device's size puts
//!   AG 1 (4 AGs on a single device of 64 MiB to 4 TiB, AGs of the largest
//!   size, 1 TiB, above), and only then scans the whole device; we do the
//!   first and read the geometry from any secondary found.
//! - btrfs: "_BHRfS_M" at byte 0x40 of a 4 KiB superblock at 64 KiB, and
//!   mirrors at 64 MiB and 256 GiB.
//! - swap: "SWAPSPACE2" or "SWAP-SPACE" (or a hibernation image's magic) in
//!   the last 10 bytes of the first page, for page sizes 4 to 64 KiB.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes zeroed at each end of the device whatever they hold.
pub const EDGE_BYTES: u64 = 1 << 20;

/// Groups per block size up to which every group start is checked for an
/// ext2/3/4 backup (for a file system made without `sparse_super`); beyond,
/// only the sparse positions (a 1 KiB-block file system has a group every
/// 8 MiB, so this covers 512 GiB for 1 KiB blocks).
pub const EXT_EVERY_GROUP_MAX: u64 = 1 << 16;

/// Groups of a superblock found without `sparse_super` whose every start is
/// checked (a bound against a hostile superblock: past it, the sparse
/// positions only).
const EXT_GROUPS_MAX: u64 = 1 << 20;

/// A signature found on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// What it belongs to: "ext4", "xfs", "btrfs", "swap", ...
    pub fs: &'static str,
    /// Which copy: see [`Kind`].
    pub kind: Kind,
    /// Byte offset on the device.
    pub offset: u64,
    /// Bytes that erasing it zeroes (the superblock, or the magic).
    pub len: u64,
}

/// Which of a format's copies a [`Signature`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The one blkid and mount look at.
    Primary,
    /// An ext2/3/4 backup superblock.
    Backup,
    /// An xfs secondary superblock.
    Secondary,
    /// A btrfs superblock mirror.
    Mirror,
}

impl Signature {
    /// Whether this is a file system's (or swap area's) primary signature,
    /// the kind that makes mkfs ask before overwriting.
    pub fn is_primary(&self) -> bool {
        self.kind == Kind::Primary
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.kind, self.fs) {
            (Kind::Primary, "swap" | "swsuspend") => "signature",
            (Kind::Primary, _) => "superblock",
            (Kind::Backup, _) => "backup superblock",
            (Kind::Secondary, _) => "secondary superblock",
            (Kind::Mirror, _) => "superblock mirror",
        };
        let article = if self.fs.starts_with(['e', 'x']) { "an" } else { "a" };
        write!(f, "{article} {} {what} at offset {} ({:#x})", self.fs, self.offset, self.offset)
    }
}

/// Reads `len` bytes at `off`; `None` past the end or on a short read.
fn read(dev: &File, off: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    dev.read_exact_at(&mut buf, off).ok()?;
    Some(buf)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

/// Finds every foreign signature mkfs knows where it can be on a device of
/// `len` bytes. Reads a few hundred small pieces at most on a large device.
pub fn find(dev: &File, len: u64) -> Vec<Signature> {
    let mut found = BTreeMap::new();
    let mut add = |s: Signature| {
        found.entry(s.offset).or_insert(s);
    };
    ext(dev, len, &mut add);
    xfs(dev, len, &mut add);
    btrfs(dev, len, &mut add);
    swap(dev, len, &mut add);
    found.into_values().collect()
}

/// Zeroes each signature and the first and last [`EDGE_BYTES`] of the first
/// `len` bytes (only the pieces not zero already, so an image stays
/// sparse), then syncs: the erasure is durable before formatting starts.
pub fn erase(dev: &File, len: u64, sigs: &[Signature]) -> io::Result<()> {
    for s in sigs {
        let n = s.len.min(len.saturating_sub(s.offset));
        dev.write_all_at(&vec![0u8; n as usize], s.offset)?;
    }
    let head = len.min(EDGE_BYTES);
    let tail = len.saturating_sub(EDGE_BYTES).max(head);
    zero_nonzero(dev, 0, head)?;
    zero_nonzero(dev, tail, len)?;
    dev.sync_all()
}

/// Zeroes the 64 KiB chunks of `start..end` that are not all zero.
fn zero_nonzero(dev: &File, start: u64, end: u64) -> io::Result<()> {
    const CHUNK: u64 = 64 << 10;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut off = start;
    while off < end {
        let n = (end - off).min(CHUNK) as usize;
        dev.read_exact_at(&mut buf[..n], off)?;
        if buf[..n].iter().any(|&b| b != 0) {
            buf[..n].fill(0);
            dev.write_all_at(&buf[..n], off)?;
        }
        off += n as u64;
    }
    Ok(())
}

// ---- ext2/3/4 ----

const EXT_SB_SIZE: usize = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const EXT_COMPAT_HAS_JOURNAL: u32 = 0x4;
const EXT_COMPAT_SPARSE_SUPER2: u32 = 0x200;
const EXT_RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const EXT_INCOMPAT_64BIT: u32 = 0x80;
/// Incompat and ro-compat features ext3 knows; any other makes it ext4.
const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x8 | 0x10;
const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;

/// The fields of an ext2/3/4 superblock that say where its copies are.
struct ExtSb {
    fs: &'static str,
    log_block_size: u32,
    first_data_block: u64,
    blocks_per_group: u64,
    blocks_count: u64,
    compat: u32,
    ro_compat: u32,
    backup_bgs: [u32; 2],
}

impl ExtSb {
    fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < EXT_SB_SIZE || le16(b, 0x38) != EXT_MAGIC {
            return None;
        }
        let log_block_size = le32(b, 0x18);
        let blocks_per_group = le32(b, 0x20) as u64;
        if log_block_size > 6 || blocks_per_group == 0 {
            return None;
        }
        let (compat, incompat, ro_compat) = (le32(b, 0x5c), le32(b, 0x60), le32(b, 0x64));
        let mut blocks_count = le32(b, 0x04) as u64;
        if incompat & EXT_INCOMPAT_64BIT != 0 {
            blocks_count |= (le32(b, 0x150) as u64) << 32;
        }
        let fs = if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
            "ext4"
        } else if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        };
        Some(Self {
            fs,
            log_block_size,
            first_data_block: le32(b, 0x14) as u64,
            blocks_per_group,
            blocks_count,
            compat,
            ro_compat,
            backup_bgs: [le32(b, 0x24c), le32(b, 0x250)],
        })
    }

    fn block_size(&self) -> u64 {
        1024 << self.log_block_size
    }

    /// Byte offsets of this file system's backup superblocks.
    fn backups(&self, dev_len: u64) -> Vec<u64> {
        let bs = self.block_size();
        let groups =
            self.blocks_count.saturating_sub(self.first_data_block) / self.blocks_per_group + 1;
        let groups = groups.min(dev_len / (self.blocks_per_group * bs) + 1);
        let list: Vec<u64> = if self.compat & EXT_COMPAT_SPARSE_SUPER2 != 0 {
            self.backup_bgs.iter().map(|&g| g as u64).filter(|&g| g != 0).collect()
        } else if self.ro_compat & EXT_RO_COMPAT_SPARSE_SUPER != 0 || groups > EXT_GROUPS_MAX {
            sparse_groups(groups)
        } else {
            (1..groups).collect()
        };
        list.into_iter()
            .map(|g| {
                g.saturating_mul(self.blocks_per_group)
                    .saturating_add(self.first_data_block)
                    .saturating_mul(bs)
            })
            .filter(|&o| o.saturating_add(EXT_SB_SIZE as u64) <= dev_len)
            .collect()
    }
}

/// Groups below `groups` holding a backup with `sparse_super`: 1 and the
/// powers of 3, 5 and 7.
pub fn sparse_groups(groups: u64) -> Vec<u64> {
    let mut v = vec![];
    if groups > 1 {
        v.push(1);
    }
    for base in [3u64, 5, 7] {
        let mut g = base;
        while g < groups {
            v.push(g);
            match g.checked_mul(base) {
                Some(n) => g = n,
                None => break,
            }
        }
    }
    v.sort_unstable();
    v
}

/// Where an ext2/3/4 backup superblock can be with mke2fs's default group
/// size, for every block size from 1 to 64 KiB.
pub fn ext_default_backups(dev_len: u64) -> Vec<(u32, u64)> {
    let mut v = vec![];
    for log in 0..=6u32 {
        let bs = 1024u64 << log;
        let bpg = 8 * bs;
        let first = u64::from(bs == 1024);
        let groups = dev_len / (bpg * bs) + 1;
        let list: Vec<u64> = if groups <= EXT_EVERY_GROUP_MAX {
            (1..groups).collect()
        } else {
            sparse_groups(groups)
        };
        v.extend(
            list.into_iter()
                .map(|g| (log, (first + g * bpg) * bs))
                .filter(|&(_, o)| o + EXT_SB_SIZE as u64 <= dev_len),
        );
    }
    v
}

fn ext(dev: &File, len: u64, add: &mut dyn FnMut(Signature)) {
    let sig = |fs, kind, offset| Signature { fs, kind, offset, len: EXT_SB_SIZE as u64 };
    // Positions named by a superblock found: its own layout, which may
    // differ from the defaults (`mke2fs -g`, no sparse_super, sparse_super2).
    let mut named = Vec::new();
    if let Some(sb) = read(dev, 1024, EXT_SB_SIZE).and_then(|b| ExtSb::parse(&b)) {
        add(sig(sb.fs, Kind::Primary, 1024));
        named.extend(sb.backups(len));
    }
    let mut geometry_read = false;
    for (log, off) in ext_default_backups(len) {
        let Some(sb) = read(dev, off, EXT_SB_SIZE).and_then(|b| ExtSb::parse(&b)) else {
            continue;
        };
        if sb.log_block_size != log {
            continue;
        }
        add(sig(sb.fs, Kind::Backup, off));
        if !geometry_read {
            geometry_read = true;
            named.extend(sb.backups(len));
        }
    }
    for off in named {
        if let Some(sb) = read(dev, off, EXT_SB_SIZE).and_then(|b| ExtSb::parse(&b)) {
            add(sig(sb.fs, Kind::Backup, off));
        }
    }
}

// ---- xfs ----

const XFS_MAGIC: &[u8; 4] = b"XFSB";
/// Bytes zeroed of an xfs superblock: its first sector.
const XFS_SECTOR: u64 = 512;
/// The largest AG mkfs.xfs makes.
const XFS_AG_MAX_BYTES: u64 = 1 << 40;
/// The smallest AG xfs allows.
const XFS_AG_MIN_BYTES: u64 = 16 << 20;

/// The geometry an xfs superblock records.
struct XfsSb {
    block_size: u64,
    ag_blocks: u64,
    ag_count: u64,
}

impl XfsSb {
    fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < XFS_SECTOR as usize || &b[..4] != XFS_MAGIC {
            return None;
        }
        let block_size = be32(b, 4) as u64;
        let ag_blocks = be32(b, 84) as u64;
        let ag_count = be32(b, 88) as u64;
        let sect = be16(b, 102) as u64;
        let ok = block_size.is_power_of_two()
            && (512..=65536).contains(&block_size)
            && ag_blocks * block_size >= XFS_AG_MIN_BYTES
            && ag_count > 0
            && sect.is_power_of_two()
            && be64(b, 8) > 0;
        ok.then_some(Self { block_size, ag_blocks, ag_count })
    }

    /// Byte offsets of the secondary superblocks.
    fn secondaries(&self, dev_len: u64) -> impl Iterator<Item = u64> + '_ {
        let ag_bytes = self.ag_blocks * self.block_size;
        (1..self.ag_count)
            .map(move |a| a.saturating_mul(ag_bytes))
            .take_while(move |&o| o < dev_len)
    }
}

/// AG size in blocks that mkfs.xfs picks by default for a single device of
/// `dblocks` blocks of `block_size` bytes (`None`: a single AG).
pub fn xfs_default_ag_blocks(dblocks: u64, block_size: u64) -> Option<u64> {
    let bytes = dblocks * block_size;
    let ags = match bytes {
        b if b >= 4 << 40 => return Some(XFS_AG_MAX_BYTES / block_size),
        b if b >= 64 << 20 => 4,
        b if b >= 32 << 20 => 2,
        _ => return None,
    };
    Some(dblocks.div_ceil(ags))
}

fn xfs(dev: &File, len: u64, add: &mut dyn FnMut(Signature)) {
    let sig = |kind, offset| Signature { fs: "xfs", kind, offset, len: XFS_SECTOR };
    let mut geometry = None;
    if let Some(sb) = read(dev, 0, XFS_SECTOR as usize).and_then(|b| XfsSb::parse(&b)) {
        add(sig(Kind::Primary, 0));
        geometry = Some(sb);
    } else {
        // No primary: where mkfs.xfs's defaults put AG 1, for each block size.
        for log in 9..=16u32 {
            let bs = 1u64 << log;
            let Some(agb) = xfs_default_ag_blocks(len / bs, bs) else { continue };
            if let Some(sb) = read(dev, agb * bs, XFS_SECTOR as usize)
                .and_then(|b| XfsSb::parse(&b))
                .filter(|sb| sb.ag_blocks == agb && sb.block_size == bs)
            {
                geometry = Some(sb);
                break;
            }
        }
    }
    if let Some(sb) = geometry {
        for off in sb.secondaries(len) {
            if read(dev, off, 4).is_some_and(|m| m == XFS_MAGIC) {
                add(sig(Kind::Secondary, off));
            }
        }
    }
}

// ---- btrfs ----

const BTRFS_MAGIC: &[u8; 8] = b"_BHRfS_M";
const BTRFS_SB_SIZE: u64 = 4096;
/// Offsets of the btrfs superblock and its mirrors.
pub const BTRFS_SB_OFFSETS: [u64; 3] = [64 << 10, 64 << 20, 256 << 30];

fn btrfs(dev: &File, len: u64, add: &mut dyn FnMut(Signature)) {
    for (i, &off) in BTRFS_SB_OFFSETS.iter().enumerate() {
        if off + BTRFS_SB_SIZE > len {
            break;
        }
        if read(dev, off + 0x40, 8).is_some_and(|m| m == BTRFS_MAGIC) {
            let kind = if i == 0 { Kind::Primary } else { Kind::Mirror };
            add(Signature { fs: "btrfs", kind, offset: off, len: BTRFS_SB_SIZE });
        }
    }
}

// ---- swap ----

/// Magics in the last 10 bytes of a swap area's first page.
const SWAP_MAGICS: [(&[u8], &str); 6] = [
    (b"SWAPSPACE2", "swap"),
    (b"SWAP-SPACE", "swap"),
    (b"S1SUSPEND", "swsuspend"),
    (b"S2SUSPEND", "swsuspend"),
    (b"ULSUSPEND", "swsuspend"),
    (b"LINHIB0001", "swsuspend"),
];

fn swap(dev: &File, len: u64, add: &mut dyn FnMut(Signature)) {
    for log in 12..=16u32 {
        let off = (1u64 << log) - 10;
        if off + 10 > len {
            break;
        }
        let Some(b) = read(dev, off, 10) else { continue };
        if let Some(&(_, fs)) = SWAP_MAGICS.iter().find(|(m, _)| b.starts_with(m)) {
            add(Signature { fs, kind: Kind::Primary, offset: off, len: 10 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_groups_are_one_and_powers_of_3_5_7() {
        assert_eq!(sparse_groups(1), Vec::<u64>::new());
        assert_eq!(sparse_groups(50), vec![1, 3, 5, 7, 9, 25, 27, 49]);
    }

    #[test]
    fn ext_default_backups_include_what_e2fsck_tries() {
        let v = ext_default_backups(256 << 20);
        // Group 1 with 1 KiB blocks is block 8193; with 4 KiB, block 32768.
        assert!(v.contains(&(0, 8193 * 1024)));
        assert!(v.contains(&(2, 32768 * 4096)));
        assert!(v.contains(&(1, 16384 * 2048)));
        assert!(v.iter().all(|&(_, o)| o + 1024 <= 256 << 20));
        // Bounded on a huge device: sparse positions only past the limit
        // (on 1 PiB, every group only for 64 KiB blocks: 32768 groups).
        let big = ext_default_backups(1 << 50);
        assert!(big.len() as u64 <= EXT_EVERY_GROUP_MAX + 7 * 100, "{} positions", big.len());
    }

    #[test]
    fn xfs_default_geometry_matches_mkfs_xfs() {
        // mkfs.xfs 6.1 on 300 MiB: 4 AGs of 19200 4 KiB blocks.
        assert_eq!(xfs_default_ag_blocks(76800, 4096), Some(19200));
        assert_eq!(xfs_default_ag_blocks(76801, 4096), Some(19201));
        assert_eq!(xfs_default_ag_blocks(16 << 30 >> 12, 4096), Some(1 << 20));
        assert_eq!(xfs_default_ag_blocks(8 << 40 >> 12, 4096), Some(1 << 28));
        assert_eq!(xfs_default_ag_blocks(4096, 4096), None);
    }

    #[test]
    fn hostile_superblocks_do_not_panic() {
        let mut b = vec![0xffu8; 1024];
        b[0x38] = 0x53;
        b[0x39] = 0xef;
        assert!(ExtSb::parse(&b).is_none()); // log block size out of range
        b[0x18..0x1c].copy_from_slice(&2u32.to_le_bytes());
        let sb = ExtSb::parse(&b).unwrap();
        assert!(sb.backups(1 << 30).len() <= 2);
        let mut x = vec![0xffu8; 512];
        x[..4].copy_from_slice(b"XFSB");
        assert!(XfsSb::parse(&x).is_none());
    }
}
