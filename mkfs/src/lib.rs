//! Building novars images in user space.
//!
//! [`Builder`] formats a byte slice (an mmap'd image file or block device)
//! and then adds directories, files, symlinks, device nodes and hard links,
//! writing inode tables and per-inode logs exactly as the kernel module
//! would leave them after a clean unmount. `mkfs.novars` is a thin CLI on
//! top; fsck's corruption suite uses it to make images to damage.
//!
//! mkfs runs offline, so it keeps every inode in memory and writes the
//! inode records, the allocator record and the superblock at
//! [`Builder::finish`]; the primary superblock is written last, so an
//! interrupted mkfs leaves no mountable image.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub mod populate;
pub mod wipe;

use layout::alloc_rec::{self, ALLOC_PER_BLOCK, KIND_BLOCKS, KIND_INODES};
use layout::append::{self, AppendError, LogEnd, LogMedium, LogOwner, NewEntry, XattrValue};
use layout::inode::{
    dt, dt_of_mode, Inode, SegmentHeader, Timespec, INLINE_MAX, INODE_LIVE, S_IFDIR, S_IFLNK,
    S_IFMT, S_IFREG,
};
use layout::log::{
    fl, xa, xattr_name_is_valid, xattr_value_blocks, DE_ADD, MAX_FILE_SIZE, XATTR_INLINE_MAX,
    XATTR_VALUE_MAX,
};
use layout::sb::{Geometry, Superblock, INODES_PER_BLOCK, STATE_CLEAN};
use layout::{journal, BLOCK_SIZE, BLOCK_SIZE_U64};

/// Blocks in a 2 MiB extent: large files get aligned extents of this size
/// so the kernel can map them with PMD faults.
pub const HUGE_BLOCKS: u64 = 512;

/// Why building an image failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The geometry is impossible (message from `layout`).
    Geometry(String),
    /// Out of data blocks.
    NoSpace,
    /// Out of inode numbers.
    NoInodes,
    /// A name is illegal (empty, too long, `/`, NUL, `.` or `..`).
    BadName(Vec<u8>),
    /// The name exists already in that directory.
    Exists(Vec<u8>),
    /// The inode is not a directory / not a regular file / unknown.
    BadInode(u64),
    /// A caller error (offset not block-aligned, size too large, ...).
    Invalid(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Geometry(s) => write!(f, "impossible geometry: {s}"),
            Error::NoSpace => write!(f, "no space left in the file system"),
            Error::NoInodes => write!(f, "no inode numbers left"),
            Error::BadName(n) => write!(f, "illegal name {:?}", String::from_utf8_lossy(n)),
            Error::Exists(n) => write!(f, "name exists: {:?}", String::from_utf8_lossy(n)),
            Error::BadInode(i) => write!(f, "inode {i} is not of the right kind"),
            Error::Invalid(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How to lay out the file system.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lanes (per-CPU journals and inode tables), 1..=64.
    pub lanes: u32,
    /// Inodes per inode-table segment (multiple of 16).
    pub seg_inodes: u32,
    /// Volume label (at most 63 bytes).
    pub label: String,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Time stamped on the root, lost+found and the superblock.
    pub now: Timespec,
    /// Small logs in their inode records (the `slot_log` feature, FORMAT.md
    /// "Slot logs"; on by default, `-O ^slot_log` for modules without it).
    pub slot_logs: bool,
}

impl Options {
    /// Defaults for a file system of `blocks` blocks: `lanes` lanes and an
    /// initial inode table of about one inode per 16 KiB, like mke2fs.
    pub fn defaults(blocks: u64, lanes: u32) -> Self {
        let lanes = lanes.clamp(1, layout::sb::MAX_LANES);
        let total = blocks.saturating_mul(BLOCK_SIZE_U64) / 16384;
        let per_lane = (total / lanes as u64).clamp(64, 1 << 16) as u32;
        let seg_inodes = per_lane.div_ceil(INODES_PER_BLOCK) * INODES_PER_BLOCK;
        Self {
            lanes,
            seg_inodes,
            label: String::new(),
            uuid: [0; 16],
            now: Timespec::new(0, 0),
            slot_logs: true,
        }
    }
}

/// Attributes of a new inode.
#[derive(Debug, Clone, Copy)]
pub struct Attrs {
    /// Full mode, file type included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl Attrs {
    /// Attributes with every time set to `t`.
    pub fn new(mode: u32, uid: u32, gid: u32, t: Timespec) -> Self {
        Self { mode, uid, gid, atime: t, mtime: t, ctime: t }
    }
}

/// A simple extent allocator: a bump pointer plus the gaps left behind by
/// alignment. mkfs never frees.
#[derive(Debug, Clone)]
struct BlockAlloc {
    next: u64,
    end: u64,
    gaps: Vec<(u64, u64)>,
}

impl BlockAlloc {
    fn alloc(&mut self, count: u64, align: u64) -> Result<u64> {
        if align <= 1 {
            if let Some(i) = self.gaps.iter().position(|&(_, l)| l >= count) {
                let (s, l) = self.gaps[i];
                if l == count {
                    self.gaps.remove(i);
                } else {
                    self.gaps[i] = (s + count, l - count);
                }
                return Ok(s);
            }
        }
        let start = self.next.next_multiple_of(align.max(1));
        let end = start.checked_add(count).ok_or(Error::NoSpace)?;
        if end > self.end {
            return Err(Error::NoSpace);
        }
        if start > self.next {
            self.gaps.push((self.next, start - self.next));
        }
        self.next = end;
        Ok(start)
    }

    fn free_extents(&self) -> Vec<(u64, u64)> {
        let mut v = self.gaps.clone();
        if self.end > self.next {
            v.push((self.next, self.end - self.next));
        }
        v.sort_unstable();
        v
    }

    fn free_blocks(&self) -> u64 {
        self.free_extents().iter().map(|e| e.1).sum()
    }
}

/// The image and its allocator as the medium of `layout::append`: an
/// offline image needs no flush or fence.
struct ImgLog<'b> {
    img: &'b mut [u8],
    alloc: &'b mut BlockAlloc,
}

