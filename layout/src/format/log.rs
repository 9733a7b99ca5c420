//! Per-inode logs: 4 KiB log pages, their tails, and the log entries.
//!
//! A log page holds entries in bytes `[0, LOG_AREA)` and a 64-byte
//! [`PageTail`] at `LOG_AREA`. Entries never cross a page. The inode's
//! `log_tail` (a byte position) is the commit point: entries before it are
//! committed, bytes after it mean nothing. When an entry does not fit in
//! the tail page, a new page is prepared (tail written and flushed), then the
//! old page is sealed by one 8-byte store of its `next` word, which packs the
//! new page's block and the number of bytes used in the old page
//! ([`pack_next`]); the entry goes to offset 0 of the new page and
//! `log_tail` moves there. Bytes beyond `used` (for example an entry whose
//! transaction was rolled back) are never read.
//!
//! Every entry starts with an [`EntryHeader`]: type, flags, length (a
//! multiple of 8), CRC-32 of the whole entry with the checksum field zero,
//! and a sequence number that increases strictly along the log.

use super::inode::{dt, Timespec};
use super::sb::Geometry;
use super::{BLOCK_SIZE, BLOCK_SIZE_U64};

/// Bytes of a log page available to entries.
pub const LOG_AREA: usize = BLOCK_SIZE - PageTail::SIZE;
/// `"NVLP"`: page-tail magic.
pub const PAGE_MAGIC: u32 = u32::from_le_bytes(*b"NVLP");
/// The page-tail checksum covers tail bytes `[PAGE_CSUM_START, 64)`.
pub const PAGE_CSUM_START: usize = 16;
/// Byte offset of the `next` word within a log page.
pub const PAGE_NEXT_OFF: usize = LOG_AREA + 8;
/// Largest file offset in blocks (2^40 blocks = 4 PiB).
pub const MAX_FILE_BLOCKS: u64 = 1 << 40;
/// Largest file size in bytes.
pub const MAX_FILE_SIZE: u64 = MAX_FILE_BLOCKS * BLOCK_SIZE_U64;
/// Longest name in a directory.
pub const NAME_MAX: usize = 255;

ondisk! {
    /// The last 64 bytes of every log page.
    pub struct PageTail {
        pub magic: u32,
        /// CRC-32 of bytes 16..64 of the tail (not of `next`).
        pub csum: u32,
        /// 0 while this is the last page; else `pack_next(block, used)`.
        pub next: u64,
        /// Inode owning this page, and its generation.
        pub owner: u64,
        pub owner_gen: u32,
        pub _pad: u32,
        /// Position of the page in its log, from 0 at the head.
        pub ordinal: u64,
        pub _reserved: [u8; 24],
    }
}

const _: () = assert!(PageTail::SIZE == 64);

impl PageTail {
    /// A tail for page `ordinal` of inode `owner`/`gen`.
    pub fn new(owner: u64, gen: u32, ordinal: u64) -> Self {
        let mut t = Self::zeroed();
        t.magic = PAGE_MAGIC;
        t.owner = owner;
        t.owner_gen = gen;
        t.ordinal = ordinal;
        t.csum = t.compute_csum();
        t
    }

    /// The checksum this tail should carry.
    pub fn compute_csum(&self) -> u32 {
        let mut b = [0u8; Self::SIZE];
        self.encode(&mut b);
        super::crc::crc32(b.get(PAGE_CSUM_START..).unwrap_or(&[]))
    }

    /// Reads the tail of a 4 KiB log page.
    pub fn of_page(page: &[u8]) -> Option<Self> {
        page.get(LOG_AREA..).and_then(Self::decode)
    }
}

/// Packs a page's `next` word: the next page's block and bytes used here.
pub fn pack_next(next_block: u64, used: usize) -> u64 {
    (next_block << 12) | (used as u64 & 0xfff)
}

/// Unpacks a `next` word into (next block, bytes used).
pub fn unpack_next(word: u64) -> (u64, usize) {
    (word >> 12, (word & 0xfff) as usize)
}

/// The log page a tail position lies in.
pub fn pos_block(pos: u64) -> u64 {
    pos / BLOCK_SIZE_U64
}

/// The offset within its page of a tail position.
pub fn pos_offset(pos: u64) -> usize {
    (pos % BLOCK_SIZE_U64) as usize
}

