//! Builds a benchmark image: `cargo run --release -p fsck --example
//! bench_image -- IMAGE [SIZE_MIB] [FILES]` (default 1024 MiB, 100000
//! files in directories of 100, 0-4 KiB each, some hard links and
//! symlinks), then time `fsck.novars -fn IMAGE`.

use std::io::Write;

use layout::inode::{Timespec, S_IFDIR, S_IFREG};
use layout::BLOCK_SIZE;
use novars_mkfs::{Attrs, Builder, Options};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: bench_image IMAGE [SIZE_MIB] [FILES]");
        std::process::exit(2);
    };
    let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let files: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut img = vec![0u8; mib << 20];
    let lanes = 4;
    let o = Options::defaults((img.len() / BLOCK_SIZE) as u64, lanes);
    let t = Timespec::new(1_700_000_000, 0);
    let mut b = Builder::format(&mut img, o).expect("format");
    let root = b.root();
    let dattr = Attrs::new(S_IFDIR | 0o755, 1000, 1000, t);
    let fattr = Attrs::new(S_IFREG | 0o644, 1000, 1000, t);
    let mut dir = root;
    let mut top = root;
    let mut seed = 0x1234_5678_9abc_def1u64;
    for i in 0..files {
        if i % 10_000 == 0 {
            top = b.mkdir(root, format!("top{}", i / 10_000).as_bytes(), dattr).expect("mkdir");
        }
        if i % 100 == 0 {
            dir = b.mkdir(top, format!("dir{:04}", i / 100).as_bytes(), dattr).expect("mkdir");
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 4097) as usize;
        let data = vec![(i % 251) as u8; len];
        let name = format!("file-{i:06}");
        let f = b.add_file(dir, name.as_bytes(), fattr, &data).expect("add_file");
        if i % 1000 == 1 {
            b.link(root, format!("hardlink-{i:06}").as_bytes(), f).expect("link");
            b.symlink(dir, format!("sym-{i:06}").as_bytes(), name.as_bytes(), fattr)
                .expect("symlink");
        }
    }
    let s = b.finish().expect("finish");
    let mut out = std::fs::File::create(path).expect("create");
    out.write_all(&img).expect("write");
    println!(
        "{path}: {} inodes used of {}, {} blocks free",
        s.inodes_used, s.inodes_total, s.blocks_free
    );
}
