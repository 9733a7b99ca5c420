//! What fsck knows about each live inode after reading its log: the sinks
//! handed to `layout::walk::Replay`, and the per-inode record the later
//! passes work on.

use std::collections::{btree_map, BTreeMap};

use layout::append::XattrValue;
use layout::inode::{Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use layout::log::{pos_block, slot_len, xattr_value_blocks, Entry, PAGE_NEXT_OFF};
use layout::walk::{
    walk_log, DirIndex, FileMap, InodeView, LogVisitor, Replay, WalkError, XattrIndex, XattrReplay,
};
use layout::{Geometry, Media, BLOCK_SIZE_U64};

/// A run of file blocks mapped to device blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub pgoff: u64,
    pub block: u64,
    pub count: u64,
    /// Unwritten (`WF_UNWRITTEN`): the file's blocks, read as zeros.
    pub unwritten: bool,
}

/// The block map while a log is replayed: file offset -> (block, count,
/// unwritten). Later mappings override earlier ones, as [`FileMap`]
/// requires. Most files have a few extents: those stay in a vector (one
/// allocation, handed on as the record's extents); a map that grows past
/// [`SMALL_EXTENTS`] moves to a tree.
#[derive(Clone, Debug)]
pub struct ExtentMap(Extents);

#[derive(Clone, Debug)]
enum Extents {
    /// None or one (most files): no allocation.
    One(Option<Extent>),
    /// Sorted by `pgoff`, not overlapping.
    Small(Vec<Extent>),
    Big(BTreeMap<u64, (u64, u64, bool)>),
}

/// `extents` as the tree of a map grown past its vector.
fn tree_of(extents: &[Extent]) -> BTreeMap<u64, (u64, u64, bool)> {
    extents.iter().map(|e| (e.pgoff, (e.block, e.count, e.unwritten))).collect()
}

/// Most extents an [`ExtentMap`] keeps in its vector.
const SMALL_EXTENTS: usize = 32;

impl Default for ExtentMap {
    fn default() -> Self {
        Self(Extents::One(None))
    }
}

/// A live file's extents, in file order: most files have one, kept in
/// the record itself; more are in a box.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FileExtents {
    #[default]
    None,
    One(Extent),
    Many(Box<[Extent]>),
}

impl std::ops::Deref for FileExtents {
    type Target = [Extent];
    fn deref(&self) -> &[Extent] {
        match self {
            FileExtents::None => &[],
            FileExtents::One(x) => std::slice::from_ref(x),
            FileExtents::Many(v) => v,
        }
    }
}

impl From<Vec<Extent>> for FileExtents {
    fn from(v: Vec<Extent>) -> Self {
        match v.as_slice() {
            [] => FileExtents::None,
            [x] => FileExtents::One(*x),
            _ => FileExtents::Many(v.into_boxed_slice()),
        }
    }
}

impl ExtentMap {
    /// A map holding `extents` (in file order, not overlapping).
    pub fn from_extents(extents: &[Extent]) -> Self {
        match extents {
            [] => return Self::default(),
            [x] => return Self(Extents::One(Some(*x))),
            _ if extents.len() <= SMALL_EXTENTS => return Self(Extents::Small(extents.to_vec())),
            _ => {}
        }
        Self(Extents::Big(tree_of(extents)))
    }

    /// The extents in file order.
    pub fn extents(&self) -> Vec<Extent> {
        match &self.0 {
            Extents::One(x) => x.iter().copied().collect(),
            Extents::Small(v) => v.clone(),
            Extents::Big(m) => m
                .iter()
                .map(|(&pgoff, &(block, count, unwritten))| Extent {
                    pgoff,
                    block,
                    count,
                    unwritten,
                })
                .collect(),
        }
    }

    /// The extents in file order, without a copy where they are a vector.
    pub fn into_extents(self) -> FileExtents {
        match self.0 {
            Extents::One(None) => FileExtents::None,
            Extents::One(Some(x)) => FileExtents::One(x),
            Extents::Small(v) => v.into(),
            Extents::Big(_) => self.extents().into(),
        }
    }

    fn insert(&mut self, pgoff: u64, block: u64, count: u64, unwritten: bool) {
        if count == 0 {
            return;
        }
        self.cut(pgoff, count);
        let x = Extent { pgoff, block, count, unwritten };
        match &mut self.0 {
            Extents::One(None) => self.0 = Extents::One(Some(x)),
            Extents::One(Some(y)) => {
                let v = if y.pgoff < pgoff { vec![*y, x] } else { vec![x, *y] };
                self.0 = Extents::Small(v);
            }
            Extents::Small(v) if v.len() < SMALL_EXTENTS => {
                let at = v.partition_point(|e| e.pgoff < pgoff);
                v.insert(at, x);
            }
            Extents::Small(v) => {
                let mut m = tree_of(v);
                m.insert(pgoff, (block, count, unwritten));
                self.0 = Extents::Big(m);
            }
            Extents::Big(m) => {
                m.insert(pgoff, (block, count, unwritten));
            }
        }
    }