impl ImgLog<'_> {
    fn bytes(&mut self, pos: u64, len: usize) -> Result<&mut [u8]> {
        let s = usize::try_from(pos).map_err(|_| Error::Invalid("log position"))?;
        self.img.get_mut(s..s + len).ok_or(Error::Invalid("log write past the image"))
    }
}

impl LogMedium for ImgLog<'_> {
    type Error = Error;

    fn error(e: AppendError) -> Error {
        match e {
            AppendError::BadEntry => Error::Invalid("log entry does not encode"),
            AppendError::BadPlace => Error::Invalid("inode-table segment outside the data area"),
            AppendError::Sequence | AppendError::Overflow => Error::Invalid("log too long"),
        }
    }

    fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result<()> {
        buf.copy_from_slice(self.bytes(pos, buf.len())?);
        Ok(())
    }

    fn alloc_page(&mut self) -> Result<u64> {
        let page = self.alloc.alloc(1, 1)?;
        self.bytes(page * BLOCK_SIZE_U64, BLOCK_SIZE)?.fill(0);
        Ok(page)
    }

    fn write_nt(&mut self, pos: u64, b: &[u8]) -> Result<()> {
        self.bytes(pos, b.len())?.copy_from_slice(b);
        Ok(())
    }

    fn store_u64(&mut self, pos: u64, v: u64) -> Result<()> {
        self.write_nt(pos, &v.to_le_bytes())
    }

    fn flush(&mut self, _pos: u64, _len: u64) -> Result<()> {
        Ok(())
    }

    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Node {
    inode: Inode,
    log: LogEnd,
    /// Names in this directory (directories only), to refuse duplicates.
    names: Option<BTreeMap<Vec<u8>, u64>>,
    /// Extended attributes set, to refuse a second set of one (its first
    /// value's blocks would be lost to the allocator record).
    xattrs: BTreeSet<(u8, Vec<u8>)>,
}

/// What [`Builder::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub geometry: Geometry,
    pub inodes_used: u64,
    pub inodes_total: u64,
    pub blocks_free: u64,
}

/// One allocator-record block's worth: (kind, lane, ranges).
type RecordChunk = (u16, u16, Vec<(u64, u64)>);

