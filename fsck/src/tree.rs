//! A plain reader of the namespace: every path with its type, attributes
//! and a hash of its contents. Independent of the check (it uses only the
//! `layout` walkers), so tests can compare a tree before damage with the
//! tree after repair.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use layout::inode::{read_inode_at, slot_pos_in, walk_segments, Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use layout::media::SliceMedia;
use layout::walk::{replay_inode, InodeView};
use layout::{Geometry, Media, Superblock, BLOCK_SIZE_U64};

use crate::model::{DirNames, ExtentMap, Extent};

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
}

impl Item {
    /// The item without its inode number and link count (which repairs
    /// may legitimately change).
    pub fn essence(&self) -> (u32, u32, u32, u64, u64, Option<Vec<u8>>) {
        (self.mode, self.uid, self.gid, self.size, self.content, self.target.clone())
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
        let mut names = DirNames::default();
        let (view, _) = replay_inode(&self.m, &self.geo, ino, &inode, &mut map, &mut names).ok()?;
        Some(Loaded { pos, inode, view, extents: map.extents(), names })
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

    /// Hash of the first `size` bytes of a file (holes read as zeros).
    fn content(&self, l: &Loaded) -> (u64, Vec<u8>) {
        let mut h = FNV_START;
        let mut first = Vec::new();
        if let Some(t) = l.inode.inline_target() {
            fnv(&mut h, t);
            return (h, t.to_vec());
        }
        let size = l.view.size;
        let blocks = size.div_ceil(BLOCK_SIZE_U64);
        let zero = [0u8; 4096];
        let mut ext = l.extents.iter().peekable();
        for pg in 0..blocks {
            while ext.peek().is_some_and(|x| x.pgoff.saturating_add(x.count) <= pg) {
                ext.next();
            }
            let data = match ext.peek() {
                Some(x) if x.pgoff <= pg => self.m.block(x.block + (pg - x.pgoff)).unwrap_or(&zero),
                _ => &zero,
            };
            let n = (size - pg * BLOCK_SIZE_U64).min(BLOCK_SIZE_U64) as usize;
            let part = data.get(..n).unwrap_or(&[]);
            fnv(&mut h, part);
            if pg == 0 {
                first = part.to_vec();
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
