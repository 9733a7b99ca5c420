// SPDX-License-Identifier: GPL-2.0

//! Log garbage collection (FORMAT.md "Log garbage collection").
//!
//! A log only grows: every `write()` appends WRITE entries, every create
//! or unlink a DENTRY entry, and the entries of overwritten blocks, removed
//! names, old sizes and old times stay behind as dead entries. When a log
//! has grown well past what its live state needs, [`maybe_compact`] writes
//! a fresh log holding only the entries that replay to the same state,
//! checks that it does by replaying it with the walker fsck and mount use,
//! switches `log_head` and `log_tail` in one journal transaction and frees
//! the old pages.
//!
//! - A regular file: one SETATTR, one WRITE per extent, PARENT, LINK. The
//!   data blocks do not move, so DAX mappings and seals are unaffected.
//! - A directory: one DENTRY ADD per live name *with the sequence number of
//!   its original ADD entry* (the name's readdir cookie, `dir.rs`), in
//!   sequence order, then PARENT, SETATTR and LINK with sequence numbers
//!   above every one the old log used. Cookies held by open directory
//!   streams stay valid (a readdir across a compaction neither repeats nor
//!   skips a name), and the log's last sequence number, from which the
//!   next entry's is taken, never goes down (FORMAT.md).
//!
//! Cost is amortised: after a compaction to `n` pages (or a look that
//! found `n` pages would be needed) the next is considered at
//! `max(GC_MIN_PAGES, GC_GROWTH * n)` pages, so a compaction never
//! rewrites more than was appended since the last one.

use crate::alloc::Pool;
use crate::index::{DirEnt, DirMap, ExtentMap};
use crate::inode::{Index, Inner, InodeInfo};
use crate::journal::Tx;
use crate::layout::append::{self, LogEnd, LogOwner, NewEntry, SetAttrs};
use crate::layout::inode::{
    read_inode_at, Inode, INODE_HEAD_OFF, INODE_TAIL_OFF, S_IFDIR, S_IFMT, S_IFREG,
};
use crate::layout::log::Entry;
use crate::layout::log::{
    dentry_len, pos_block, sa, unpack_next, LinkEntry, ParentEntry, SetAttrEntry, WriteEntry,
    DE_ADD, LOG_AREA, MAX_ENTRY, NAME_MAX, PAGE_NEXT_OFF, WF_FALLOC, WF_UNWRITTEN,
};
use crate::layout::walk::{
    replay_inode, walk_log, DirIndex, Ignore, InodeView, LogVisitor, Replay, WalkReport,
    XattrReplay,
};
use crate::layout::BLOCK_SIZE_U64;
use crate::log::{LogPos, PmLog};
use crate::media::read_failed;
use crate::super_::SbInfo;
use crate::xattr::Xattrs;
use kernel::prelude::*;

/// Logs shorter than this are never compacted.
pub(crate) const GC_MIN_PAGES: u64 = 16;
/// A log is compacted again once it is this many times its compact size.
pub(crate) const GC_GROWTH: u64 = 2;

/// Whether `log` has grown enough to try compacting it.
pub(crate) fn due(log: &LogPos) -> bool {
    log.tail != 0 && log.pages >= log.gc_at.max(GC_MIN_PAGES)
}

/// The page count at which a log of `pages` pages is next considered.
pub(crate) fn next_threshold(pages: u64) -> u64 {
    pages.saturating_mul(GC_GROWTH).max(GC_MIN_PAGES)
}

/// Compacts the log of the regular file or directory `info` if it is due.
/// Call with every lock an append to `info`'s log needs held (no other
/// change to that log runs) and `inner` the locked state of `info`, right
/// after publishing a commit. Returns the new page count when it
/// compacted. A failure leaves the old log in place (it is still correct)
/// and only postpones the next attempt.
pub(crate) fn maybe_compact(sbi: &SbInfo, info: &InodeInfo, inner: &mut Inner) -> Option<u64> {
    if !sbi.rw() || !due(&inner.log) || matches!(inner.index, Index::None) {
        return None;
    }
    match compact(sbi, info, inner.log, &mut inner.index) {
        Ok(Compacted::Done(log)) => {
            inner.log = log;
            Some(log.pages)
        }
        Ok(Compacted::NotWorth { need }) => {
            inner.log.gc_at = next_threshold(need).max(inner.log.pages.saturating_add(1));
            None
        }
        Err(e) => {
            pr_warn!(
                "({}): inode {}: log compaction failed ({:?}); keeping the old log\n",
                sbi.dev(),
                info.ino,
                e
            );
            inner.log.gc_at = inner.log.pages.saturating_mul(2);
            None
        }
    }
}