/// Formats an image and fills it.
pub struct Builder<'a> {
    img: &'a mut [u8],
    geo: Geometry,
    opts: Options,
    alloc: BlockAlloc,
    /// Per lane: first block of each inode-table segment.
    segments: Vec<Vec<u64>>,
    next_ino: u64,
    nodes: BTreeMap<u64, Node>,
}

impl<'a> Builder<'a> {
    /// Formats `img` (its length is the file-system size, a multiple of
    /// 4 KiB is used) with an empty root directory and `lost+found`.
    pub fn format(img: &'a mut [u8], opts: Options) -> Result<Self> {
        let blocks = (img.len() / BLOCK_SIZE) as u64;
        let mut geo = Geometry::plan(blocks, opts.lanes, opts.seg_inodes)
            .map_err(|e| Error::Geometry(format!("{} ({e:?})", e.describe())))?;
        geo.slot_logs = opts.slot_logs;
        if opts.label.len() > 63 {
            return Err(Error::Invalid("label longer than 63 bytes"));
        }
        // Invalidate any old superblock first: a half-written image must
        // not look like a file system.
        img[..BLOCK_SIZE].fill(0);
        let backup = (geo.backup_sb() as usize) * BLOCK_SIZE;
        img[backup..backup + BLOCK_SIZE].fill(0);
        for lane in 0..geo.lanes {
            let b = geo.journal_block(lane) as usize * BLOCK_SIZE;
            img[b..b + BLOCK_SIZE].fill(0);
            journal::format_block(&mut img[b..b + BLOCK_SIZE], lane);
        }
        let mut segments = Vec::new();
        for lane in 0..geo.lanes {
            let seg = geo.first_segment(lane);
            write_segment(img, &geo, seg, lane, 0);
            segments.push(vec![seg]);
        }
        let alloc =
            BlockAlloc { next: geo.first_data_block, end: geo.backup_sb(), gaps: Vec::new() };
        let mut b = Self { img, geo, opts, alloc, segments, next_ino: 1, nodes: BTreeMap::new() };
        let now = b.opts.now;
        let root = b.new_inode(Attrs::new(S_IFDIR | 0o755, 0, 0, now), 0)?;
        debug_assert_eq!(root, geo.root_ino);
        b.node_mut(root)?.inode.parent = root;
        b.node_mut(root)?.inode.nlink = 2;
        let lf = b.mkdir(root, b"lost+found", Attrs::new(S_IFDIR | 0o700, 0, 0, now))?;
        debug_assert_eq!(lf, geo.lost_found_ino);
        Ok(b)
    }