/// `log_tail` bit marking a slot log (FORMAT.md "Slot logs"): the log's
/// entries are the first `tail & !SLOT_LOG` bytes of the inode record's
/// inline area; `log_head` means nothing. Positions of entries in a slot
/// log are reported in the same form (`SLOT_LOG | offset`), so an entry's
/// position plus its length is the tail that commits it.
pub const SLOT_LOG: u64 = 1 << 63;
/// Bytes of entries a slot log holds (the record's inline area).
pub const SLOT_LOG_BYTES: usize = super::inode::INLINE_MAX;

/// The used length of a slot log with tail `tail`, or `None` if `tail` is
/// not a slot tail (0, or a position in a log page). The length is not
/// checked against [`SLOT_LOG_BYTES`].
pub fn slot_len(tail: u64) -> Option<u64> {
    (tail & SLOT_LOG != 0).then_some(tail & !SLOT_LOG)
}

/// Whether `tail` commits a log in pages (non-zero, not a slot tail).
pub fn is_page_tail(tail: u64) -> bool {
    tail != 0 && tail & SLOT_LOG == 0
}

/// Whether an entry of `len` bytes fits in the page at tail position `tail`.
/// If not, it goes at offset 0 of a new page.
pub fn fits(tail: u64, len: usize) -> bool {
    pos_offset(tail).checked_add(len).is_some_and(|e| e <= LOG_AREA)
}

/// Entry types.
pub mod et {
    /// File data: blocks mapped at a file offset ([`super::WriteEntry`]).
    pub const WRITE: u8 = 1;
    /// A range of the file unmapped ([`super::PunchEntry`]).
    pub const PUNCH: u8 = 2;
    /// Attribute change ([`super::SetAttrEntry`]).
    pub const SETATTR: u8 = 3;
    /// Link-count change ([`super::LinkEntry`]).
    pub const LINK: u8 = 4;
    /// Directory entry added or removed ([`super::DentryEntry`]).
    pub const DENTRY: u8 = 5;
    /// A directory's parent changed (rename) ([`super::ParentEntry`]).
    pub const PARENT: u8 = 6;
    /// See [`super::XattrEntry`].
    pub const XATTR: u8 = 7;
    /// See [`super::FlagsEntry`].
    pub const FLAGS: u8 = 8;
}

/// `WRITE` flag: blocks allocated by an mmap write fault.
pub const WF_FAULT: u8 = 1;
/// `WRITE` flag: blocks preallocated by fallocate. Alone (images before
/// [`WF_UNWRITTEN`]): the blocks were zeroed and are ordinary data.
pub const WF_FALLOC: u8 = 2;
/// `WRITE` flag: the blocks are *unwritten*: allocated to the file but
/// never written, so they read as zeros whatever they hold. A later `WRITE`
/// of the same blocks without the flag converts them (the data is stored
/// in place before that entry commits).
pub const WF_UNWRITTEN: u8 = 4;
/// Every `WRITE` flag; other bits are invalid.
pub const WF_ALL: u8 = WF_FAULT | WF_FALLOC | WF_UNWRITTEN;
/// `DENTRY` flag: the name is added.
pub const DE_ADD: u8 = 1;
/// `DENTRY` flag: the name is removed.
pub const DE_DEL: u8 = 2;
/// `XATTR` flag: the attribute is set (created or replaced).
pub const XA_SET: u8 = 1;
/// `XATTR` flag: the attribute is removed.
pub const XA_REMOVE: u8 = 2;

/// Extended-attribute namespaces (`XattrEntry::index`); the name stored is
/// the part after the prefix. The two ACLs have no name.
pub mod xa {
    /// `user.`
    pub const USER: u8 = 1;
    /// `trusted.`
    pub const TRUSTED: u8 = 2;
    /// `security.`
    pub const SECURITY: u8 = 3;
    /// `system.posix_acl_access`
    pub const ACL_ACCESS: u8 = 4;
    /// `system.posix_acl_default`
    pub const ACL_DEFAULT: u8 = 5;
}

