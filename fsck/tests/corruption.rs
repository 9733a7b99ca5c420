//! The corruption suite: an image built from a generated tree (as
//! `mkfs.novars -d` builds it) is damaged in one precise, named way. For
//! each case the real binary must: with `-fn` exit 4 and name the problem
//! (leaving the file untouched); with `-fy` repair it and exit 1 (or exit 8
//! and say why, where repair is impossible); then check clean with `-fn`;
//! and every inode that was intact before must still be there, with the
//! same type, attributes and contents (at its path, or reconnected).
//!
//! Two cases are not errors but what a crash leaves and a mount recovers:
//! an open journal transaction and an orphan inode. Those check clean
//! (exit 0, with a note) in every mode.

mod common;

use std::collections::BTreeSet;

use common::*;
use layout::alloc_rec;
use layout::append::{NewEntry, XattrValue};
use layout::inode::{dt, Timespec, INODE_FREE};
use layout::journal::{self, JournalEntry, JOURNAL_STATE_OFF};
use layout::log::{et, fl, pack_next, xa, Entry, DE_ADD, DE_DEL, LOG_AREA};
use layout::{Superblock, BLOCK_SIZE, BLOCK_SIZE_U64};
use novars_fsck::tree;

/// What a damaged image must produce.
struct Expect {
    /// Codes `-fn` must print.
    codes: &'static [&'static str],
    /// Exit status of `-fn` (4; 0 for recovery notes; 8).
    n_exit: i32,
    /// Exit status of `-fy` (1; 0 for recovery notes; 8).
    y_exit: i32,
    /// Inodes the damage destroyed or changed.
    lost: BTreeSet<u64>,
}

fn errors(codes: &'static [&'static str], lost: &[u64]) -> Expect {
    Expect { codes, n_exit: 4, y_exit: 1, lost: lost.iter().copied().collect() }
}

/// Runs one case; returns the image after `-fy` (empty if it could not
/// be repaired).
fn run_case(damage: impl FnOnce(&mut Img) -> Expect) -> Vec<u8> {
    let mut img = Img::new(base_image());
    let before = tree::list(&img.bytes);
    assert!(before.len() > 300);
    let exp = damage(&mut img);
    let file = to_file(&img.bytes);
    let (code, out) = fsck(file.path(), &["-fn"]);
    for c in exp.codes {
        assert!(out.contains(c), "-fn does not name {c}:\n{out}");
    }
    assert_eq!(code, exp.n_exit, "-fn exit status:\n{out}");
    assert_eq!(std::fs::read(file.path()).unwrap(), img.bytes, "-n wrote to the image");

    let (code, out_y) = fsck(file.path(), &["-fy"]);
    if std::env::var_os("FSCK_SHOW").is_some() {
        println!("---- -fn:\n{out}---- -fy:\n{out_y}");
    }
    assert_eq!(code, exp.y_exit, "-fy exit status:\n{out_y}");
    if exp.y_exit == 8 {
        assert!(out_y.contains("no valid superblock"), "-fy does not say why:\n{out_y}");
        return Vec::new();
    }
    let (code, out2) = fsck(file.path(), &["-fn"]);
    assert_eq!(code, 0, "second -fn is not clean:\n{out2}\nafter -fy:\n{out_y}");
    for c in exp.codes {
        assert!(!out2.contains(c), "{c} still reported after repair:\n{out2}");
    }
    let repaired = std::fs::read(file.path()).unwrap();
    let after = tree::list(&repaired);
    assert_intact(&before, &after, &exp.lost);
    repaired
}

/// Position of the DENTRY entry adding `name` in `dir`'s log.
fn dentry_pos(img: &Img, dir: u64, name: &[u8]) -> u64 {
    for (pos, len, t) in img.log(dir).entries {
        if t != et::DENTRY {
            continue;
        }
        let p = pos as usize;
        if let Ok((Entry::Dentry(_, n), _)) = Entry::parse(&img.bytes[p..p + len]) {
            if n == name {
                return pos;
            }
        }
    }
    panic!("no entry for {name:?}");
}

/// Position of the first WRITE entry of `ino`.
fn write_pos(img: &Img, ino: u64) -> u64 {
    img.log(ino).entries.iter().find(|e| e.2 == et::WRITE).map(|e| e.0).expect("file has data")
}

fn append_dentry(img: &mut Img, dir: u64, op: u8, ino: u64, ftype: u8, name: &[u8]) -> u64 {
    img.append(dir, &NewEntry::Dentry { op, ino, ftype, mtime: Timespec::new(5, 0), name })
}

fn append_link(img: &mut Img, ino: u64, nlink: u32) -> u64 {
    img.append(ino, &NewEntry::Link { nlink, ctime: Timespec::new(5, 0) })
}

