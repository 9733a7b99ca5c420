//! Writing log entries for repairs, following the append protocol of
//! `layout::log`: an entry goes after the tail if it fits, else a new page
//! is prepared (tail written), the old page is sealed by its `next` word
//! (`pack_next`: new block and bytes used) and the entry goes at offset 0
//! of the new page; then `log_tail` (and `log_head` for a new log) moves.
//! Sequence numbers continue from the last entry of the walk.
//!
//! Also here: rewriting a whole log from the replayed state (for faults in
//! the middle of a directory log that an append cannot undo), re-reading
//! an inode after a repair, and creating a directory inode.

use layout::append::{
    self, AppendError, LogEnd, LogMedium, LogOwner, NewEntry as Entry, SetAttrs, XattrValue,
};
use layout::inode::{
    read_inode_at, slot_pos_in, Inode, INODE_HEAD_OFF, INODE_LIVE, INODE_TAIL_OFF, S_IFDIR,
};
use layout::log::{
    sa, slot_len, xattr_value_blocks, Entry as Parsed, DE_ADD, DE_DEL, MAX_ENTRY, WF_FALLOC,
    WF_UNWRITTEN,
};
use layout::BLOCK_SIZE_U64;

use crate::check::{Fsck, Repair};
use crate::model::{next_word_pos, walk_inode, InodeRec};
use crate::overlay::Overlay;
use crate::space::FreeSpace;

fn media_err(e: layout::MediaError) -> String {
    format!("cannot access the image ({e:?})")
}

/// An entry a repair appends; times and sizes come from the inode's
/// current state ([`NewEntry::with_state`]) so that repairs do not move them.
pub(crate) enum NewEntry<'n> {
    Dentry { op: u8, ino: u64, ftype: u8, name: &'n [u8] },
    Link { nlink: u32 },
    Parent { parent: u64 },
    Write { flags: u8, pgoff: u64, block: u64, count: u32 },
    Punch { pgoff: u64, count: u64 },
    SetAttr { valid: u32 },
    Xattr { index: u8, name: &'n [u8], value: XattrValue<'n> },
    Flags { flags: u32, projid: u32 },
}

impl<'n> NewEntry<'n> {
    /// The format's entry for inode `rec`.
    fn with_state(&self, rec: &InodeRec) -> Entry<'n> {
        let v = &rec.view;
        match *self {
            NewEntry::Dentry { op, ino, ftype, name } => {
                Entry::Dentry { op, ino, ftype, mtime: v.mtime, name }
            }
            NewEntry::Link { nlink } => Entry::Link { nlink, ctime: v.ctime },
            NewEntry::Parent { parent } => Entry::Parent { parent, ctime: v.ctime },
            NewEntry::Write { flags, pgoff, block, count } => {
                Entry::Write { flags, pgoff, block, count, size_after: v.size, mtime: v.mtime }
            }
            NewEntry::Punch { pgoff, count } => Entry::Punch { pgoff, count, mtime: v.mtime },
            NewEntry::SetAttr { valid } => Entry::SetAttr(SetAttrs {
                valid,
                mode: v.mode & 0o7777,
                uid: v.uid,
                gid: v.gid,
                size: v.size,
                atime: v.atime,
                mtime: v.mtime,
                ctime: v.ctime,
            }),
            NewEntry::Xattr { index, name, value } => {
                Entry::Xattr { index, name, value, ctime: v.ctime }
            }
            NewEntry::Flags { flags, projid } => Entry::Flags { flags, projid, ctime: v.ctime },
        }
    }
}

/// The repair overlay and the free-space map as the medium of
/// `layout::append`; pages taken are added to `pages`. Repairs are
/// written offline, so there is nothing to flush or fence.
struct RepairLog<'x, 'a> {
    m: &'x mut Overlay<'a>,
    space: &'x mut FreeSpace,
    pages: &'x mut Vec<u64>,
}

impl LogMedium for RepairLog<'_, '_> {
    type Error = String;

