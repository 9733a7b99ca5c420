//! A plain reader of the namespace: every path with its type, attributes,
//! extended attributes, inode flags and a hash of its contents. Independent of the check (it uses only the
//! `layout` walkers), so tests can compare a tree before damage with the
//! tree after repair.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use layout::inode::{
    read_inode_at, slot_pos_in, walk_segments, Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use layout::log::Entry;
use layout::media::SliceMedia;
use layout::walk::{walk_log, InodeView, LogVisitor, Replay, XattrReplay};
use layout::{Geometry, Media, Superblock, BLOCK_SIZE_U64};

use crate::model::{DirNames, DirOps, Extent, ExtentMap, XattrVal, Xattrs};

/// One path of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub ino: u64,
    /// Full mode, file type included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    /// FNV-1a of the contents (files), of the target (symlinks), 0 else.
    pub content: u64,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Extended attributes: namespace (`layout::log::xa`), name, FNV-1a
    /// of the value; sorted.
    pub xattrs: Vec<XattrItem>,
    /// Inode flags (`layout::log::fl`).
    pub flags: u32,
    pub projid: u32,
}

/// One extended attribute of an [`Item`]: namespace, name, value hash.
pub type XattrItem = (u8, Vec<u8>, u64);

/// What [`Item::essence`] compares.
pub type Essence = (u32, u32, u32, u64, u64, Option<Vec<u8>>, Vec<XattrItem>, u32, u32);

impl Item {
    /// The item without its inode number and link count (which repairs
    /// may legitimately change).
    pub fn essence(&self) -> Essence {
        (
            self.mode,
            self.uid,
            self.gid,
            self.size,
            self.content,
            self.target.clone(),
            self.xattrs.clone(),
            self.flags,
            self.projid,
        )
    }
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Reads inodes of an image (the primary superblock must be valid).
pub struct Reader<'a> {
    pub m: SliceMedia<'a>,
    pub sb: Superblock,
    pub geo: Geometry,
    pub segments: Vec<Vec<u64>>,
}

/// An inode and what its log says.
pub struct Loaded {
    pub pos: u64,
    pub inode: Inode,
    pub view: InodeView,
    pub extents: Vec<Extent>,
    pub names: DirNames,
    pub xattrs: Xattrs,
}

/// Replays a log into the state and the extended attributes in one walk.
struct Both<'a> {
    replay: Replay<'a, ExtentMap, DirOps>,
    xattrs: Xattrs,
}

impl LogVisitor for Both<'_> {
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        self.replay.entry(pos, e);
        XattrReplay(&mut self.xattrs).entry(pos, e);
    }
}

impl<'a> Reader<'a> {
    /// Opens `img`.
    pub fn new(img: &'a [u8]) -> Result<Self, String> {
        let m = SliceMedia::new(img);
        let blk = m.block(0).map_err(|e| format!("{e:?}"))?;
        let (sb, geo) = Superblock::parse(blk, m.blocks()).map_err(|e| e.describe().to_string())?;
        let mut segments = Vec::new();
        for lane in 0..geo.lanes {
            let mut v = Vec::new();
            let _ = walk_segments(&m, &geo, lane, |_, b| v.push(b));
            segments.push(v);
        }
        Ok(Self { m, sb, geo, segments })
    }

    /// Byte position of `ino`'s slot.
    pub fn slot_pos(&self, ino: u64) -> Option<u64> {
        let (lane, slot) = self.geo.ino_split(ino);
        slot_pos_in(&self.geo, self.segments.get(lane as usize)?, slot)
    }

    /// A live inode whose record validates and whose log walks.
    pub fn load(&self, ino: u64) -> Option<Loaded> {
        let pos = self.slot_pos(ino)?;
        let inode = read_inode_at(&self.m, pos).ok()?;
        inode.validate(ino).ok()?;
        let mut map = ExtentMap::default();
        let mut names = DirOps::default();
        let mut v =
            Both { replay: Replay::new(&inode, &mut map, &mut names), xattrs: Xattrs::default() };
        walk_log(&self.m, &self.geo, ino, &inode, &mut v).ok()?;
        let (view, xattrs) = (v.replay.view, v.xattrs);
        Some(Loaded { pos, inode, view, extents: map.extents(), names: names.settle(), xattrs })
    }