/// Big directory: several log pages.
fn big(img: &Img) -> u64 {
    let d = img.ino("/big");
    assert!(img.log(d).pages.len() >= 4);
    d
}

fn journal_open(img: &mut Img, lane: u32, seq: u64, entries: &[JournalEntry]) -> u64 {
    let geo = img.reader().geo;
    let jb = geo.journal_block(lane);
    let b = img.block(jb);
    assert!(journal::build(b, lane, seq, entries));
    b[JOURNAL_STATE_OFF..JOURNAL_STATE_OFF + 8].copy_from_slice(&seq.to_le_bytes());
    jb
}

// ---------------------------------------------------------------- pass 0

#[test]
fn sb_primary_checksum() {
    run_case(|img| {
        img.bytes[600] ^= 0x40;
        errors(&["SB_PRIMARY_BAD"], &[])
    });
}

#[test]
fn sb_both_bad() {
    run_case(|img| {
        img.bytes[600] ^= 0x40;
        let last = img.bytes.len() - BLOCK_SIZE + 600;
        img.bytes[last] ^= 0x40;
        Expect { codes: &["no valid superblock"], n_exit: 8, y_exit: 8, lost: BTreeSet::new() }
    });
}

#[test]
fn sb_backup_checksum() {
    run_case(|img| {
        let last = img.bytes.len() - BLOCK_SIZE + 100;
        img.bytes[last] ^= 1;
        errors(&["SB_BACKUP_BAD"], &[])
    });
}

#[test]
fn sb_backup_mismatch() {
    run_case(|img| {
        let mut sb = img.sb();
        sb.label[0] = b'X';
        let b = sb.blocks_count - 1;
        sb.write_block(img.block(b));
        errors(&["SB_BACKUP_MISMATCH"], &[])
    });
}

// ---------------------------------------------------------------- pass 1

#[test]
fn journal_torn() {
    run_case(|img| {
        let ino = img.ino("/docs");
        let slot = img.slot(ino);
        let tail = img.u64_at(slot + 16);
        let jb = journal_open(img, 0, 9, &[JournalEntry { pos: slot + 16, old: tail }]);
        img.block(jb)[40] ^= 1;
        errors(&["JOURNAL_TORN"], &[])
    });
}

#[test]
fn journal_bad_header() {
    run_case(|img| {
        let geo = img.reader().geo;
        img.block(geo.journal_block(1))[0] = b'X';
        errors(&["JOURNAL_BAD_HEADER"], &[])
    });
}

#[test]
fn journal_bad_entry() {
    run_case(|img| {
        journal_open(img, 1, 3, &[JournalEntry { pos: 8, old: 0 }]);
        errors(&["JOURNAL_BAD_ENTRY"], &[])
    });
}

/// A crash inside an unlink: the name's removal was appended and the
/// directory's tail moved, the transaction never committed. Mount (and
/// fsck, in every mode) rolls it back: the name is still there.
#[test]
fn journal_open_rolls_back() {
    run_case(|img| {
        img.crash();
        let docs = img.ino("/docs");
        let f = img.ino("/docs/f0001.txt");
        let slot = img.slot(docs);
        let old_tail = img.u64_at(slot + 16);
        append_dentry(img, docs, DE_DEL, f, dt::REG, b"f0001.txt");
        assert_ne!(img.u64_at(slot + 16), old_tail);
        journal_open(img, 0, 77, &[JournalEntry { pos: slot + 16, old: old_tail }]);
        Expect { codes: &["JOURNAL_ROLLBACK"], n_exit: 0, y_exit: 0, lost: BTreeSet::new() }
    });
}

// ---------------------------------------------------------------- pass 2

#[test]
fn segment_header_bad() {
    run_case(|img| {
        let geo = img.reader().geo;
        let s = geo.first_segment(1);
        img.block(s)[20] ^= 1;
        errors(&["SEG_BAD_HEADER"], &[])
    });
}

#[test]
fn segment_link_out_of_range() {
    run_case(|img| {
        let r = img.reader();
        let last = *r.segments[0].last().unwrap();
        let blocks = img.blocks();
        drop(r);
        img.put_u64(last * BLOCK_SIZE_U64 + 8, blocks + 5);
        errors(&["SEG_OUT_OF_RANGE"], &[])
    });
}

#[test]
fn inode_size_beyond_the_format() {
    // Issue 14: a size of u64::MAX with a valid checksum once mounted and
    // made a punch overflow in the module; layout now refuses it.
    run_case(|img| {
        let ino = img.ino("/docs/f0003.txt");
        let mut i = img.inode(ino);
        i.size = u64::MAX;
        i.seal();
        img.put_inode(ino, &i);
        errors(&["INODE_BAD_SIZE"], &[ino])
    });
}