    /// Removes `[pgoff, pgoff+count)`, splitting extents at the edges.
    fn cut(&mut self, pgoff: u64, count: u64) {
        let end = pgoff.saturating_add(count);
        let m = match &mut self.0 {
            Extents::One(None) => return,
            // Not touched: no vector.
            Extents::One(Some(x)) if x.pgoff >= end || x.pgoff.saturating_add(x.count) <= pgoff => {
                return
            }
            Extents::One(Some(x)) => {
                let mut v = vec![*x];
                cut_small(&mut v, pgoff, end);
                self.0 = Extents::Small(v);
                return;
            }
            Extents::Small(v) => return cut_small(v, pgoff, end),
            Extents::Big(m) => m,
        };
        // An extent starting before `pgoff` may reach into the range.
        if let Some((&s, &(b, c, u))) = m.range(..pgoff).next_back() {
            let e = s.saturating_add(c);
            if e > pgoff {
                m.insert(s, (b, pgoff - s, u));
                if e > end {
                    m.insert(end, (b.saturating_add(end - s), e - end, u));
                }
            }
        }
        let inside: Vec<u64> = m.range(pgoff..end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some((b, c, u)) = m.remove(&s) {
                let e = s.saturating_add(c);
                if e > end {
                    m.insert(end, (b.saturating_add(end - s), e - end, u));
                }
            }
        }
    }
}

/// [`ExtentMap::cut`] of `[pgoff, end)` in a sorted vector of extents.
fn cut_small(v: &mut Vec<Extent>, pgoff: u64, end: u64) {
    let x_end = |x: &Extent| x.pgoff.saturating_add(x.count);
    // Extents `i..j` overlap the range (ends are sorted as starts are).
    let i = v.partition_point(|x| x_end(x) <= pgoff);
    let j = v.partition_point(|x| x.pgoff < end);
    if i >= j {
        return;
    }
    let (first, last) = (v[i], v[j - 1]);
    let mut keep = [None, None];
    if first.pgoff < pgoff {
        keep[0] = Some(Extent { count: pgoff - first.pgoff, ..first });
    }
    if x_end(&last) > end {
        let skip = end - last.pgoff;
        keep[1] = Some(Extent {
            pgoff: end,
            block: last.block.saturating_add(skip),
            count: last.count - skip,
            unwritten: last.unwritten,
        });
    }
    v.splice(i..j, keep.into_iter().flatten());
}

impl FileMap for ExtentMap {
    fn map(&mut self, pgoff: u64, block: u64, count: u64) {
        self.insert(pgoff, block, count, false);
    }

    fn map_unwritten(&mut self, pgoff: u64, block: u64, count: u64) {
        self.insert(pgoff, block, count, true);
    }

    fn unmap(&mut self, pgoff: u64, count: u64) {
        self.cut(pgoff, count);
    }
}

/// A directory entry as the log leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dent {
    pub ino: u64,
    pub ftype: u8,
}

/// A `DENTRY` entry that does not fit the names before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirFault {
    /// Position of the entry.
    pub pos: u64,
    /// `true`: an add of a name already present; `false`: a remove of a
    /// name that is not there (or names another inode).
    pub duplicate: bool,
    pub name: Vec<u8>,
    pub ino: u64,
}

/// A name in a directory: up to [`Name::INLINE`] bytes (most names) in the
/// value itself, longer ones in a box of their own; a directory's names
/// cost no allocation each.
#[derive(Clone)]
pub enum Name {
    Inline { len: u8, bytes: [u8; Name::INLINE] },
    Boxed(Box<[u8]>),
}

impl Name {
    /// Longest name kept without an allocation.
    pub const INLINE: usize = 22;
}

impl Default for Name {
    fn default() -> Self {
        Name::Inline { len: 0, bytes: [0; Name::INLINE] }
    }
}

impl From<&[u8]> for Name {
    fn from(n: &[u8]) -> Self {
        let mut bytes = [0; Name::INLINE];
        match bytes.get_mut(..n.len()) {
            Some(b) => {
                b.copy_from_slice(n);
                Name::Inline { len: n.len() as u8, bytes }
            }
            None => Name::Boxed(n.into()),
        }
    }
}

