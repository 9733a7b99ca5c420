//! Synthetic traces: the kernel's operations emulated as the stores,
//! flushes and fences `layout/FORMAT.md` prescribes.
//!
//! [`Synth`] starts from a mounted image (see [`mark_mounted`]), keeps the
//! image the CPU sees, and for each operation emits exactly the records a
//! tracing kernel must emit, wrapped in `OP_BEGIN`/`OP_END`. It is the
//! reference for the kernel's persistence sequences (the tests check that a
//! trace of it has no violation in any crash image) and, with [`Faults`],
//! the source of deliberately broken traces the checker must catch.
//!
//! The sequences, with `S` store, `N` non-temporal store, `F` flush
//! (clwb of the range), `B` fence (sfence):
//!
//! **Log append** (one inode; `write`, `truncate`, ...), [`Synth::append`]:
//! ```text
//! [log empty (log_tail == 0)]  new page P: S P.tail(owner, gen, ordinal 0); F
//! [entry does not fit]         new page P: S P.tail(ordinal+1); F; S old.next = pack_next(P, used); F
//! S entry; F entry
//! [log was empty]              S inode.log_head = P; F
//! B
//! S inode.log_tail; F; B                       -- committed
//! ```
//! **Write** (copy on write, whole blocks): allocate new blocks, merge the
//! old contents of partial head/tail blocks into them, `N` every new block
//! (one record per extent); `B`; then a log append of one `WRITE` entry.
//!
//! **Write fault** through a mapping, on a hole ([`Synth::fault`], `mmap.rs`):
//! `N` the new block's zeros, then a log append of one `WRITE` entry (its
//! first fence orders the zeros too), all inside the fault. A store the
//! program then makes durable itself and reports is one `USER_STORE`
//! record ([`Synth::user_store`]).
//!
//! **Journal transaction** (create, mkdir, symlink, link, unlink, rmdir,
//! rename), [`Synth::transaction`], on lane 0:
//! ```text
//! [new inode]   S inode record (256 bytes, state FREE); F
//! step 1:       S journal header + entries {pos, old} (32 + 16 n bytes, state 0); F; B
//! step 2:       S journal.state = seq; F; B                         -- open
//! step 3:       per log: page work and S entry; F entry (as above, no fence)
//!               per word: S word (log_tail, log_head of a first page, inode state); F
//!               B
//! step 4:       S journal.state = 0; F; B                           -- committed
//! ```
//! The journaled words are every `log_tail` that moves, every `log_head`
//! that is set, and the inode `state` of a new inode (FREE -> LIVE).
//!
//! Entries per operation: create/mknod/symlink: parent `DENTRY ADD`; mkdir:
//! parent `DENTRY ADD` + `LINK` (nlink + 1); link: dir `DENTRY ADD`, target
//! `LINK`; unlink: dir `DENTRY DEL`, target `LINK`; rmdir: parent
//! `DENTRY DEL` + `LINK`, dir `LINK 0`; rename: source `DENTRY DEL`;
//! destination `DENTRY DEL` of a replaced name, `DENTRY ADD`; a moved
//! directory gets `PARENT` and both parents `LINK`; a replaced file `LINK`.
//!
//! **Extended attribute** ([`Synth::setxattr`], [`Synth::removexattr`],
//! `xattr.rs`): a value over 512 bytes is `N` into new blocks (one
//! record), then a log append of one `XATTR` entry (its first fence orders
//! the value too); blocks of a replaced value are free once it commits.
//! **Inode flags** ([`Synth::setflags`], `iflags.rs`): a log append of one
//! `FLAGS` entry.
//!
//! **Evict**, as the kernel's: an inode whose link count reached 0 (and
//! that nothing holds open) gets `S state = FREE; F; B` after the
//! operation's commit. A crash before it leaves an orphan the next mount
//! frees.

use std::collections::{BTreeMap, HashSet};

use layout::append::{
    self, AppendError, LogEnd, LogMedium, LogOwner, NewEntry, SetAttrs, XattrValue,
};
use layout::inode::{
    dt_of_mode, Inode, Timespec, INODE_FREE, INODE_INLINE_OFF, INODE_LIVE, S_IFDIR, S_IFLNK,
    S_IFMT, S_IFREG,
};
use layout::journal::{self, JournalEntry, JOURNAL_STATE_OFF};
use layout::log::Entry;
use layout::log::{pos_block, pos_offset, sa, PageTail, DE_ADD, DE_DEL, LOG_AREA};
use layout::media::SliceMedia;
use layout::trace::op;
use layout::walk::{walk_log, LogVisitor, WalkReport};
use layout::{read_u64, Geometry, Superblock, BLOCK_SIZE, BLOCK_SIZE_U64};
use novars_fsck::tree::Reader;

use crate::trace::TraceWriter;

/// Result of a synthetic operation.
pub type Result<T> = std::result::Result<T, String>;

/// Clears CLEAN in both superblocks: what mount makes durable before any
/// allocation, so the base image of a trace is a mounted file system.
pub fn mark_mounted(img: &mut [u8]) -> Result<()> {
    let blocks = (img.len() / BLOCK_SIZE) as u64;
    let (mut sb, geo) = Superblock::parse(img.get(..BLOCK_SIZE).ok_or("image too small")?, blocks)
        .map_err(|e| e.describe().to_string())?;
    sb.state &= !layout::sb::STATE_CLEAN;
    for b in [0, geo.backup_sb()] {
        let s = b as usize * BLOCK_SIZE;
        sb.write_block(img.get_mut(s..s + BLOCK_SIZE).ok_or("backup superblock off the image")?);
    }
    Ok(())
}

