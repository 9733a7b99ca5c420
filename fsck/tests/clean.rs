//! Images as mkfs (and a clean unmount) leave them check clean.

mod common;

use common::*;
use novars_fsck::{check, Mode, Options, Quiet};

fn assert_clean(img: &[u8]) {
    let out = check(img, &Options::new(Mode::ReadOnly), &mut Quiet);
    let lines: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        out.problems.is_empty(),
        "problems on a clean image:\n{}",
        lines.join("\n")
    );
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
    b.mknod(root, b"chr", Attrs::new(S_IFCHR | 0o644, 0, 0, t), 0x0501)
        .unwrap();
    b.mknod(root, b"fifo", Attrs::new(S_IFIFO | 0o644, 0, 0, t), 0).unwrap();
    b.mknod(root, b"sock", Attrs::new(S_IFSOCK | 0o644, 0, 0, t), 0)
        .unwrap();
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