/// Builds a chain of fresh log pages for one inode (nothing points into
/// it until the journal transaction of [`compact`] switches the head).
struct Writer<'a> {
    m: PmLog<'a>,
    owner: LogOwner,
    end: LogEnd,
}

impl Writer<'_> {
    /// Appends `e` with the next sequence number.
    fn push(&mut self, e: &NewEntry<'_>) -> Result {
        append::append(&mut self.m, self.owner, &mut self.end, e).map(|_| ())
    }

    /// Appends `e` with sequence number `seq`, which must be above the
    /// last one written (the walker rejects anything else).
    fn push_at(&mut self, seq: u64, e: &NewEntry<'_>) -> Result {
        append::append_seq(&mut self.m, self.owner, &mut self.end, seq, e).map(|_| ())
    }

    fn free(&mut self) {
        self.m.free_taken();
    }
}

/// Every extent of `map` as `(file block, device block, count,
/// unwritten)`, adjacent runs of the same kind merged, so two maps compare
/// by content rather than by history.
fn runs(map: &ExtentMap) -> Result<KVVec<(u64, u64, u64, bool)>> {
    let mut v: KVVec<(u64, u64, u64, bool)> = KVVec::new();
    for (pg, block, count, unwritten) in map.extents_at() {
        if let Some(last) = v.last_mut() {
            if last.0 + last.2 == pg && last.1 + last.2 == block && last.3 == unwritten {
                last.2 += count;
                continue;
            }
        }
        v.push((pg, block, count, unwritten), GFP_KERNEL)?;
    }
    Ok(v)
}

/// What a log replays to besides the scalar attributes: the part a
/// compact log must reproduce exactly.
enum Live {
    /// A regular file's extents, as [`runs`].
    File(KVVec<(u64, u64, u64, bool)>),
    /// A directory's names in sequence order (the sequence number of each
    /// name's ADD entry is its readdir cookie).
    Dir(KVVec<(u64, DirEnt)>),
}

impl Live {
    /// Pages a compact log of this state takes at most (entries never
    /// cross a page: each page may leave up to one entry's room unused).
    fn pages_needed(&self, xattr_bytes: u64) -> u64 {
        let (bytes, largest) = match self {
            Live::File(ext) => {
                ((ext.len() as u64).saturating_mul(WriteEntry::SIZE as u64), WriteEntry::SIZE)
            }
            Live::Dir(names) => {
                let b = names
                    .iter()
                    .fold(0u64, |a, (_, e)| a.saturating_add(dentry_len(e.name.len()) as u64));
                (b, dentry_len(NAME_MAX))
            }
        };
        let bytes = bytes
            .saturating_add((SetAttrEntry::SIZE + ParentEntry::SIZE + LinkEntry::SIZE) as u64)
            .saturating_add(xattr_bytes);
        // With attributes, any entry may be up to MAX_ENTRY long.
        let largest = if xattr_bytes > 0 { MAX_ENTRY } else { largest };
        bytes.div_ceil((LOG_AREA - largest) as u64).max(1)
    }
}

/// Replays the log of the inode record `raw` (inode `ino`) with the
/// walker mount and fsck use: the attributes, the live state and the walk
/// report. Only regular files and directories are compacted.
fn replay(sbi: &SbInfo, ino: u64, raw: &Inode) -> Result<(InodeView, Live, Xattrs, WalkReport)> {
    let (m, geo) = (&sbi.media, &sbi.geo);
    let mut xs = Xattrs::default();
    walk_log(m, geo, ino, raw, &mut XattrReplay(&mut xs)).map_err(|_| EIO)?;
    let (view, live, rep) = replay_state(m, geo, ino, raw)?;
    Ok((view, live, xs, rep))
}

/// Applies each entry to the attributes and to the extended attributes:
/// both from one walk (names go to `D`: ignored, or checked).
struct AttrWalk<'a, 'b, D: DirIndex> {
    attrs: Replay<'a, Ignore, D>,
    xattrs: XattrReplay<'b, Xattrs>,
}

impl<D: DirIndex> LogVisitor for AttrWalk<'_, '_, D> {
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        self.attrs.entry(pos, e);
        self.xattrs.entry(pos, e);
    }
}