/// Inode flags (`FlagsEntry::flags`, the inode record's `flags`): the
/// values of Linux's `FS_*_FL` (chattr), which the module asserts.
pub mod fl {
    /// `S`: writes are synchronous.
    pub const SYNC: u32 = 0x8;
    /// `i`: no change at all.
    pub const IMMUTABLE: u32 = 0x10;
    /// `a`: data may only be appended.
    pub const APPEND: u32 = 0x20;
    /// `d`: not for dump(8).
    pub const NODUMP: u32 = 0x40;
    /// `A`: no atime updates.
    pub const NOATIME: u32 = 0x80;
    /// `D`: directory changes are synchronous.
    pub const DIRSYNC: u32 = 0x1_0000;
    /// `P`: new entries inherit the project id.
    pub const PROJINHERIT: u32 = 0x2000_0000;
    /// Every flag novars keeps.
    pub const ALL: u32 = SYNC | IMMUTABLE | APPEND | NODUMP | NOATIME | DIRSYNC | PROJINHERIT;
}

/// Longest attribute name after its prefix (as ext4: 255).
pub const XATTR_NAME_MAX: usize = 255;
/// Largest attribute value (as ext4 with `ea_inode`, xfs: 64 KiB).
pub const XATTR_VALUE_MAX: usize = 65536;
/// Largest value kept inside its entry; larger ones live in whole blocks.
pub const XATTR_INLINE_MAX: usize = 512;

/// `SETATTR` valid bits.
pub mod sa {
    /// Permission bits.
    pub const MODE: u32 = 1;
    /// Owner.
    pub const UID: u32 = 2;
    /// Group.
    pub const GID: u32 = 4;
    /// Size (truncate up or down).
    pub const SIZE: u32 = 8;
    /// Access time.
    pub const ATIME: u32 = 16;
    /// Modification time.
    pub const MTIME: u32 = 32;
    /// Change time.
    pub const CTIME: u32 = 64;
    /// Every known bit.
    pub const ALL: u32 = 127;
}

ondisk! {
    /// The first 16 bytes of every entry.
    pub struct EntryHeader {
        /// One of [`et`]; 0 never appears in a committed range.
        pub etype: u8,
        pub flags: u8,
        /// Total entry length in bytes, a multiple of 8.
        pub len: u16,
        /// CRC-32 of the entry's `len` bytes with this field zero.
        pub csum: u32,
        /// Strictly increasing along an inode's log.
        pub seq: u64,
    }
}

/// Byte offset of the checksum within an entry.
pub const ENTRY_CSUM_OFF: usize = 4;

impl EntryHeader {
    /// A header for an entry of type `etype` and `len` bytes (csum unset).
    /// Entries are built by `append::NewEntry` only.
    pub(super) fn new(etype: u8, flags: u8, seq: u64, len: usize) -> Self {
        Self { etype, flags, len: len as u16, csum: 0, seq }
    }
}

ondisk! {
    /// `WRITE`: file blocks `[pgoff, pgoff+count)` now live in blocks
    /// `[block, block+count)`; the file size becomes `size_after`.
    pub struct WriteEntry {
        pub hdr: EntryHeader,
        pub pgoff: u64,
        pub block: u64,
        pub count: u32,
        pub _pad: u32,
        pub size_after: u64,
        pub mtime: Timespec,
    }
}

ondisk! {
    /// `PUNCH`: file blocks `[pgoff, pgoff+count)` are unmapped (read as 0).
    pub struct PunchEntry {
        pub hdr: EntryHeader,
        pub pgoff: u64,
        pub count: u64,
        pub mtime: Timespec,
    }
}

ondisk! {
    /// `SETATTR`: the fields whose bit is set in `valid` take these values.
    /// A size change drops every block at or past the new end.
    pub struct SetAttrEntry {
        pub hdr: EntryHeader,
        pub valid: u32,
        /// Permission bits only (the file type never changes).
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub atime: Timespec,
        pub mtime: Timespec,
        pub ctime: Timespec,
    }
}

ondisk! {
    /// `LINK`: the link count becomes `nlink`.
    pub struct LinkEntry {
        pub hdr: EntryHeader,
        pub nlink: u32,
        pub _pad: u32,
        pub ctime: Timespec,
    }
}

ondisk! {
    /// `DENTRY` (fixed part): flag `DE_ADD` or `DE_DEL` of `name` -> `ino`.
    /// The name (`name_len` bytes) follows, zero-padded to 8 bytes.
    pub struct DentryEntry {
        pub hdr: EntryHeader,
        pub ino: u64,
        /// The directory's new mtime and ctime.
        pub mtime: Timespec,
        pub name_len: u8,
        /// `DT_*` type of the target.
        pub ftype: u8,
        pub _pad: [u8; 6],
    }
}