impl std::ops::Deref for Name {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => bytes.get(..*len as usize).unwrap_or(&[]),
            Name::Boxed(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Name {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// The order of the bytes, as `[u8]`'s (the map is searched by `&[u8]`).
impl Ord for Name {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**o)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The names of a directory. The first binding of a name wins; adds of a
/// present name and removes of a missing one are recorded as faults.
#[derive(Clone, Debug, Default)]
pub struct DirNames {
    pub names: BTreeMap<Name, Dent>,
    pub faults: Vec<DirFault>,
    /// Position of the entry being replayed (set by the visitor).
    pub cur_pos: u64,
}

impl DirIndex for DirNames {
    fn add(&mut self, name: &[u8], ino: u64, ftype: u8, _seq: u64) {
        // One search of the tree, not two (a duplicate, rare, costs a copy
        // of the name that is dropped).
        match self.names.entry(name.into()) {
            btree_map::Entry::Vacant(v) => {
                v.insert(Dent { ino, ftype });
            }
            btree_map::Entry::Occupied(_) => self.faults.push(DirFault {
                pos: self.cur_pos,
                duplicate: true,
                name: name.to_vec(),
                ino,
            }),
        }
    }

    fn remove(&mut self, name: &[u8], ino: u64) {
        match self.names.get(name) {
            Some(d) if d.ino == ino => {
                self.names.remove(name);
            }
            _ => self.faults.push(DirFault {
                pos: self.cur_pos,
                duplicate: false,
                name: name.to_vec(),
                ino,
            }),
        }
    }
}

/// A directory's name entries as a walk of its log meets them, made into
/// [`DirNames`] at the end ([`DirOps::settle`]): names are independent of
/// each other, so replaying each name's entries in log order after a sort
/// by name gives what a replay into the tree gives, and the tree is then
/// built in one go from sorted names (no search and no node split per
/// name).
#[derive(Debug, Default)]
pub struct DirOps {
    ops: Vec<NameOp>,
    /// Position of the entry being replayed (set by the visitor).
    pub cur_pos: u64,
}

#[derive(Debug)]
struct NameOp {
    name: Name,
    ino: u64,
    pos: u64,
    /// Place in the log's order.
    idx: usize,
    ftype: u8,
    add: bool,
}

impl DirIndex for DirOps {
    fn add(&mut self, name: &[u8], ino: u64, ftype: u8, _seq: u64) {
        self.push(name, ino, ftype, true);
    }

    fn remove(&mut self, name: &[u8], ino: u64) {
        self.push(name, ino, 0, false);
    }
}

impl DirOps {
    fn push(&mut self, name: &[u8], ino: u64, ftype: u8, add: bool) {
        let (pos, idx) = (self.cur_pos, self.ops.len());
        self.ops.push(NameOp { name: name.into(), ino, pos, idx, ftype, add });
    }

    /// The names and faults a replay of the entries, in order, into
    /// [`DirNames`] leaves.
    pub fn settle(self) -> DirNames {
        let mut ops = self.ops;
        // A directory filled in name order with nothing removed is sorted
        // already; else each name's entries in log order.
        let sorted = ops.iter().all(|o| o.add) && ops.windows(2).all(|w| w[0].name < w[1].name);
        if !sorted {
            ops.sort_unstable_by(|a, b| a.name.cmp(&b.name).then(a.idx.cmp(&b.idx)));
        }
        let mut names = Vec::with_capacity(ops.len());
        let mut faults = Vec::new();
        for group in ops.chunk_by(|a, b| a.name == b.name) {
            let mut bound: Option<Dent> = None;
            for op in group {
                let ok = match (op.add, bound) {
                    (true, None) => {
                        bound = Some(Dent { ino: op.ino, ftype: op.ftype });
                        true
                    }
                    (false, Some(d)) if d.ino == op.ino => {
                        bound = None;
                        true
                    }
                    _ => false,
                };
                if !ok {
                    let name = op.name.to_vec();
                    let fault = DirFault { pos: op.pos, duplicate: op.add, name, ino: op.ino };
                    faults.push((op.idx, fault));
                }
            }
            if let (Some(d), Some(op)) = (bound, group.first()) {
                names.push((op.name.clone(), d));
            }
        }
        faults.sort_by_key(|f| f.0);
        DirNames {
            names: names.into_iter().collect(),
            faults: faults.into_iter().map(|f| f.1).collect(),
            cur_pos: self.cur_pos,
        }
    }
}

/// An extended attribute's value as the log leaves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XattrVal {
    /// Inside its entry.
    Inline(Box<[u8]>),
    /// `len` bytes in the `ceil(len / 4096)` blocks from `block`.
    Blocks { block: u64, len: u32 },
}

impl XattrVal {
    /// The value blocks `(first, count)`, if the value is in blocks.
    pub fn blocks(&self) -> Option<(u64, u64)> {
        match *self {
            XattrVal::Inline(_) => None,
            XattrVal::Blocks { block, len } => Some((block, xattr_value_blocks(len))),
        }
    }

    /// The value as an entry names it.
    pub fn as_entry_value(&self) -> XattrValue<'_> {
        match self {
            XattrVal::Inline(v) => XattrValue::Inline(v),
            &XattrVal::Blocks { block, len } => XattrValue::Blocks { block, len },
        }
    }
}

/// An attribute's namespace (`layout::log::xa`) and name.
pub type XattrKey = (u8, Box<[u8]>);

/// The extended attributes of an inode, by (namespace, name): later
/// entries override earlier ones, as [`XattrIndex`] requires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Xattrs(pub BTreeMap<XattrKey, XattrVal>);

impl Xattrs {
    /// The attribute whose value starts at block `block`.
    pub fn by_block(&self, block: u64) -> Option<(&XattrKey, &XattrVal)> {
        self.0.iter().find(|(_, v)| v.blocks().is_some_and(|(b, _)| b == block))
    }
}

impl XattrIndex for Xattrs {
    fn set(&mut self, index: u8, name: &[u8], value: XattrValue<'_>) {
        let v = match value {
            XattrValue::Inline(v) => XattrVal::Inline(v.into()),
            XattrValue::Blocks { block, len } => XattrVal::Blocks { block, len },
            XattrValue::Removed => {
                self.remove(index, name);
                return;
            }
        };
        self.0.insert((index, name.into()), v);
    }