/// Deliberate protocol faults, for showing that the checker catches them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Omit the `n`th flush (from 0) of operation number `op`.
    pub drop_flush: Option<(u32, usize)>,
    /// Omit the `n`th fence (from 0) of operation number `op`.
    pub drop_fence: Option<(u32, usize)>,
    /// Log appends store and commit `log_tail` before writing the entry.
    pub tail_before_entry: bool,
    /// A rename over an existing name in the same directory rewrites the
    /// existing `DENTRY ADD`'s inode number (and checksum) in place, then
    /// appends the removal of the old name, without a transaction.
    pub dentry_in_place: bool,
    /// A rename between two directories appends to each log with its own
    /// commit instead of one journal transaction.
    pub rename_without_journal: bool,
    /// `write` copies the data's last cache line with cached stores and no
    /// flush (the anchors' "unaligned tail of a write not flushed").
    pub unflushed_write_tail: bool,
}

/// What one emitted operation consisted of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpInfo {
    pub nr: u32,
    pub code: u64,
    /// What each flush and fence was for, in order (before any fault
    /// dropped one): the index is what [`Faults`] names.
    pub flushes: Vec<&'static str>,
    pub fences: Vec<&'static str>,
}

/// A log entry to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ent {
    Write {
        pgoff: u64,
        block: u64,
        count: u32,
        size_after: u64,
    },
    Size {
        size: u64,
    },
    Link {
        nlink: u32,
    },
    Add {
        ino: u64,
        ftype: u8,
        name: Vec<u8>,
    },
    Del {
        ino: u64,
        ftype: u8,
        name: Vec<u8>,
    },
    Parent {
        parent: u64,
    },
    /// Attribute `name` of namespace `index` (`layout::log::xa`).
    Xattr {
        index: u8,
        name: Vec<u8>,
        value: XVal,
    },
    Flags {
        flags: u32,
        projid: u32,
    },
}

/// What an [`Ent::Xattr`] says of the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XVal {
    Inline(Vec<u8>),
    Blocks { block: u64, len: u32 },
    Removed,
}

/// One step of writing entries into a log.
#[derive(Clone, Debug)]
enum Step {
    /// A new page: its tail, and the previous page to seal (`next` word
    /// position, value).
    Page { block: u64, tail: PageTail, seal: Option<(u64, u64)> },
    /// An entry at a position.
    Entry { pos: u64, bytes: Vec<u8> },
}

impl Ent {
    /// The format's entry, with every time `t`.
    fn entry(&self, t: Timespec) -> NewEntry<'_> {
        match self {
            Ent::Write { pgoff, block, count, size_after } => NewEntry::Write {
                flags: 0,
                pgoff: *pgoff,
                block: *block,
                count: *count,
                size_after: *size_after,
                mtime: t,
            },
            Ent::Size { size } => NewEntry::SetAttr(SetAttrs {
                size: *size,
                atime: t,
                mtime: t,
                ctime: t,
                ..SetAttrs::only(sa::SIZE | sa::MTIME | sa::CTIME)
            }),
            Ent::Link { nlink } => NewEntry::Link { nlink: *nlink, ctime: t },
            Ent::Add { ino, ftype, name } => {
                NewEntry::Dentry { op: DE_ADD, ino: *ino, ftype: *ftype, mtime: t, name }
            }
            Ent::Del { ino, ftype, name } => {
                NewEntry::Dentry { op: DE_DEL, ino: *ino, ftype: *ftype, mtime: t, name }
            }
            Ent::Parent { parent } => NewEntry::Parent { parent: *parent, ctime: t },
            Ent::Xattr { index, name, value } => NewEntry::Xattr {
                index: *index,
                name,
                value: match value {
                    XVal::Inline(v) => XattrValue::Inline(v),
                    XVal::Blocks { block, len } => XattrValue::Blocks { block: *block, len: *len },
                    XVal::Removed => XattrValue::Removed,
                },
                ctime: t,
            },
            Ent::Flags { flags, projid } => {
                NewEntry::Flags { flags: *flags, projid: *projid, ctime: t }
            }
        }
    }
}

/// The medium `layout::append` writes to when the synthesiser plans an
/// append: it records page tails, page seals and entries as [`Step`]s,
/// which the operation then emits in the order its protocol prescribes.
struct Recorder<'s> {
    synth: &'s mut Synth,
    steps: Vec<Step>,
    /// The inline area of the owner's record, `[start, end)`: entries of
    /// a slot log (FORMAT.md "Slot logs"), not page tails.
    inline: (u64, u64),
}

