//! Parsers and walkers fed arbitrary bytes never panic, never overflow
//! (tests run with overflow checks) and never loop.

use layout::inode::{walk_segments, Inode, INODE_LIVE};
use layout::journal;
use layout::log::{Entry, PageTail, LOG_AREA};
use layout::media::SliceMedia;
use layout::sb::Geometry;
use layout::walk::{replay_inode, walk_log, DirIndex, FileMap, LogVisitor};
use layout::{alloc_rec, Superblock, BLOCK_SIZE};
use proptest::prelude::*;

struct Count(u64);
impl LogVisitor for Count {
    fn entry(&mut self, _: u64, _: &Entry<'_>) {
        self.0 += 1;
    }
}
struct Sink;
impl FileMap for Sink {
    fn map(&mut self, p: u64, b: u64, c: u64) {
        // Replay hands out ranges the walker checked: no overflow.
        assert!(p.checked_add(c).is_some() && b.checked_add(c).is_some());
    }
    fn unmap(&mut self, p: u64, c: u64) {
        assert!(p.checked_add(c).is_some());
    }
}
impl DirIndex for Sink {
    fn add(&mut self, name: &[u8], ino: u64, _: u8, _: u64) {
        assert!(!name.is_empty() && name.len() <= 255 && ino != 0);
    }
    fn remove(&mut self, _: &[u8], _: u64) {}
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn entry_parse_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let geo = Geometry::plan(1 << 16, 2, 64).unwrap();
        if let Ok((e, len)) = Entry::parse(&b) {
            prop_assert!(len <= b.len() && len >= 16 && len % 8 == 0);
            let _ = e.check(&geo);
        }
    }

    #[test]
    fn superblock_parse_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..4200), dev in any::<u64>()) {
        let _ = Superblock::parse(&b, dev);
    }

    #[test]
    fn journal_and_record_any_bytes(b in proptest::collection::vec(any::<u8>(), 4096..=4096), seq in any::<u64>(), lane in 0u32..3) {
        let geo = Geometry::plan(1 << 16, 3, 64).unwrap();
        if let Ok(journal::JournalState::Open { count, .. }) = journal::inspect(&b, &geo, lane) {
            prop_assert!(journal::undo_entries(&b, count).count() == count);
        }
        if let Ok((_, it)) = alloc_rec::parse(&b, seq) {
            let _ = it.count();
        }
    }

    /// A small device of random pages, some with valid-looking tails that
    /// point at each other (cycles included), walked from random inodes.
    #[test]
    fn walk_random_chains(
        links in proptest::collection::vec((0u64..40, 0usize..5000, 0u64..3), 40),
        head in 0u64..48,
        tail in any::<u64>(),
        noise in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let geo = Geometry::plan(48, 1, 64).unwrap_or_else(|_| Geometry::plan(200, 1, 64).unwrap());
        let blocks = geo.blocks_count as usize;
        let mut img = vec![0u8; blocks * BLOCK_SIZE];
        for (i, (next, used, ord)) in links.iter().enumerate() {
            let blk = geo.first_data_block as usize + i % (blocks - geo.first_data_block as usize - 1);
            let page = &mut img[blk * BLOCK_SIZE..(blk + 1) * BLOCK_SIZE];
            for (j, x) in noise.iter().enumerate() {
                page[j * 13 % LOG_AREA] = *x;
            }
            let mut t = PageTail::new(7, 1, *ord);
            t.next = layout::log::pack_next(geo.first_data_block + next, *used);
            t.encode(&mut page[LOG_AREA..]);
        }
        let mut ino = Inode::zeroed();
        ino.state = INODE_LIVE;
        ino.ino = 7;
        ino.generation = 1;
        ino.log_head = geo.first_data_block.saturating_add(head);
        ino.log_tail = tail;
        let m = SliceMedia::new(&img);
        let mut c = Count(0);
        let _ = walk_log(&m, &geo, 7, &ino, &mut c);
        let _ = replay_inode(&m, &geo, 7, &ino, &mut Sink, &mut Sink);
        let _ = walk_segments(&m, &geo, 0, |_, _| {});
    }
}