    fn remove(&mut self, index: u8, name: &[u8]) {
        self.0.remove(&(index, Box::from(name)));
    }
}

/// Why a log is not usable past some point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFault {
    /// The walker stopped.
    Walk(WalkError),
    /// A verified entry that does not belong in this kind of inode.
    Kind { pos: u64, what: &'static str },
}

/// Everything one walk of a log yields.
pub struct Walked {
    pub view: InodeView,
    pub map: ExtentMap,
    pub dir: DirNames,
    pub xattrs: Xattrs,
    /// Pages visited, in chain order (up to the page of the fault).
    pub pages: Vec<u64>,
    /// End position of the last good entry.
    pub last_end: Option<u64>,
    pub last_seq: u64,
    pub fault: Option<LogFault>,
}

struct Collect<'a> {
    replay: Replay<'a, ExtentMap, DirOps>,
    xattrs: Xattrs,
    mode: u32,
    pages: Vec<u64>,
    last_end: Option<u64>,
    last_seq: u64,
    kind_fault: Option<(u64, &'static str)>,
}

/// What an entry may not do in an inode of type `mode`.
fn kind_problem(mode: u32, e: &Entry<'_>) -> Option<&'static str> {
    let t = mode & S_IFMT;
    match e {
        Entry::Dentry(..) if t != S_IFDIR => Some("directory entry in the log of a non-directory"),
        Entry::Parent(_) if t != S_IFDIR => Some("parent entry in the log of a non-directory"),
        Entry::Write(_) | Entry::Punch(_) if t != S_IFREG && t != S_IFLNK => {
            Some("data entry in the log of an inode without data")
        }
        // Attributes and flags belong to every kind of inode (a default
        // ACL on a non-directory is judged on the replayed attributes, in
        // pass 3, where it can be removed without losing the log after it).
        Entry::Xattr(..) | Entry::Flags(_) => None,
        _ => None,
    }
}

impl LogVisitor for Collect<'_> {
    fn page(&mut self, block: u64, _ordinal: u64) {
        if self.kind_fault.is_none() {
            self.pages.push(block);
        }
    }

    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        if self.kind_fault.is_some() {
            return;
        }
        if let Some(what) = kind_problem(self.mode, e) {
            self.kind_fault = Some((pos, what));
            return;
        }
        self.replay.dir.cur_pos = pos;
        self.replay.entry(pos, e);
        XattrReplay(&mut self.xattrs).entry(pos, e);
        self.last_end = pos.checked_add(e.hdr().len as u64);
        self.last_seq = e.hdr().seq;
    }
}

/// Walks and replays `inode`'s log, keeping what the valid prefix means.
pub fn walk_inode<M: Media + ?Sized>(m: &M, geo: &Geometry, ino: u64, inode: &Inode) -> Walked {
    let mut map = ExtentMap::default();
    let mut dir = DirOps::default();
    let (view, xattrs, pages, last_end, last_seq, fault) = {
        let mut c = Collect {
            replay: Replay::new(inode, &mut map, &mut dir),
            xattrs: Xattrs::default(),
            mode: inode.mode,
            pages: Vec::new(),
            last_end: None,
            last_seq: 0,
            kind_fault: None,
        };
        let r = walk_log(m, geo, ino, inode, &mut c);
        let fault = match (c.kind_fault, r) {
            (Some((pos, what)), _) => Some(LogFault::Kind { pos, what }),
            (None, Err(e)) => Some(LogFault::Walk(e)),
            (None, Ok(_)) => None,
        };
        (c.replay.view, c.xattrs, c.pages, c.last_end, c.last_seq, fault)
    };
    Walked { view, map, dir: dir.settle(), xattrs, pages, last_end, last_seq, fault }
}