    /// Hash of an attribute's value (a value in blocks as far as the
    /// device holds it: the walker checked the range is in the data area).
    fn value_hash(&self, v: &XattrVal) -> u64 {
        let mut h = FNV_START;
        match v {
            XattrVal::Inline(b) => fnv(&mut h, b),
            &XattrVal::Blocks { block, len } => {
                let mut left = len as usize;
                let mut b = block;
                while left > 0 {
                    let n = left.min(BLOCK_SIZE_U64 as usize);
                    let data = self.m.block(b).ok().and_then(|d| d.get(..n));
                    fnv(&mut h, data.unwrap_or(&[]));
                    left -= n;
                    b = b.saturating_add(1);
                }
            }
        }
        h
    }

    /// The inode at `path` (components separated by `/`, from the root).
    pub fn lookup(&self, path: &str) -> Option<u64> {
        let mut ino = self.geo.root_ino;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let l = self.load(ino)?;
            ino = l.names.names.get(c.as_bytes())?.ino;
        }
        Some(ino)
    }

    /// Hash of a file's contents: its size, then every mapped block inside
    /// the size with its file offset (holes contribute nothing, so the
    /// work is proportional to the data, never to a hostile size); and the
    /// first block's bytes (a long symlink's target).
    fn content(&self, l: &Loaded) -> (u64, Vec<u8>) {
        let mut h = FNV_START;
        if let Some(t) = l.inode.inline_target() {
            fnv(&mut h, t);
            return (h, t.to_vec());
        }
        let size = l.view.size;
        fnv(&mut h, &size.to_le_bytes());
        let mut first = Vec::new();
        // Unwritten extents read as zeros: like holes, they add nothing.
        for x in l.extents.iter().filter(|x| !x.unwritten) {
            for i in 0..x.count {
                let pg = x.pgoff.saturating_add(i);
                let start = pg.saturating_mul(BLOCK_SIZE_U64);
                if start >= size {
                    break;
                }
                let n = (size - start).min(BLOCK_SIZE_U64) as usize;
                let data = self
                    .m
                    .block(x.block.saturating_add(i))
                    .ok()
                    .and_then(|b| b.get(..n))
                    .unwrap_or(&[]);
                if data.iter().all(|&b| b == 0) {
                    continue; // a written block of zeros reads like a hole
                }
                fnv(&mut h, &pg.to_le_bytes());
                fnv(&mut h, data);
                if pg == 0 {
                    first = data.to_vec();
                }
            }
        }
        (h, first)
    }

    /// Every path reachable from the root (the root is `/`).
    pub fn list(&self) -> BTreeMap<PathBuf, Item> {
        let mut out = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(PathBuf::from("/"), self.geo.root_ino)];
        while let Some((path, ino)) = stack.pop() {
            let Some(l) = self.load(ino) else { continue };
            let t = l.view.mode & S_IFMT;
            let (content, target) = match t {
                S_IFREG => (self.content(&l).0, None),
                S_IFLNK => {
                    let (h, first) = self.content(&l);
                    (h, Some(first))
                }
                _ => (0, None),
            };
            out.insert(
                path.clone(),
                Item {
                    ino,
                    mode: l.view.mode,
                    uid: l.view.uid,
                    gid: l.view.gid,
                    size: if t == S_IFDIR { 0 } else { l.view.size },
                    nlink: l.view.nlink,
                    content,
                    target,
                    xattrs: l
                        .xattrs
                        .0
                        .iter()
                        .map(|((i, n), v)| (*i, n.to_vec(), self.value_hash(v)))
                        .collect(),
                    flags: l.view.flags,
                    projid: l.view.projid,
                },
            );
            if t == S_IFDIR && seen.insert(ino) {
                for (name, d) in &l.names.names {
                    let Ok(s) = std::str::from_utf8(name) else { continue };
                    stack.push((path.join(s), d.ino));
                }
            }
        }
        out
    }
}

/// The tree of `img` (empty if the superblock is unusable).
pub fn list(img: &[u8]) -> BTreeMap<PathBuf, Item> {
    Reader::new(img).map(|r| r.list()).unwrap_or_default()
}