/// A regular file's committed attributes and extended attributes from its
/// log, and its extents from the DRAM map `map`, which holds exactly what
/// the committed log maps (every commit publishes its changes under the
/// locks [`maybe_compact`] holds): one walk of the old log, without
/// rebuilding its block map entry by entry.
fn replay_file(
    sbi: &SbInfo,
    ino: u64,
    raw: &Inode,
    map: &ExtentMap,
) -> Result<(InodeView, Live, Xattrs, WalkReport)> {
    let (view, xs, rep) = attrs_only(sbi, ino, raw)?;
    Ok((view, Live::File(runs(map)?), xs, rep))
}

/// A directory's attributes and extended attributes from its log, and
/// its names (with their sequence numbers) from the DRAM index `dir`,
/// which holds exactly the committed names, as [`replay_file`] does for a
/// file's extents.
fn replay_dir(
    sbi: &SbInfo,
    ino: u64,
    raw: &Inode,
    dir: &mut DirMap,
) -> Result<(InodeView, Live, Xattrs, WalkReport)> {
    let (view, xs, rep) = attrs_only(sbi, ino, raw)?;
    Ok((view, Live::Dir(dir.batch(0, usize::MAX)?), xs, rep))
}

/// The committed attributes and extended attributes of a log, from one
/// walk that builds no block map or name index.
fn attrs_only(sbi: &SbInfo, ino: u64, raw: &Inode) -> Result<(InodeView, Xattrs, WalkReport)> {
    attrs_with(sbi, ino, raw, &mut Ignore)
}

/// Checks, as a directory's new log is walked, that its names are `names`
/// exactly, in order (a log holding only the ADD entries of distinct names
/// replays to them), without building an index of them.
struct SameNames<'a> {
    names: &'a [(u64, DirEnt)],
    next: usize,
    ok: bool,
}

impl DirIndex for SameNames<'_> {
    fn add(&mut self, name: &[u8], ino: u64, ftype: u8, seq: u64) {
        match self.names.get(self.next) {
            Some((s, e))
                if *s == seq && e.ino == ino && e.ftype == ftype && e.name.as_slice() == name =>
            {
                self.next += 1
            }
            _ => self.ok = false,
        }
    }

    fn remove(&mut self, _: &[u8], _: u64) {
        self.ok = false;
    }
}

/// [`attrs_only`], the names going to `dir`.
fn attrs_with<D: DirIndex>(
    sbi: &SbInfo,
    ino: u64,
    raw: &Inode,
    dir: &mut D,
) -> Result<(InodeView, Xattrs, WalkReport)> {
    let mut ignore_map = Ignore;
    let mut xs = Xattrs::default();
    let mut w =
        AttrWalk { attrs: Replay::new(raw, &mut ignore_map, dir), xattrs: XattrReplay(&mut xs) };
    let rep = walk_log(&sbi.media, &sbi.geo, ino, raw, &mut w).map_err(|_| EIO)?;
    let view = w.attrs.view;
    if xs.failed {
        return Err(ENOMEM);
    }
    Ok((view, xs, rep))
}

/// The attributes and the block map or names of a log.
fn replay_state(
    m: &crate::media::DaxMedia,
    geo: &crate::layout::Geometry,
    ino: u64,
    raw: &Inode,
) -> Result<(InodeView, Live, WalkReport)> {
    match raw.mode & S_IFMT {
        S_IFREG => {
            let mut map = ExtentMap::new();
            let (view, rep) =
                replay_inode(m, geo, ino, raw, &mut map, &mut Ignore).map_err(|_| EIO)?;
            if map.failed {
                return Err(ENOMEM);
            }
            Ok((view, Live::File(runs(&map)?), rep))
        }
        S_IFDIR => {
            let mut dir = DirMap::new();
            let (view, rep) =
                replay_inode(m, geo, ino, raw, &mut Ignore, &mut dir).map_err(|_| EIO)?;
            if dir.failed {
                return Err(ENOMEM);
            }
            Ok((view, Live::Dir(dir.batch(0, usize::MAX)?), rep))
        }
        _ => Err(EINVAL),
    }
}

/// A SETATTR restoring every field of `view` named in `valid`.
fn attrs(view: &InodeView, valid: u32) -> NewEntry<'static> {
    NewEntry::SetAttr(SetAttrs {
        valid,
        mode: view.mode & 0o7777,
        uid: view.uid,
        gid: view.gid,
        size: view.size,
        atime: view.atime,
        mtime: view.mtime,
        ctime: view.ctime,
    })
}