impl Walked {
    /// Where the log should end to keep exactly the valid prefix:
    /// `(tail position, index of the tail page in pages)`, or `None` if no
    /// page is valid and the log must be emptied.
    pub fn truncation_point(&self) -> Option<(u64, usize)> {
        match self.last_end {
            // A slot log: no pages.
            Some(end) if slot_len(end).is_some() => Some((end, 0)),
            Some(end) => {
                let blk = pos_block(end);
                self.pages.iter().position(|&p| p == blk).map(|i| (end, i))
            }
            None => self.pages.first().map(|&p| (p.saturating_mul(BLOCK_SIZE_U64), 0)),
        }
    }
}

/// Where an inode's log ends, for appending.
pub use layout::append::LogEnd;

/// A live inode as the later passes see it.
#[derive(Clone, Debug)]
pub struct InodeRec {
    /// Byte position of its slot.
    pub pos: u64,
    pub generation: u32,
    /// Link count and parent recorded in the inode itself.
    pub rec_nlink: u32,
    pub rec_parent: u64,
    pub rec_size: u64,
    /// Inode flags recorded in the inode itself (at creation).
    pub rec_flags: u32,
    pub log: LogEnd,
    /// State after the log.
    pub view: InodeView,
    /// Log pages up to and including the tail page.
    pub pages: Vec<u64>,
    pub extents: FileExtents,
    /// Names (directories only).
    pub dir: Option<Box<DirNames>>,
    /// Extended attributes.
    pub xattrs: Xattrs,
    /// The log has a fault that was not (yet) repaired: the model holds the
    /// valid prefix, the media more; nothing may be appended.
    pub broken_log: bool,
}

impl InodeRec {
    /// Builds the record from an inode and its walk. A walk that stopped
    /// at a fault keeps the valid prefix (what a repair truncates the log
    /// to) and marks the log broken until that repair is made.
    pub fn new(pos: u64, inode: &Inode, w: Walked) -> Self {
        let broken_log = w.fault.is_some();
        // The tail kept (the valid prefix's of a broken log), if a slot log.
        let kept =
            if broken_log { w.truncation_point().map(|(t, _)| t) } else { Some(inode.log_tail) };
        let slot_tail = kept.filter(|&t| slot_len(t).is_some());
        let (log, pages) = if inode.log_head == 0 && inode.log_tail == 0 {
            (LogEnd::default(), Vec::new())
        } else if let Some(tail) = slot_tail {
            // A slot log (of its valid prefix): no pages.
            (LogEnd { tail, seq: w.last_seq, ..LogEnd::default() }, Vec::new())
        } else if !broken_log {
            let ord = w.pages.len().saturating_sub(1) as u64;
            (
                LogEnd {
                    head: inode.log_head,
                    tail: inode.log_tail,
                    tail_ord: ord,
                    seq: w.last_seq,
                    pages: ord + 1,
                },
                w.pages,
            )
        } else {
            match w.truncation_point() {
                Some((tail, idx)) => {
                    let mut pages = w.pages;
                    pages.truncate(idx + 1);
                    let end = LogEnd {
                        head: inode.log_head,
                        tail,
                        tail_ord: idx as u64,
                        seq: w.last_seq,
                        pages: idx as u64 + 1,
                    };
                    (end, pages)
                }
                None => (LogEnd::default(), Vec::new()),
            }
        };
        let is_dir = inode.mode & S_IFMT == S_IFDIR;
        Self {
            pos,
            generation: inode.generation,
            rec_nlink: inode.nlink,
            rec_parent: inode.parent,
            rec_size: inode.size,
            rec_flags: inode.flags,
            log,
            view: w.view,
            pages,
            extents: w.map.into_extents(),
            dir: is_dir.then(|| Box::new(w.dir)),
            xattrs: w.xattrs,
            broken_log,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.view.mode & S_IFMT == S_IFDIR
    }

    /// Whether this is a directory with names in it (one that is no
    /// orphan even with no name and link count 0: rmdir needs it empty).
    pub fn holds_names(&self) -> bool {
        self.dir.as_ref().is_some_and(|d| !d.names.is_empty())
    }

    /// Applies one entry just appended to the log.
    pub fn apply(&mut self, pos: u64, e: &Entry<'_>) {
        let mut map = ExtentMap::from_extents(&self.extents);
        let mut none = DirNames::default();
        let dir = match self.dir.as_deref_mut() {
            Some(d) => d,
            None => &mut none,
        };
        dir.cur_pos = pos;
        let mut r = Replay { view: self.view, map: &mut map, dir };
        r.entry(pos, e);
        self.view = r.view;
        XattrReplay(&mut self.xattrs).entry(pos, e);
        if matches!(e, Entry::Write(_) | Entry::Punch(_) | Entry::SetAttr(_)) {
            self.extents = map.into_extents();
        }
    }
}

/// The live inodes by number. The records stay where they were made: in
/// the runs pass 2's threads fill (a vector each, no allocation per
/// record, none moved after), repairs' new records in the last run; an
/// ordered index maps numbers to them. A record replaced or removed stays
/// in its run, unreachable.
#[derive(Clone, Debug, Default)]
pub struct InodeMap {
    runs: Vec<Vec<(u64, InodeRec)>>,
    index: BTreeMap<u64, Loc>,
    /// Moves on every change (or chance of one): what a [`LiveIndex`]
    /// built from the map is valid for.
    version: u64,
}

/// A number no map's version had: versions of different maps differ too.
fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Where a record is: run, position in it.
#[derive(Clone, Copy, Debug)]
struct Loc(usize, usize);

impl InodeMap {
    /// The map of records made in runs of `(number, record)`; of two with
    /// one number the one in the later run (or later in its run) stays.
    pub fn from_runs(runs: Vec<Vec<(u64, InodeRec)>>) -> Self {
        let mut keys = Vec::with_capacity(runs.iter().map(Vec::len).sum());
        for (r, run) in runs.iter().enumerate() {
            keys.extend(run.iter().enumerate().map(|(i, e)| (e.0, Loc(r, i))));
        }
        // Stable: equal numbers keep their order; the tree keeps the last.
        keys.sort_by_key(|k| k.0);
        Self { runs, index: keys.into_iter().collect(), version: next_version() }
    }