#[test]
fn inode_checksum_field() {
    run_case(|img| {
        let ino = img.ino("/docs/f0003.txt");
        let mut i = img.inode(ino);
        i.csum ^= 0x100;
        img.put_inode(ino, &i);
        errors(&["INODE_CSUM"], &[])
    });
}

#[test]
fn inode_checksum_content() {
    run_case(|img| {
        let ino = img.ino("/docs/f0004.txt");
        let mut i = img.inode(ino);
        i.uid ^= 4;
        img.put_inode(ino, &i);
        errors(&["INODE_CSUM"], &[ino])
    });
}

#[test]
fn inode_wrong_ino() {
    run_case(|img| {
        let ino = img.ino("/links/orig0");
        let mut i = img.inode(ino);
        i.ino += 1000;
        i.seal();
        img.put_inode(ino, &i);
        errors(&["INODE_WRONG_INO"], &[])
    });
}

#[test]
fn inode_bad_state() {
    run_case(|img| {
        let ino = img.ino("/docs/f0005.txt");
        let mut i = img.inode(ino);
        i.state = 0xdead_beef;
        img.put_inode(ino, &i);
        errors(&["INODE_BAD_STATE"], &[])
    });
}

#[test]
fn inode_bad_mode() {
    run_case(|img| {
        let ino = img.ino("/docs/f0006.txt");
        let mut i = img.inode(ino);
        i.mode = 0o644;
        i.seal();
        img.put_inode(ino, &i);
        errors(&["INODE_BAD_MODE", "DENTRY_DEAD_INODE"], &[ino])
    });
}

#[test]
fn inode_bad_time() {
    run_case(|img| {
        let ino = img.ino("/sym/fifo");
        let mut i = img.inode(ino);
        i.mtime.nsec = 2_000_000_000;
        i.seal();
        img.put_inode(ino, &i);
        errors(&["INODE_BAD_TIME"], &[ino])
    });
}

#[test]
fn inode_bad_log_pointers() {
    run_case(|img| {
        let ino = img.ino("/large");
        let mut i = img.inode(ino);
        // A tail without a head (a head without a tail is an empty log).
        i.log_head = 0;
        img.put_inode(ino, &i);
        errors(&["INODE_BAD_LOG_PTR"], &[ino])
    });
}

#[test]
fn log_page_tail() {
    run_case(|img| {
        let d = big(img);
        let p = img.log(d).pages[2];
        img.block(p)[LOG_AREA] ^= 0xff;
        // Names in later pages are lost from /big; their files are
        // reconnected into lost+found.
        errors(&["LOG_PAGE_TAIL", "INODE_UNREACHABLE"], &[])
    });
}

#[test]
fn log_cycle() {
    run_case(|img| {
        let d = big(img);
        let pages = img.log(d).pages;
        let (_, used) = img.next_word(pages[1]);
        img.put_u64(pages[1] * BLOCK_SIZE_U64 + (LOG_AREA + 8) as u64, pack_next(pages[0], used));
        errors(&["LOG_CYCLE"], &[])
    });
}

#[test]
fn log_ordinal() {
    run_case(|img| {
        let d = big(img);
        let p = img.log(d).pages[2];
        let mut t = img.page_tail(p);
        t.ordinal = 7;
        t.encode(&mut img.block(p)[LOG_AREA..]);
        img.reseal_page(p);
        errors(&["LOG_ORDINAL"], &[])
    });
}

#[test]
fn log_tail_not_in_chain() {
    run_case(|img| {
        let d = big(img);
        let slot = img.slot(d);
        let spare = img.spare_block(3);
        img.put_u64(slot + 16, spare * BLOCK_SIZE_U64 + 96);
        errors(&["LOG_TAIL_NOT_IN_CHAIN"], &[])
    });
}

#[test]
fn log_tail_past_page() {
    run_case(|img| {
        let d = big(img);
        let slot = img.slot(d);
        let tail = img.u64_at(slot + 16);
        img.put_u64(slot + 16, tail - tail % BLOCK_SIZE_U64 + 4090);
        errors(&["LOG_TAIL_OUT_OF_RANGE"], &[])
    });
}

#[test]
fn log_wrong_owner() {
    run_case(|img| {
        let ino = img.ino("/large");
        let other = img.ino("/docs/f0000.txt");
        let p = img.log(ino).pages[0];
        let mut t = img.page_tail(p);
        t.owner = other;
        t.encode(&mut img.block(p)[LOG_AREA..]);
        img.reseal_page(p);
        errors(&["LOG_WRONG_OWNER"], &[ino])
    });
}

