//! The random rules: field-aware mutations of every structure, random
//! bytes, words and blocks, shared blocks and loops. Each returns one
//! line saying what it did.

use layout::inode::INODE_LIVE;
use layout::log::{et, LOG_AREA, PAGE_NEXT_OFF};
use layout::{BLOCK_SIZE, BLOCK_SIZE_U64};

use crate::map::{EntryAt, Map};
use crate::{fix, Image, Rng};

/// A field of an on-media structure: name, offset, size in bytes.
type Field = (&'static str, usize, usize);

/// Superblock fields (FORMAT.md), the mutable words included.
const SB: &[Field] = &[
    ("magic", 0, 8),
    ("version", 12, 4),
    ("feature_compat", 16, 8),
    ("feature_incompat", 24, 8),
    ("feature_ro_compat", 32, 8),
    ("blocks_count", 40, 8),
    ("block_size", 48, 4),
    ("lanes", 52, 4),
    ("journal_start", 56, 8),
    ("first_data_block", 64, 8),
    ("root_ino", 72, 8),
    ("lost_found_ino", 80, 8),
    ("inode_size", 88, 4),
    ("seg_inodes", 92, 4),
    ("state", 128, 8),
    ("alloc_rec_head", 136, 8),
    ("alloc_rec_seq", 144, 8),
    ("free_blocks", 152, 8),
    ("free_inodes", 160, 8),
    ("errors", 168, 4),
];

/// Journal header and its first two entries.
const JOURNAL: &[Field] = &[
    ("lane", 8, 4),
    ("count", 12, 4),
    ("seq", 16, 8),
    ("state", 24, 8),
    ("entry0.pos", 32, 8),
    ("entry0.old", 40, 8),
    ("entry1.pos", 48, 8),
    ("entry1.old", 56, 8),
];

const SEGMENT: &[Field] =
    &[("magic", 0, 4), ("next", 8, 8), ("lane", 16, 4), ("index", 20, 4), ("seg_inodes", 24, 4)];

const INODE: &[Field] = &[
    ("state", 0, 8),
    ("log_head", 8, 8),
    ("log_tail", 16, 8),
    ("ino", 32, 8),
    ("generation", 40, 4),
    ("mode", 44, 4),
    ("nlink", 56, 4),
    ("size", 64, 8),
    ("rdev", 72, 8),
    ("parent", 80, 8),
    ("atime.nsec", 96, 4),
    ("mtime.nsec", 112, 4),
    ("inline_len", 152, 4),
];

/// Page-tail fields, from the start of the tail.
const PAGE_TAIL: &[Field] =
    &[("magic", 0, 4), ("next", 8, 8), ("owner", 16, 8), ("owner_gen", 24, 4), ("ordinal", 32, 8)];

const RECORD: &[Field] = &[
    ("kind", 8, 2),
    ("lane", 10, 2),
    ("count", 12, 4),
    ("seq", 16, 8),
    ("next", 24, 8),
    ("extent0.start", 32, 8),
    ("extent0.len", 40, 8),
    ("extent1.start", 48, 8),
    ("extent1.len", 56, 8),
];

/// The rules and how often each is drawn (out of their sum): entries
/// and inodes carry the most decisions, so they get the most cases.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Superblock,
    Backup,
    Journal,
    Segment,
    Inode,
    Page,
    Entry,
    Record,
    Bytes,
    Word,
    Block,
    Shared,
    Loop,
}

const RULES: &[(Rule, u64)] = &[
    (Rule::Superblock, 2),
    (Rule::Backup, 1),
    (Rule::Journal, 1),
    (Rule::Segment, 1),
    (Rule::Inode, 3),
    (Rule::Page, 1),
    (Rule::Entry, 4),
    (Rule::Record, 1),
    (Rule::Bytes, 1),
    (Rule::Word, 2),
    (Rule::Block, 1),
    (Rule::Shared, 1),
    (Rule::Loop, 1),
];

