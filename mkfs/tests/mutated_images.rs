//! Every `layout` walker survives images built by mkfs and then damaged at
//! random: no panic, no overflow, no hang.

use layout::inode::{read_inode_at, slot_pos_in, walk_segments, Timespec, S_IFDIR, S_IFREG};
use layout::media::SliceMedia;
use layout::walk::{replay_inode, DirIndex, FileMap};
use layout::{journal, Superblock, BLOCK_SIZE};
use novars_mkfs::{Attrs, Builder, Options};

struct Sink(u64);
impl FileMap for Sink {
    fn map(&mut self, _: u64, _: u64, c: u64) {
        self.0 += c;
    }
    fn unmap(&mut self, _: u64, _: u64) {}
}
impl DirIndex for Sink {
    fn add(&mut self, _: &[u8], _: u64, _: u8, _: u64) {
        self.0 += 1;
    }
    fn remove(&mut self, _: &[u8], _: u64) {}
}

fn build() -> Vec<u8> {
    let mut img = vec![0u8; 16 << 20];
    let mut o = Options::defaults((img.len() / BLOCK_SIZE) as u64, 2);
    o.seg_inodes = 64;
    let t = Timespec::new(1, 2);
    let mut b = Builder::format(&mut img, o).unwrap();
    let root = b.root();
    let d = b.mkdir(root, b"d", Attrs::new(S_IFDIR | 0o755, 0, 0, t)).unwrap();
    for i in 0..150u32 {
        let data = vec![i as u8; (i as usize * 97) % 9000];
        let f = b
            .add_file(
                d,
                format!("file-with-a-longish-name-{i}").as_bytes(),
                Attrs::new(S_IFREG | 0o644, 0, 0, t),
                &data,
            )
            .unwrap();
        if i % 10 == 0 {
            b.link(root, format!("l{i}").as_bytes(), f).unwrap();
        }
    }
    b.finish().unwrap();
    img
}

/// Walks everything the kernel's recovery would walk; returns a count so
/// the work is not optimised away.
fn walk_all(img: &[u8]) -> u64 {
    let m = SliceMedia::new(img);
    let blocks = (img.len() / BLOCK_SIZE) as u64;
    let Ok((_, geo)) = Superblock::parse(&img[..BLOCK_SIZE], blocks) else { return 0 };
    let mut n = 0;
    for lane in 0..geo.lanes {
        let jb = geo.journal_block(lane) as usize * BLOCK_SIZE;
        let _ = journal::inspect(&img[jb..jb + BLOCK_SIZE], &geo, lane);
        let mut segs = Vec::new();
        let _ = walk_segments(&m, &geo, lane, |_, b| segs.push(b));
        for slot in 0..segs.len() as u64 * geo.seg_inodes as u64 {
            let Some(pos) = slot_pos_in(&geo, &segs, slot) else { continue };
            let Ok(inode) = read_inode_at(&m, pos) else { continue };
            let Some(ino) = geo.ino_of(lane, slot) else { continue };
            if inode.validate(ino).is_err() {
                continue;
            }
            let mut s = Sink(0);
            let mut d = Sink(0);
            if let Ok((_, rep)) = replay_inode(&m, &geo, ino, &inode, &mut s, &mut d) {
                n += rep.entries + s.0 + d.0;
            }
        }
    }
    n
}

#[test]
fn random_damage_never_panics() {
    let clean = build();
    let baseline = walk_all(&clean);
    assert!(baseline > 300, "the clean image walks ({baseline})");
    // Metadata lives in the first blocks: segments, root/dir logs, inodes.
    let hot = 4096 * 600;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for case in 0..400 {
        let mut img = clean.clone();
        for _ in 0..(1 + case % 8) {
            let at = (next() as usize) % hot;
            match next() % 3 {
                0 => img[at] ^= 1 << (next() % 8),
                1 => {
                    let w = at & !7;
                    img[w..w + 8].copy_from_slice(&next().to_le_bytes());
                }
                _ => {
                    let w = at & !7;
                    let v = (next() % 2000) * 4096 + (next() % 4096);
                    img[w..w + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        walk_all(&img);
    }
}