/// The extended attributes, then PARENT (if the parent differs from the
/// inode record's) and LINK: the last entries of either kind of compact
/// log.
fn write_parent_link(
    w: &mut Writer<'_>,
    view: &InodeView,
    raw_parent: u64,
    raw_flags: u32,
    xs: &Xattrs,
) -> Result {
    for e in xs.entries(view.ctime) {
        w.push(&e)?;
    }
    if view.flags != raw_flags || view.projid != 0 {
        w.push(&NewEntry::Flags { flags: view.flags, projid: view.projid, ctime: view.ctime })?;
    }
    if view.parent != raw_parent {
        w.push(&NewEntry::Parent { parent: view.parent, ctime: view.ctime })?;
    }
    // LINK last: it sets ctime back to the inode's (WRITE and DENTRY
    // entries set it to their mtime).
    w.push(&NewEntry::Link { nlink: view.nlink, ctime: view.ctime })
}

/// The entries that replay to `view` and `extents` on top of the inode
/// record `raw` (a regular file).
fn write_file(
    w: &mut Writer<'_>,
    view: &InodeView,
    raw: &Inode,
    extents: &[(u64, u64, u64, bool)],
    xs: &Xattrs,
) -> Result {
    // SETATTR first: its size change drops blocks at or past the new end,
    // and the map is still empty here (blocks past EOF of a KEEP_SIZE
    // fallocate survive).
    w.push(&attrs(view, sa::ALL))?;
    for (i, &(pg, block, count, unwritten)) in extents.iter().enumerate() {
        crate::shim::resched_every(i as u64);
        // Unwritten extents stay unwritten: their bytes are not file data.
        let flags = if unwritten { WF_FALLOC | WF_UNWRITTEN } else { 0 };
        let mut done = 0u64;
        while done < count {
            let n = (count - done).min(u32::MAX as u64);
            w.push(&NewEntry::Write {
                flags,
                pgoff: pg + done,
                block: block + done,
                count: n as u32,
                size_after: view.size,
                mtime: view.mtime,
            })?;
            done += n;
        }
    }
    write_parent_link(w, view, raw.parent, raw.flags, xs)
}

/// The entries that replay to `view` and `names` on top of the inode
/// record `raw` (a directory); `last_seq` is the old log's last sequence
/// number.
fn write_dir(
    w: &mut Writer<'_>,
    view: &InodeView,
    raw: &Inode,
    names: &[(u64, DirEnt)],
    last_seq: u64,
    xs: &Xattrs,
) -> Result {
    // Every live name keeps the sequence number of its ADD entry, its
    // readdir cookie; `names` is in sequence order, as the walker wants.
    for (i, (seq, e)) in names.iter().enumerate() {
        crate::shim::resched_every(i as u64);
        w.push_at(
            *seq,
            &NewEntry::Dentry {
                op: DE_ADD,
                ino: e.ino,
                ftype: e.ftype,
                mtime: view.mtime,
                name: e.name.as_slice(),
            },
        )?;
    }
    // The rest continues above the old log, so the next sequence number
    // handed out (the log's last plus one) is above every cookie ever
    // handed out: a name created after the compaction sorts after every
    // position an open directory stream may hold.
    w.end.seq = w.end.seq.max(last_seq);
    // The DENTRY entries set the times; SETATTR restores them (and the
    // size only if it differs from the record's: directories have none).
    let mut valid = sa::ALL & !sa::SIZE;
    if view.size != raw.size {
        valid |= sa::SIZE;
    }
    w.push(&attrs(view, valid))?;
    write_parent_link(w, view, raw.parent, raw.flags, xs)
}

/// The pages of the committed log `log`, head first.
fn chain(sbi: &SbInfo, log: &LogPos) -> Result<KVVec<u64>> {
    let mut pages = KVVec::new();
    let last = pos_block(log.tail);
    let mut page = log.head;
    for _ in 0..log.pages {
        pages.push(page, GFP_KERNEL)?;
        if page == last {
            return Ok(pages);
        }
        let word = page.saturating_mul(BLOCK_SIZE_U64).saturating_add(PAGE_NEXT_OFF as u64);
        let w = crate::media::read_word(&sbi.media, word)
            .map_err(|e| read_failed(sbi, format_args!("log page {page}"), e))?;
        let (next, _) = unpack_next(w);
        if next == 0 {
            break;
        }
        page = next;
    }
    sbi.fs_error(format_args!("log chain from block {} does not reach its tail", log.head));
    Err(crate::shim::err(kernel::bindings::EUCLEAN))
}

