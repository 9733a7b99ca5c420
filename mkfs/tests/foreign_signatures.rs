//! `mkfs.novars -f` over another file system leaves nothing another tool
//! could find: each test formats a sparse image with the real tool (ext4
//! with 1 KiB and 4 KiB blocks, ext2 without `sparse_super`, xfs, btrfs
//! with its 256 GiB mirror, swap with 4 and 64 KiB pages), asks the real
//! tools where that file system's copies are, runs mkfs.novars, and then
//! `blkid -p` and `wipefs` find nothing, `e2fsck -n -b BLOCK` finds no
//! backup, `xfs_repair -n` no secondary, btrfs no mirror, and fsck (the
//! library behind `fsck.novars -fn`) finds the novars image clean. The
//! same with the foreign primary already gone (as an older mkfs.novars
//! left it), without `-f` (refused, nothing written) and with `-n`.
//!
//! A test whose tool is not installed says so and passes (`cargo xt setup`
//! installs e2fsprogs, xfsprogs and btrfs-progs); `synthetic_signatures`
//! needs no tool. Cost: about 2 s in all on an idle host (the images are
//! sparse; the btrfs one is 260 GiB of holes).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use novars_fsck::{check, Mode, Options, Quiet};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The path of `name` if it is installed (sbin included, as for root).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(PATH.split(':')).map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Whether every tool is there; prints which is missing otherwise.
fn have(test: &str, tools: &[&str]) -> bool {
    match tools.iter().find(|t| tool(t).is_none()) {
        Some(t) => {
            eprintln!("SKIP {test}: {t} is not installed (cargo xt setup installs it)");
            false
        }
        None => true,
    }
}

