//! Shared by the integration tests: a generated host tree, images built
//! from it as `mkfs.novars -d` does, running the real binary, and low-level
//! helpers to damage an image in precise ways.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use layout::append::{self, AppendError, LogEnd, LogMedium, LogOwner, NewEntry};
use layout::inode::{Inode, Timespec};
use layout::log::{unpack_next, Entry, PageTail, LOG_AREA, PAGE_NEXT_OFF};
use layout::walk::{walk_log, LogVisitor};
use layout::{Superblock, BLOCK_SIZE, BLOCK_SIZE_U64};
use novars_fsck::tree::{Item, Reader};
use novars_mkfs::{Builder, Options};

/// A tiny deterministic generator.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn bytes_for(rng: &mut Rng, n: usize) -> Vec<u8> {
    let seed = rng.next();
    (0..n).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 24) as u8).collect()
}

/// Writes a test tree under `dir`: many files, nested directories, long
/// names, hard links, short and long symlinks, sparse files, fifos, a big
/// directory and a large file. `files` scales the number of small files.
pub fn gen_tree(dir: &Path, seed: u64, files: usize) {
    let mut rng = Rng(seed | 1);
    let w = |p: PathBuf, data: &[u8]| fs::write(p, data).unwrap();
    let docs = dir.join("docs");
    fs::create_dir_all(&docs).unwrap();
    for i in 0..files {
        let n = [0usize, 1, 100, 4096, 5000, 20000][rng.below(6) as usize] + rng.below(50) as usize;
        w(docs.join(format!("f{i:04}.txt")), &bytes_for(&mut rng, n));
    }
    let mut deep = dir.join("deep");
    for level in 0..10 {
        deep = deep.join(format!("level{level}"));
        fs::create_dir_all(&deep).unwrap();
        w(deep.join("here"), format!("level {level}").as_bytes());
    }
    let long = dir.join("long");
    fs::create_dir_all(&long).unwrap();
    for c in ['a', 'b', 'c'] {
        let name: String = std::iter::repeat_n(c, 255).collect();
        w(long.join(&name), &bytes_for(&mut rng, 3000));
    }
    let ldir: String = std::iter::repeat_n('d', 255).collect();
    fs::create_dir_all(long.join(&ldir)).unwrap();
    w(long.join(&ldir).join("inside"), b"inside a long-named directory");
    let links = dir.join("links");
    fs::create_dir_all(&links).unwrap();
    for i in 0..4 {
        let orig = links.join(format!("orig{i}"));
        w(orig.clone(), &bytes_for(&mut rng, 700 + i * 10));
        fs::hard_link(&orig, links.join(format!("second{i}"))).unwrap();
        if i % 2 == 0 {
            fs::hard_link(&orig, docs.join(format!("third{i}"))).unwrap();
        }
    }
    let sym = dir.join("sym");
    fs::create_dir_all(&sym).unwrap();
    symlink("../docs/f0000.txt", sym.join("short")).unwrap();
    let target: String = (0..20).map(|i| format!("component{i:02}/")).collect::<String>() + "end";
    symlink(&target, sym.join("long")).unwrap();
    symlink("/nowhere", sym.join("dangling")).unwrap();
    let st = Command::new("mkfifo").arg(sym.join("fifo")).status().unwrap();
    assert!(st.success());
    let sparse = dir.join("sparse");
    fs::create_dir_all(&sparse).unwrap();
    {
        let f = fs::File::create(sparse.join("holes")).unwrap();
        f.set_len(1 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&bytes_for(&mut rng, 4096), 512 << 10).unwrap();
        f.write_all_at(b"tail", (1 << 20) - 4).unwrap();
        let g = fs::File::create(sparse.join("only-hole")).unwrap();
        g.set_len(3 << 20).unwrap();
    }
    let big = dir.join("big");
    fs::create_dir_all(&big).unwrap();
    for i in 0..200 {
        let data = if i % 3 == 0 { bytes_for(&mut rng, 64) } else { Vec::new() };
        w(big.join(format!("entry-with-a-name-of-some-length-{i:03}")), &data);
    }
    w(dir.join("large"), &bytes_for(&mut rng, 3 << 20));
}

/// Builds an image of `size` bytes from `dir`, as `mkfs.novars -d` does.
/// Every log in pages (`-O ^slot_log`): the damage tests aim at the log
/// pages of small files; [`slot_base_image`] has slot logs.
pub fn image_from_dir(dir: &Path, size: usize, lanes: u32, seg_inodes: u32) -> Vec<u8> {
    image_with(dir, size, lanes, seg_inodes, false)
}