#[test]
fn log_entry_checksum() {
    run_case(|img| {
        let d = big(img);
        let (pos, _, _) = img.log(d).entries[60];
        img.bytes[pos as usize + 50] ^= 1;
        errors(&["LOG_ENTRY_CSUM"], &[])
    });
}

#[test]
fn log_entry_block_outside_device() {
    run_case(|img| {
        let ino = img.ino("/links/orig2");
        let pos = write_pos(img, ino);
        let blocks = img.blocks();
        img.put_u64(pos + 24, blocks + 100);
        img.reseal_entry(pos);
        errors(&["LOG_ENTRY_BAD"], &[ino])
    });
}

#[test]
fn log_seq_not_increasing() {
    run_case(|img| {
        let d = big(img);
        let (pos, _, _) = img.log(d).entries[80];
        img.put_u64(pos + 8, 1);
        img.reseal_entry(pos);
        errors(&["LOG_SEQ"], &[])
    });
}

#[test]
fn log_used_too_large() {
    run_case(|img| {
        let d = big(img);
        let pages = img.log(d).pages;
        img.put_u64(
            pages[0] * BLOCK_SIZE_U64 + (LOG_AREA + 8) as u64,
            pack_next(pages[1], LOG_AREA + 8),
        );
        errors(&["LOG_USED"], &[])
    });
}

#[test]
fn log_page_out_of_range() {
    run_case(|img| {
        let d = big(img);
        let pages = img.log(d).pages;
        let (_, used) = img.next_word(pages[1]);
        let far = img.blocks() + 10;
        img.put_u64(pages[1] * BLOCK_SIZE_U64 + (LOG_AREA + 8) as u64, pack_next(far, used));
        errors(&["LOG_PAGE_OUT_OF_RANGE"], &[])
    });
}

#[test]
fn log_entry_wrong_kind() {
    run_case(|img| {
        let ino = img.ino("/links/orig3");
        append_dentry(img, ino, DE_ADD, ino, dt::REG, b"nonsense");
        errors(&["LOG_ENTRY_KIND"], &[])
    });
}

// ---------------------------------------------------------------- pass 3

/// A small file whose data is one block.
fn one_block_file(img: &Img, from: usize) -> (u64, u64) {
    let r = img.reader();
    for i in from..150 {
        let ino = img.ino(&format!("/docs/f{i:04}.txt"));
        let l = r.load(ino).unwrap();
        if l.view.size > 0 && l.view.size <= 4096 && l.extents.len() == 1 {
            return (ino, l.extents[0].block);
        }
    }
    panic!("no one-block file");
}

#[test]
fn block_multiply_claimed() {
    run_case(|img| {
        let (a, a_block) = one_block_file(img, 0);
        let (b, _) = one_block_file(img, 20);
        let pos = write_pos(img, b);
        img.put_u64(pos + 24, a_block);
        img.reseal_entry(pos);
        let _ = a;
        errors(&["BLOCK_MULTIPLY_CLAIMED"], &[b])
    });
}

// ------------------------------------------- pass 3: attribute values

fn append_xattr(img: &mut Img, ino: u64, index: u8, name: &[u8], value: XattrValue<'_>) -> u64 {
    img.append(ino, &NewEntry::Xattr { index, name, value, ctime: Timespec::new(5, 0) })
}

/// A file whose first extent has at least two blocks: (inode, block).
fn two_block_file(img: &Img) -> (u64, u64) {
    let r = img.reader();
    for i in 0..150 {
        let ino = img.ino(&format!("/docs/f{i:04}.txt"));
        let l = r.load(ino).unwrap();
        if l.view.size > 8192 && l.extents.first().is_some_and(|x| x.count >= 2) {
            return (ino, l.extents[0].block);
        }
    }
    panic!("no file of two blocks");
}

/// The value of attribute `name` of `ino` in image `bytes`, read from its
/// blocks.
fn value_in_blocks(bytes: &[u8], ino: u64, name: &[u8]) -> (u64, Vec<u8>) {
    let r = tree::Reader::new(bytes).unwrap();
    let l = r.load(ino).unwrap();
    match l.xattrs.0.get(&(xa::USER, Box::from(name))) {
        Some(&novars_fsck::model::XattrVal::Blocks { block, len }) => {
            let s = block as usize * BLOCK_SIZE;
            (block, bytes[s..s + len as usize].to_vec())
        }
        v => panic!("attribute {name:?} of inode {ino} is {v:?}"),
    }
}