    fn at(&self, l: Loc) -> Option<&InodeRec> {
        self.runs.get(l.0)?.get(l.1).map(|e| &e.1)
    }

    /// The record of `ino`.
    pub fn get(&self, ino: &u64) -> Option<&InodeRec> {
        self.index.get(ino).and_then(|&l| self.at(l))
    }

    /// The record of `ino`, to change.
    pub fn get_mut(&mut self, ino: &u64) -> Option<&mut InodeRec> {
        self.version = next_version();
        let l = *self.index.get(ino)?;
        self.runs.get_mut(l.0)?.get_mut(l.1).map(|e| &mut e.1)
    }

    /// Whether `ino` is live.
    pub fn contains_key(&self, ino: &u64) -> bool {
        self.index.contains_key(ino)
    }

    /// Sets the record of `ino`.
    pub fn insert(&mut self, ino: u64, rec: InodeRec) {
        self.version = next_version();
        if let Some(old) = self.get_mut(&ino) {
            *old = rec;
            return;
        }
        if self.runs.is_empty() {
            self.runs.push(Vec::new());
        }
        let r = self.runs.len() - 1;
        if let Some(run) = self.runs.last_mut() {
            self.index.insert(ino, Loc(r, run.len()));
            run.push((ino, rec));
        }
    }

    /// Forgets `ino`'s record.
    pub fn remove(&mut self, ino: &u64) {
        self.version = next_version();
        self.index.remove(ino);
    }

    /// A number that changes whenever the map may have: a [`LiveIndex`]
    /// built at one version is valid while it does not move.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Numbers and records, in number order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { index: self.index.iter(), map: self }
    }

    /// Records, in number order.
    pub fn values(&self) -> impl Iterator<Item = &InodeRec> {
        self.iter().map(|(_, r)| r)
    }

    /// Adds (or replaces) records.
    pub fn extend(&mut self, items: impl IntoIterator<Item = (u64, InodeRec)>) {
        for (ino, rec) in items {
            self.insert(ino, rec);
        }
    }
}

/// [`InodeMap::iter`].
pub struct Iter<'a> {
    index: btree_map::Iter<'a, u64, Loc>,
    map: &'a InodeMap,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a u64, &'a InodeRec);
    fn next(&mut self) -> Option<Self::Item> {
        // Every location in the index is in a run (`from_runs`, `insert`).
        self.index.by_ref().find_map(|(ino, &l)| Some((ino, self.map.at(l)?)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.index.len()))
    }
}

#[cfg(test)]
impl std::ops::Index<&u64> for InodeMap {
    type Output = InodeRec;
    /// The record of a live inode (tests: panics otherwise).
    fn index(&self, ino: &u64) -> &InodeRec {
        self.get(ino).expect("inode not live")
    }
}