    /// The geometry being written.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The root directory's inode number.
    pub fn root(&self) -> u64 {
        self.geo.root_ino
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Error::BadInode(ino))
    }

    fn block_mut(&mut self, b: u64) -> &mut [u8] {
        let s = b as usize * BLOCK_SIZE;
        &mut self.img[s..s + BLOCK_SIZE]
    }

    fn new_inode(&mut self, a: Attrs, parent: u64) -> Result<u64> {
        let ino = self.next_ino;
        let (lane, slot) = self.geo.ino_split(ino);
        let per = self.geo.seg_inodes as u64;
        while slot / per >= self.segments[lane as usize].len() as u64 {
            self.grow_table(lane)?;
        }
        self.next_ino = ino.checked_add(1).ok_or(Error::NoInodes)?;
        let mut i = Inode::zeroed();
        i.ino = ino;
        i.generation = 1;
        i.mode = a.mode;
        i.uid = a.uid;
        i.gid = a.gid;
        i.nlink = 1;
        i.parent = parent;
        i.atime = a.atime;
        i.mtime = a.mtime;
        i.ctime = a.ctime;
        i.btime = self.opts.now;
        let names = (a.mode & S_IFMT == S_IFDIR).then(BTreeMap::new);
        self.nodes
            .insert(ino, Node { inode: i, log: LogEnd::default(), names, xattrs: BTreeSet::new() });
        Ok(ino)
    }

    fn grow_table(&mut self, lane: u32) -> Result<()> {
        let seg = self.alloc.alloc(self.geo.seg_blocks(), 1)?;
        let segs = &mut self.segments[lane as usize];
        let prev = *segs.last().ok_or(Error::Invalid("lane has no segment"))?;
        let index = segs.len() as u32;
        let mut m = ImgLog { img: self.img, alloc: &mut self.alloc };
        layout::append::grow_segment(&mut m, &self.geo, lane, index, prev, seg)?;
        segs.push(seg);
        Ok(())
    }

    /// Appends `e` to `ino`'s log, starting the log or a new page as
    /// needed (`layout::append`); [`Builder::finish`] commits every log.
    fn append(&mut self, ino: u64, e: &NewEntry<'_>) -> Result<()> {
        let (inode, mut end) = {
            let n = self.node_mut(ino)?;
            (n.inode, n.log)
        };
        let (lane, slot) = self.geo.ino_split(ino);
        let rec = layout::inode::slot_pos_in(&self.geo, &self.segments[lane as usize], slot)
            .ok_or(Error::NoInodes)?;
        let owner = LogOwner::of(&self.geo, ino, &inode, rec);
        let mut m = ImgLog { img: &mut *self.img, alloc: &mut self.alloc };
        append::append(&mut m, owner, &mut end, e)?;
        self.node_mut(ino)?.log = end;
        Ok(())
    }

    fn add_name(&mut self, dir: u64, name: &[u8], ino: u64, ftype: u8) -> Result<()> {
        if !layout::log::name_is_valid(name) {
            return Err(Error::BadName(name.to_vec()));
        }
        let d = self.node_mut(dir)?;
        let mtime = d.inode.mtime;
        let names = d.names.as_mut().ok_or(Error::BadInode(dir))?;
        if names.contains_key(name) {
            return Err(Error::Exists(name.to_vec()));
        }
        names.insert(name.to_vec(), ino);
        self.append(dir, &NewEntry::Dentry { op: DE_ADD, ino, ftype, mtime, name })
    }

    fn create(&mut self, parent: u64, name: &[u8], a: Attrs) -> Result<u64> {
        if !layout::log::name_is_valid(name) {
            return Err(Error::BadName(name.to_vec()));
        }
        if self
            .nodes
            .get(&parent)
            .and_then(|n| n.names.as_ref())
            .is_some_and(|n| n.contains_key(name))
        {
            return Err(Error::Exists(name.to_vec()));
        }
        let ftype = dt_of_mode(a.mode).ok_or(Error::Invalid("unknown file type in mode"))?;
        let ino = self.new_inode(a, 0)?;
        self.add_name(parent, name, ino, ftype)?;
        Ok(ino)
    }

    /// Creates directory `name` in `parent`.
    pub fn mkdir(&mut self, parent: u64, name: &[u8], a: Attrs) -> Result<u64> {
        if a.mode & S_IFMT != S_IFDIR {
            return Err(Error::Invalid("mkdir needs a directory mode"));
        }
        let ino = self.create(parent, name, a)?;
        let n = self.node_mut(ino)?;
        n.inode.nlink = 2;
        n.inode.parent = parent;
        self.node_mut(parent)?.inode.nlink += 1;
        Ok(ino)
    }

    /// Creates an empty regular file (or fifo, socket, device with `rdev`).
    pub fn mknod(&mut self, parent: u64, name: &[u8], a: Attrs, rdev: u64) -> Result<u64> {
        if a.mode & S_IFMT == S_IFDIR || a.mode & S_IFMT == S_IFLNK {
            return Err(Error::Invalid("use mkdir or symlink"));
        }
        let ino = self.create(parent, name, a)?;
        self.node_mut(ino)?.inode.rdev = rdev;
        Ok(ino)
    }

    /// Sets a regular file's size (before or after writing its data).
    pub fn set_size(&mut self, ino: u64, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(Error::Invalid("file too large"));
        }
        let n = self.node_mut(ino)?;
        if n.inode.mode & S_IFMT != S_IFREG && n.inode.mode & S_IFMT != S_IFLNK {
            return Err(Error::BadInode(ino));
        }
        n.inode.size = size;
        Ok(())
    }

    /// Writes `data` at block-aligned file offset `off` of file `ino` into
    /// newly allocated blocks (2 MiB-aligned when the piece is that large).
    /// The file's size must already cover the data ([`Builder::set_size`]).
    pub fn write_at(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<()> {
        if !off.is_multiple_of(BLOCK_SIZE_U64) {
            return Err(Error::Invalid("write offset not block-aligned"));
        }
        let (size, mtime) = {
            let n = self.node_mut(ino)?;
            (n.inode.size, n.inode.mtime)
        };
        if off + data.len() as u64 > size.next_multiple_of(BLOCK_SIZE_U64) {
            return Err(Error::Invalid("write past the file size"));
        }
        let mut done = 0usize;
        while done < data.len() {
            let left = (data.len() - done) as u64;
            let blocks = left.div_ceil(BLOCK_SIZE_U64).min(u32::MAX as u64 / 2).min(1 << 18);
            let align = if blocks >= HUGE_BLOCKS { HUGE_BLOCKS } else { 1 };
            let start = self.alloc.alloc(blocks, align)?;
            let n = (blocks * BLOCK_SIZE_U64).min(left) as usize;
            let s = start as usize * BLOCK_SIZE;
            let e = s + blocks as usize * BLOCK_SIZE;
            self.img[s..s + n].copy_from_slice(&data[done..done + n]);
            self.img[s + n..e].fill(0);
            let pgoff = (off + done as u64) / BLOCK_SIZE_U64;
            let w = NewEntry::Write {
                flags: 0,
                pgoff,
                block: start,
                count: blocks as u32,
                size_after: size,
                mtime,
            };
            self.append(ino, &w)?;
            done += n;
        }
        Ok(())
    }

    /// Creates a regular file holding `data`.
    pub fn add_file(&mut self, parent: u64, name: &[u8], a: Attrs, data: &[u8]) -> Result<u64> {
        let ino = self.mknod(parent, name, Attrs { mode: S_IFREG | (a.mode & 0o7777), ..a }, 0)?;
        self.set_size(ino, data.len() as u64)?;
        if !data.is_empty() {
            self.write_at(ino, 0, data)?;
        }
        Ok(ino)
    }

    /// Creates a symbolic link; short targets are kept in the inode.
    pub fn symlink(&mut self, parent: u64, name: &[u8], target: &[u8], a: Attrs) -> Result<u64> {
        if target.is_empty() || target.len() >= BLOCK_SIZE || target.contains(&0) {
            return Err(Error::Invalid("symlink target empty, too long or contains NUL"));
        }
        let ino = self.create(parent, name, Attrs { mode: S_IFLNK | 0o777, ..a })?;
        self.node_mut(ino)?.inode.size = target.len() as u64;
        if target.len() <= INLINE_MAX {
            let n = self.node_mut(ino)?;
            n.inode.inline[..target.len()].copy_from_slice(target);
            n.inode.inline_len = target.len() as u32;
        } else {
            self.write_at(ino, 0, target)?;
        }
        Ok(ino)
    }

    /// Adds hard link `name` in `parent` to the existing non-directory `ino`.
    pub fn link(&mut self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        let n = self.nodes.get(&ino).ok_or(Error::BadInode(ino))?;
        if n.names.is_some() {
            return Err(Error::BadInode(ino));
        }
        let ftype = dt_of_mode(n.inode.mode).unwrap_or(dt::REG);
        self.add_name(parent, name, ino, ftype)?;
        self.node_mut(ino)?.inode.nlink += 1;
        Ok(())
    }

    /// Appends a link-count entry to `ino` (the kernel writes these on
    /// link/unlink; mkfs uses it only to exercise the format).
    pub fn log_nlink(&mut self, ino: u64, nlink: u32) -> Result<()> {
        let ctime = self.node_mut(ino)?.inode.ctime;
        self.append(ino, &NewEntry::Link { nlink, ctime })?;
        self.node_mut(ino)?.inode.nlink = nlink;
        Ok(())
    }

    /// Replaces the permission bits, owner and times of `ino` (the file
    /// type stays).
    pub fn set_attrs(&mut self, ino: u64, a: Attrs) -> Result<()> {
        let n = self.node_mut(ino)?;
        n.inode.mode = (n.inode.mode & S_IFMT) | (a.mode & 0o7777);
        n.inode.uid = a.uid;
        n.inode.gid = a.gid;
        n.inode.atime = a.atime;
        n.inode.mtime = a.mtime;
        n.inode.ctime = a.ctime;
        Ok(())
    }

    /// Sets extended attribute `name` of namespace `index`
    /// (`layout::log::xa`; the name without its prefix, empty for the
    /// ACLs) on `ino`: a value of at most 512 bytes inside its entry, a
    /// larger one (up to 64 KiB) in blocks of its own. Each attribute once;
    /// a default ACL only on a directory (the kernel refuses others). The
    /// entry carries the inode's ctime, so set the times first
    /// ([`Builder::set_attrs`]).
    pub fn set_xattr(&mut self, ino: u64, index: u8, name: &[u8], value: &[u8]) -> Result<()> {
        if !xattr_name_is_valid(index, name) {
            return Err(Error::Invalid("unknown attribute namespace or illegal name"));
        }
        if value.len() > XATTR_VALUE_MAX {
            return Err(Error::Invalid("attribute value larger than 64 KiB"));
        }
        let n = self.node_mut(ino)?;
        if index == xa::ACL_DEFAULT && n.names.is_none() {
            return Err(Error::Invalid("a default ACL on a non-directory"));
        }
        if !n.xattrs.insert((index, name.to_vec())) {
            return Err(Error::Exists(name.to_vec()));
        }
        let ctime = n.inode.ctime;
        let value = if value.len() <= XATTR_INLINE_MAX {
            XattrValue::Inline(value)
        } else {
            let len = value.len() as u32;
            let count = xattr_value_blocks(len);
            let block = self.alloc.alloc(count, 1)?;
            let s = block as usize * BLOCK_SIZE;
            self.img[s..s + value.len()].copy_from_slice(value);
            self.img[s + value.len()..s + count as usize * BLOCK_SIZE].fill(0);
            XattrValue::Blocks { block, len }
        };
        self.append(ino, &NewEntry::Xattr { index, name, value, ctime })
    }

    /// Sets the inode flags of `ino` (`layout::log::fl` bits only) in its
    /// record and, for a project id other than 0 (which the record cannot
    /// hold), in a `FLAGS` entry.
    pub fn set_flags(&mut self, ino: u64, flags: u32, projid: u32) -> Result<()> {
        if flags & !fl::ALL != 0 {
            return Err(Error::Invalid("inode flags novars does not keep"));
        }
        let n = self.node_mut(ino)?;
        n.inode.flags = flags;
        let ctime = n.inode.ctime;
        if projid != 0 {
            self.append(ino, &NewEntry::Flags { flags, projid, ctime })?;
        }
        Ok(())
    }

    /// Looks up `name` in directory `dir`.
    pub fn lookup(&self, dir: u64, name: &[u8]) -> Option<u64> {
        self.nodes.get(&dir)?.names.as_ref()?.get(name).copied()
    }

    /// Writes inode records, the allocator record and both superblocks.
    pub fn finish(mut self) -> Result<Summary> {
        // Inode records (nlink and size are final, the logs hold the rest).
        let nodes = std::mem::take(&mut self.nodes);
        for (ino, node) in &nodes {
            let mut i = node.inode;
            i.state = INODE_LIVE;
            if !node.log.is_empty() {
                i.log_head = node.log.head;
                i.log_tail = node.log.tail;
            }
            i.seal();
            let (lane, slot) = self.geo.ino_split(*ino);
            let pos = layout::inode::slot_pos_in(&self.geo, &self.segments[lane as usize], slot)
                .ok_or(Error::NoInodes)? as usize;
            let mut b = [0u8; Inode::SIZE];
            i.encode(&mut b);
            // Without an inline target the inline area is the log's (a
            // slot log is there already).
            let keep = i.stored_len();
            self.img[pos..pos + keep].copy_from_slice(&b[..keep]);
        }
        // Free inode slots per lane: everything from the first unused slot.
        let per = self.geo.seg_inodes as u64;
        let mut inode_ranges = Vec::new();
        let mut inodes_total = 0;
        for lane in 0..self.geo.lanes {
            let cap = self.segments[lane as usize].len() as u64 * per;
            inodes_total += cap;
            // First slot of this lane whose ino >= next_ino.
            let mut first = self.next_ino / self.geo.lanes as u64;
            if self.geo.ino_of(lane, first).is_some_and(|i| i < self.next_ino) {
                first += 1;
            }
            if first < cap {
                inode_ranges.push((lane, first, cap - first));
            }
        }
        // The allocator record: block extents then inode ranges, in blocks
        // taken from the free space (and listed in it).
        let free_blocks_total = self.alloc.free_blocks();
        let mut chunks: Vec<RecordChunk> = Vec::new();
        let free = self.alloc.free_extents();
        let need_blocks = free.len().div_ceil(ALLOC_PER_BLOCK) + inode_ranges.len() + 1;
        // Take record blocks from the end of the last free extent.
        let mut rec_blocks = Vec::new();
        let mut free = free;
        for _ in 0..need_blocks {
            let last = free.last_mut().ok_or(Error::NoSpace)?;
            last.1 -= 1;
            rec_blocks.push(last.0 + last.1);
            if last.1 == 0 {
                free.pop();
            }
        }
        // The record blocks are free space too: list them.
        let mut listed = free.clone();
        for &b in &rec_blocks {
            listed.push((b, 1));
        }
        listed.sort_unstable();
        let listed = merge(listed);
        for c in listed.chunks(ALLOC_PER_BLOCK) {
            chunks.push((KIND_BLOCKS, 0, c.to_vec()));
        }
        for (lane, first, n) in &inode_ranges {
            chunks.push((KIND_INODES, *lane as u16, vec![(*first, *n)]));
        }
        let seq = 1u64;
        for (i, (kind, lane, ex)) in chunks.iter().enumerate() {
            let next = rec_blocks.get(i + 1).copied().filter(|_| i + 1 < chunks.len()).unwrap_or(0);
            let b = rec_blocks[i];
            let blk = self.block_mut(b);
            alloc_rec::build(blk, *kind, *lane, seq, next, ex);
        }
        let inodes_used = nodes.len() as u64;
        let mut sb = Superblock::new(&self.geo);
        sb.uuid = self.opts.uuid;
        sb.label[..self.opts.label.len()].copy_from_slice(self.opts.label.as_bytes());
        sb.mkfs_time = self.opts.now.sec;
        sb.write_time = self.opts.now.sec;
        sb.state = STATE_CLEAN;
        sb.alloc_rec_head = rec_blocks[0];
        sb.alloc_rec_seq = seq;
        sb.free_blocks = free_blocks_total;
        sb.free_inodes = inodes_total - inodes_used - 1; // ino 0 is reserved
        let backup = self.geo.backup_sb();
        sb.write_block(self.block_mut(backup));
        sb.write_block(self.block_mut(0));
        Ok(Summary {
            geometry: self.geo,
            inodes_used,
            inodes_total,
            blocks_free: free_blocks_total,
        })
    }
}