impl LogMedium for Recorder<'_> {
    type Error = String;

    fn error(e: AppendError) -> String {
        format!("log append failed ({e:?})")
    }

    fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result<()> {
        // The image, with the entries planned so far on top.
        let s = pos as usize;
        buf.copy_from_slice(self.synth.img.get(s..s + buf.len()).ok_or("read past the image")?);
        for st in &self.steps {
            if let Step::Entry { pos: at, bytes } = st {
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(d) =
                        (at + i as u64).checked_sub(pos).and_then(|o| buf.get_mut(o as usize))
                    {
                        *d = *b;
                    }
                }
            }
        }
        Ok(())
    }

    fn alloc_page(&mut self) -> Result<u64> {
        self.synth.alloc_blocks(1)
    }

    fn write_nt(&mut self, pos: u64, bytes: &[u8]) -> Result<()> {
        let in_slot = (self.inline.0..self.inline.1).contains(&pos);
        if !in_slot && pos_offset(pos) >= LOG_AREA {
            let tail = PageTail::decode(bytes).ok_or("short page tail")?;
            self.steps.push(Step::Page { block: pos_block(pos), tail, seal: None });
        } else {
            self.steps.push(Step::Entry { pos, bytes: bytes.to_vec() });
        }
        Ok(())
    }

    fn store_u64(&mut self, pos: u64, v: u64) -> Result<()> {
        // The only cached store of an append seals the previous page,
        // right after the new page's tail.
        match self.steps.last_mut() {
            Some(Step::Page { seal, .. }) if seal.is_none() => {
                *seal = Some((pos, v));
                Ok(())
            }
            _ => Err("page seal without a new page".into()),
        }
    }

    fn flush(&mut self, _pos: u64, _len: u64) -> Result<()> {
        Ok(())
    }

    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Where a log's entries go.
#[derive(Clone, Debug)]
struct Plan {
    inode_pos: u64,
    steps: Vec<Step>,
    /// A first page: `log_head` to set.
    head: Option<u64>,
    tail: u64,
}

/// Counts pages and remembers the positions of DENTRY ADD entries.
#[derive(Default)]
struct LogScan {
    pages: u64,
    last_seq: u64,
    adds: BTreeMap<Vec<u8>, (u64, usize)>,
}

impl LogVisitor for LogScan {
    fn page(&mut self, _block: u64, _ordinal: u64) {
        self.pages += 1;
    }
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        self.last_seq = e.hdr().seq;
        if let Entry::Dentry(d, name) = e {
            if d.hdr.flags == DE_ADD {
                self.adds.insert(name.to_vec(), (pos, d.hdr.len as usize));
            } else {
                self.adds.remove(*name);
            }
        }
    }
}

/// An inode as the emulation needs it.
#[derive(Clone, Debug)]
struct Node {
    ino: u64,
    pos: u64,
    inode: Inode,
    mode: u32,
    nlink: u32,
    size: u64,
    extents: Vec<novars_fsck::model::Extent>,
    names: BTreeMap<Vec<u8>, u64>,
}

/// Emulates the kernel on an image, recording the trace.
pub struct Synth {
    img: Vec<u8>,
    geo: Geometry,
    w: TraceWriter,
    faults: Faults,
    used: HashSet<u64>,
    cursor: u64,
    taken_inos: HashSet<u64>,
    jseq: u64,
    op: u32,
    flushes: Vec<&'static str>,
    fences: Vec<&'static str>,
    ops: Vec<OpInfo>,
    now: i64,
    /// The superblock says CLEAN: only [`Synth::mount`] may run.
    clean: bool,
}

impl Synth {
    /// Starts from `base`: a mounted image (CLEAN cleared, see
    /// [`mark_mounted`]), or a clean one on which [`Synth::mount`] runs
    /// first.
    pub fn new(base: &[u8], faults: Faults) -> Result<Self> {
        let r = Reader::new(base)?;
        let clean = r.sb.state & layout::sb::STATE_CLEAN != 0;
        let geo = r.geo;
        let mut used = HashSet::new();
        for lane in &r.segments {
            for &seg in lane {
                used.extend(seg..seg + geo.seg_blocks());
            }
        }
        for item in r.list().values() {
            let Some(l) = r.load(item.ino) else { continue };
            let mut pages = PageList::default();
            let _ = walk_log(&r.m, &geo, item.ino, &l.inode, &mut pages);
            used.extend(pages.0);
            if l.inode.log_head != 0 {
                used.insert(l.inode.log_head);
            }
            for x in &l.extents {
                used.extend(x.block..x.block + x.count);
            }
            for (b, n) in l.xattrs.0.values().filter_map(|v| v.blocks()) {
                used.extend(b..b + n);
            }
        }
        let jb = geo.journal_block(0) as usize * BLOCK_SIZE;
        let jseq = read_u64(base, jb + 16).unwrap_or(0) + 1;
        Ok(Self {
            img: base.to_vec(),
            geo,
            w: TraceWriter::new(),
            faults,
            used,
            cursor: geo.first_data_block,
            taken_inos: HashSet::new(),
            jseq,
            op: 0,
            flushes: Vec::new(),
            fences: Vec::new(),
            ops: Vec::new(),
            now: 1_700_000_000,
            clean,
        })
    }

    /// The image the CPU sees now (every store applied).
    pub fn image(&self) -> &[u8] {
        &self.img
    }

    /// The trace so far.
    pub fn trace(&self) -> Vec<u8> {
        self.w.finish()
    }

    /// The operations emitted so far.
    pub fn ops(&self) -> &[OpInfo] {
        &self.ops
    }

    // ---- the persistence primitives (what the kernel's pm.rs does) ----

    fn store(&mut self, pos: u64, data: &[u8]) {
        let s = pos as usize;
        if let Some(d) = self.img.get_mut(s..s + data.len()) {
            d.copy_from_slice(data);
        }
        self.w.store(pos, data);
    }

    fn nt_store(&mut self, pos: u64, data: &[u8]) {
        let s = pos as usize;
        if let Some(d) = self.img.get_mut(s..s + data.len()) {
            d.copy_from_slice(data);
        }
        self.w.nt_store(pos, data);
    }

    fn flush(&mut self, pos: u64, len: usize, what: &'static str) {
        let n = self.flushes.len();
        self.flushes.push(what);
        if self.faults.drop_flush != Some((self.op, n)) {
            self.w.flush(pos, len as u32);
        }
    }