impl<'a> IntoIterator for &'a InodeMap {
    type Item = (&'a u64, &'a InodeRec);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The live inodes by position in number order (the order of
/// `Fsck::inodes`), so that a pass can count or mark per inode in a flat
/// array instead of a map lookup per name. A snapshot: inodes created
/// after it are not in it.
pub struct LiveIndex {
    inos: Vec<u64>,
    modes: Vec<u32>,
    /// Position + 1 by inode number (0: not live), when the numbers are
    /// dense enough for it to cost at most 64 bytes a live inode; else
    /// empty and positions are found by binary search.
    dense: Vec<u32>,
}

impl LiveIndex {
    /// The index of `inodes`.
    pub fn new(inodes: &InodeMap) -> Self {
        let (inos, modes) = inodes.iter().map(|(&i, r)| (i, r.view.mode)).unzip();
        Self::from_parts(inos, modes)
    }

    /// The index of inodes `inos` (ascending) with modes `modes`.
    fn from_parts(inos: Vec<u64>, modes: Vec<u32>) -> Self {
        let max = inos.last().copied().unwrap_or(0);
        let dense_ok = u32::try_from(inos.len()).is_ok()
            && max < (inos.len() as u64).saturating_mul(16).saturating_add(1024);
        let mut dense = Vec::new();
        if dense_ok {
            dense = vec![0u32; max as usize + 1];
            for (i, &ino) in inos.iter().enumerate() {
                if let Some(d) = dense.get_mut(ino as usize) {
                    *d = i as u32 + 1;
                }
            }
        }
        Self { inos, modes, dense }
    }

    /// Live inodes.
    pub fn len(&self) -> usize {
        self.inos.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inos.is_empty()
    }

    /// The position of `ino`, if it was live.
    pub fn find(&self, ino: u64) -> Option<usize> {
        if self.dense.is_empty() {
            return self.inos.binary_search(&ino).ok();
        }
        let p = *self.dense.get(usize::try_from(ino).ok()?)?;
        p.checked_sub(1).map(|p| p as usize)
    }

    /// The inode at position `i`.
    pub fn ino(&self, i: usize) -> u64 {
        self.inos.get(i).copied().unwrap_or(0)
    }

    /// The mode (type and permissions) of the inode at position `i`.
    pub fn mode(&self, i: usize) -> u32 {
        self.modes.get(i).copied().unwrap_or(0)
    }

    /// Whether the inode at position `i` is a directory.
    pub fn is_dir(&self, i: usize) -> bool {
        self.mode(i) & S_IFMT == S_IFDIR
    }
}

/// Byte position of the `next` word of log page `block`.
pub fn next_word_pos(block: u64) -> u64 {
    block.saturating_mul(BLOCK_SIZE_U64).saturating_add(PAGE_NEXT_OFF as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_map_overrides_and_splits() {
        let mut m = ExtentMap::default();
        m.map(0, 100, 10);
        m.map(3, 200, 2);
        assert_eq!(
            m.extents(),
            vec![
                Extent { pgoff: 0, block: 100, count: 3, unwritten: false },
                Extent { pgoff: 3, block: 200, count: 2, unwritten: false },
                Extent { pgoff: 5, block: 105, count: 5, unwritten: false }
            ]
        );
        m.unmap(4, 100);
        assert_eq!(
            m.extents(),
            vec![
                Extent { pgoff: 0, block: 100, count: 3, unwritten: false },
                Extent { pgoff: 3, block: 200, count: 1, unwritten: false }
            ]
        );
        m.unmap(0, u64::MAX);
        assert!(m.extents().is_empty());
        m.map(u64::MAX - 1, 5, 10);
        m.unmap(u64::MAX - 3, 2);
        assert_eq!(m.extents().len(), 1);
    }

    #[test]
    fn unwritten_extents_split_by_a_write() {
        let mut m = ExtentMap::default();
        m.map_unwritten(0, 100, 8);
        m.map(2, 102, 1);
        let x = |pgoff, block, count, unwritten| Extent { pgoff, block, count, unwritten };
        assert_eq!(m.extents(), vec![x(0, 100, 2, true), x(2, 102, 1, false), x(3, 103, 5, true)]);
        m.unmap(4, 1);
        assert_eq!(
            m.extents(),
            vec![x(0, 100, 2, true), x(2, 102, 1, false), x(3, 103, 1, true), x(5, 105, 3, true)]
        );
    }

    /// A seeded xorshift generator: `rand(n)` is below `n`.
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// The map against a page-by-page model, through the move from the
    /// vector to the tree: random maps, unwritten maps and unmaps.
    #[test]
    fn extent_map_matches_a_page_model() {
        const PAGES: u64 = 256;
        let mut rand = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut big = 0;
        for round in 0..300 {
            let mut m = ExtentMap::default();
            let mut pages: Vec<Option<(u64, bool)>> = vec![None; PAGES as usize];
            let ops = 1 + rand(if round % 3 == 0 { 400 } else { 40 });
            for op in 0..ops {
                let pgoff = rand(PAGES);
                let count = 1 + rand(PAGES - pgoff).min(rand(24));
                let block = 10_000 + op * 1000;
                let kind = rand(4);
                match kind {
                    0 => m.unmap(pgoff, count),
                    1 => m.map_unwritten(pgoff, block, count),
                    _ => m.map(pgoff, block, count),
                }
                for k in 0..count {
                    pages[(pgoff + k) as usize] = (kind != 0).then_some((block + k, kind == 1));
                }
                let mut want = vec![None; PAGES as usize];
                let xs = m.extents();
                for w in xs.windows(2) {
                    assert!(w[0].pgoff + w[0].count <= w[1].pgoff, "round {round}: {xs:?}");
                }
                for x in &xs {
                    assert!(x.count > 0);
                    for k in 0..x.count {
                        want[(x.pgoff + k) as usize] = Some((x.block + k, x.unwritten));
                    }
                }
                assert_eq!(want, pages, "round {round}, op {op}");
            }
            big += usize::from(matches!(m.0, Extents::Big(_)));
            assert_eq!(&*m.clone().into_extents(), &m.extents()[..]);
            assert_eq!(FileExtents::from(m.extents()).len(), m.extents().len());
            assert_eq!(ExtentMap::from_extents(&m.extents()).extents(), m.extents());
        }
        assert!(big > 0, "no map grew past the vector");
    }

    #[test]
    fn live_index_dense_and_sparse() {
        let dense = LiveIndex::from_parts(vec![1, 2, 5, 9], vec![S_IFDIR, S_IFREG, S_IFREG, 0]);
        assert!(!dense.dense.is_empty());
        let sparse =
            LiveIndex::from_parts(vec![1, 2, 5, 1 << 40], vec![S_IFDIR, S_IFREG, S_IFREG, 0]);
        assert!(sparse.dense.is_empty());
        for idx in [&dense, &sparse] {
            assert_eq!(idx.find(1), Some(0));
            assert_eq!(idx.find(5), Some(2));
            assert_eq!(idx.find(3), None);
            assert_eq!(idx.find(0), None);
            assert_eq!(idx.find(u64::MAX), None);
            assert!(idx.is_dir(0) && !idx.is_dir(1) && !idx.is_dir(7));
            assert_eq!((idx.len(), idx.ino(3) == 9 || idx.ino(3) == 1 << 40), (4, true));
        }
        assert_eq!(dense.find(9), Some(3));
        assert_eq!(sparse.find(1 << 40), Some(3));
    }

    /// Settling collected entries gives what replaying them into the tree
    /// gives: the same names, the same faults in the same order.
    #[test]
    fn dir_ops_settle_like_a_replay() {
        let mut rand = xorshift(0x2545_f491_4f6c_dd1d);
        let long = [b'x'; 40];
        for round in 0..500 {
            let (mut ops, mut tree) = (DirOps::default(), DirNames::default());
            for k in 0..rand(60) {
                let n = rand(12);
                // Some names longer than the inline ones.
                let name: Vec<u8> = if n >= 10 {
                    [&long[..], &[b'0' + n as u8]].concat()
                } else {
                    vec![b'a' + n as u8; 1 + n as usize]
                };
                let ino = 1 + rand(3);
                let pos = 1000 + k;
                ops.cur_pos = pos;
                tree.cur_pos = pos;
                if rand(3) == 0 {
                    ops.remove(&name, ino);
                    tree.remove(&name, ino);
                } else {
                    ops.add(&name, ino, 1, k);
                    tree.add(&name, ino, 1, k);
                }
            }
            let got = ops.settle();
            assert_eq!(got.names, tree.names, "round {round}");
            assert_eq!(got.faults, tree.faults, "round {round}");
        }
        // Adds in name order (no sort), then the same with a duplicate.
        for dup in [false, true] {
            let (mut ops, mut tree) = (DirOps::default(), DirNames::default());
            let mut names: Vec<Vec<u8>> =
                (0..50u8).map(|i| vec![b'a' + i / 10, b'0' + i % 10]).collect();
            if dup {
                names.insert(20, names[19].clone());
            }
            for (k, n) in names.iter().enumerate() {
                ops.add(n, k as u64 + 10, 1, 0);
                tree.add(n, k as u64 + 10, 1, 0);
            }
            let got = ops.settle();
            assert_eq!((got.names.len(), got.faults.len()), (50, usize::from(dup)));
            assert_eq!((got.names, got.faults), (tree.names, tree.faults));
        }
    }

    #[test]
    fn dir_names_first_binding_wins() {
        let mut d = DirNames::default();
        d.add(b"a", 5, 8, 1);
        d.cur_pos = 77;
        d.add(b"a", 6, 8, 2);
        d.remove(b"b", 5);
        d.remove(b"a", 6);
        assert_eq!(d.names.get(&b"a"[..]).map(|d| d.ino), Some(5));
        assert_eq!(d.faults.len(), 3);
        assert!(d.faults[0].duplicate && d.faults[0].pos == 77);
        d.remove(b"a", 5);
        assert!(d.names.is_empty());
    }
}