ondisk! {
    /// `PARENT`: a directory's `..` now names `parent`.
    pub struct ParentEntry {
        pub hdr: EntryHeader,
        pub parent: u64,
        pub ctime: Timespec,
    }
}

ondisk! {
    /// `XATTR` (fixed part): flag `XA_SET` or `XA_REMOVE` of attribute
    /// `name` in namespace `index` ([`xa`]). The name (`name_len` bytes)
    /// follows, then, for a set with `value_block` 0, the value
    /// (`value_len` bytes); zero-padded to 8 bytes. A set with a
    /// `value_block` keeps the value in blocks `[value_block, value_block +
    /// ceil(value_len / 4096))`, written before the entry commits and never
    /// changed after.
    pub struct XattrEntry {
        pub hdr: EntryHeader,
        pub index: u8,
        pub name_len: u8,
        pub _pad: u16,
        pub value_len: u32,
        pub value_block: u64,
        /// The inode's new ctime.
        pub ctime: Timespec,
    }
}

ondisk! {
    /// `FLAGS`: the inode flags ([`fl`]) and project id become these.
    pub struct FlagsEntry {
        pub hdr: EntryHeader,
        pub flags: u32,
        pub projid: u32,
        pub ctime: Timespec,
    }
}

const _: () = assert!(WriteEntry::SIZE == 64);
const _: () = assert!(PunchEntry::SIZE == 48);
const _: () = assert!(SetAttrEntry::SIZE == 88);
const _: () = assert!(LinkEntry::SIZE == 40);
const _: () = assert!(DentryEntry::SIZE == 48);
const _: () = assert!(ParentEntry::SIZE == 40);
const _: () = assert!(XattrEntry::SIZE == 48);
const _: () = assert!(FlagsEntry::SIZE == 40);

/// Length of a `DENTRY` entry with a name of `name_len` bytes.
pub const fn dentry_len(name_len: usize) -> usize {
    (DentryEntry::SIZE + name_len + 7) & !7
}

/// Length of an `XATTR` entry with a name of `name_len` bytes and an
/// inline value of `inline_len` bytes.
pub const fn xattr_len(name_len: usize, inline_len: usize) -> usize {
    (XattrEntry::SIZE + name_len + inline_len + 7) & !7
}

/// Blocks holding an out-of-entry value of `value_len` bytes.
pub const fn xattr_value_blocks(value_len: u32) -> u64 {
    (value_len as u64).div_ceil(BLOCK_SIZE_U64)
}

/// Longest entry there is.
pub const MAX_ENTRY: usize = {
    let (d, x) = (dentry_len(NAME_MAX), xattr_len(XATTR_NAME_MAX, XATTR_INLINE_MAX));
    if d > x {
        d
    } else {
        x
    }
};

/// A decoded, checksum-verified entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// See [`WriteEntry`].
    Write(WriteEntry),
    /// See [`PunchEntry`].
    Punch(PunchEntry),
    /// See [`SetAttrEntry`].
    SetAttr(SetAttrEntry),
    /// See [`LinkEntry`].
    Link(LinkEntry),
    /// See [`DentryEntry`]; the name.
    Dentry(DentryEntry, &'a [u8]),
    /// See [`ParentEntry`].
    Parent(ParentEntry),
    /// See [`XattrEntry`]; the name and the inline value (empty if the
    /// value is in blocks or the attribute is removed).
    Xattr(XattrEntry, &'a [u8], &'a [u8]),
    /// See [`FlagsEntry`].
    Flags(FlagsEntry),
}

/// Why the bytes at a position are not a valid entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// Fewer bytes than a header, or `len` runs past the committed range.
    Truncated,
    /// `len` is not a valid length for the type.
    BadLength,
    /// Unknown entry type.
    UnknownType(u8),
    /// Checksum mismatch.
    BadChecksum,
    /// A field is impossible; names it.
    BadField(&'static str),
}

impl<'a> Entry<'a> {
    /// The header.
    pub fn hdr(&self) -> &EntryHeader {
        match self {
            Entry::Write(e) => &e.hdr,
            Entry::Punch(e) => &e.hdr,
            Entry::SetAttr(e) => &e.hdr,
            Entry::Link(e) => &e.hdr,
            Entry::Dentry(e, _) => &e.hdr,
            Entry::Parent(e) => &e.hdr,
            Entry::Xattr(e, _, _) => &e.hdr,
            Entry::Flags(e) => &e.hdr,
        }
    }