/// A value whose blocks are another file's data: the data stays with the
/// file, the attribute gets a copy (the same bytes in new blocks).
#[test]
fn xattr_value_shares_file_data() {
    let (mut y, mut data, mut block) = (0, Vec::new(), 0);
    let img = run_case(|img| {
        let (x, b) = two_block_file(img);
        (y, _) = one_block_file(img, 0);
        block = b;
        let s = b as usize * BLOCK_SIZE;
        data = img.bytes[s..s + 5000].to_vec();
        append_xattr(img, y, xa::USER, b"shared", XattrValue::Blocks { block: b, len: 5000 });
        let _ = x;
        errors(&["BLOCK_MULTIPLY_CLAIMED"], &[y])
    });
    let (at, value) = value_in_blocks(&img, y, b"shared");
    assert_ne!(at, block, "the value was not moved");
    assert!(value == data, "the copied value differs from the bytes it had");
}

/// A value whose block is a directory's log page: the log keeps it.
#[test]
fn xattr_value_shares_log_page() {
    run_case(|img| {
        let page = img.log(big(img)).pages[1];
        let y = img.ino("/links/orig1");
        append_xattr(img, y, xa::USER, b"onlog", XattrValue::Blocks { block: page, len: 600 });
        errors(&["BLOCK_MULTIPLY_CLAIMED"], &[y])
    });
}

/// Two attributes (of two files) whose values are the same free blocks:
/// the lower inode keeps them, the other gets a copy.
#[test]
fn xattr_values_share_blocks() {
    let (mut a, mut b) = (0, 0);
    let img = run_case(|img| {
        let spare = img.spare_block(40);
        let s = spare as usize * BLOCK_SIZE;
        img.bytes[s..s + 2 * BLOCK_SIZE].fill(0x5a);
        a = img.ino("/links/orig0");
        b = img.ino("/links/orig2");
        for ino in [a, b] {
            let v = XattrValue::Blocks { block: spare, len: 6000 };
            append_xattr(img, ino, xa::USER, b"twice", v);
        }
        // The record lists those blocks as free: ALLOC_REC_MISMATCH too.
        errors(&["BLOCK_MULTIPLY_CLAIMED", "ALLOC_REC_MISMATCH"], &[a, b])
    });
    let (at_a, va) = value_in_blocks(&img, a, b"twice");
    let (at_b, vb) = value_in_blocks(&img, b, b"twice");
    assert_ne!(at_a, at_b);
    assert!(va == vec![0x5a; 6000] && va == vb);
}

/// A default ACL on a regular file (the kernel refuses to set one): it is
/// removed, and the file is as it was before.
#[test]
fn default_acl_on_a_file() {
    run_case(|img| {
        let ino = img.ino("/links/orig3");
        append_xattr(img, ino, xa::ACL_DEFAULT, b"", XattrValue::Inline(&[2, 0, 0, 0]));
        errors(&["XATTR_ACL_NOT_DIR"], &[])
    });
}

/// A value whose blocks lie outside the data area: the entry is invalid
/// and the log is cut before it.
#[test]
fn xattr_value_outside_the_data_area() {
    run_case(|img| {
        let ino = img.ino("/links/orig1");
        let backup = img.blocks() - 1;
        append_xattr(img, ino, xa::USER, b"far", XattrValue::Blocks { block: backup, len: 600 });
        errors(&["LOG_ENTRY_BAD"], &[])
    });
}

/// A FLAGS entry with a bit novars does not keep: the log is cut before it.
#[test]
fn flags_entry_unknown_bits() {
    run_case(|img| {
        let ino = img.ino("/links/orig1");
        let pos = img.append(
            ino,
            &NewEntry::Flags { flags: fl::NODUMP, projid: 3, ctime: Timespec::new(5, 0) },
        );
        img.put_u64(pos + 16, 0x1 | (3 << 32));
        img.reseal_entry(pos);
        errors(&["LOG_ENTRY_BAD"], &[])
    });
}

// ---------------------------------------------------------------- pass 4

#[test]
fn dentry_dead_inode() {
    run_case(|img| {
        let ino = img.ino("/docs/f0007.txt");
        let mut i = img.inode(ino);
        i.state = INODE_FREE;
        img.put_inode(ino, &i);
        errors(&["DENTRY_DEAD_INODE"], &[ino])
    });
}

#[test]
fn dentry_wrong_type() {
    run_case(|img| {
        let docs = img.ino("/docs");
        let pos = dentry_pos(img, docs, b"f0008.txt");
        img.bytes[pos as usize + 41] = dt::DIR;
        img.reseal_entry(pos);
        errors(&["DENTRY_WRONG_TYPE"], &[])
    });
}

#[test]
fn dentry_duplicate() {
    run_case(|img| {
        let docs = img.ino("/docs");
        let other = img.ino("/docs/f0010.txt");
        append_dentry(img, docs, DE_ADD, other, dt::REG, b"f0009.txt");
        errors(&["DENTRY_DUPLICATE"], &[])
    });
}