fn write_segment(img: &mut [u8], geo: &Geometry, seg: u64, lane: u32, index: u32) {
    let s = seg as usize * BLOCK_SIZE;
    let e = s + geo.seg_blocks() as usize * BLOCK_SIZE;
    img[s..e].fill(0);
    SegmentHeader::new(lane, index, geo.seg_inodes).encode(&mut img[s..]);
}

/// Merges sorted, possibly adjacent extents.
pub fn merge(v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, l) in v {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == s => last.1 += l,
            _ => out.push((s, l)),
        }
    }
    out
}

/// Parses a size such as `1G`, `512M`, `64k`, `4096` (bytes; suffixes are
/// powers of 1024, as mke2fs reads them).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return None,
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use layout::media::SliceMedia;
    use layout::walk::{replay_inode, DirIndex, FileMap};

    #[derive(Default)]
    struct Names(Vec<(Vec<u8>, u64)>);
    impl DirIndex for Names {
        fn add(&mut self, name: &[u8], ino: u64, _: u8, _: u64) {
            self.0.push((name.to_vec(), ino));
        }
        fn remove(&mut self, name: &[u8], _: u64) {
            self.0.retain(|(n, _)| n != name);
        }
    }
    #[derive(Default)]
    struct Map(BTreeMap<u64, u64>);
    impl FileMap for Map {
        fn map(&mut self, p: u64, b: u64, c: u64) {
            for i in 0..c {
                self.0.insert(p + i, b + i);
            }
        }
        fn unmap(&mut self, p: u64, c: u64) {
            self.0.retain(|k, _| *k < p || *k >= p + c);
        }
    }

    fn read_inode(img: &[u8], geo: &Geometry, ino: u64) -> Inode {
        let (lane, slot) = geo.ino_split(ino);
        let mut segs = Vec::new();
        layout::inode::walk_segments(&SliceMedia::new(img), geo, lane, |_, b| segs.push(b))
            .unwrap();
        let pos = layout::inode::slot_pos_in(geo, &segs, slot).unwrap();
        layout::inode::read_inode_at(&SliceMedia::new(img), pos).unwrap()
    }

    #[test]
    fn build_and_read_back() {
        let mut img = vec![0u8; 64 << 20];
        let mut o = Options::defaults((img.len() / BLOCK_SIZE) as u64, 2);
        o.seg_inodes = 64;
        let t = Timespec::new(1000, 5);
        let mut b = Builder::format(&mut img, o).unwrap();
        let root = b.root();
        let a = Attrs::new(S_IFREG | 0o644, 1, 2, t);
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
        let f = b.add_file(root, b"big", a, &data).unwrap();
        let d = b.mkdir(root, b"dir", Attrs::new(S_IFDIR | 0o755, 0, 0, t)).unwrap();
        b.link(d, b"big-link", f).unwrap();
        let long = vec![b'x'; 200];
        let s = b.symlink(d, b"sl", &long, a).unwrap();
        // Many names to force several log pages and table growth.
        for i in 0..300 {
            b.add_file(d, format!("f{i:04}").as_bytes(), a, b"hi").unwrap();
        }
        assert_eq!(b.add_file(d, b"f0000", a, b""), Err(Error::Exists(b"f0000".to_vec())));
        let geo = *b.geometry();
        let sum = b.finish().unwrap();
        assert!(sum.inodes_total > 300);
        let m = SliceMedia::new(&img);
        let (sb, g2) = Superblock::parse(&img[..4096], m_blocks(&img)).unwrap();
        assert_eq!(g2, geo);
        assert_eq!(sb.state, STATE_CLEAN);
        let fi = read_inode(&img, &geo, f);
        assert_eq!(fi.validate(f), Ok(()));
        let mut map = Map::default();
        let (view, _) =
            replay_inode(&m, &geo, f, &fi, &mut map, &mut layout::walk::Ignore).unwrap();
        assert_eq!(view.size, data.len() as u64);
        assert_eq!(view.nlink, 2);
        let mut got = Vec::new();
        for pg in 0..(data.len() as u64).div_ceil(4096) {
            let blk = map.0[&pg];
            got.extend_from_slice(&img[blk as usize * 4096..][..4096]);
        }
        assert_eq!(&got[..data.len()], &data[..]);
        assert!(got[data.len()..].iter().all(|&x| x == 0));
        // The 3 MiB file got a 2 MiB-aligned extent.
        assert_eq!(map.0[&0] % HUGE_BLOCKS, 0);
        let di = read_inode(&img, &geo, d);
        let mut names = Names::default();
        let (dv, rep) =
            replay_inode(&m, &geo, d, &di, &mut layout::walk::Ignore, &mut names).unwrap();
        assert!(rep.pages > 1);
        assert_eq!(names.0.len(), 302);
        assert_eq!(dv.nlink, 2);
        let si = read_inode(&img, &geo, s);
        assert_eq!(si.inline_len, 0);
        assert_eq!(si.size, 200);
        let ri = read_inode(&img, &geo, root);
        assert_eq!(ri.nlink, 4); // ., .., lost+found, dir
    }

    fn m_blocks(img: &[u8]) -> u64 {
        (img.len() / BLOCK_SIZE) as u64
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size(""), None);
    }
}