    /// Decodes and verifies the entry at the start of `b` (`b` ends where
    /// the committed range ends). Returns the entry and its length.
    pub fn parse(b: &'a [u8]) -> Result<(Entry<'a>, usize), EntryError> {
        let hdr = EntryHeader::decode(b).ok_or(EntryError::Truncated)?;
        let len = hdr.len as usize;
        if len < EntryHeader::SIZE || !len.is_multiple_of(8) {
            return Err(EntryError::BadLength);
        }
        let body = b.get(..len).ok_or(EntryError::Truncated)?;
        let fixed = match hdr.etype {
            et::WRITE => WriteEntry::SIZE,
            et::PUNCH => PunchEntry::SIZE,
            et::SETATTR => SetAttrEntry::SIZE,
            et::LINK => LinkEntry::SIZE,
            et::DENTRY => DentryEntry::SIZE,
            et::PARENT => ParentEntry::SIZE,
            et::XATTR => XattrEntry::SIZE,
            et::FLAGS => FlagsEntry::SIZE,
            t => return Err(EntryError::UnknownType(t)),
        };
        let sized = hdr.etype == et::DENTRY || hdr.etype == et::XATTR;
        if (!sized && len != fixed) || len < fixed {
            return Err(EntryError::BadLength);
        }
        if super::crc::crc32_skip(body, ENTRY_CSUM_OFF) != hdr.csum {
            return Err(EntryError::BadChecksum);
        }
        let e = match hdr.etype {
            et::WRITE => Entry::Write(WriteEntry::decode(body).ok_or(EntryError::Truncated)?),
            et::PUNCH => Entry::Punch(PunchEntry::decode(body).ok_or(EntryError::Truncated)?),
            et::SETATTR => Entry::SetAttr(SetAttrEntry::decode(body).ok_or(EntryError::Truncated)?),
            et::LINK => Entry::Link(LinkEntry::decode(body).ok_or(EntryError::Truncated)?),
            et::PARENT => Entry::Parent(ParentEntry::decode(body).ok_or(EntryError::Truncated)?),
            et::FLAGS => Entry::Flags(FlagsEntry::decode(body).ok_or(EntryError::Truncated)?),
            et::XATTR => {
                let x = XattrEntry::decode(body).ok_or(EntryError::Truncated)?;
                let nl = x.name_len as usize;
                let vl = if x.value_block == 0 && x.hdr.flags == XA_SET {
                    usize::try_from(x.value_len).map_err(|_| EntryError::BadLength)?
                } else {
                    0
                };
                if vl > XATTR_INLINE_MAX || len != xattr_len(nl, vl) {
                    return Err(EntryError::BadLength);
                }
                let name = body
                    .get(XattrEntry::SIZE..XattrEntry::SIZE + nl)
                    .ok_or(EntryError::Truncated)?;
                let value = body
                    .get(XattrEntry::SIZE + nl..XattrEntry::SIZE + nl + vl)
                    .ok_or(EntryError::Truncated)?;
                Entry::Xattr(x, name, value)
            }
            _ => {
                let d = DentryEntry::decode(body).ok_or(EntryError::Truncated)?;
                let nl = d.name_len as usize;
                if len != dentry_len(nl) {
                    return Err(EntryError::BadLength);
                }
                let name = body
                    .get(DentryEntry::SIZE..DentryEntry::SIZE + nl)
                    .ok_or(EntryError::Truncated)?;
                Entry::Dentry(d, name)
            }
        };
        Ok((e, len))
    }