fn image_with(dir: &Path, size: usize, lanes: u32, seg_inodes: u32, slot_logs: bool) -> Vec<u8> {
    let mut img = vec![0u8; size];
    let mut o = Options::defaults((size / BLOCK_SIZE) as u64, lanes);
    o.slot_logs = slot_logs;
    o.seg_inodes = seg_inodes;
    o.now = Timespec::new(1_700_000_000, 123);
    o.uuid = [9; 16];
    o.label = "fsck-test".into();
    let mut b = Builder::format(&mut img, o).unwrap();
    novars_mkfs::populate::populate_dir(&mut b, dir).unwrap();
    b.finish().unwrap();
    img
}

/// The standard tree in a 48 MiB image, logs in pages or (`slot_logs`)
/// small ones in their records.
fn standard_image(slot_logs: bool) -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    gen_tree(t.path(), 42, 150);
    image_with(t.path(), 48 << 20, 2, 64, slot_logs)
}

/// The standard test image, every log in pages (built once per test
/// binary).
pub fn base_image() -> Vec<u8> {
    static IMG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    IMG.get_or_init(|| standard_image(false)).clone()
}

/// The standard tree as `mkfs.novars -d` makes it by default: small files
/// keep their log in their record (built once per test binary).
pub fn slot_base_image() -> Vec<u8> {
    static IMG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    IMG.get_or_init(|| standard_image(true)).clone()
}

/// Runs the real `fsck.novars` binary on `path`.
pub fn fsck(path: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsck_novars"))
        .args(args)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), s)
}

/// Writes `img` to a new temporary file.
pub fn to_file(img: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(img).unwrap();
    f.flush().unwrap();
    f
}

/// What a log looks like: pages and entries (position, length, type).
#[derive(Debug, Default)]
pub struct LogInfo {
    pub pages: Vec<u64>,
    pub entries: Vec<(u64, usize, u8)>,
}

impl LogVisitor for LogInfo {
    fn page(&mut self, block: u64, _: u64) {
        self.pages.push(block);
    }
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        self.entries.push((pos, e.hdr().len as usize, e.hdr().etype));
    }
}

/// An image being damaged.
pub struct Img {
    pub bytes: Vec<u8>,
}

impl Img {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.bytes).unwrap()
    }

    pub fn ino(&self, path: &str) -> u64 {
        self.reader().lookup(path).unwrap_or_else(|| panic!("no {path}"))
    }

    pub fn slot(&self, ino: u64) -> u64 {
        self.reader().slot_pos(ino).unwrap()
    }

    pub fn inode(&self, ino: u64) -> Inode {
        let p = self.slot(ino) as usize;
        Inode::decode(&self.bytes[p..p + 256]).unwrap()
    }

    pub fn put_inode(&mut self, ino: u64, i: &Inode) {
        let p = self.slot(ino) as usize;
        i.encode(&mut self.bytes[p..p + 256]);
    }

    pub fn u64_at(&self, pos: u64) -> u64 {
        let p = pos as usize;
        u64::from_le_bytes(self.bytes[p..p + 8].try_into().unwrap())
    }

    pub fn put_u64(&mut self, pos: u64, v: u64) {
        let p = pos as usize;
        self.bytes[p..p + 8].copy_from_slice(&v.to_le_bytes());
    }

    pub fn block(&mut self, b: u64) -> &mut [u8] {
        let s = b as usize * BLOCK_SIZE;
        &mut self.bytes[s..s + BLOCK_SIZE]
    }

    pub fn log(&self, ino: u64) -> LogInfo {
        let r = self.reader();
        let i = self.inode(ino);
        let mut v = LogInfo::default();
        walk_log(&r.m, &r.geo, ino, &i, &mut v).unwrap();
        v
    }

    /// Recomputes the checksum of the entry at `pos`.
    pub fn reseal_entry(&mut self, pos: u64) {
        let p = pos as usize;
        let len = u16::from_le_bytes([self.bytes[p + 2], self.bytes[p + 3]]) as usize;
        layout::log::seal_entry(&mut self.bytes[p..p + len]);
    }

    /// Recomputes a page tail's checksum.
    pub fn reseal_page(&mut self, block: u64) {
        let b = self.block(block);
        let mut t = PageTail::of_page(b).unwrap();
        t.csum = t.compute_csum();
        t.encode(&mut b[LOG_AREA..]);
    }

    pub fn page_tail(&self, block: u64) -> PageTail {
        let s = block as usize * BLOCK_SIZE;
        PageTail::of_page(&self.bytes[s..s + BLOCK_SIZE]).unwrap()
    }

    pub fn sb(&self) -> Superblock {
        Superblock::decode(&self.bytes).unwrap()
    }

    pub fn blocks(&self) -> u64 {
        (self.bytes.len() / BLOCK_SIZE) as u64
    }

    /// Rewrites the primary superblock (checksum recomputed).
    pub fn put_sb(&mut self, sb: &Superblock) {
        sb.write_block(&mut self.bytes[..BLOCK_SIZE]);
    }

    /// Rewrites both superblocks.
    pub fn put_both_sb(&mut self, sb: &Superblock) {
        self.put_sb(sb);
        let b = sb.blocks_count - 1;
        sb.write_block(self.block(b));
    }

    /// Clears CLEAN: the image as a crash leaves it.
    pub fn crash(&mut self) {
        let mut sb = self.sb();
        sb.state &= !layout::sb::STATE_CLEAN;
        self.put_both_sb(&sb);
    }

    /// A block nobody uses (high in the data area, below the record).
    pub fn spare_block(&self, k: u64) -> u64 {
        self.blocks() - 300 - k
    }

    /// Appends `e` to `ino`'s log with `layout::append` (a new page, if
    /// needed, is the spare block 0) and commits it; returns its position.
    pub fn append(&mut self, ino: u64, e: &NewEntry<'_>) -> u64 {
        let i = self.inode(ino);
        assert!(i.log_tail != 0, "test appends only to non-empty logs");
        let rep = {
            let r = self.reader();
            walk_log(&r.m, &r.geo, ino, &i, &mut LogInfo::default()).unwrap()
        };
        let old = LogEnd::walked(i.log_head, i.log_tail, &rep);
        let slot = self.slot(ino);
        // A slot log grows in the record or moves to a page.
        let owner = if layout::log::is_page_tail(i.log_tail) {
            LogOwner::pages(ino, i.generation)
        } else {
            LogOwner { ino, gen: i.generation, slot }
        };
        let mut end = old;
        let pos = append::append(&mut ImgLog { img: self, spare: 0 }, owner, &mut end, e).unwrap();
        let (words, n) = append::commit_words(slot, &old, &end);
        for &(at, v) in &words[..n] {
            self.put_u64(at, v);
        }
        pos
    }

    pub fn next_word(&self, page: u64) -> (u64, usize) {
        unpack_next(self.u64_at(page * BLOCK_SIZE_U64 + PAGE_NEXT_OFF as u64))
    }
}

