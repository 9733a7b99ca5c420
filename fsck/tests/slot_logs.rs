//! Slot logs (FORMAT.md "Slot logs"): images whose small files keep their
//! log in the inode record check clean, mean what the same tree in pages
//! means, and damage to a slot log is found, named and repaired.

mod common;

use std::collections::BTreeSet;

use common::*;
use layout::log::{slot_len, SLOT_LOG};
use layout::sb::INCOMPAT_SLOT_LOG;
use novars_fsck::tree;

/// Inodes of `img` whose log is a slot log.
fn slot_inodes(img: &Img) -> Vec<u64> {
    tree::list(&img.bytes)
        .values()
        .map(|i| i.ino)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|&ino| slot_len(img.inode(ino).log_tail).is_some())
        .collect()
}

/// Damages a copy of the slot image; `-fn` must name `code` and exit 4,
/// `-fy` exit 1, and a second `-fn` find nothing. Returns the tree after.
fn damaged(code: &str, damage: impl FnOnce(&mut Img)) -> Vec<u8> {
    let mut img = Img::new(slot_base_image());
    damage(&mut img);
    let file = to_file(&img.bytes);
    let (rc, out) = fsck(file.path(), &["-fn"]);
    assert!(out.contains(code), "-fn does not name {code}:\n{out}");
    assert_eq!(rc, 4, "-fn exit status:\n{out}");
    assert_eq!(std::fs::read(file.path()).unwrap(), img.bytes, "-n wrote to the image");
    let (rc, out_y) = fsck(file.path(), &["-fy"]);
    assert_eq!(rc, 1, "-fy exit status:\n{out_y}");
    let (rc, out2) = fsck(file.path(), &["-fn"]);
    assert_eq!(rc, 0, "second -fn is not clean:\n{out2}\nafter -fy:\n{out_y}");
    std::fs::read(file.path()).unwrap()
}

#[test]
fn slot_log_image_checks_clean_and_means_the_same_tree() {
    let img = Img::new(slot_base_image());
    assert_ne!(img.sb().feature_incompat & INCOMPAT_SLOT_LOG, 0);
    let slots = slot_inodes(&img);
    // Files of 1..5000 bytes written once keep their one WRITE there.
    assert!(slots.len() > 100, "only {} slot logs", slots.len());
    let f = to_file(&img.bytes);
    let (code, out) = fsck(f.path(), &["-fn"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = fsck(f.path(), &["-fy"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(f.path()).unwrap(), img.bytes, "-fy changed a clean image");
    // The same files, attributes and contents as the image in pages, in
    // fewer blocks (no log page per small file).
    let pages = base_image();
    assert_eq!(Img::new(pages.clone()).sb().feature_incompat & INCOMPAT_SLOT_LOG, 0);
    assert_intact(&tree::list(&pages), &tree::list(&img.bytes), &BTreeSet::new());
    let free = |b: &[u8]| Img::new(b.to_vec()).sb().free_blocks;
    assert!(
        free(&img.bytes) >= free(&pages) + slots.len() as u64,
        "slot logs should save a page each: {} vs {}",
        free(&img.bytes),
        free(&pages)
    );
}

#[test]
fn slot_entry_checksum_is_found_and_the_log_emptied() {
    let mut victim = 0;
    let after = damaged("LOG_ENTRY_CSUM", |img| {
        victim = img.ino("/docs/f0003.txt");
        let i = img.inode(victim);
        assert_eq!(slot_len(i.log_tail), Some(64), "one WRITE in the record");
        // A bit of the entry's block number, inside the record's inline area.
        let at = img.slot(victim) + layout::inode::INODE_INLINE_OFF + 24;
        let v = img.u64_at(at);
        img.put_u64(at, v ^ 1);
        // The record's own checksum does not cover the area: still valid.
        assert_eq!(img.inode(victim).validate(victim), Ok(()));
    });
    let img = Img::new(after);
    assert_eq!(img.inode(victim).log_tail, 0, "the log is emptied");
}

#[test]
fn slot_tail_longer_than_the_record_area() {
    damaged("INODE_BAD_LOG_PTR", |img| {
        let f = img.ino("/docs/f0003.txt");
        img.put_u64(img.slot(f) + 16, SLOT_LOG | 97);
    });
}

#[test]
fn slot_tail_on_a_directory() {
    damaged("INODE_BAD_LOG_PTR", |img| {
        let d = img.ino("/deep");
        img.put_u64(img.slot(d) + 16, SLOT_LOG | 64);
    });
}

#[test]
fn slot_logs_on_an_image_without_the_feature() {
    damaged("LOG_TAIL_OUT_OF_RANGE", |img| {
        let mut sb = img.sb();
        sb.feature_incompat &= !INCOMPAT_SLOT_LOG;
        img.put_both_sb(&sb);
    });
}

/// A repair that appends to a file whose log is in its record (a wrong
/// link count: fsck appends `LINK`, which does not fit after the `WRITE`)
/// moves the log to a page and leaves it clean.
#[test]
fn a_repair_moves_a_slot_log_to_a_page() {
    let mut victim = 0;
    let after = damaged("LINK_COUNT", |img| {
        victim = img.ino("/links/orig1");
        let mut i = img.inode(victim);
        assert!(slot_len(i.log_tail).is_some(), "{:#x}", i.log_tail);
        // orig1 has two names: the record says three.
        i.nlink = 3;
        i.seal();
        img.put_inode(victim, &i);
    });
    let img = Img::new(after);
    let i = img.inode(victim);
    assert!(slot_len(i.log_tail).is_none() && i.log_tail != 0, "{:#x}", i.log_tail);
    let item = tree::list(&img.bytes).into_values().find(|it| it.ino == victim).unwrap();
    assert_eq!(item.nlink, 2);
    assert_eq!(item.size, 710, "the data survives the move");
}