    /// Checks the entry's fields against the geometry: blocks on the data
    /// area, offsets and sizes in range, names legal, times valid.
    pub fn check(&self, geo: &Geometry) -> Result<(), EntryError> {
        let bad = EntryError::BadField;
        match self {
            Entry::Write(w) => {
                if w.count == 0 || !geo.is_data_range(w.block, w.count as u64) {
                    return Err(bad("write: blocks outside the data area"));
                }
                if w.pgoff.checked_add(w.count as u64).is_none_or(|e| e > MAX_FILE_BLOCKS) {
                    return Err(bad("write: file offset out of range"));
                }
                if w.size_after > MAX_FILE_SIZE {
                    return Err(bad("write: size out of range"));
                }
                if !w.mtime.is_valid() {
                    return Err(bad("write: bad mtime"));
                }
                if w.hdr.flags & !WF_ALL != 0 {
                    return Err(bad("write: unknown flags"));
                }
                if w.hdr.flags & WF_FAULT != 0 && w.hdr.flags & WF_UNWRITTEN != 0 {
                    return Err(bad("write: a fault's blocks cannot be unwritten"));
                }
            }
            Entry::Punch(p) => {
                if p.count == 0 || p.pgoff.checked_add(p.count).is_none_or(|e| e > MAX_FILE_BLOCKS)
                {
                    return Err(bad("punch: range out of range"));
                }
                if !p.mtime.is_valid() {
                    return Err(bad("punch: bad mtime"));
                }
            }
            Entry::SetAttr(s) => {
                if s.valid & !sa::ALL != 0 || s.valid == 0 {
                    return Err(bad("setattr: unknown valid bits"));
                }
                if s.mode & !0o7777 != 0 {
                    return Err(bad("setattr: mode has file-type bits"));
                }
                if s.size > MAX_FILE_SIZE {
                    return Err(bad("setattr: size out of range"));
                }
                if !(s.atime.is_valid() && s.mtime.is_valid() && s.ctime.is_valid()) {
                    return Err(bad("setattr: bad time"));
                }
            }
            Entry::Link(l) => {
                if !l.ctime.is_valid() {
                    return Err(bad("link: bad ctime"));
                }
            }
            Entry::Dentry(d, name) => {
                if d.hdr.flags != DE_ADD && d.hdr.flags != DE_DEL {
                    return Err(bad("dentry: neither add nor remove"));
                }
                if d.ino == 0 {
                    return Err(bad("dentry: inode 0"));
                }
                if !name_is_valid(name) {
                    return Err(bad("dentry: illegal name"));
                }
                if !matches!(
                    d.ftype,
                    dt::REG | dt::DIR | dt::LNK | dt::CHR | dt::BLK | dt::FIFO | dt::SOCK
                ) {
                    return Err(bad("dentry: unknown file type"));
                }
                if !d.mtime.is_valid() {
                    return Err(bad("dentry: bad mtime"));
                }
            }
            Entry::Parent(p) => {
                if p.parent == 0 || !p.ctime.is_valid() {
                    return Err(bad("parent: inode 0 or bad ctime"));
                }
            }
            Entry::Flags(f) => {
                if f.flags & !fl::ALL != 0 || !f.ctime.is_valid() {
                    return Err(bad("flags: unknown flags or bad ctime"));
                }
            }
            Entry::Xattr(x, name, _) => {
                if !xattr_name_is_valid(x.index, name) {
                    return Err(bad("xattr: unknown namespace or illegal name"));
                }
                if !x.ctime.is_valid() {
                    return Err(bad("xattr: bad ctime"));
                }
                match x.hdr.flags {
                    XA_REMOVE if x.value_len == 0 && x.value_block == 0 => {}
                    XA_SET if x.value_len as usize > XATTR_VALUE_MAX => {
                        return Err(bad("xattr: value too large"))
                    }
                    XA_SET if x.value_block == 0 => {}
                    XA_SET if (x.value_len as usize) <= XATTR_INLINE_MAX => {
                        return Err(bad("xattr: a small value outside its entry"))
                    }
                    XA_SET => {
                        if !geo.is_data_range(x.value_block, xattr_value_blocks(x.value_len)) {
                            return Err(bad("xattr: value blocks outside the data area"));
                        }
                    }
                    _ => return Err(bad("xattr: neither set nor remove")),
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` is a legal directory-entry name: 1..=255 bytes, no `/`
/// or NUL, not `.` or `..`.
pub fn name_is_valid(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.iter().any(|&c| c == b'/' || c == 0)
}

/// Whether `name` is a legal attribute name in namespace `index`: the ACLs
/// have none; the others 1..=255 bytes without NUL.
pub fn xattr_name_is_valid(index: u8, name: &[u8]) -> bool {
    match index {
        xa::USER | xa::TRUSTED | xa::SECURITY => {
            !name.is_empty() && name.len() <= XATTR_NAME_MAX && !name.contains(&0)
        }
        xa::ACL_ACCESS | xa::ACL_DEFAULT => name.is_empty(),
        _ => false,
    }
}

/// Sets the checksum of the entry occupying all of `buf`.
pub fn seal_entry(buf: &mut [u8]) {
    let c = super::crc::crc32_skip(buf, ENTRY_CSUM_OFF);
    if let Some(f) = buf.get_mut(ENTRY_CSUM_OFF..ENTRY_CSUM_OFF + 4) {
        f.copy_from_slice(&c.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_word_packs() {
        let w = pack_next(0x000f_ffff_ffff_ffff, LOG_AREA);
        assert_eq!(unpack_next(w), (0x000f_ffff_ffff_ffff, LOG_AREA));
        assert!(fits(4096 * 7 + LOG_AREA as u64 - 64, 64));
        assert!(!fits(4096 * 7 + LOG_AREA as u64 - 56, 64));
    }

    #[test]
    fn entries_roundtrip_and_reject_flips() {
        use super::super::append::NewEntry;
        let mut buf = [0u8; 512];
        let w = NewEntry::Write {
            flags: 0,
            pgoff: 3,
            block: 100,
            count: 2,
            size_after: 12000,
            mtime: Timespec::new(5, 6),
        };
        let n = w.encode(9, &mut buf).unwrap();
        let (e, len) = Entry::parse(&buf[..n]).unwrap();
        assert_eq!(len, 64);
        match e {
            Entry::Write(b) => {
                assert_eq!((b.pgoff, b.block, b.count, b.size_after), (3, 100, 2, 12000));
                assert_eq!(b.hdr.seq, 9);
            }
            _ => panic!("wrong type"),
        }
        for i in 0..n * 8 {
            let mut c = buf;
            c[i / 8] ^= 1 << (i % 8);
            assert!(Entry::parse(&c[..n]).is_err(), "flip {i}");
        }
        let d = |name: &'static [u8]| NewEntry::Dentry {
            op: DE_ADD,
            ino: 42,
            ftype: dt::REG,
            mtime: Timespec::new(1, 2),
            name,
        };
        let n = d(b"hello").encode(10, &mut buf).unwrap();
        assert_eq!(n, 56);
        let (e, _) = Entry::parse(&buf[..n]).unwrap();
        assert_eq!(e, Entry::Dentry(DentryEntry::decode(&buf).unwrap(), b"hello"));
        assert!(Entry::parse(&buf[..n - 8]).is_err());
        assert!(d(b"a/b").encode(1, &mut buf).is_none());
        assert_eq!(dentry_len(255), 304);
    }

    #[test]
    fn write_flags_checked_and_unwritten_replayed() {
        use super::super::append::NewEntry;
        use super::super::walk::{FileMap, Ignore, LogVisitor, Replay};
        use super::super::Inode;
        let geo = Geometry::plan(4096, 1, 64).unwrap();
        let block = geo.first_data_block + 10;
        let mut buf = [0u8; 64];
        let mut entry = |flags: u8, seq: u64, pgoff: u64, count: u32| {
            let w = NewEntry::Write {
                flags,
                pgoff,
                block: block + pgoff,
                count,
                size_after: 8 * 4096,
                mtime: Timespec::new(5, 6),
            };
            let n = w.encode(seq, &mut buf).unwrap();
            let (e, _) = Entry::parse(&buf[..n]).unwrap();
            let Entry::Write(w) = e else { panic!("not a write") };
            (e.check(&geo), Entry::Write(w))
        };
        for ok in [0, WF_FAULT, WF_FALLOC, WF_UNWRITTEN, WF_FALLOC | WF_UNWRITTEN] {
            assert_eq!(entry(ok, 1, 0, 1).0, Ok(()), "flags {ok}");
        }
        for bad in [8, 0x80, WF_FAULT | WF_UNWRITTEN] {
            assert!(entry(bad, 1, 0, 1).0.is_err(), "flags {bad}");
        }
        // Replay: unwritten extents go to `map_unwritten`, written ones
        // (old FALLOC entries included) to `map`.
        #[derive(Default)]
        struct Calls(Vec<(bool, u64, u64, u64)>);
        impl FileMap for Calls {
            fn map(&mut self, p: u64, b: u64, c: u64) {
                self.0.push((false, p, b, c));
            }
            fn map_unwritten(&mut self, p: u64, b: u64, c: u64) {
                self.0.push((true, p, b, c));
            }
            fn unmap(&mut self, _: u64, _: u64) {}
        }
        let mut calls = Calls::default();
        let inode = Inode::zeroed();
        let mut dir = Ignore;
        let mut r = Replay::new(&inode, &mut calls, &mut dir);
        for (flags, seq, pgoff, count) in
            [(WF_FALLOC | WF_UNWRITTEN, 1, 0, 8), (0, 2, 2, 1), (WF_FALLOC, 3, 4, 1)]
        {
            let (ok, e) = entry(flags, seq, pgoff, count);
            assert_eq!(ok, Ok(()));
            r.entry(0, &e);
        }
        assert_eq!(r.view.size, 8 * 4096);
        assert_eq!(
            calls.0,
            [(true, 0, block, 8), (false, 2, block + 2, 1), (false, 4, block + 4, 1)]
        );
    }

    #[test]
    fn xattr_entries_roundtrip_and_check() {
        use super::super::append::{NewEntry, XattrValue};
        let geo = Geometry::plan(4096, 1, 64).unwrap();
        let mut buf = [0u8; MAX_ENTRY];
        assert_eq!(MAX_ENTRY, 816);
        let t = Timespec::new(7, 8);
        let x = |index, name, value| NewEntry::Xattr { index, name, value, ctime: t };
        let inline = [0xabu8; XATTR_INLINE_MAX];
        let n = x(xa::USER, &b"comment"[..], XattrValue::Inline(&inline)).encode(3, &mut buf);
        let n = n.unwrap();
        assert_eq!(n, MAX_ENTRY - 248);
        let (e, len) = Entry::parse(&buf[..n]).unwrap();
        assert_eq!(len, n);
        let Entry::Xattr(h, name, value) = e else { panic!("wrong type") };
        assert_eq!(
            (h.index, h.hdr.flags, name, value),
            (xa::USER, XA_SET, &b"comment"[..], &inline[..])
        );
        e.check(&geo).unwrap();
        for i in (0..n * 8).step_by(7) {
            let mut c = buf;
            c[i / 8] ^= 1 << (i % 8);
            assert!(Entry::parse(&c[..n]).is_err(), "flip {i}");
        }
        let big = XattrValue::Blocks { block: geo.first_data_block + 1, len: 65536 };
        let n = x(xa::TRUSTED, &b"overlay.opaque"[..], big).encode(4, &mut buf).unwrap();
        let (e, _) = Entry::parse(&buf[..n]).unwrap();
        e.check(&geo).unwrap();
        let outside = XattrValue::Blocks { block: geo.blocks_count - 8, len: 65536 };
        let n = x(xa::TRUSTED, &b"a"[..], outside).encode(5, &mut buf).unwrap();
        assert!(Entry::parse(&buf[..n]).unwrap().0.check(&geo).is_err());
        let n = x(xa::ACL_ACCESS, &b""[..], XattrValue::Removed).encode(6, &mut buf).unwrap();
        let (e, _) = Entry::parse(&buf[..n]).unwrap();
        e.check(&geo).unwrap();
        // What no constructor makes: an empty or NUL name, a name on an
        // ACL, an unknown namespace, a too large inline value, a small or
        // too large value in blocks.
        assert!(x(xa::USER, &b""[..], XattrValue::Removed).encode(1, &mut buf).is_none());
        assert!(x(xa::USER, &b"a\0"[..], XattrValue::Removed).encode(1, &mut buf).is_none());
        assert!(x(xa::ACL_DEFAULT, &b"a"[..], XattrValue::Removed).encode(1, &mut buf).is_none());
        assert!(x(9, &b"a"[..], XattrValue::Removed).encode(1, &mut buf).is_none());
        let over = [0u8; XATTR_INLINE_MAX + 1];
        assert!(x(xa::USER, &b"a"[..], XattrValue::Inline(&over)).encode(1, &mut buf).is_none());
        let small = XattrValue::Blocks { block: geo.first_data_block, len: 100 };
        assert!(x(xa::USER, &b"a"[..], small).encode(1, &mut buf).is_none());
        let huge = XattrValue::Blocks { block: geo.first_data_block, len: 65537 };
        assert!(x(xa::USER, &b"a"[..], huge).encode(1, &mut buf).is_none());
    }
}