fn entry_name(etype: u8) -> &'static str {
    match etype {
        et::WRITE => "WRITE",
        et::PUNCH => "PUNCH",
        et::SETATTR => "SETATTR",
        et::LINK => "LINK",
        et::DENTRY => "DENTRY",
        et::PARENT => "PARENT",
        et::XATTR => "XATTR",
        et::FLAGS => "FLAGS",
        _ => "?",
    }
}

fn pick<'a, T>(rng: &mut Rng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get(rng.below(v.len() as u64) as usize)
    }
}

/// Draws mutations for one case.
pub(crate) struct Mutator<'a> {
    pub map: &'a Map,
    pub rng: Rng,
}

impl Mutator<'_> {
    /// A boundary or hostile value for a field of `size` bytes holding
    /// `cur`: extremes, off by one, one bit flipped, the device's limits,
    /// and for words, positions of other metadata.
    fn value(&mut self, cur: u64, size: usize) -> u64 {
        let m = self.map;
        let bits = 8 * size as u32;
        let mask = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
        let r = &mut self.rng;
        let mut pool = vec![
            0,
            1,
            mask,
            mask - 1,
            cur.wrapping_add(1),
            cur.wrapping_sub(1),
            cur ^ (1 << r.below(bits as u64)),
            r.next_u64(),
            m.blocks,
            m.blocks - 1,
            m.first_data,
            m.first_data - 1,
            1 << (bits - 1),
        ];
        if size == 8 {
            let block = |r: &mut Rng, v: &[u64]| pick(r, v).copied().unwrap_or(0);
            let page = block(r, &m.pages);
            pool.extend([
                block(r, &m.pages),
                page * BLOCK_SIZE_U64 + r.below(LOG_AREA as u64 + 1),
                block(r, &m.data_blocks),
                block(r, &m.segments),
                block(r, &m.records),
            ]);
        }
        pool[r.below(pool.len() as u64) as usize] & mask
    }

    /// Sets one of `fields` of the structure at `pos`; says which, from
    /// what to what.
    fn field(&mut self, img: &mut Image, pos: usize, fields: &[Field]) -> String {
        let &(name, off, size) = pick(&mut self.rng, fields).expect("field tables are not empty");
        let at = pos + off;
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&img.bytes()[at..at + size]);
        let cur = u64::from_le_bytes(b);
        let v = self.value(cur, size);
        img.write(at, &v.to_le_bytes()[..size]);
        format!("{name} {cur:#x}->{v:#x}")
    }

    fn rule(&mut self) -> Rule {
        let total: u64 = RULES.iter().map(|r| r.1).sum();
        let mut x = self.rng.below(total);
        for &(rule, w) in RULES {
            if x < w {
                return rule;
            }
            x -= w;
        }
        unreachable!("x < total")
    }

    /// One mutation of `img`; with probability 3/4 the checksum of what
    /// it changed is recomputed, so the checks behind the checksum are
    /// reached. Returns what it did, in one line.
    pub fn mutate(&mut self, img: &mut Image) -> String {
        let m = self.map;
        let fix = self.rng.below(4) != 0;
        let fixed = |d: String| if fix { d + " (csum fixed)" } else { d };
        match self.rule() {
            rule @ (Rule::Superblock | Rule::Backup) => {
                let b = if matches!(rule, Rule::Superblock) { 0 } else { m.blocks - 1 };
                let d = self.field(img, b as usize * BLOCK_SIZE, SB);
                if fix {
                    fix::superblock(img, b);
                }
                fixed(format!("superblock in block {b}: {d}"))
            }
            Rule::Journal => {
                let b = *pick(&mut self.rng, &m.journals).expect("a lane has a journal");
                let at = b as usize * BLOCK_SIZE;
                let mut d = format!("journal in block {b}: {}", self.field(img, at, JOURNAL));
                if self.rng.below(2) == 0 {
                    // Open it (state = seq): rollback reads the entries.
                    let seq = img.bytes()[at + 16..at + 24].to_vec();
                    img.write(at + 24, &seq);
                    d += ", opened";
                }
                if fix {
                    fix::journal(img, b);
                }
                fixed(d)
            }
            Rule::Segment => {
                let b = *pick(&mut self.rng, &m.segments).expect("a lane has a segment");
                let d = self.field(img, b as usize * BLOCK_SIZE, SEGMENT);
                if fix {
                    fix::segment(img, b);
                }
                fixed(format!("segment at block {b}: {d}"))
            }
            Rule::Inode => {
                let Some(&i) = pick(&mut self.rng, &m.inodes) else { return self.bytes(img) };
                let d = self.field(img, i.pos, INODE);
                if fix {
                    fix::inode(img, i.pos);
                }
                fixed(format!("inode {}: {d}", i.ino))
            }
            Rule::Page => {
                let Some(&b) = pick(&mut self.rng, &m.pages) else { return self.bytes(img) };
                let d = self.field(img, b as usize * BLOCK_SIZE + LOG_AREA, PAGE_TAIL);
                if fix {
                    fix::page(img, b);
                }
                fixed(format!("log page {b} tail: {d}"))
            }
            Rule::Entry => {
                let Some(&e) = pick(&mut self.rng, &m.entries) else { return self.bytes(img) };
                let d = self.entry_field(img, e);
                if fix {
                    fix::entry(img, e.pos, e.len);
                }
                fixed(format!("{} entry at {} (inode {}): {d}", entry_name(e.etype), e.pos, e.ino))
            }
            Rule::Record => {
                let Some(&b) = pick(&mut self.rng, &m.records) else { return self.bytes(img) };
                let d = self.field(img, b as usize * BLOCK_SIZE, RECORD);
                if fix {
                    fix::record(img, b);
                }
                fixed(format!("allocator record block {b}: {d}"))
            }
            Rule::Bytes => self.bytes(img),
            Rule::Word => self.word(img),
            Rule::Block => self.block(img),
            Rule::Shared => self.shared(img),
            Rule::Loop => self.chain_loop(img),
        }
    }

    /// A header field, an 8- or 4-byte word of the body, or a DENTRY's
    /// name length or file type, an XATTR's namespace, name length, value
    /// length or value block, a FLAGS entry's flags or project id.
    fn entry_field(&mut self, img: &mut Image, e: EntryAt) -> String {
        let mut fields: Vec<Field> = vec![("etype", 0, 1), ("flags", 1, 1), ("len", 2, 2)];
        fields.push(("seq", 8, 8));
        fields.extend((16..e.len - 7).step_by(8).map(|o| ("word", o, 8)));
        fields.extend((16..e.len - 3).step_by(4).map(|o| ("half", o, 4)));
        match e.etype {
            et::DENTRY => fields.extend([("name_len", 40, 1), ("ftype", 41, 1)]),
            et::XATTR => fields.extend([
                ("index", 16, 1),
                ("name_len", 17, 1),
                ("value_len", 20, 4),
                ("value_block", 24, 8),
            ]),
            et::FLAGS => fields.extend([("flags", 16, 4), ("projid", 20, 4)]),
            _ => {}
        }
        let &(name, off, size) = pick(&mut self.rng, &fields).expect("an entry has a header");
        let d = self.field(img, e.pos, &[(name, off, size)]);
        if name == "word" || name == "half" {
            format!("+{off} {d}")
        } else {
            d
        }
    }

    /// 1 to 8 random bytes of one metadata block; no checksum fixed.
    fn bytes(&mut self, img: &mut Image) -> String {
        let blocks = self.map.metadata_blocks();
        let b = *pick(&mut self.rng, &blocks).expect("superblocks are metadata");
        for _ in 0..1 + self.rng.below(8) {
            let at = b as usize * BLOCK_SIZE + self.rng.below(BLOCK_SIZE_U64) as usize;
            img.write(at, &[self.rng.next_u64() as u8]);
        }
        format!("random bytes in block {b}")
    }

    /// An aligned 8-byte word of live metadata set to a value that looks
    /// like a block number, a position, a small count or a live inode's
    /// state; no checksum fixed, so unchecksummed words matter most.
    fn word(&mut self, img: &mut Image) -> String {
        let ranges = self.map.metadata_ranges();
        let &(start, len) = pick(&mut self.rng, &ranges).expect("superblocks are metadata");
        let at = (start + self.rng.below(len as u64) as usize) & !7;
        let cur = u64::from_le_bytes(img.bytes()[at..at + 8].try_into().expect("8 bytes"));
        let blocks = self.map.blocks;
        let r = &mut self.rng;
        let v = match r.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => r.below(blocks + 10),
            3 => r.below(blocks + 10) * BLOCK_SIZE_U64 + r.below(BLOCK_SIZE_U64),
            4 => r.below(1000),
            5 => cur.wrapping_add(1),
            6 => INODE_LIVE,
            _ => r.next_u64(),
        };
        img.write(at, &v.to_le_bytes());
        format!("word at {at}: {cur:#x}->{v:#x}")
    }

    /// A metadata block copied over another (duplicated pages, segments,
    /// records), or zeroed.
    fn block(&mut self, img: &mut Image) -> String {
        let blocks = self.map.metadata_blocks();
        let to = *pick(&mut self.rng, &blocks).expect("superblocks are metadata");
        let at = to as usize * BLOCK_SIZE;
        if self.rng.below(2) == 0 {
            let from = *pick(&mut self.rng, &blocks).expect("superblocks are metadata");
            let src = img.bytes()[from as usize * BLOCK_SIZE..][..BLOCK_SIZE].to_vec();
            img.write(at, &src);
            format!("block {from} copied over block {to}")
        } else {
            img.write(at, &[0; BLOCK_SIZE]);
            format!("block {to} zeroed")
        }
    }

    /// A WRITE entry pointed at the block of a WRITE of another inode
    /// (of the same one if only one inode has WRITEs); checksum fixed.
    fn shared(&mut self, img: &mut Image) -> String {
        let writes: Vec<EntryAt> = self.map.block_entries().copied().collect();
        let Some(&p) = pick(&mut self.rng, &writes) else { return self.bytes(img) };
        let others: Vec<EntryAt> = writes.iter().filter(|q| q.ino != p.ino).copied().collect();
        let Some(&q) = pick(&mut self.rng, if others.is_empty() { &writes } else { &others })
        else {
            return self.bytes(img);
        };
        share_block(img, p, q);
        format!(
            "{} at {} (inode {}) shares the block of the {} at {} (inode {})",
            entry_name(p.etype),
            p.pos,
            p.ino,
            entry_name(q.etype),
            q.pos,
            q.ino
        )
    }

    /// A chain that points back at itself: a segment, a log page or an
    /// allocator-record block (whose checksum covers `next`: fixed).
    fn chain_loop(&mut self, img: &mut Image) -> String {
        let m = self.map;
        match self.rng.below(3) {
            0 => {
                let b = *pick(&mut self.rng, &m.segments).expect("a lane has a segment");
                img.put_u64(b as usize * BLOCK_SIZE + 8, b);
                format!("segment at block {b} links to itself")
            }
            1 if !m.pages.is_empty() => {
                let b = *pick(&mut self.rng, &m.pages).expect("not empty");
                let next = layout::log::pack_next(b, LOG_AREA);
                img.put_u64(b as usize * BLOCK_SIZE + PAGE_NEXT_OFF, next);
                format!("log page {b} links to itself")
            }
            _ => match m.records.first() {
                Some(&b) => {
                    record_loop(img, b);
                    format!("allocator record block {b} links to itself")
                }
                None => self.bytes(img),
            },
        }
    }
}

/// The WRITE `p` takes the block of the WRITE `q`; resealed.
pub(crate) fn share_block(img: &mut Image, p: EntryAt, q: EntryAt) {
    let block = img.bytes()[q.pos + 24..q.pos + 32].to_vec();
    img.write(p.pos + 24, &block);
    fix::entry(img, p.pos, p.len);
}

/// Record block `b` names itself as the next; resealed.
pub(crate) fn record_loop(img: &mut Image, b: u64) {
    img.put_u64(b as usize * BLOCK_SIZE + 24, b);
    fix::record(img, b);
}