#[test]
fn dentry_remove_missing() {
    run_case(|img| {
        let docs = img.ino("/docs");
        append_dentry(img, docs, DE_DEL, 12345, dt::REG, b"no-such-name");
        errors(&["DENTRY_DEL_MISSING"], &[])
    });
}

#[test]
fn dentry_to_root() {
    run_case(|img| {
        let docs = img.ino("/docs");
        let root = img.ino("/");
        append_dentry(img, docs, DE_ADD, root, dt::DIR, b"up");
        errors(&["DENTRY_TO_ROOT"], &[])
    });
}

#[test]
fn unreachable_file() {
    run_case(|img| {
        let docs = img.ino("/docs");
        let f = img.ino("/docs/f0011.txt");
        append_dentry(img, docs, DE_DEL, f, dt::REG, b"f0011.txt");
        errors(&["INODE_UNREACHABLE"], &[])
    });
}

#[test]
fn unreachable_directory() {
    run_case(|img| {
        let l2 = img.ino("/deep/level0/level1/level2");
        let l3 = img.ino("/deep/level0/level1/level2/level3");
        append_dentry(img, l2, DE_DEL, l3, dt::DIR, b"level3");
        errors(&["INODE_UNREACHABLE"], &[])
    });
}

#[test]
fn dir_bad_parent() {
    run_case(|img| {
        let d = img.ino("/deep/level0");
        let root = img.ino("/");
        img.append(d, &NewEntry::Parent { parent: root, ctime: Timespec::new(5, 0) });
        errors(&["DIR_BAD_PARENT"], &[])
    });
}

#[test]
fn dir_multiple_names() {
    run_case(|img| {
        let root = img.ino("/");
        let d = img.ino("/deep/level0");
        append_dentry(img, root, DE_ADD, d, dt::DIR, b"alias");
        errors(&["DIR_MULTIPLE_NAMES"], &[])
    });
}

#[test]
fn lost_found_missing() {
    run_case(|img| {
        let root = img.ino("/");
        let lf = img.ino("/lost+found");
        append_dentry(img, root, DE_DEL, lf, dt::DIR, b"lost+found");
        let n = img.reader().load(root).unwrap().view.nlink;
        append_link(img, root, n - 1);
        let mut i = img.inode(lf);
        i.state = INODE_FREE;
        img.put_inode(lf, &i);
        errors(&["LOST_FOUND_MISSING"], &[])
    });
}

#[test]
fn sb_names_other_lost_found() {
    run_case(|img| {
        let mut sb = img.sb();
        sb.lost_found_ino = 0;
        img.put_both_sb(&sb);
        errors(&["SB_LOST_FOUND"], &[])
    });
}

#[test]
fn root_missing() {
    run_case(|img| {
        let root = img.ino("/");
        let mut i = img.inode(root);
        i.state = INODE_FREE;
        img.put_inode(root, &i);
        errors(&["ROOT_MISSING"], &[root])
    });
}

// ---------------------------------------------------------------- pass 5

#[test]
fn link_count_file() {
    run_case(|img| {
        let f = img.ino("/links/orig1");
        append_link(img, f, 5);
        errors(&["LINK_COUNT"], &[])
    });
}

#[test]
fn link_count_dir() {
    run_case(|img| {
        let d = img.ino("/deep");
        append_link(img, d, 9);
        errors(&["LINK_COUNT"], &[])
    });
}

/// A file unlinked while open when the system crashed: no names, link
/// count 0, still live. Mount frees it; so does fsck, as a note.
#[test]
fn orphan_inode() {
    run_case(|img| {
        img.crash();
        let docs = img.ino("/docs");
        let f = img.ino("/docs/f0012.txt");
        append_dentry(img, docs, DE_DEL, f, dt::REG, b"f0012.txt");
        append_link(img, f, 0);
        Expect { codes: &["ORPHAN_INODE"], n_exit: 0, y_exit: 0, lost: [f].into() }
    });
}

// ---------------------------------------------------------------- pass 6

/// Writes lane `lane`'s clean-pool words as the kernel keeps them, tagged
/// with the superblock's mount count (so a mount after the crash trusts
/// them).
fn put_pool(img: &mut Img, lane: u32, start: u64, end: u64, mark: u64) {
    let (sb, geo) = Superblock::parse(&img.bytes, img.blocks()).unwrap();
    let jb = geo.journal_block(lane) as usize * BLOCK_SIZE;
    let p = journal::CleanPool { start, end, slot_mark: mark, tag: sb.mount_count };
    p.encode(&mut img.bytes[jb + journal::JOURNAL_POOL_OFF..jb + BLOCK_SIZE]);
}

/// Sets the superblock's mount count (both copies).
fn set_mount_count(img: &mut Img, n: u64) {
    let mut sb = img.sb();
    sb.mount_count = n;
    img.put_both_sb(&sb);
}