/// What [`compact`] did.
enum Compacted {
    Done(LogPos),
    /// The live state needs `need` pages, more than half the log.
    NotWorth {
        need: u64,
    },
}

/// Rewrites the log of `info` (committed state `log`, DRAM index
/// `index`).
fn compact(sbi: &SbInfo, info: &InodeInfo, log: LogPos, index: &mut Index) -> Result<Compacted> {
    let raw = read_inode_at(&sbi.media, info.rec)
        .map_err(|e| read_failed(sbi, format_args!("inode {}", info.ino), e))?;
    if raw.log_head != log.head || raw.log_tail != log.tail {
        return Err(EINVAL);
    }
    let (view, live, xs, rep) = match index {
        Index::File(map) if raw.mode & S_IFMT == S_IFREG && !map.failed => {
            replay_file(sbi, info.ino, &raw, map)?
        }
        Index::Dir(dir) if raw.mode & S_IFMT == S_IFDIR && !dir.failed => {
            replay_dir(sbi, info.ino, &raw, dir)?
        }
        _ => replay(sbi, info.ino, &raw)?,
    };
    // Worth it only if the result is at most half the log.
    let need = live.pages_needed(xs.log_bytes());
    if need.saturating_mul(GC_GROWTH) > log.pages {
        return Ok(Compacted::NotWorth { need });
    }
    // Every sequence number the old log handed out.
    let last_seq = log.seq.max(rep.last_seq);
    // Compaction frees more than it takes: it may use the reserve.
    let mut log_m = PmLog::new(sbi);
    log_m.pool = Pool::Reserve;
    let mut w = Writer {
        m: log_m,
        // A compacted log goes to pages (only page logs are compacted).
        owner: LogOwner::pages(info.ino, info.gen),
        end: LogEnd::default(),
    };
    let built = (|| -> Result<u64> {
        match &live {
            Live::File(extents) => {
                w.end.seq = last_seq;
                write_file(&mut w, &view, &raw, extents, &xs)?;
            }
            Live::Dir(names) => write_dir(&mut w, &view, &raw, names, last_seq, &xs)?,
        }
        // The new log must mean exactly what the old one does, and end
        // above every sequence number the old one used.
        let head = *w.m.taken.first().ok_or(EINVAL)?;
        let mut check = raw;
        check.log_head = head;
        check.log_tail = w.end.tail;
        // A directory's names are checked as the walk meets them (no index
        // of them built again); a file's extents by a replay.
        let (view2, same, xs2, rep2) = match &live {
            Live::Dir(names) => {
                let mut check_names = SameNames { names, next: 0, ok: true };
                let (v, x, r) = attrs_with(sbi, info.ino, &check, &mut check_names)?;
                (v, check_names.ok && check_names.next == names.len(), x, r)
            }
            Live::File(extents) => {
                let (v, live2, x, r) = replay(sbi, info.ino, &check)?;
                let same = matches!(&live2, Live::File(e) if e.as_slice() == extents.as_slice());
                (v, same, x, r)
            }
        };
        if view2 != view
            || !same
            || !xs2.same(&xs)
            || rep2.last_seq != w.end.seq
            || w.end.seq <= last_seq
        {
            pr_err!(
                "({}): inode {}: compacted log does not replay to the same state\n",
                sbi.dev(),
                info.ino
            );
            return Err(EIO);
        }
        Ok(head)
    })();
    let head = match built {
        Ok(h) => h,
        Err(e) => {
            w.free();
            return Err(e);
        }
    };
    let old_pages = match chain(sbi, &log) {
        Ok(p) => p,
        Err(e) => {
            w.free();
            return Err(e);
        }
    };
    // Switch head and tail together; the journal's begin fences the new
    // pages before either word changes.
    let words = [info.rec + INODE_HEAD_OFF, info.rec + INODE_TAIL_OFF];
    let r = Tx::begin(sbi, &words).and_then(|tx| {
        tx.store(words[0], head)?;
        tx.store(words[1], w.end.tail)?;
        tx.commit()
    });
    if let Err(e) = r {
        // A failed commit is rolled back at the next mount; the new pages
        // stay allocated until then rather than risk freeing a live log.
        return Err(e);
    }
    {
        let a = &sbi.alloc;
        for &p in old_pages.iter() {
            let _ = a.free(p, 1);
        }
    }
    let pages = w.end.pages;
    Ok(Compacted::Done(LogPos { gc_at: next_threshold(pages), ..LogPos::default() }.at(w.end)))
}
