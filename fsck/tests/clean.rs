//! Images as mkfs (and a clean unmount) leave them check clean.

mod common;

use common::*;
use novars_fsck::{check, Mode, Options, Quiet};

fn assert_clean(img: &[u8]) {
    let out = check(img, &Options::new(Mode::ReadOnly), &mut Quiet);
    let lines: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
    assert!(out.problems.is_empty(), "problems on a clean image:\n{}", lines.join("\n"));
    assert_eq!(out.exit_code, 0);
    assert!(out.writes.is_empty());
}

#[test]
fn generated_tree_checks_clean() {
    let img = base_image();
    assert_clean(&img);
    let f = to_file(&img);
    let (code, out) = fsck(f.path(), &["-fn"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = fsck(f.path(), &["-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean,"), "{out}");
    // -y on a clean image changes nothing.
    let (code, out) = fsck(f.path(), &["-fy"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(f.path()).unwrap(), img);
}

/// Built with the Builder directly: thousands of files across lanes and
/// grown inode tables, a 100-deep directory chain, 255-byte names, hard
/// links, sparse files, device nodes, link-count entries in logs.
fn builder_image(lanes: u32, size: usize) -> Vec<u8> {
    use layout::inode::{Timespec, S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG, S_IFSOCK};
    use novars_mkfs::{Attrs, Builder, Options};
    let mut img = vec![0u8; size];
    let mut o = Options::defaults((size / 4096) as u64, lanes);
    o.seg_inodes = 64;
    let t = Timespec::new(1_600_000_000, 999_999_999);
    let mut b = Builder::format(&mut img, o).unwrap();
    let root = b.root();
    let d = Attrs::new(S_IFDIR | 0o750, 5, 6, t);
    let f = Attrs::new(S_IFREG | 0o600, 7, 8, t);
    let many = b.mkdir(root, b"many", d).unwrap();
    let mut first = 0;
    for i in 0..3000u32 {
        let data = vec![(i % 256) as u8; (i as usize * 37) % 6000];
        let ino = b.add_file(many, format!("{i:05}").as_bytes(), f, &data).unwrap();
        if i == 0 {
            first = ino;
        }
    }
    let mut deep = root;
    for level in 0..100 {
        deep = b.mkdir(deep, format!("d{level}").as_bytes(), d).unwrap();
    }
    b.add_file(deep, &[b'n'; 255], f, b"bottom").unwrap();
    b.mkdir(root, &[b'L'; 255], d).unwrap();
    for i in 0..10 {
        b.link(root, format!("link{i}").as_bytes(), first).unwrap();
    }
    let s = b.mknod(root, b"sparse", f, 0).unwrap();
    b.set_size(s, 40 << 20).unwrap();
    b.write_at(s, 8 << 20, &[1u8; 5000]).unwrap();
    b.write_at(s, (40 << 20) - 4096, &[2u8; 4096]).unwrap();
    b.mknod(root, b"chr", Attrs::new(S_IFCHR | 0o644, 0, 0, t), 0x0501).unwrap();
    b.mknod(root, b"fifo", Attrs::new(S_IFIFO | 0o644, 0, 0, t), 0).unwrap();
    b.mknod(root, b"sock", Attrs::new(S_IFSOCK | 0o644, 0, 0, t), 0).unwrap();
    b.symlink(root, b"sl", &[b'x'; 4000], f).unwrap();
    b.log_nlink(first, 11).unwrap();
    b.finish().unwrap();
    img
}

#[test]
fn builder_trees_check_clean() {
    for (lanes, size) in [(1, 64 << 20), (3, 64 << 20), (8, 96 << 20)] {
        let img = builder_image(lanes, size);
        assert_clean(&img);
        let t = novars_fsck::tree::list(&img);
        assert!(t.len() > 3100, "{}", t.len());
    }
}

#[test]
fn empty_file_system_checks_clean() {
    let mut img = vec![0u8; 1 << 20];
    let o = novars_mkfs::Options::defaults(256, 1);
    novars_mkfs::Builder::format(&mut img, o).unwrap().finish().unwrap();
    assert_clean(&img);
}

/// A directory log as the kernel's log compaction leaves it (FORMAT.md
/// "Log garbage collection"): one DENTRY ADD per live name keeping the
/// sequence number of its original ADD (the readdir cookie), so the
/// numbers have gaps where removed names were, then SETATTR and LINK
/// numbered above every sequence number the old log used. It checks clean
/// and reads as the same tree.
#[test]
fn compacted_directory_log_checks_clean() {
    use layout::append::{self, LogEnd, LogOwner, NewEntry, SetAttrs};
    use layout::inode::Timespec;
    use layout::log::{sa, Entry, DE_ADD};
    use layout::walk::{replay_inode, walk_log, DirIndex, Ignore, LogVisitor};

    #[derive(Default)]
    struct Names(Vec<(Vec<u8>, u64, u8, u64)>);
    impl DirIndex for Names {
        fn add(&mut self, name: &[u8], ino: u64, ftype: u8, seq: u64) {
            self.0.push((name.to_vec(), ino, ftype, seq));
        }
        fn remove(&mut self, name: &[u8], _ino: u64) {
            self.0.retain(|e| e.0 != name);
        }
    }

    let mut img = Img::new(base_image());
    // The old log's pages become free: a full check counts free space
    // from the logs, as after a crash.
    img.crash();
    let before = novars_fsck::tree::list(&img.bytes);
    let docs = img.ino("/docs");
    let old = img.inode(docs);
    let (view, names) = {
        let r = img.reader();
        let mut names = Names::default();
        let (view, _) = replay_inode(&r.m, &r.geo, docs, &old, &mut Ignore, &mut names).unwrap();
        (view, names.0)
    };
    assert!(names.len() > 100, "{}", names.len());
    // Cookies with gaps (names created and removed in between), and a
    // high-water mark well above the last live one.
    let cookie = |seq: u64| seq * 7 + 3;
    let last_old = cookie(names.iter().map(|e| e.3).max().unwrap()) + 500;
    let t = Timespec::new(9, 9);
    let mut entries: Vec<(u64, NewEntry<'_>)> = Vec::new();
    for (name, ino, ftype, seq) in &names {
        let e = NewEntry::Dentry { op: DE_ADD, ino: *ino, ftype: *ftype, mtime: t, name };
        entries.push((cookie(*seq), e));
    }
    let attrs = SetAttrs {
        valid: sa::ALL & !sa::SIZE,
        mode: view.mode & 0o7777,
        uid: view.uid,
        gid: view.gid,
        size: 0,
        atime: view.atime,
        mtime: view.mtime,
        ctime: view.ctime,
    };
    entries.push((last_old + 1, NewEntry::SetAttr(attrs)));
    entries.push((last_old + 2, NewEntry::Link { nlink: view.nlink, ctime: view.ctime }));

    // Write the chain into spare blocks, as the kernel's chain writer does.
    let owner = LogOwner::pages(docs, old.generation);
    let mut end = LogEnd::default();
    let mut m = ImgLog { img: &mut img, spare: 0 };
    for (seq, e) in &entries {
        append::append_seq(&mut m, owner, &mut end, *seq, e).unwrap();
    }
    let pages: Vec<u64> = (0..end.pages).map(|k| img.spare_block(k)).collect();
    let tail = end.tail;
    let seqs: Vec<u64> = entries.iter().map(|e| e.0).collect();
    assert!(pages.len() >= 2, "the compacted log should span pages");
    let mut new = old;
    new.log_head = pages[0];
    new.log_tail = tail;
    img.put_inode(docs, &new);

    // The same names, cookies and attributes through the walker.
    let r = img.reader();
    let mut names2 = Names::default();
    let (view2, rep) = replay_inode(&r.m, &r.geo, docs, &new, &mut Ignore, &mut names2).unwrap();
    assert_eq!(view2, view);
    assert_eq!(rep.last_seq, last_old + 2);
    let want: Vec<_> = names.iter().map(|(n, i, t, s)| (n.clone(), *i, *t, cookie(*s))).collect();
    assert_eq!(names2.0, want);
    let walked: Vec<u64> = {
        let mut v = Vec::new();
        struct Seqs<'a>(&'a mut Vec<u64>);
        impl LogVisitor for Seqs<'_> {
            fn entry(&mut self, _: u64, e: &Entry<'_>) {
                self.0.push(e.hdr().seq);
            }
        }
        walk_log(&r.m, &r.geo, docs, &new, &mut Seqs(&mut v)).unwrap();
        v
    };
    assert_eq!(walked, seqs);

    assert_clean(&img.bytes);
    let f = to_file(&img.bytes);
    let (code, out) = fsck(f.path(), &["-fn"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(novars_fsck::tree::list(&img.bytes), before);
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Extended attributes (inline and in blocks, every namespace, ACLs) and
/// inode flags with a project id, as `mkfs -d` writes them: the image
/// checks clean, `-y` writes nothing, the listing shows every attribute
/// and flag. Then a fault that makes fsck rewrite the directory's whole
/// log (a duplicate name): after `-y` the tree, attributes and flags
/// included, is exactly the one before, and `-fn` is clean.
#[test]
fn attributes_and_flags_check_clean_and_survive_a_log_rewrite() {
    use layout::append::NewEntry;
    use layout::inode::{dt, Timespec, S_IFDIR, S_IFIFO, S_IFREG};
    use layout::log::{fl, xa, DE_ADD};
    use novars_mkfs::{Attrs, Builder, Options};

    let mut img = vec![0u8; 8 << 20];
    let mut o = Options::defaults(2048, 2);
    o.seg_inodes = 64;
    let t = Timespec::new(1_650_000_000, 5);
    let mut b = Builder::format(&mut img, o).unwrap();
    let root = b.root();
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let acl = [2u8, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255];
    let d = b.mkdir(root, b"d", Attrs::new(S_IFDIR | 0o755, 0, 0, t)).unwrap();
    for i in 0..20 {
        b.add_file(d, format!("n{i}").as_bytes(), Attrs::new(S_IFREG | 0o644, 0, 0, t), b"x")
            .unwrap();
    }
    b.set_xattr(d, xa::USER, b"inline", b"a directory's value").unwrap();
    b.set_xattr(d, xa::TRUSTED, b"big", &big).unwrap();
    b.set_xattr(d, xa::ACL_DEFAULT, b"", &acl).unwrap();
    b.set_flags(d, fl::DIRSYNC | fl::PROJINHERIT, 42).unwrap();
    let f = b.add_file(root, b"f", Attrs::new(S_IFREG | 0o600, 1, 2, t), &big).unwrap();
    b.set_xattr(f, xa::USER, b"empty", b"").unwrap();
    b.set_xattr(f, xa::USER, b"exactly-inline", &big[..512]).unwrap();
    b.set_xattr(f, xa::SECURITY, b"just-over", &big[..513]).unwrap();
    b.set_xattr(f, xa::ACL_ACCESS, b"", &acl).unwrap();
    b.set_flags(f, fl::IMMUTABLE | fl::NODUMP, 0).unwrap();
    let p = b.mknod(root, b"p", Attrs::new(S_IFIFO | 0o644, 0, 0, t), 0).unwrap();
    b.set_xattr(p, xa::TRUSTED, b"on-a-fifo", &big[..65536.min(big.len())]).unwrap();
    let s = b.symlink(root, b"s", b"f", Attrs::new(0o777, 0, 0, t)).unwrap();
    b.set_xattr(s, xa::SECURITY, b"label", b"system_u:object_r").unwrap();
    assert!(b.set_xattr(f, xa::ACL_DEFAULT, b"", &acl).is_err(), "a default ACL on a file");
    assert!(b.set_xattr(f, xa::USER, b"empty", b"again").is_err(), "an attribute set twice");
    b.finish().unwrap();

    assert_clean(&img);
    let file = to_file(&img);
    let (code, out) = fsck(file.path(), &["-fy"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(file.path()).unwrap(), img, "-y changed a clean image");

    let before = novars_fsck::tree::list(&img);
    let item = |path: &str| before[std::path::Path::new(path)].clone();
    let (di, fi, pi, si) = (item("/d"), item("/f"), item("/p"), item("/s"));
    assert_eq!(
        di.xattrs,
        vec![
            (xa::USER, b"inline".to_vec(), fnv(b"a directory's value")),
            (xa::TRUSTED, b"big".to_vec(), fnv(&big)),
            (xa::ACL_DEFAULT, Vec::new(), fnv(&acl)),
        ]
    );
    assert_eq!((di.flags, di.projid), (fl::DIRSYNC | fl::PROJINHERIT, 42));
    assert_eq!(fi.xattrs.len(), 4);
    assert!(fi.xattrs.contains(&(xa::SECURITY, b"just-over".to_vec(), fnv(&big[..513]))));
    assert_eq!((fi.flags, fi.projid), (fl::IMMUTABLE | fl::NODUMP, 0));
    assert_eq!(pi.xattrs, vec![(xa::TRUSTED, b"on-a-fifo".to_vec(), fnv(&big))]);
    assert_eq!(si.xattrs.len(), 1);

    // A duplicate name in d: fsck rewrites d's whole log.
    let mut damaged = Img::new(img);
    let n1 = damaged.ino("/d/n1");
    let mtime = Timespec::new(5, 0);
    damaged
        .append(d, &NewEntry::Dentry { op: DE_ADD, ino: n1, ftype: dt::REG, mtime, name: b"n2" });
    let file = to_file(&damaged.bytes);
    let (code, out) = fsck(file.path(), &["-fy"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DENTRY_DUPLICATE"), "{out}");
    let (code, out) = fsck(file.path(), &["-fn"]);
    assert_eq!(code, 0, "{out}");
    let repaired = std::fs::read(file.path()).unwrap();
    assert_ne!(Img::new(repaired.clone()).inode(d).log_head, damaged.inode(d).log_head);
    assert_eq!(novars_fsck::tree::list(&repaired), before);
}