/// The free extents an image's allocator record lists.
fn record_free(img: &Img) -> Vec<(u64, u64)> {
    let sb = img.sb();
    let b = img.bytes[sb.alloc_rec_head as usize * BLOCK_SIZE..][..BLOCK_SIZE].to_vec();
    let (_, it) = alloc_rec::parse(&b, sb.alloc_rec_seq).unwrap();
    it.collect()
}

#[test]
fn clean_pool_of_free_blocks_is_fine() {
    run_case(|img| {
        set_mount_count(img, 3);
        let (s, l) = *record_free(img).iter().max_by_key(|e| e.1).unwrap();
        put_pool(img, 0, s, s + l, u64::MAX);
        put_pool(img, 1, 0, 0, 1 << 20);
        img.crash();
        Expect { codes: &[], n_exit: 0, y_exit: 0, lost: BTreeSet::new() }
    });
}

#[test]
fn clean_pool_holding_a_block_in_use() {
    let after = run_case(|img| {
        set_mount_count(img, 3);
        let f = img.ino("/docs/f0012.txt");
        let page = img.log(f).pages[0];
        put_pool(img, 0, page, page + 1, u64::MAX);
        img.crash();
        errors(&["CLEAN_POOL_IN_USE"], &[])
    });
    let (sb, geo) = Superblock::parse(&after, (after.len() / BLOCK_SIZE) as u64).unwrap();
    let jb = geo.journal_block(0) as usize * BLOCK_SIZE;
    let p = journal::CleanPool::of_block(&after[jb..jb + BLOCK_SIZE]).unwrap();
    assert_eq!(p.trusted(sb.mount_count), None, "the pool is dropped: {p:?}");
}

#[test]
fn clean_pool_mark_below_a_live_inode() {
    run_case(|img| {
        set_mount_count(img, 3);
        // Every slot from 0 on free: the root (lane 1) is not.
        put_pool(img, 1, 0, 0, 0);
        img.crash();
        errors(&["CLEAN_POOL_IN_USE"], &[])
    });
}

#[test]
fn stale_clean_pool_is_ignored() {
    run_case(|img| {
        set_mount_count(img, 3);
        let f = img.ino("/docs/f0012.txt");
        let page = img.log(f).pages[0];
        put_pool(img, 0, page, page + 1, 0);
        // Declared by an earlier mount: a later one may have used it.
        set_mount_count(img, 4);
        img.crash();
        Expect { codes: &[], n_exit: 0, y_exit: 0, lost: BTreeSet::new() }
    });
}

#[test]
fn alloc_record_checksum() {
    run_case(|img| {
        let head = img.sb().alloc_rec_head;
        img.block(head)[40] ^= 1;
        errors(&["ALLOC_REC_BAD"], &[])
    });
}

#[test]
fn alloc_record_mismatch() {
    run_case(|img| {
        let sb = img.sb();
        let head = sb.alloc_rec_head;
        let (h, ex) = {
            let b = img.block(head);
            let (h, it) = alloc_rec::parse(b, sb.alloc_rec_seq).unwrap();
            (h, it.collect::<Vec<_>>())
        };
        let mut ex = ex;
        ex[0].1 -= 1;
        assert!(alloc_rec::build(img.block(head), h.kind, h.lane, h.seq, h.next, &ex));
        errors(&["ALLOC_REC_MISMATCH"], &[])
    });
}

#[test]
fn sb_free_counts() {
    run_case(|img| {
        let mut sb = img.sb();
        sb.free_blocks += 7;
        sb.free_inodes -= 1;
        img.put_both_sb(&sb);
        errors(&["SB_COUNTS"], &[])
    });
}

// ---------------------------------------------------------------- modes