    fn fence(&mut self, what: &'static str) {
        let n = self.fences.len();
        self.fences.push(what);
        if self.faults.drop_fence != Some((self.op, n)) {
            self.w.fence();
        }
    }

    fn persist(&mut self, pos: u64, data: &[u8], what: &'static str) {
        self.store(pos, data);
        self.flush(pos, data.len(), what);
    }

    fn persist_u64(&mut self, pos: u64, v: u64, what: &'static str) {
        self.persist(pos, &v.to_le_bytes(), what);
    }

    fn begin(&mut self, code: u64) -> Result<()> {
        if self.clean && code != op::MOUNT {
            return Err("the file system is not mounted (CLEAN): call mount first".into());
        }
        self.op += 1;
        self.flushes.clear();
        self.fences.clear();
        self.now += 1;
        self.w.op_begin(code, self.op);
        Ok(())
    }

    fn end(&mut self, code: u64) {
        self.w.op_end(code, self.op);
        let (flushes, fences) =
            (std::mem::take(&mut self.flushes), std::mem::take(&mut self.fences));
        self.ops.push(OpInfo { nr: self.op, code, flushes, fences });
    }

    // ---- reading the current state ----

    fn reader(&self) -> Result<Reader<'_>> {
        Reader::new(&self.img)
    }

    fn node(&self, ino: u64) -> Result<Node> {
        let r = self.reader()?;
        let l = r.load(ino).ok_or_else(|| format!("inode {ino} is not live"))?;
        Ok(Node {
            ino,
            pos: l.pos,
            inode: l.inode,
            mode: l.view.mode,
            nlink: l.view.nlink,
            size: l.view.size,
            extents: l.extents.clone(),
            names: l.names.names.iter().map(|(n, d)| (n.to_vec(), d.ino)).collect(),
        })
    }

    /// The inode at `path` (from the root, `/`-separated).
    pub fn lookup(&self, path: &str) -> Result<u64> {
        self.reader()?.lookup(path).ok_or_else(|| format!("{path}: no such file"))
    }

    fn scan(&self, n: &Node) -> LogScan {
        let mut s = LogScan::default();
        let _ = walk_log(&SliceMedia::new(&self.img), &self.geo, n.ino, &n.inode, &mut s);
        s
    }

    fn time(&self) -> Timespec {
        Timespec::new(self.now, 0)
    }

    // ---- allocation (DRAM only: nothing persistent) ----

    fn alloc_blocks(&mut self, count: u64) -> Result<u64> {
        let mut start = self.cursor;
        loop {
            if !self.geo.is_data_range(start, count) {
                return Err("out of blocks".into());
            }
            match (start..start + count).find(|b| self.used.contains(b)) {
                Some(b) => start = b + 1,
                None => break,
            }
        }
        self.used.extend(start..start + count);
        self.cursor = start + count;
        Ok(start)
    }

    fn alloc_ino(&mut self) -> Result<(u64, u64)> {
        let r = Reader::new(&self.img)?;
        for ino in 3u64.. {
            let pos = r.slot_pos(ino).ok_or("out of inode slots")?;
            if self.taken_inos.contains(&ino) {
                continue;
            }
            if read_u64(&self.img, pos as usize) == Some(INODE_FREE) {
                self.taken_inos.insert(ino);
                return Ok((ino, pos));
            }
        }
        Err("out of inode slots".into())
    }

    // ---- logs ----

    /// Where `ents` go in `n`'s log: `layout::append` run against a
    /// [`Recorder`] (pages allocated in DRAM).
    fn plan(&mut self, n: &Node, ents: &[Ent]) -> Result<Plan> {
        let scan = self.scan(n);
        let t = self.time();
        let owner = LogOwner::of(&self.geo, n.ino, &n.inode, n.pos);
        let rep =
            WalkReport { pages: scan.pages, last_seq: scan.last_seq, ..WalkReport::default() };
        let old = LogEnd::walked(n.inode.log_head, n.inode.log_tail, &rep);
        let mut end = old;
        let inline = n.pos + INODE_INLINE_OFF;
        let mut rec = Recorder { synth: self, steps: Vec::new(), inline: (inline, n.pos + 256) };
        for e in ents {
            append::append(&mut rec, owner, &mut end, &e.entry(t))?;
        }
        // The head word when the commit stores one (a log's first page).
        let (words, nw) = append::commit_words(n.pos, &old, &end);
        let head = (nw == 2).then_some(words[0].1);
        Ok(Plan { inode_pos: n.pos, steps: rec.steps, head, tail: end.tail })
    }

    /// Emits a plan's page work; the entries too unless `entries` is false.
    fn write_plan(&mut self, p: &Plan, entries: bool) {
        for s in &p.steps {
            match s {
                Step::Page { block, tail, seal } => {
                    let mut b = [0u8; PageTail::SIZE];
                    tail.encode(&mut b);
                    self.persist(block * BLOCK_SIZE_U64 + LOG_AREA as u64, &b, "page tail");
                    if let Some((pos, v)) = seal {
                        self.persist_u64(*pos, *v, "page seal");
                    }
                }
                Step::Entry { pos, bytes } if entries => self.persist(*pos, bytes, "entry"),
                Step::Entry { .. } => {}
            }
        }
    }

    fn write_entries(&mut self, p: &Plan) {
        for s in &p.steps {
            if let Step::Entry { pos, bytes } = s {
                self.persist(*pos, bytes, "entry");
            }
        }
    }

    /// Log append to one inode, committed by its tail (no journal).
    pub fn append(&mut self, ino: u64, ents: &[Ent]) -> Result<()> {
        let n = self.node(ino)?;
        let p = self.plan(&n, ents)?;
        self.commit_plan(&p);
        Ok(())
    }

    fn commit_plan(&mut self, p: &Plan) {
        if self.faults.tail_before_entry {
            self.write_plan(p, false);
            if let Some(h) = p.head {
                self.persist_u64(p.inode_pos + 8, h, "log_head");
            }
            self.fence("before tail");
            self.persist_u64(p.inode_pos + 16, p.tail, "log_tail");
            self.fence("after tail");
            self.write_entries(p);
            self.fence("after entries");
            return;
        }
        self.write_plan(p, true);
        if let Some(h) = p.head {
            self.persist_u64(p.inode_pos + 8, h, "log_head");
        }
        self.fence("before tail");
        self.persist_u64(p.inode_pos + 16, p.tail, "log_tail");
        self.fence("after tail");
    }

    /// A journal transaction over the logs of `logs` plus the extra words
    /// `words` (`(position, new value)`), steps 1-4 of FORMAT.md.
    pub fn transaction(&mut self, logs: &[(u64, Vec<Ent>)], words: &[(u64, u64)]) -> Result<()> {
        let mut plans = Vec::new();
        for (ino, ents) in logs {
            let n = self.node(*ino)?;
            plans.push(self.plan(&n, ents)?);
        }
        let mut all: Vec<(u64, u64, &'static str)> = Vec::new();
        for p in &plans {
            if let Some(h) = p.head {
                all.push((p.inode_pos + 8, h, "log_head"));
            }
            all.push((p.inode_pos + 16, p.tail, "log_tail"));
        }
        all.extend(words.iter().map(|&(pos, v)| (pos, v, "inode state")));
        let entries: Vec<JournalEntry> = all
            .iter()
            .map(|&(pos, _, _)| JournalEntry {
                pos,
                old: read_u64(&self.img, pos as usize).unwrap_or(0),
            })
            .collect();
        let jpos = self.geo.journal_block(0) * BLOCK_SIZE_U64;
        let seq = self.jseq;
        self.jseq += 1;
        let mut buf = vec![0u8; journal::tx_len(entries.len())];
        if !journal::build(&mut buf, 0, seq, &entries) {
            return Err("transaction too large".into());
        }
        // Keep the rest of the header (state) as it is: build wrote state 0.
        self.persist(jpos, &buf, "journal entries");
        self.fence("after journal entries");
        self.persist_u64(jpos + JOURNAL_STATE_OFF as u64, seq, "journal open");
        self.fence("after journal open");
        for p in &plans {
            self.write_plan(p, true);
        }
        for &(pos, v, what) in &all {
            self.persist_u64(pos, v, what);
        }
        self.fence("after transaction body");
        self.persist_u64(jpos + JOURNAL_STATE_OFF as u64, 0, "journal commit");
        self.fence("after journal commit");
        Ok(())
    }

    // ---- operations ----

    fn split(path: &str) -> Result<(&str, &[u8])> {
        let p = path.trim_end_matches('/');
        let i = p.rfind('/').ok_or_else(|| format!("{path}: not an absolute path"))?;
        Ok((if i == 0 { "/" } else { &p[..i] }, &p.as_bytes()[i + 1..]))
    }

    fn new_inode(&mut self, mode: u32, parent: u64, target: Option<&[u8]>) -> Result<(u64, u64)> {
        let (ino, pos) = self.alloc_ino()?;
        let old_gen = self
            .img
            .get(pos as usize + 40..pos as usize + 44)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let mut i = Inode::zeroed();
        i.ino = ino;
        i.generation = old_gen.unwrap_or(0).wrapping_add(1);
        i.mode = mode;
        i.nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        i.parent = if mode & S_IFMT == S_IFDIR { parent } else { 0 };
        let t = self.time();
        (i.atime, i.mtime, i.ctime, i.btime) = (t, t, t, t);
        if let Some(t) = target {
            if t.len() > layout::inode::INLINE_MAX || t.is_empty() {
                return Err("symlink target must be 1..=96 bytes".into());
            }
            i.inline[..t.len()].copy_from_slice(t);
            i.inline_len = t.len() as u32;
            i.size = t.len() as u64;
        }
        i.seal();
        let mut b = [0u8; Inode::SIZE];
        i.encode(&mut b);
        self.persist(pos, &b, "inode record");
        Ok((ino, pos))
    }

    fn create_kind(
        &mut self,
        code: u64,
        path: &str,
        mode: u32,
        target: Option<&[u8]>,
    ) -> Result<u64> {
        let (dir, name) = Self::split(path)?;
        let d = self.lookup(dir)?;
        let dn = self.node(d)?;
        if dn.names.contains_key(name) {
            return Err(format!("{path}: exists"));
        }
        self.begin(code)?;
        let (ino, pos) = self.new_inode(mode, d, target)?;
        let ftype = dt_of_mode(mode).ok_or("bad mode")?;
        let mut ents = vec![Ent::Add { ino, ftype, name: name.to_vec() }];
        if mode & S_IFMT == S_IFDIR {
            ents.push(Ent::Link { nlink: dn.nlink + 1 });
        }
        self.transaction(&[(d, ents)], &[(pos, INODE_LIVE)])?;
        self.end(code);
        Ok(ino)
    }

    /// `mount`: clears CLEAN in the primary superblock, then in the backup
    /// (FORMAT.md: "primary first, flushed, then the backup"), before any
    /// allocation. The superblock's checksum covers its `state`, so this is
    /// two cache lines that can land apart.
    pub fn mount(&mut self) -> Result<()> {
        let blocks = (self.img.len() / BLOCK_SIZE) as u64;
        let (mut sb, geo) = Superblock::parse(&self.img[..BLOCK_SIZE], blocks)
            .map_err(|e| e.describe().to_string())?;
        self.begin(op::MOUNT)?;
        sb.state &= !layout::sb::STATE_CLEAN;
        sb.mount_count += 1;
        sb.mount_time = self.now;
        // As the kernel does (FORMAT.md): the mutable words are outside the
        // checksum and change by 8-byte stores, `state` first, each in the
        // primary and then the backup.
        let copies = [0, geo.backup_sb() * BLOCK_SIZE_U64];
        for base in copies {
            self.persist_u64(base + layout::sb::SB_STATE_OFF, sb.state, "superblock state");
            self.fence("after superblock state");
        }
        for base in copies {
            self.persist_u64(base + layout::sb::SB_MOUNT_COUNT_OFF, sb.mount_count, "mount count");
            self.persist_u64(
                base + layout::sb::SB_MOUNT_TIME_OFF,
                sb.mount_time as u64,
                "mount time",
            );
            self.fence("after mount words");
        }
        self.clean = false;
        self.end(op::MOUNT);
        Ok(())
    }

    /// `creat(path)`: an empty regular file.
    pub fn create(&mut self, path: &str) -> Result<u64> {
        self.create_kind(op::CREATE, path, S_IFREG | 0o644, None)
    }

    /// `mkdir(path)`.
    pub fn mkdir(&mut self, path: &str) -> Result<u64> {
        self.create_kind(op::MKDIR, path, S_IFDIR | 0o755, None)
    }

    /// `symlink(target, path)` with an inline target (at most 96 bytes).
    pub fn symlink(&mut self, path: &str, target: &[u8]) -> Result<u64> {
        self.create_kind(op::SYMLINK, path, S_IFLNK | 0o777, Some(target))
    }

    /// `pwrite(path, data, off)`: copy on write into new blocks.
    pub fn write(&mut self, path: &str, off: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Err("empty write".into());
        }
        let ino = self.lookup(path)?;
        let n = self.node(ino)?;
        let first = off / BLOCK_SIZE_U64;
        let end = off + data.len() as u64;
        let count = end.div_ceil(BLOCK_SIZE_U64) - first;
        self.begin(op::WRITE)?;
        let block = self.alloc_blocks(count)?;
        let mut buf = vec![0u8; (count * BLOCK_SIZE_U64) as usize];
        for k in 0..count {
            let pg = first + k;
            let start = pg * BLOCK_SIZE_U64;
            if start >= n.size {
                continue;
            }
            // An unwritten block reads as zeros: nothing to keep.
            let found = n.extents.iter().find(|x| (x.pgoff..x.pgoff + x.count).contains(&pg));
            if let Some(x) = found.filter(|x| !x.unwritten) {
                let src = ((x.block + pg - x.pgoff) * BLOCK_SIZE_U64) as usize;
                let keep = (n.size - start).min(BLOCK_SIZE_U64) as usize;
                let dst = (k * BLOCK_SIZE_U64) as usize;
                buf[dst..dst + keep].copy_from_slice(&self.img[src..src + keep]);
            }
        }
        let o = (off - first * BLOCK_SIZE_U64) as usize;
        buf[o..o + data.len()].copy_from_slice(data);
        let base = block * BLOCK_SIZE_U64;
        if self.faults.unflushed_write_tail {
            // The cache line holding the last byte written goes through the cache.
            let cut = (o + data.len() - 1) / 64 * 64;
            self.nt_store(base, &buf[..cut]);
            let line = buf[cut..cut + 64].to_vec();
            self.store(base + cut as u64, &line);
            if cut + 64 < buf.len() {
                let rest = buf[cut + 64..].to_vec();
                self.nt_store(base + cut as u64 + 64, &rest);
            }
        } else {
            self.nt_store(base, &buf);
        }
        self.fence("after data");
        let size_after = n.size.max(end);
        self.append(ino, &[Ent::Write { pgoff: first, block, count: count as u32, size_after }])?;
        self.end(op::WRITE);
        Ok(())
    }

    /// A write fault through a (`MAP_SYNC`) mapping on file block `pgoff`,
    /// a hole below the file size (`mmap.rs`): a new block zeroed with
    /// non-temporal stores, then a log append of one `WRITE` entry (the
    /// fence of the append also orders the zeroing), all before the fault
    /// returns.
    pub fn fault(&mut self, path: &str, pgoff: u64) -> Result<()> {
        let ino = self.lookup(path)?;
        let n = self.node(ino)?;
        if pgoff >= n.size.div_ceil(BLOCK_SIZE_U64) {
            return Err("fault past the end of the file".into());
        }
        if n.extents.iter().any(|x| (x.pgoff..x.pgoff + x.count).contains(&pgoff)) {
            return Err("fault on a mapped block allocates nothing".into());
        }
        self.begin(op::FAULT)?;
        let block = self.alloc_blocks(1)?;
        self.nt_store(block * BLOCK_SIZE_U64, &[0u8; BLOCK_SIZE]);
        let size_after = n.size;
        self.append(ino, &[Ent::Write { pgoff, block, count: 1, size_after }])?;
        self.end(op::FAULT);
        Ok(())
    }

    /// User space stores `data` at byte `off` of `path` through a
    /// `MAP_SYNC` mapping (the block must be mapped: see [`Synth::fault`]),
    /// flushes and fences it and reports it (`USER_STORE`). Not a call: no
    /// `OP_BEGIN`/`OP_END`.
    pub fn user_store(&mut self, path: &str, off: u64, data: &[u8]) -> Result<()> {
        let ino = self.lookup(path)?;
        let n = self.node(ino)?;
        let pg = off / BLOCK_SIZE_U64;
        let end = off + data.len() as u64;
        if data.is_empty() || end > n.size || (end - 1) / BLOCK_SIZE_U64 != pg {
            return Err("a user store lies inside one block below the file size".into());
        }
        let x = n
            .extents
            .iter()
            .find(|x| (x.pgoff..x.pgoff + x.count).contains(&pg))
            .ok_or("a user store needs a mapped block (fault first)")?;
        let pos = (x.block + pg - x.pgoff) * BLOCK_SIZE_U64 + off % BLOCK_SIZE_U64;
        if let Some(d) = self.img.get_mut(pos as usize..pos as usize + data.len()) {
            d.copy_from_slice(data);
        }
        self.w.user_store(pos, data);
        Ok(())
    }

    /// `setxattr(path, name, value)`, `name` in namespace `index`
    /// (`layout::log::xa`): a value over 512 bytes in new blocks, then one
    /// `XATTR` entry.
    pub fn setxattr(&mut self, path: &str, index: u8, name: &[u8], value: &[u8]) -> Result<()> {
        let ino = self.lookup(path)?;
        self.begin(op::XATTR)?;
        let value = if value.len() <= layout::log::XATTR_INLINE_MAX {
            XVal::Inline(value.to_vec())
        } else {
            let len = u32::try_from(value.len()).map_err(|_| "value too large")?;
            let count = layout::log::xattr_value_blocks(len);
            let block = self.alloc_blocks(count)?;
            let mut buf = value.to_vec();
            buf.resize((count * BLOCK_SIZE_U64) as usize, 0);
            self.nt_store(block * BLOCK_SIZE_U64, &buf);
            XVal::Blocks { block, len }
        };
        self.append(ino, &[Ent::Xattr { index, name: name.to_vec(), value }])?;
        self.end(op::XATTR);
        Ok(())
    }

    /// `removexattr(path, name)`: one `XATTR` entry that removes it.
    pub fn removexattr(&mut self, path: &str, index: u8, name: &[u8]) -> Result<()> {
        let ino = self.lookup(path)?;
        self.begin(op::XATTR)?;
        self.append(ino, &[Ent::Xattr { index, name: name.to_vec(), value: XVal::Removed }])?;
        self.end(op::XATTR);
        Ok(())
    }

    /// `ioctl(FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR)`: one `FLAGS` entry.
    pub fn setflags(&mut self, path: &str, flags: u32, projid: u32) -> Result<()> {
        let ino = self.lookup(path)?;
        self.begin(op::FILEATTR)?;
        self.append(ino, &[Ent::Flags { flags, projid }])?;
        self.end(op::FILEATTR);
        Ok(())
    }

    /// `truncate(path, size)`.
    pub fn truncate(&mut self, path: &str, size: u64) -> Result<()> {
        let ino = self.lookup(path)?;
        self.begin(op::TRUNCATE)?;
        self.append(ino, &[Ent::Size { size }])?;
        self.end(op::TRUNCATE);
        Ok(())
    }

    /// `link(old, new)`.
    pub fn link(&mut self, old: &str, new: &str) -> Result<()> {
        let ino = self.lookup(old)?;
        let n = self.node(ino)?;
        if n.mode & S_IFMT == S_IFDIR {
            return Err("cannot link a directory".into());
        }
        let (dir, name) = Self::split(new)?;
        let d = self.lookup(dir)?;
        self.begin(op::LINK)?;
        let ftype = dt_of_mode(n.mode).ok_or("bad mode")?;
        self.transaction(
            &[
                (d, vec![Ent::Add { ino, ftype, name: name.to_vec() }]),
                (ino, vec![Ent::Link { nlink: n.nlink + 1 }]),
            ],
            &[],
        )?;
        self.end(op::LINK);
        Ok(())
    }

    /// `unlink(path)` of a file nobody holds open.
    pub fn unlink(&mut self, path: &str) -> Result<()> {
        let (dir, name) = Self::split(path)?;
        let d = self.lookup(dir)?;
        let ino = self.lookup(path)?;
        let n = self.node(ino)?;
        if n.mode & S_IFMT == S_IFDIR {
            return Err("unlink of a directory".into());
        }
        self.begin(op::UNLINK)?;
        let ftype = dt_of_mode(n.mode).ok_or("bad mode")?;
        let logs = vec![
            (d, vec![Ent::Del { ino, ftype, name: name.to_vec() }]),
            (ino, vec![Ent::Link { nlink: n.nlink - 1 }]),
        ];
        self.transaction(&logs, &[])?;
        if n.nlink == 1 {
            self.evict(&n);
        }
        self.end(op::UNLINK);
        Ok(())
    }

    /// The kernel's evict of an inode whose last link is gone (and that
    /// nothing holds open): its state word goes FREE, durably; a crash
    /// before leaves an orphan that the next mount frees.
    fn evict(&mut self, n: &Node) {
        self.persist_u64(n.pos, INODE_FREE, "inode state (evict)");
        self.fence("after evict");
    }

    /// `rmdir(path)` of an empty directory.
    pub fn rmdir(&mut self, path: &str) -> Result<()> {
        let (dir, name) = Self::split(path)?;
        let d = self.lookup(dir)?;
        let dn = self.node(d)?;
        let ino = self.lookup(path)?;
        let n = self.node(ino)?;
        if n.mode & S_IFMT != S_IFDIR || !n.names.is_empty() {
            return Err(format!("{path}: not an empty directory"));
        }
        self.begin(op::RMDIR)?;
        let ents = vec![
            Ent::Del { ino, ftype: layout::inode::dt::DIR, name: name.to_vec() },
            Ent::Link { nlink: dn.nlink - 1 },
        ];
        self.transaction(&[(d, ents), (ino, vec![Ent::Link { nlink: 0 }])], &[])?;
        self.evict(&n);
        self.end(op::RMDIR);
        Ok(())
    }

    /// `rename(from, to)`; `to` may name an existing file (replaced).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let (sdir, sname) = Self::split(from)?;
        let (ddir, dname) = Self::split(to)?;
        let s = self.lookup(sdir)?;
        let d = self.lookup(ddir)?;
        let x = self.lookup(from)?;
        let xn = self.node(x)?;
        let sn = self.node(s)?;
        let dn = self.node(d)?;
        let xftype = dt_of_mode(xn.mode).ok_or("bad mode")?;
        let is_dir = xn.mode & S_IFMT == S_IFDIR;
        let victim = match dn.names.get(dname) {
            Some(&y) => {
                let yn = self.node(y)?;
                if yn.mode & S_IFMT == S_IFDIR {
                    return Err("replacing a directory is not emulated".into());
                }
                Some(yn)
            }
            None => None,
        };
        self.begin(op::RENAME)?;
        if self.faults.dentry_in_place && s == d {
            if let Some(y) = &victim {
                self.rename_in_place(&dn, x, xftype, sname, dname, y)?;
                self.end(op::RENAME);
                return Ok(());
            }
        }
        let del = Ent::Del { ino: x, ftype: xftype, name: sname.to_vec() };
        let add = Ent::Add { ino: x, ftype: xftype, name: dname.to_vec() };
        let mut logs: Vec<(u64, Vec<Ent>)> = Vec::new();
        let mut dst_ents = Vec::new();
        if let Some(y) = &victim {
            let yftype = dt_of_mode(y.mode).ok_or("bad mode")?;
            dst_ents.push(Ent::Del { ino: y.ino, ftype: yftype, name: dname.to_vec() });
            logs.push((y.ino, vec![Ent::Link { nlink: y.nlink - 1 }]));
        }
        dst_ents.push(add);
        if s == d {
            let mut ents = vec![del];
            ents.extend(dst_ents);
            logs.insert(0, (s, ents));
        } else {
            let mut src_ents = vec![del];
            if is_dir {
                src_ents.push(Ent::Link { nlink: sn.nlink - 1 });
                dst_ents.push(Ent::Link { nlink: dn.nlink + 1 });
                logs.push((x, vec![Ent::Parent { parent: d }]));
            }
            logs.insert(0, (d, dst_ents));
            logs.insert(0, (s, src_ents));
            if self.faults.rename_without_journal {
                for (ino, ents) in &logs {
                    self.append(*ino, ents)?;
                }
                if let Some(y) = victim.as_ref().filter(|y| y.nlink == 1) {
                    self.evict(y);
                }
                self.end(op::RENAME);
                return Ok(());
            }
        }
        self.transaction(&logs, &[])?;
        if let Some(y) = victim.as_ref().filter(|y| y.nlink == 1) {
            self.evict(y);
        }
        self.end(op::RENAME);
        Ok(())
    }

    /// The `dentry_in_place` fault: the existing `DENTRY ADD` of `dname`
    /// is made to name `x` by rewriting its inode number and checksum.
    fn rename_in_place(
        &mut self,
        dn: &Node,
        x: u64,
        xftype: u8,
        sname: &[u8],
        dname: &[u8],
        y: &Node,
    ) -> Result<()> {
        let scan = self.scan(dn);
        let &(pos, len) = scan.adds.get(dname).ok_or("no DENTRY ADD for the name")?;
        let mut e =
            self.img.get(pos as usize..pos as usize + len).ok_or("entry off the image")?.to_vec();
        e[16..24].copy_from_slice(&x.to_le_bytes());
        e[41] = xftype; // DentryEntry.ftype
        layout::log::seal_entry(&mut e);
        self.store(pos + 16, &e[16..24]);
        self.store(pos + 40, &e[40..48]);
        self.store(pos + 4, &e[4..8]);
        self.flush(pos, len, "entry in place");
        self.fence("after entry in place");
        self.append(dn.ino, &[Ent::Del { ino: x, ftype: xftype, name: sname.to_vec() }])?;
        self.append(y.ino, &[Ent::Link { nlink: y.nlink - 1 }])?;
        if y.nlink == 1 {
            self.evict(y);
        }
        Ok(())
    }
}

/// Collects the pages of a log.
#[derive(Default)]
struct PageList(Vec<u64>);

impl LogVisitor for PageList {
    fn page(&mut self, block: u64, _ordinal: u64) {
        self.0.push(block);
    }
    fn entry(&mut self, _pos: u64, _e: &Entry<'_>) {}
}
