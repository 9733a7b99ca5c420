//! `mkfs -d` copies extended attributes (inline and in blocks) and the
//! inode flags novars keeps. Skipped, with the reason printed, where the
//! file system holding the test's temporary directory has no user
//! attributes (or, for the flags part, no `FS_IOC_SETFLAGS`).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use layout::append::XattrValue;
use layout::inode::{read_inode_at, slot_pos_in, walk_segments, Inode};
use layout::log::{fl, xa};
use layout::media::SliceMedia;
use layout::walk::{walk_log, XattrIndex, XattrReplay};
use layout::{Media, Superblock};
use novars_mkfs::{Builder, Options};

fn setxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a buffer of `value.len()` bytes.
    let r =
        unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Attributes of an inode of the image, values read from their blocks.
#[derive(Default)]
struct Attrs<'a> {
    m: Option<&'a SliceMedia<'a>>,
    map: BTreeMap<(u8, Vec<u8>), (bool, Vec<u8>)>,
}

impl XattrIndex for Attrs<'_> {
    fn set(&mut self, index: u8, name: &[u8], value: XattrValue<'_>) {
        let (in_blocks, bytes) = match value {
            XattrValue::Inline(v) => (false, v.to_vec()),
            XattrValue::Blocks { block, len } => {
                let m = self.m.unwrap();
                let mut v = Vec::new();
                for b in block..block + (len as u64).div_ceil(4096) {
                    v.extend_from_slice(m.block(b).unwrap());
                }
                v.truncate(len as usize);
                (true, v)
            }
            XattrValue::Removed => unreachable!("the walker hands over no removal as a set"),
        };
        self.map.insert((index, name.to_vec()), (in_blocks, bytes));
    }
    fn remove(&mut self, index: u8, name: &[u8]) {
        self.map.remove(&(index, name.to_vec()));
    }
}

#[test]
fn populate_copies_attributes_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("small"), b"s").unwrap();
    std::fs::write(src.join("large"), b"l").unwrap();
    std::fs::create_dir(src.join("d")).unwrap();
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    if let Err(e) = setxattr(&src.join("small"), "user.note", b"hello") {
        println!("skipped: {} has no user attributes ({e})", src.display());
        return;
    }
    setxattr(&src.join("large"), "user.big", &big).unwrap();
    setxattr(&src.join("large"), "user.also", b"").unwrap();
    setxattr(&src.join("d"), "user.dir", b"on a directory").unwrap();
    // NODUMP needs no privilege; the host's own flags (e.g. ext4's
    // extents flag) must not reach the image.
    let flags_ok = {
        let f = std::fs::File::open(src.join("large")).unwrap();
        let mut v: libc::c_long = 0;
        // SAFETY: the ioctls read and write an int in `v`.
        unsafe {
            libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut v) == 0 && {
                v |= fl::NODUMP as libc::c_long;
                libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &v) == 0
            }
        }
    };
    if !flags_ok {
        println!("flags not checked: {} has no FS_IOC_SETFLAGS", src.display());
    }

    let mut img = vec![0u8; 4 << 20];
    let o = Options::defaults(1024, 1);
    let mut b = Builder::format(&mut img, o).unwrap();
    let c = novars_mkfs::populate::populate_dir(&mut b, src).unwrap();
    assert_eq!(c.xattrs, 4);
    b.finish().unwrap();

    // Read every inode's attributes back with the layout walkers (one
    // lane: the slot is the inode number).
    let m = SliceMedia::new(&img);
    let (_, geo) = Superblock::parse(m.block(0).unwrap(), m.blocks()).unwrap();
    let mut segs = Vec::new();
    walk_segments(&m, &geo, 0, |_, s| segs.push(s)).unwrap();
    let mut found = BTreeMap::new();
    for ino in 1..20u64 {
        let Some(pos) = slot_pos_in(&geo, &segs, ino) else { continue };
        let i: Inode = read_inode_at(&m, pos).unwrap();
        if i.validate(ino).is_err() {
            continue;
        }
        let mut a = Attrs { m: Some(&m), ..Attrs::default() };
        walk_log(&m, &geo, ino, &i, &mut XattrReplay(&mut a)).unwrap();
        for ((index, name), v) in a.map {
            found.insert(name.clone(), (index, v, i.flags));
        }
    }
    assert_eq!(found[&b"note"[..]].0, xa::USER);
    assert_eq!(found[&b"note"[..]].1, (false, b"hello".to_vec()));
    assert_eq!(found[&b"big"[..]].1, (true, big), "a value over 512 bytes lives in blocks");
    assert_eq!(found[&b"also"[..]].1, (false, Vec::new()));
    assert_eq!(found[&b"dir"[..]].1, (false, b"on a directory".to_vec()));
    if flags_ok {
        assert_eq!(found[&b"big"[..]].2, fl::NODUMP, "exactly the flags novars keeps");
    }
    assert_eq!(found[&b"note"[..]].2, 0);
}

#[test]
fn namespaces_map_to_novars_indexes() {
    use novars_mkfs::populate::xattr_namespace;
    assert_eq!(xattr_namespace(b"user.a"), Some((xa::USER, &b"a"[..])));
    assert_eq!(xattr_namespace(b"trusted.x.y"), Some((xa::TRUSTED, &b"x.y"[..])));
    assert_eq!(xattr_namespace(b"security.selinux"), Some((xa::SECURITY, &b"selinux"[..])));
    assert_eq!(xattr_namespace(b"system.posix_acl_access"), Some((xa::ACL_ACCESS, &b""[..])));
    assert_eq!(xattr_namespace(b"system.posix_acl_default"), Some((xa::ACL_DEFAULT, &b""[..])));
    assert_eq!(xattr_namespace(b"system.nfs4_acl"), None);
    assert_eq!(xattr_namespace(b"user."), None);
    assert_eq!(xattr_namespace(b"other.x"), None);
}