fn run(args: &[&str]) -> Output {
    let exe = tool(args[0]).unwrap_or_else(|| args[0].into());
    Command::new(exe)
        .args(&args[1..])
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]))
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Image {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Image {
    /// A sparse image of `size` bytes; `None` (with a message) where the
    /// file system holding the test directory cannot hold it sparse.
    fn sparse(test: &str, size: u64) -> Option<Self> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let path = dir.path().join("img");
        let f = File::create(&path).unwrap();
        if let Err(e) = f.set_len(size) {
            eprintln!("SKIP {test}: cannot make a sparse {size}-byte image: {e}");
            return None;
        }
        Some(Self { _dir: dir, path })
    }

    fn p(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn read(&self, off: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        File::open(&self.path).unwrap().read_exact_at(&mut b, off).unwrap();
        b
    }

    fn write(&self, off: u64, bytes: &[u8]) {
        OpenOptions::new().write(true).open(&self.path).unwrap().write_all_at(bytes, off).unwrap();
    }

    /// Runs mkfs.novars with `args` before the image; returns its output.
    fn mkfs(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mkfs_novars"))
            .args(args)
            .args(["-l", "1", self.p()])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `mkfs.novars -f`, which must succeed; returns its stdout.
    fn mkfs_force(&self) -> String {
        let o = self.mkfs(&["-f"]);
        assert!(o.status.success(), "mkfs.novars -f: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// What blkid -p finds (empty: nothing).
    fn blkid(&self) -> String {
        let o = run(&["blkid", "-p", self.p()]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Nothing foreign is left for blkid or wipefs, and the image is a
    /// clean novars file system.
    fn assert_only_novars(&self) {
        if tool("blkid").is_some() {
            let o = run(&["blkid", "-p", self.p()]);
            assert_eq!(o.status.code(), Some(2), "blkid -p found something: {o:?}");
        }
        if tool("wipefs").is_some() {
            assert_eq!(ok(&["wipefs", self.p()]), "", "wipefs found signatures");
        }
        let f = File::open(&self.path).unwrap();
        // SAFETY: the test owns the image; nothing changes it while mapped.
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let out = check(&map, &Options::new(Mode::ReadOnly), &mut Quiet);
        let problems: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(out.exit_code, 0, "fsck -fn: {:?} {problems:?}", out.fatal);
    }

    /// e2fsck finds no superblock, primary or at any of `backups`
    /// (block numbers in `bs`-byte blocks): exit 8, not 0/1/4.
    fn assert_no_ext(&self, backups: &[u64], bs: u64) {
        let o = run(&["e2fsck", "-n", self.p()]);
        assert_eq!(o.status.code(), Some(8), "e2fsck -n found a superblock: {o:?}");
        for b in backups {
            let o = run(&["e2fsck", "-n", "-b", &b.to_string(), "-B", &bs.to_string(), self.p()]);
            assert_eq!(o.status.code(), Some(8), "e2fsck -n -b {b} -B {bs}: {o:?}");
        }
        // And the default guesses of e2fsck for every block size.
        for (b, bs) in [(8193, 1024), (16384, 2048), (32768, 4096)] {
            let o = run(&["e2fsck", "-n", "-b", &b.to_string(), "-B", &bs.to_string(), self.p()]);
            assert_eq!(o.status.code(), Some(8), "e2fsck -n -b {b} -B {bs}: {o:?}");
        }
    }
}

/// The backup superblock blocks dumpe2fs reports.
fn ext_backups(img: &Image) -> Vec<u64> {
    ok(&["dumpe2fs", img.p()])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Backup superblock at "))
        .map(|r| r.split(',').next().unwrap().trim().parse().unwrap())
        .collect()
}

/// mkfs.ext* with `opts` on a `size` image, then mkfs.novars -f: the
/// primary and every backup dumpe2fs listed are gone, and reported.
fn ext_case(test: &str, mkfs: &str, size: u64, bs: u64, opts: &[&str], drop_primary: bool) {
    if !have(test, &[mkfs, "dumpe2fs", "e2fsck"]) {
        return;
    }
    let Some(img) = Image::sparse(test, size) else { return };
    let bs_s = bs.to_string();
    let mut args = vec![mkfs, "-q", "-F", "-b", &bs_s, "-E", "nodiscard"];
    args.extend(opts);
    args.push(img.p());
    ok(&args);
    let backups = ext_backups(&img);
    assert!(backups.len() >= 2, "{test}: want backups to erase, dumpe2fs lists {backups:?}");
    if drop_primary {
        img.write(1024, &[0; 1024]);
        let o = run(&["e2fsck", "-n", "-b", &backups[0].to_string(), "-B", &bs_s, img.p()]);
        assert!(o.status.code() != Some(8), "the backup should be usable before mkfs: {o:?}");
    }
    let out = img.mkfs_force();
    for b in &backups {
        let off = b * bs;
        assert!(
            out.lines().any(|l| l.contains("backup superblock") && l.contains(&format!(" {off} "))),
            "{test}: no report of the backup at block {b}:\n{out}"
        );
    }
    img.assert_no_ext(&backups, bs);
    img.assert_only_novars();
}

#[test]
fn ext4_1k_blocks_primary_and_backups_erased() {
    // 256 MiB of 1 KiB blocks: 32 groups, backups in 1, 3, 5, 7, 9, 25, 27.
    ext_case("ext4_1k", "mkfs.ext4", 256 * MIB, 1024, &[], false);
}

#[test]
fn ext4_4k_blocks_primary_and_backups_erased() {
    // 1 GiB of 4 KiB blocks: 8 groups, backups in 1, 3, 5, 7.
    ext_case("ext4_4k", "mkfs.ext4", GIB, 4096, &[], false);
}

#[test]
fn ext2_every_group_backups_erased() {
    // Without sparse_super every group has a backup (2 KiB blocks: 16 MiB groups).
    ext_case("ext2", "mkfs.ext2", 256 * MIB, 2048, &["-O", "^sparse_super,^resize_inode"], false);
}

#[test]
fn ext4_backups_erased_when_the_primary_is_already_gone() {
    // What an mkfs that cleared only its own first block left behind: the
    // case e2fsck offered to "repair".
    ext_case("ext4_no_primary", "mkfs.ext4", 256 * MIB, 1024, &[], true);
}

/// mkfs.xfs on 320 MiB (4 AGs), then mkfs.novars -f: no superblock copy at
/// any AG start and xfs_repair finds no secondary.
fn xfs_case(test: &str, drop_primary: bool) {
    if !have(test, &["mkfs.xfs", "xfs_db", "xfs_repair"]) {
        return;
    }
    let Some(img) = Image::sparse(test, 320 * MIB) else { return };
    ok(&["mkfs.xfs", "-q", "-f", "-K", img.p()]);
    let geo = ok(&["xfs_db", "-r", "-c", "sb 0", "-c", "p agcount agblocks blocksize", img.p()]);
    let field = |name: &str| -> u64 {
        geo.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().strip_prefix("= "))
            .unwrap_or_else(|| panic!("xfs_db: no {name} in {geo}"))
            .parse()
            .unwrap()
    };
    let (agcount, agblocks, bs) = (field("agcount"), field("agblocks"), field("blocksize"));
    assert!(agcount >= 2, "{geo}");
    if drop_primary {
        img.write(0, &[0; 4096]);
    }
    let out = img.mkfs_force();
    for ag in 1..agcount {
        let off = ag * agblocks * bs;
        assert_ne!(img.read(off, 4), b"XFSB", "{test}: AG {ag}'s superblock is still there");
        assert!(
            out.contains(&format!("xfs secondary superblock at offset {off} ")),
            "{test}: no report of AG {ag}:\n{out}"
        );
    }
    let o = run(&["xfs_repair", "-n", img.p()]);
    let text =
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && text.contains("could not find valid secondary superblock"),
        "{test}: xfs_repair -n: {text}"
    );
    img.assert_only_novars();
}

#[test]
fn xfs_primary_and_secondaries_erased() {
    xfs_case("xfs", false);
}

#[test]
fn xfs_secondaries_erased_when_the_primary_is_already_gone() {
    xfs_case("xfs_no_primary", true);
}

#[test]
fn btrfs_superblock_and_mirrors_erased() {
    let test = "btrfs";
    if !have(test, &["mkfs.btrfs"]) {
        return;
    }
    // 260 GiB of holes, so all three copies (64 KiB, 64 MiB, 256 GiB) exist.
    let Some(img) = Image::sparse(test, 260 * GIB) else { return };
    let o = run(&["mkfs.btrfs", "-q", "-f", "-K", img.p()]);
    assert!(o.status.success(), "mkfs.btrfs: {o:?}");
    let used = std::fs::metadata(&img.path).unwrap().blocks() * 512;
    assert!(used < GIB, "the image is not sparse here ({used} bytes used)");
    let mirrors = [64 << 10, 64 * MIB, 256 * GIB];
    for off in mirrors {
        assert_eq!(img.read(off + 0x40, 8), b"_BHRfS_M", "mkfs.btrfs left no copy at {off}");
    }
    let out = img.mkfs_force();
    for off in mirrors {
        assert_ne!(img.read(off + 0x40, 8), b"_BHRfS_M", "btrfs copy at {off} still there");
        assert!(out.contains("btrfs superblock"), "{out}");
        assert!(out.contains(&format!(" {off} ")), "no report of {off}:\n{out}");
    }
    if tool("btrfs").is_some() {
        for mirror in ["0", "1", "2"] {
            let o = run(&["btrfs", "inspect-internal", "dump-super", "-s", mirror, img.p()]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("bad magic"), "btrfs dump-super -s {mirror}: {o:?}");
        }
    }
    img.assert_only_novars();
}

#[test]
fn swap_signatures_erased_for_4k_and_64k_pages() {
    let test = "swap";
    if !have(test, &["mkswap"]) {
        return;
    }
    for page in [4096u64, 65536] {
        let Some(img) = Image::sparse(test, 256 * MIB) else { return };
        ok(&["mkswap", "-p", &page.to_string(), img.p()]);
        assert_eq!(img.read(page - 10, 10), b"SWAPSPACE2");
        // Without -f (and nobody to say yes) it is refused, nothing written.
        let o = img.mkfs(&[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(err.contains("swap") && err.contains("use -f"), "{err}");
        assert_eq!(img.read(page - 10, 10), b"SWAPSPACE2", "refused mkfs wrote");
        let out = img.mkfs_force();
        assert!(
            out.contains(&format!("Erased a swap signature at offset {} ", page - 10)),
            "{out}"
        );
        img.assert_only_novars();
    }
}

#[test]
fn without_force_an_ext4_is_refused_and_dry_run_erases_nothing() {
    let test = "refuse";
    if !have(test, &["mkfs.ext4", "blkid"]) {
        return;
    }
    let Some(img) = Image::sparse(test, 256 * MIB) else { return };
    ok(&["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", img.p()]);
    let before = img.blkid();
    assert!(before.contains("TYPE=\"ext4\""), "{before}");
    let o = img.mkfs(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(err.contains("appears to contain an ext2/ext3/ext4 file system"), "{err}");
    assert!(err.contains("use -f to force"), "{err}");
    assert_eq!(img.blkid(), before);
    let o = img.mkfs(&["-n"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(out.contains("Would erase an ext4 backup superblock at offset 134217728 "), "{out}");
    assert_eq!(img.blkid(), before, "-n changed the image");
    assert_eq!(img.read(32768 * 4096 + 0x38, 2), [0x53, 0xef], "-n erased the backup");
}

/// No tool needed: each magic where its format puts it, in one image.
#[test]
fn synthetic_signatures() {
    let Some(img) = Image::sparse("synthetic", 512 * MIB) else { return };
    // ext4-style 1 KiB-block backups in groups 1 and 3 (blocks 8193, 24577),
    // magic at byte 56, log block size 0, 8192 blocks per group.
    let mut ext = vec![0u8; 1024];
    ext[0x38..0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
    ext[0x20..0x24].copy_from_slice(&8192u32.to_le_bytes());
    ext[0x60..0x64].copy_from_slice(&0x40u32.to_le_bytes()); // extents: ext4
    let ext_at = [8193 * 1024, 24577 * 1024];
    // xfs secondaries with no primary: 4 AGs of a 512 MiB device.
    let mut xfs = vec![0u8; 512];
    xfs[..4].copy_from_slice(b"XFSB");
    xfs[4..8].copy_from_slice(&4096u32.to_be_bytes());
    xfs[8..16].copy_from_slice(&(512 * MIB / 4096).to_be_bytes());
    xfs[84..88].copy_from_slice(&((128 * MIB / 4096) as u32).to_be_bytes());
    xfs[88..92].copy_from_slice(&4u32.to_be_bytes());
    xfs[102..104].copy_from_slice(&512u16.to_be_bytes());
    let xfs_at = [128 * MIB, 256 * MIB, 384 * MIB];
    for off in ext_at {
        img.write(off, &ext);
    }
    for off in xfs_at {
        img.write(off, &xfs);
    }
    img.write(64 * MIB + 0x40, b"_BHRfS_M");
    img.write(16384 - 10, b"SWAPSPACE2");
    // Something only the edge zeroing removes: a GPT backup header.
    img.write(512 * MIB - 512, b"EFI PART");
    let out = img.mkfs_force();
    for off in ext_at {
        assert_eq!(img.read(off, 1024), vec![0; 1024], "ext backup at {off}");
        assert!(out.contains(&format!("Erased an ext4 backup superblock at offset {off} ")));
    }
    for off in xfs_at {
        assert_eq!(img.read(off, 512), vec![0; 512], "xfs secondary at {off}");
        assert!(out.contains(&format!("Erased an xfs secondary superblock at offset {off} ")));
    }
    assert_eq!(img.read(64 * MIB + 0x40, 8), vec![0; 8]);
    assert!(out.contains("Erased a btrfs superblock mirror at offset 67108864 "), "{out}");
    assert_eq!(img.read(16384 - 10, 10), vec![0; 10]);
    assert!(out.contains("Erased a swap signature at offset 16374 "), "{out}");
    assert_eq!(img.read(512 * MIB - 512, 8), vec![0; 8]);
    img.assert_only_novars();
}