/// An [`Img`] as the medium of `layout::append`: new log pages are the
/// spare blocks `spare`, `spare + 1`, ... (zeroed).
pub struct ImgLog<'i> {
    pub img: &'i mut Img,
    pub spare: u64,
}

impl LogMedium for ImgLog<'_> {
    type Error = AppendError;

    fn error(e: AppendError) -> AppendError {
        e
    }

    fn read(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), AppendError> {
        let p = pos as usize;
        buf.copy_from_slice(&self.img.bytes[p..p + buf.len()]);
        Ok(())
    }

    fn alloc_page(&mut self) -> Result<u64, AppendError> {
        let page = self.img.spare_block(self.spare);
        self.spare += 1;
        self.img.block(page).fill(0);
        Ok(page)
    }

    fn write_nt(&mut self, pos: u64, b: &[u8]) -> Result<(), AppendError> {
        let p = pos as usize;
        self.img.bytes[p..p + b.len()].copy_from_slice(b);
        Ok(())
    }

    fn store_u64(&mut self, pos: u64, v: u64) -> Result<(), AppendError> {
        self.img.put_u64(pos, v);
        Ok(())
    }

    fn flush(&mut self, _: u64, _: u64) -> Result<(), AppendError> {
        Ok(())
    }

    fn fence(&mut self) -> Result<(), AppendError> {
        Ok(())
    }
}

/// Checks that every inode of `before` (but `lost`) is still in `after`
/// with the same type, attributes and contents: at the same path, or,
/// reconnected, at another path.
pub fn assert_intact(
    before: &BTreeMap<PathBuf, Item>,
    after: &BTreeMap<PathBuf, Item>,
    lost: &BTreeSet<u64>,
) {
    let mut by_ino: BTreeMap<u64, Vec<&Item>> = BTreeMap::new();
    for it in after.values() {
        by_ino.entry(it.ino).or_default().push(it);
    }
    for (path, it) in before {
        if lost.contains(&it.ino) {
            continue;
        }
        match after.get(path) {
            Some(a) if a.essence() == it.essence() => {}
            _ => {
                let moved = by_ino
                    .get(&it.ino)
                    .is_some_and(|v| v.iter().any(|a| a.essence() == it.essence()));
                assert!(
                    moved,
                    "{} (inode {}) lost or changed: before {:?}, after {:?}",
                    path.display(),
                    it.ino,
                    it,
                    after.get(path)
                );
            }
        }
    }
}