#[test]
fn preen_fixes_safe_problems_only() {
    let mut img = Img::new(base_image());
    let f = img.ino("/links/orig1");
    append_link(&mut img, f, 5);
    let file = to_file(&img.bytes);
    let (code, out) = fsck(file.path(), &["-fp"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("LINK_COUNT"), "{out}");
    assert_eq!(fsck(file.path(), &["-fn"]).0, 0);

    let mut img = Img::new(base_image());
    let d = big(&img);
    let (pos, _, _) = img.log(d).entries[60];
    img.bytes[pos as usize + 50] ^= 1;
    let file = to_file(&img.bytes);
    let (code, out) = fsck(file.path(), &["-fp"]);
    assert_eq!(code & 4, 4, "{out}");
    assert!(out.contains("UNEXPECTED INCONSISTENCY"), "{out}");
    let (code, out) = fsck(file.path(), &["-fy"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(fsck(file.path(), &["-fn"]).0, 0);
}

#[test]
fn json_report() {
    let mut img = Img::new(base_image());
    let f = img.ino("/links/orig1");
    append_link(&mut img, f, 5);
    let file = to_file(&img.bytes);
    let (code, out) = fsck(file.path(), &["-fn", "--json"]);
    assert_eq!(code, 4);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(v["exit_code"], 4);
    assert_eq!(v["mode"], "read-only");
    assert_eq!(v["passes"].as_array().unwrap().len(), 7);
    let p = &v["problems"][0];
    assert_eq!(p["code"], "LINK_COUNT");
    assert_eq!(p["pass"], 5);
    assert_eq!(p["fixed"], false);
    assert!(v["summary"]["inodes_used"].as_u64().unwrap() > 300);
    assert!(v["summary"]["peak_rss_kib"].as_u64().unwrap() > 0);
}

#[test]
fn timing_report() {
    let file = to_file(&base_image());
    let (code, out) = fsck(file.path(), &["-fn", "-tt"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Pass 2 (inode tables and logs): time "), "{out}");
    let line = out.lines().find(|l| l.starts_with("Memory used: ")).expect(&out);
    let kib: u64 = line["Memory used: ".len()..].split('k').next().unwrap().parse().unwrap();
    assert!(kib > 0, "{line}");
    let (_, once) = fsck(file.path(), &["-fn", "-t"]);
    assert!(once.contains("Memory used: ") && !once.contains("Pass 2 ("), "{once}");
}

#[test]
fn usage_and_operational_errors() {
    let img = base_image();
    let file = to_file(&img);
    assert_eq!(fsck(file.path(), &["-n", "-y"]).0, 16);
    assert_eq!(fsck(file.path(), &["--bogus"]).0, 16);
    let (code, out) = fsck(std::path::Path::new("/nonexistent/image"), &["-n"]);
    assert_eq!(code, 8, "{out}");
    let zeros = to_file(&vec![0u8; 1 << 20]);
    let (code, out) = fsck(zeros.path(), &["-n"]);
    assert_eq!(code, 8);
    assert!(out.contains("not a novars file system"), "{out}");
}

#[test]
fn without_force_a_clean_image_gets_the_quick_check() {
    let img = base_image();
    let file = to_file(&img);
    let (code, out) = fsck(file.path(), &["-n"]);
    assert_eq!(code, 0);
    assert!(out.contains("clean,") && out.contains("files"), "{out}");
    let mut img = Img::new(img);
    img.crash();
    let file = to_file(&img.bytes);
    let (code, out) = fsck(file.path(), &["-p"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("clean,"), "a crashed image must be checked fully: {out}");
    // The preen run marked it clean again.
    let (code, out) = fsck(file.path(), &["-n"]);
    assert_eq!(code, 0);
    assert!(out.contains("clean,"), "{out}");
}

#[test]
fn entry_helpers_are_sane() {
    let img = Img::new(base_image());
    let d = big(&img);
    let log = img.log(d);
    assert!(log.entries.len() >= 200);
    assert_eq!(img.page_tail(log.pages[1]).ordinal, 1);
    let _ = DE_ADD;
}

/// The file system is smaller than its device: the backup is not in the
/// device's last block but where the damaged primary says the end is.
#[test]
fn sb_primary_bad_backup_before_device_end() {
    let mut img = Img::new(base_image());
    img.bytes[600] ^= 0x40;
    img.bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
    let file = to_file(&img.bytes);
    let (code, out) = fsck(file.path(), &["-fn"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("SB_PRIMARY_BAD"), "{out}");
    let (code, out) = fsck(file.path(), &["-fy"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = fsck(file.path(), &["-fn"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn symlink_unreadable() {
    run_case(|img| {
        let ino = img.ino("/sym/long");
        let pos = write_pos(img, ino);
        // Map the target at file block 1 instead of 0.
        img.put_u64(pos + 16, 1);
        img.reseal_entry(pos);
        errors(&["SYMLINK_BAD"], &[ino])
    });
}

/// Another file system made over novars keeps novars's backup in the last
/// block: fsck must not take it (it would write novars over the other file
/// system), as the kernel does not mount it.
#[test]
fn foreign_file_system_over_an_old_backup() {
    let mut img = Img::new(base_image());
    img.bytes[..BLOCK_SIZE].fill(0);
    img.bytes[1080] = 0x53;
    img.bytes[1081] = 0xef;
    let file = to_file(&img.bytes);
    for mode in ["-fn", "-fy"] {
        let (code, out) = fsck(file.path(), &[mode]);
        assert_eq!(code, 8, "{mode}: {out}");
        assert!(out.contains("holds an ext2/ext3/ext4 file system"), "{mode}: {out}");
    }
    assert_eq!(std::fs::read(file.path()).unwrap(), img.bytes, "fsck wrote to the device");
}
