//! Where the metadata of a valid base image is: the targets of the
//! field-aware rules, found once with `layout`'s own walkers.

use layout::alloc_rec::{AllocRecHeader, ALLOC_MAGIC};
use layout::inode::{walk_segments, Inode, INODE_INLINE_OFF, S_IFMT, S_IFREG};
use layout::log::{et, slot_len, Entry};
use layout::media::SliceMedia;
use layout::walk::{walk_log, LogVisitor};
use layout::{Superblock, BLOCK_SIZE};

/// A committed log entry of the base.
#[derive(Clone, Copy, Debug)]
pub struct EntryAt {
    /// Byte position on the device.
    pub pos: usize,
    pub len: usize,
    pub etype: u8,
    /// The inode whose log holds it.
    pub ino: u64,
    /// An `XATTR` entry whose value is in blocks.
    pub blocks: bool,
}

/// A live inode record of the base.
#[derive(Clone, Copy, Debug)]
pub struct InodeAt {
    pub ino: u64,
    /// Byte position of the 256-byte record.
    pub pos: usize,
    pub mode: u32,
}

/// The base's metadata, by structure.
#[derive(Clone, Debug)]
pub struct Map {
    pub blocks: u64,
    pub first_data: u64,
    pub journals: Vec<u64>,
    /// First block of every inode-table segment, every lane.
    pub segments: Vec<u64>,
    pub inodes: Vec<InodeAt>,
    /// Log pages up to each log's tail page.
    pub pages: Vec<u64>,
    /// Entries of slot logs (in inode records, FORMAT.md "Slot logs").
    pub slot_entries: usize,
    pub entries: Vec<EntryAt>,
    /// The allocator record's chain (kept even when the superblock does
    /// not say CLEAN: a mutation may set CLEAN again).
    pub records: Vec<u64>,
    /// Blocks that `WRITE` entries map and first blocks of attribute
    /// values.
    pub data_blocks: Vec<u64>,
}

struct Logs<'m> {
    map: &'m mut Map,
    ino: u64,
    /// Byte position of the inode's record (a slot log's entries are in it).
    rec: usize,
}

impl LogVisitor for Logs<'_> {
    fn page(&mut self, block: u64, _: u64) {
        self.map.pages.push(block);
    }
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        let h = e.hdr();
        match e {
            Entry::Write(w) => self.map.data_blocks.push(w.block),
            Entry::Xattr(x, _, _) if x.value_block != 0 => self.map.data_blocks.push(x.value_block),
            _ => {}
        }
        // A slot log's positions are `SLOT_LOG | offset` in the record's
        // inline area.
        let pos = match slot_len(pos) {
            Some(off) => self.rec + INODE_INLINE_OFF as usize + off as usize,
            None => pos as usize,
        };
        if pos >= self.rec && pos < self.rec + Inode::SIZE {
            self.map.slot_entries += 1;
        }
        self.map.entries.push(EntryAt {
            pos,
            len: h.len as usize,
            etype: h.etype,
            ino: self.ino,
            blocks: matches!(e, Entry::Xattr(x, _, _) if x.value_block != 0),
        });
    }
}

impl Map {
    /// Maps `img`, which must be a valid image: its primary superblock,
    /// segment chains and logs are what the rules aim at.
    pub fn new(img: &[u8]) -> Result<Self, String> {
        let blocks = (img.len() / BLOCK_SIZE) as u64;
        let (sb, geo) = Superblock::parse(img.get(..BLOCK_SIZE).unwrap_or(&[]), blocks)
            .map_err(|e| format!("base image: {}", e.describe()))?;
        let m = SliceMedia::new(img);
        let mut map = Map {
            blocks: geo.blocks_count,
            first_data: geo.first_data_block,
            journals: (0..geo.lanes).map(|l| geo.journal_block(l)).collect(),
            segments: Vec::new(),
            inodes: Vec::new(),
            pages: Vec::new(),
            slot_entries: 0,
            entries: Vec::new(),
            records: Vec::new(),
            data_blocks: Vec::new(),
        };
        for lane in 0..geo.lanes {
            let mut segs = Vec::new();
            walk_segments(&m, &geo, lane, |_, b| segs.push(b))
                .map_err(|e| format!("base image: lane {lane}'s segments: {e:?}"))?;
            for (index, &seg) in segs.iter().enumerate() {
                for s in 0..geo.seg_inodes {
                    let pos = geo.slot_pos(seg, s) as usize;
                    let Some(i) = img.get(pos..pos + Inode::SIZE).and_then(Inode::decode) else {
                        continue;
                    };
                    let slot = index as u64 * geo.seg_inodes as u64 + s as u64;
                    let Some(ino) = geo.ino_of(lane, slot) else { continue };
                    if !i.is_live() {
                        continue;
                    }
                    map.inodes.push(InodeAt { ino, pos, mode: i.mode });
                    walk_log(&m, &geo, ino, &i, &mut Logs { map: &mut map, ino, rec: pos })
                        .map_err(|e| format!("base image: inode {ino}'s log: {}", e.describe()))?;
                }
            }
            map.segments.extend(segs);
        }
        let mut b = sb.alloc_rec_head;
        while b != 0 && b < blocks && !map.records.contains(&b) {
            let at = b as usize * BLOCK_SIZE;
            match AllocRecHeader::decode(&img[at..at + BLOCK_SIZE]) {
                Some(h) if h.magic == ALLOC_MAGIC => {
                    map.records.push(b);
                    b = h.next;
                }
                _ => break,
            }
        }
        Ok(map)
    }

    /// Regular files, in inode order.
    pub fn files(&self) -> impl Iterator<Item = &InodeAt> {
        self.inodes.iter().filter(|i| i.mode & S_IFMT == S_IFREG)
    }

    /// `WRITE` entries that map a block.
    pub fn writes(&self) -> impl Iterator<Item = &EntryAt> {
        self.entries.iter().filter(|e| e.etype == et::WRITE)
    }

    /// Entries that name a block at byte 24: `WRITE` (`block`) and
    /// `XATTR` with a value in blocks (`value_block`).
    pub fn block_entries(&self) -> impl Iterator<Item = &EntryAt> {
        self.entries.iter().filter(|e| e.etype == et::WRITE || (e.etype == et::XATTR && e.blocks))
    }

    /// Every metadata block: both superblocks, journals, segment headers,
    /// log pages, record blocks.
    pub fn metadata_blocks(&self) -> Vec<u64> {
        let mut v = vec![0, self.blocks - 1];
        v.extend(&self.journals);
        v.extend(&self.segments);
        v.extend(&self.pages);
        v.extend(&self.records);
        v
    }

    /// Byte ranges of live metadata: superblocks, journal and segment
    /// headers, inode records, page tails, committed entries, record
    /// headers with their first extents.
    pub fn metadata_ranges(&self) -> Vec<(usize, usize)> {
        let at = |b: u64| b as usize * BLOCK_SIZE;
        let mut v = vec![(0, 512), (at(self.blocks - 1), 512)];
        v.extend(self.journals.iter().map(|&b| (at(b), 64)));
        v.extend(self.segments.iter().map(|&b| (at(b), 64)));
        v.extend(self.inodes.iter().map(|i| (i.pos, Inode::SIZE)));
        v.extend(self.pages.iter().map(|&b| (at(b) + layout::log::LOG_AREA, 64)));
        v.extend(self.entries.iter().map(|e| (e.pos, e.len)));
        v.extend(self.records.iter().map(|&b| (at(b), 96)));
        v
    }
}