    fn error(e: AppendError) -> String {
        match e {
            AppendError::BadEntry => "entry does not encode".into(),
            AppendError::Sequence => "sequence numbers exhausted".into(),
            AppendError::Overflow => "log position out of range".into(),
            AppendError::BadPlace => "inode-table segment outside the data area".into(),
        }
    }

    fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), String> {
        layout::Media::read(&*self.m, pos, buf).map_err(media_err)
    }

    fn alloc_page(&mut self) -> Result<u64, String> {
        let p = self.space.alloc(1).ok_or("no free blocks left")?;
        self.m.block_mut(p).map_err(media_err)?.fill(0);
        self.pages.push(p);
        Ok(p)
    }

    fn write_nt(&mut self, pos: u64, bytes: &[u8]) -> Result<(), String> {
        self.m.write_at(pos, bytes).map_err(media_err)
    }

    fn store_u64(&mut self, pos: u64, v: u64) -> Result<(), String> {
        self.m.write_u64(pos, v).map_err(media_err)
    }

    fn flush(&mut self, _pos: u64, _len: u64) -> Result<(), String> {
        Ok(())
    }

    fn fence(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl Fsck<'_, '_> {
    /// Writes `e` as the next entry after `end` (a new page if needed,
    /// added to `pages`); returns its position. The inode is not touched.
    fn put_entry(
        &mut self,
        owner: LogOwner,
        end: &mut LogEnd,
        pages: &mut Vec<u64>,
        e: &Entry<'_>,
    ) -> Result<u64, String> {
        let mut m = RepairLog { m: &mut self.m, space: &mut self.space, pages };
        append::append(&mut m, owner, end, e)
    }

    /// Appends `e` to `ino`'s log, commits it (log words) and applies it
    /// to the model.
    pub(crate) fn append(&mut self, ino: u64, e: NewEntry<'_>) -> Repair {
        let rec = self.inodes.get_mut(&ino).ok_or_else(|| format!("inode {ino} is not in use"))?;
        if rec.broken_log {
            return Err(format!("the log of inode {ino} is damaged and was not repaired"));
        }
        let entry = e.with_state(rec);
        // A repair grows a slot log where it is (or moves it to a page);
        // it starts no new one.
        let in_slot = slot_len(rec.log.tail).is_some();
        let owner = LogOwner { ino, gen: rec.generation, slot: if in_slot { rec.pos } else { 0 } };
        let (slot, old, mut end) = (rec.pos, rec.log, rec.log);
        let mut pages = std::mem::take(&mut rec.pages);
        let r = self.put_entry(owner, &mut end, &mut pages, &entry);
        let rec = self.inodes.get_mut(&ino).ok_or("inode vanished")?;
        rec.pages = pages;
        let pos = r?;
        let (words, n) = append::commit_words(slot, &old, &end);
        for &(at, v) in words.iter().take(n) {
            self.m.write_u64(at, v).map_err(media_err)?;
        }
        let rec = self.inodes.get_mut(&ino).ok_or("inode vanished")?;
        rec.log = end;
        let mut buf = [0u8; MAX_ENTRY];
        let len = entry.encode(end.seq, &mut buf).ok_or("entry does not encode")?;
        let (parsed, _) =
            Parsed::parse(&buf[..len]).map_err(|e| format!("entry does not parse ({e:?})"))?;
        rec.apply(pos, &parsed);
        Ok(())
    }

    /// Adds `name` -> `ino` to directory `dir`.
    pub(crate) fn add_name(&mut self, dir: u64, name: &[u8], ino: u64) -> Repair {
        let mode = self.inodes.get(&ino).map(|r| r.view.mode).ok_or("target not in use")?;
        let ftype = layout::inode::dt_of_mode(mode).ok_or("target has no file type")?;
        self.append(dir, NewEntry::Dentry { op: DE_ADD, ino, ftype, name })
    }

    /// Removes `name` (naming `ino`, type `ftype`) from directory `dir`.
    pub(crate) fn remove_name(&mut self, dir: u64, name: &[u8], ino: u64, ftype: u8) -> Repair {
        self.append(dir, NewEntry::Dentry { op: DE_DEL, ino, ftype, name })
    }

    /// Re-reads inode `ino` from the overlay after a repair; the log must
    /// now walk cleanly.
    pub(crate) fn reload(&mut self, ino: u64) -> Repair {
        let pos = self.inodes.get(&ino).map(|r| r.pos).ok_or("inode not in use")?;
        let inode = read_inode_at(&self.m, pos).map_err(media_err)?;
        let w = walk_inode(&self.m, &self.geo, ino, &inode);
        if let Some(f) = w.fault {
            return Err(format!("the log still does not verify ({f:?})"));
        }
        self.inodes.insert(ino, InodeRec::new(pos, &inode, w));
        Ok(())
    }

    /// Writes a new log for `ino` that means what the current one means
    /// (names, block map, attributes, extended attributes with their value
    /// blocks, flags and project id), then switches the inode to it.
    /// Faults in the middle of the old log disappear with it. The entries
    /// are those of the kernel's log compaction (`gc.rs`), the SETATTR
    /// last here: it restores ctime, which every other entry sets.
    pub(crate) fn rewrite_log(&mut self, ino: u64) -> Repair {
        let rec = self.inodes.get(&ino).ok_or("inode not in use")?.clone();
        let mut entries: Vec<NewEntry<'_>> = Vec::new();
        let names: Vec<(crate::model::Name, crate::model::Dent)> = rec
            .dir
            .as_ref()
            .map(|d| d.names.iter().map(|(n, d)| (n.clone(), *d)).collect())
            .unwrap_or_default();
        for (name, d) in &names {
            entries.push(NewEntry::Dentry { op: DE_ADD, ino: d.ino, ftype: d.ftype, name });
        }
        for x in rec.extents.iter() {
            let mut done = 0u64;
            while done < x.count {
                let n = (x.count - done).min(u32::MAX as u64 / 2);
                entries.push(NewEntry::Write {
                    flags: if x.unwritten { WF_FALLOC | WF_UNWRITTEN } else { 0 },
                    pgoff: x.pgoff + done,
                    block: x.block + done,
                    count: n as u32,
                });
                done += n;
            }
        }
        if rec.view.parent != rec.rec_parent && rec.is_dir() {
            entries.push(NewEntry::Parent { parent: rec.view.parent });
        }
        if rec.view.nlink != rec.rec_nlink {
            entries.push(NewEntry::Link { nlink: rec.view.nlink });
        }
        // Each live attribute's value as it is (blocks stay where they are).
        for ((index, name), value) in &rec.xattrs.0 {
            entries.push(NewEntry::Xattr { index: *index, name, value: value.as_entry_value() });
        }
        if rec.view.flags != rec.rec_flags || rec.view.projid != 0 {
            entries.push(NewEntry::Flags { flags: rec.view.flags, projid: rec.view.projid });
        }
        let mut valid = sa::MODE | sa::UID | sa::GID | sa::ATIME | sa::MTIME | sa::CTIME;
        if rec.extents.is_empty() && rec.view.size != rec.rec_size {
            valid |= sa::SIZE;
        }
        entries.push(NewEntry::SetAttr { valid });

        let mut end = LogEnd::default();
        let mut pages = Vec::new();
        let owner = LogOwner::pages(ino, rec.generation);
        for e in &entries {
            self.put_entry(owner, &mut end, &mut pages, &e.with_state(&rec))?;
        }
        self.m.write_u64(rec.pos + INODE_HEAD_OFF, end.head).map_err(media_err)?;
        self.m.write_u64(rec.pos + INODE_TAIL_OFF, end.tail).map_err(media_err)?;
        self.reload(ino)?;
        let new = self.inodes.get(&ino).ok_or("inode vanished")?;
        if new.view != rec.view || new.extents != rec.extents || new.xattrs != rec.xattrs {
            return Err("the rewritten log does not reproduce the inode".into());
        }
        Ok(())
    }

    /// Byte position of inode `ino`'s slot.
    pub(crate) fn slot_pos(&self, ino: u64) -> Option<u64> {
        let (lane, slot) = self.geo.ino_split(ino);
        slot_pos_in(&self.geo, &self.lanes.get(lane as usize)?.segments, slot)
    }

    /// Writes a new, empty directory into slot `ino` (a new generation).
    pub(crate) fn create_dir(&mut self, ino: u64, parent: u64, perm: u32) -> Repair {
        let pos = self.slot_pos(ino).ok_or("no such inode slot")?;
        let old = read_inode_at(&self.m, pos).map_err(media_err)?;
        let now = self.opts.now;
        let mut i = Inode::zeroed();
        i.state = INODE_LIVE;
        i.ino = ino;
        i.generation = old.generation.wrapping_add(1).max(1);
        i.mode = S_IFDIR | (perm & 0o7777);
        i.nlink = 2;
        i.parent = parent;
        i.atime = now;
        i.mtime = now;
        i.ctime = now;
        i.btime = now;
        i.seal();
        self.write_inode(pos, &i)?;
        self.free_inos.remove(&ino);
        let w = walk_inode(&self.m, &self.geo, ino, &i);
        self.inodes.insert(ino, InodeRec::new(pos, &i, w));
        Ok(())
    }

    /// Writes a whole inode record.
    pub(crate) fn write_inode(&mut self, pos: u64, i: &Inode) -> Repair {
        let mut b = [0u8; Inode::SIZE];
        i.encode(&mut b);
        self.m.write_at(pos, &b).map_err(media_err)
    }

    /// Frees inode `ino` (state FREE) and forgets it.
    pub(crate) fn free_inode(&mut self, ino: u64, pos: u64) -> Repair {
        self.m
            .write_u64(pos + layout::inode::INODE_STATE_OFF, layout::inode::INODE_FREE)
            .map_err(media_err)?;
        self.inodes.remove(&ino);
        self.free_inos.insert(ino);
        Ok(())
    }

    /// Gives file blocks `[pgoff, pgoff+count)` of `ino`, now at `block`,
    /// a private copy; unmaps them if there is no room.
    pub(crate) fn clone_blocks(&mut self, ino: u64, pgoff: u64, block: u64, count: u64) -> Repair {
        // The copy of unwritten blocks stays unwritten (their bytes are
        // not file data); the range lies inside one extent of `ino`.
        let unwritten = self.inodes.get(&ino).is_some_and(|r| {
            r.extents
                .iter()
                .any(|x| x.unwritten && (x.pgoff..x.pgoff.saturating_add(x.count)).contains(&pgoff))
        });
        let flags = if unwritten { WF_FALLOC | WF_UNWRITTEN } else { 0 };
        match self.space.alloc(count) {
            Some(new) => {
                for i in 0..count {
                    self.m.copy_block(block + i, new + i).map_err(media_err)?;
                }
                let mut done = 0;
                while done < count {
                    let n = (count - done).min(u32::MAX as u64 / 2);
                    self.append(
                        ino,
                        NewEntry::Write {
                            flags,
                            pgoff: pgoff + done,
                            block: new + done,
                            count: n as u32,
                        },
                    )?;
                    done += n;
                }
                Ok(())
            }
            None => self.append(ino, NewEntry::Punch { pgoff, count }),
        }
    }

    /// Gives the attribute of `ino` whose value starts at block `block` a
    /// private copy of the value; removes the attribute if there is no
    /// room for one.
    pub(crate) fn clone_value(&mut self, ino: u64, block: u64) -> Repair {
        let rec = self.inodes.get(&ino).ok_or("inode not in use")?;
        let ((index, name), value) = rec.xattrs.by_block(block).ok_or("no such attribute")?;
        let (index, name) = (*index, name.clone());
        let crate::model::XattrVal::Blocks { len, .. } = *value else {
            return Err("the attribute's value is not in blocks".into());
        };
        let count = xattr_value_blocks(len);
        let value = match self.space.alloc(count) {
            Some(new) => {
                for i in 0..count {
                    self.m.copy_block(block + i, new + i).map_err(media_err)?;
                }
                XattrValue::Blocks { block: new, len }
            }
            None => XattrValue::Removed,
        };
        self.append(ino, NewEntry::Xattr { index, name: &name, value })
    }

    /// Cuts `ino`'s log just before page `page` (emptying it if that is
    /// the head), then re-reads the inode.
    pub(crate) fn truncate_before_page(&mut self, ino: u64, page: u64) -> Repair {
        let rec = self.inodes.get(&ino).ok_or("inode not in use")?;
        let idx = rec.pages.iter().position(|&p| p == page).ok_or("page not in the log")?;
        let slot = rec.pos;
        let (head, tail) = match idx.checked_sub(1).and_then(|i| rec.pages.get(i)) {
            None => (0, 0),
            Some(&prev) => {
                let used = layout::log::unpack_next(
                    self.m.read_u64(next_word_pos(prev)).map_err(media_err)?,
                )
                .1;
                (rec.log.head, prev * BLOCK_SIZE_U64 + used as u64)
            }
        };
        self.m.write_u64(slot + INODE_HEAD_OFF, head).map_err(media_err)?;
        self.m.write_u64(slot + INODE_TAIL_OFF, tail).map_err(media_err)?;
        self.reload(ino)
    }
}

#[cfg(test)]
mod tests {
    use layout::inode::{Timespec, S_IFDIR, S_IFREG};
    use novars_mkfs::{Attrs, Builder, Options};

    use super::NewEntry;
    use crate::check::{Fsck, Mode, Options as CheckOptions, Quiet};
    use crate::model::walk_inode;
    use crate::overlay::Overlay;
    use crate::passes;

    fn image() -> (Vec<u8>, u64, u64) {
        let mut img = vec![0u8; 8 << 20];
        let mut o = Options::defaults(2048, 2);
        o.seg_inodes = 64;
        let t = Timespec::new(10, 0);
        let mut b = Builder::format(&mut img, o).unwrap();
        let root = b.root();
        let d = b.mkdir(root, b"d", Attrs::new(S_IFDIR | 0o755, 0, 0, t)).unwrap();
        let f = b.add_file(d, b"f", Attrs::new(S_IFREG | 0o644, 0, 0, t), b"data").unwrap();
        b.finish().unwrap();
        (img, d, f)
    }

    /// Appends that cross page boundaries produce a log the walker accepts
    /// and the model matches; a rewrite reproduces the inode.
    #[test]
    fn appends_cross_pages_and_rewrite_reproduces() {
        let (img, d, f) = image();
        let mut q = Quiet;
        let m = Overlay::new(&img);
        let found = passes::superblock::find(&m).unwrap();
        let mut fsck = Fsck::new(m, CheckOptions::new(Mode::Yes), &mut q, found.sb, found.geo);
        passes::inodes::run(&mut fsck);
        passes::blocks::run(&mut fsck);
        for n in 1..=300u32 {
            fsck.append(f, NewEntry::Link { nlink: n }).unwrap();
        }
        for i in 0..100u32 {
            let name = format!("name-{i:03}-{}", "x".repeat(100));
            fsck.add_name(d, name.as_bytes(), f).unwrap();
        }
        for (ino, nlink) in [(f, 300), (d, 2)] {
            let rec = fsck.inodes.get(&ino).unwrap().clone();
            assert!(rec.pages.len() > 2, "inode {ino}: {} pages", rec.pages.len());
            let inode = layout::inode::read_inode_at(&fsck.m, rec.pos).unwrap();
            let w = walk_inode(&fsck.m, &fsck.geo, ino, &inode);
            assert_eq!(w.fault, None);
            assert_eq!(w.view, rec.view);
            assert_eq!(w.pages, rec.pages);
            assert_eq!(rec.view.nlink, nlink);
        }
        assert_eq!(fsck.inodes.get(&d).unwrap().dir.as_ref().unwrap().names.len(), 101);
        let before = fsck.inodes.get(&d).unwrap().clone();
        fsck.rewrite_log(d).unwrap();
        let after = fsck.inodes.get(&d).unwrap();
        assert_eq!(after.view, before.view);
        assert_eq!(after.dir.as_ref().unwrap().names, before.dir.as_ref().unwrap().names);
        assert!(after.pages.iter().all(|p| !before.pages.contains(p)));
    }

    /// A value claimed twice is copied to free blocks (the same bytes);
    /// without free space the attribute is removed. A file's log rewrite
    /// keeps its attributes (values in the same blocks), flags and
    /// project id.
    #[test]
    fn value_copy_removal_and_file_rewrite() {
        use layout::log::{fl, xa};
        use layout::Media;

        use crate::model::XattrVal;
        use crate::space::FreeSpace;

        let mut img = vec![0u8; 8 << 20];
        let mut o = Options::defaults(2048, 2);
        o.seg_inodes = 64;
        let t = Timespec::new(10, 0);
        let mut b = Builder::format(&mut img, o).unwrap();
        let root = b.root();
        let f = b.add_file(root, b"f", Attrs::new(S_IFREG | 0o644, 0, 0, t), b"data").unwrap();
        let value: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
        b.set_xattr(f, xa::USER, b"big", &value).unwrap();
        b.set_xattr(f, xa::USER, b"other", &value[..7000]).unwrap();
        b.set_xattr(f, xa::TRUSTED, b"small", b"inline").unwrap();
        b.set_flags(f, fl::APPEND, 9).unwrap();
        b.finish().unwrap();

        let mut q = Quiet;
        let m = Overlay::new(&img);
        let found = passes::superblock::find(&m).unwrap();
        let mut fsck = Fsck::new(m, CheckOptions::new(Mode::Yes), &mut q, found.sb, found.geo);
        passes::inodes::run(&mut fsck);
        passes::blocks::run(&mut fsck);
        let key = |n: &[u8]| (xa::USER, Box::<[u8]>::from(n));
        let blocks_of = |fsck: &Fsck<'_, '_>, n: &[u8]| match fsck.inodes[&f].xattrs.0.get(&key(n))
        {
            Some(&XattrVal::Blocks { block, len }) => (block, len),
            v => panic!("{v:?}"),
        };
        let (old, len) = blocks_of(&fsck, b"big");
        assert_eq!(len, 9000);

        let before = fsck.inodes[&f].clone();
        fsck.rewrite_log(f).unwrap();
        let after = &fsck.inodes[&f];
        assert_eq!(after.xattrs, before.xattrs);
        assert_eq!((after.view.flags, after.view.projid), (fl::APPEND, 9));
        assert!(after.pages.iter().all(|p| !before.pages.contains(p)));

        fsck.clone_value(f, old).unwrap();
        let (new, len) = blocks_of(&fsck, b"big");
        assert_ne!(new, old);
        assert_eq!(len, 9000);
        for i in 0..3u64 {
            let a = fsck.m.block(old + i).unwrap().to_vec();
            assert_eq!(fsck.m.block(new + i).unwrap(), &a[..], "block {i} of the copy");
        }

        fsck.space = FreeSpace::default();
        let (other, _) = blocks_of(&fsck, b"other");
        fsck.clone_value(f, other).unwrap();
        let x = &fsck.inodes[&f].xattrs;
        assert!(!x.0.contains_key(&key(b"other")), "no room: the attribute is removed");
        assert!(x.0.contains_key(&key(b"big")));
        // What the model says is what the log says.
        let rec = &fsck.inodes[&f];
        let inode = layout::inode::read_inode_at(&fsck.m, rec.pos).unwrap();
        let w = walk_inode(&fsck.m, &fsck.geo, f, &inode);
        assert_eq!(w.fault, None);
        assert_eq!(&w.xattrs, x);
    }
}
