//! `mkfs.novars -d DIR`: copy a host directory tree into a new image, like
//! `mke2fs -d`: regular files (sparse files stay sparse), directories,
//! symlinks, hard links, device nodes, fifos and sockets, with modes, owners
//! and timestamps, extended attributes (`user.`, `trusted.`, `security.`
//! and the two POSIX ACLs, whose `system.posix_acl_*` values are the
//! kernel's xattr form on every Linux file system and are stored as they
//! are) and the inode flags novars keeps (`FS_IOC_GETFLAGS`) with the
//! project id (`FS_IOC_FSGETXATTR`).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use layout::inode::{Timespec, S_IFDIR, S_IFMT};
use layout::log::{fl, xa};

use super::{Attrs, Builder, Error};

/// Bytes copied per log entry (and per read from the host).
const CHUNK: usize = 8 << 20;

/// Why populating failed.
#[derive(Debug)]
pub enum PopulateError {
    /// Reading the host tree failed.
    Io(PathBuf, io::Error),
    /// The image could not take the entry.
    Image(PathBuf, Error),
}

impl std::fmt::Display for PopulateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PopulateError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            PopulateError::Image(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for PopulateError {}

/// What was copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    pub bytes: u64,
    /// Extended attributes copied.
    pub xattrs: u64,
    /// Extended attributes of namespaces novars does not keep (e.g.
    /// `system.nfs4_acl`), not copied.
    pub xattrs_skipped: u64,
}

/// Linux `new_encode_dev` of a host `st_rdev`.
pub fn encode_dev(rdev: u64) -> u64 {
    let major = libc::major(rdev) as u64;
    let minor = libc::minor(rdev) as u64;
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn attrs_of(md: &fs::Metadata) -> Attrs {
    let ts = |s: i64, ns: i64| Timespec::new(s, ns.clamp(0, 999_999_999) as u32);
    Attrs {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        atime: ts(md.atime(), md.atime_nsec()),
        mtime: ts(md.mtime(), md.mtime_nsec()),
        ctime: ts(md.ctime(), md.ctime_nsec()),
    }
}

struct Walker<'b, 'a> {
    b: &'b mut Builder<'a>,
    links: HashMap<(u64, u64), u64>,
    counts: Counts,
    progress: bool,
    /// Copy buffer, allocated once.
    buf: Vec<u8>,
}

/// Copies the contents of `dir` into the root of the image.
pub fn populate_dir(b: &mut Builder<'_>, dir: &Path) -> Result<Counts, PopulateError> {
    let md = fs::metadata(dir).map_err(|e| PopulateError::Io(dir.to_path_buf(), e))?;
    if !md.is_dir() {
        return Err(PopulateError::Io(dir.to_path_buf(), io::Error::other("not a directory")));
    }
    let root = b.root();
    b.set_attrs(root, attrs_of(&md)).map_err(|e| PopulateError::Image(dir.to_path_buf(), e))?;
    let mut w = Walker {
        b,
        links: HashMap::new(),
        counts: Counts::default(),
        progress: io::stderr().is_terminal(),
        buf: Vec::new(),
    };
    w.extras(dir, root, true)?;
    w.dir(dir, root, true)?;
    if w.progress {
        eprint!("\r\x1b[K");
    }
    Ok(w.counts)
}

impl Walker<'_, '_> {
    fn dir(&mut self, path: &Path, ino: u64, top: bool) -> Result<(), PopulateError> {
        let io = |e| PopulateError::Io(path.to_path_buf(), e);
        let mut names: Vec<_> =
            fs::read_dir(path).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
        names.sort_by_key(|e| e.file_name());
        for ent in names {
            let p = ent.path();
            let name = ent.file_name();
            let name = name.as_bytes();
            let md = fs::symlink_metadata(&p).map_err(|e| PopulateError::Io(p.clone(), e))?;
            let img = |e| PopulateError::Image(p.clone(), e);
            let a = attrs_of(&md);
            let ft = md.file_type();
            if ft.is_dir() {
                let child = match (top && name == b"lost+found", self.b.lookup(ino, name)) {
                    (true, Some(existing)) => {
                        self.b.set_attrs(existing, a).map_err(img)?;
                        existing
                    }
                    _ => self
                        .b
                        .mkdir(ino, name, Attrs { mode: S_IFDIR | (a.mode & 0o7777), ..a })
                        .map_err(img)?,
                };
                self.extras(&p, child, true)?;
                self.counts.dirs += 1;
                self.dir(&p, child, false)?;
                continue;
            }
            if md.nlink() > 1 {
                if let Some(&target) = self.links.get(&(md.dev(), md.ino())) {
                    self.b.link(ino, name, target).map_err(img)?;
                    self.counts.hardlinks += 1;
                    continue;
                }
            }
            let new = if ft.is_symlink() {
                let t = fs::read_link(&p).map_err(|e| PopulateError::Io(p.clone(), e))?;
                self.counts.symlinks += 1;
                self.b.symlink(ino, name, t.as_os_str().as_bytes(), a).map_err(img)?
            } else if ft.is_file() {
                let f = self.b.mknod(ino, name, a, 0).map_err(img)?;
                self.copy_file(&p, f, md.len())?;
                self.counts.files += 1;
                f
            } else if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket()
            {
                self.counts.special += 1;
                self.b
                    .mknod(
                        ino,
                        name,
                        Attrs { mode: a.mode & (S_IFMT | 0o7777), ..a },
                        encode_dev(md.rdev()),
                    )
                    .map_err(img)?
            } else {
                continue;
            };
            self.extras(&p, new, ft.is_file())?;
            if md.nlink() > 1 {
                self.links.insert((md.dev(), md.ino()), new);
            }
            let n =
                self.counts.files + self.counts.dirs + self.counts.symlinks + self.counts.special;
            if self.progress && n.is_multiple_of(1000) {
                eprint!("\rCopying files: {n}");
                let _ = io::stderr().flush();
            }
        }
        Ok(())
    }

    /// Copies the extended attributes of `path` to `ino` and, for regular
    /// files and directories (`flags`: nothing else is opened, a device
    /// node's open may have effects), the inode flags novars keeps.
    fn extras(&mut self, path: &Path, ino: u64, flags: bool) -> Result<(), PopulateError> {
        let io = |e| PopulateError::Io(path.to_path_buf(), e);
        let img = |e| PopulateError::Image(path.to_path_buf(), e);
        for (full, value) in host_xattrs(path).map_err(io)? {
            let Some((index, name)) = xattr_namespace(&full) else {
                self.counts.xattrs_skipped += 1;
                continue;
            };
            self.b.set_xattr(ino, index, name, &value).map_err(img)?;
            self.counts.xattrs += 1;
        }
        if flags {
            let (f, projid) = host_flags(path).map_err(io)?;
            let f = f & fl::ALL;
            if f != 0 || projid != 0 {
                self.b.set_flags(ino, f, projid).map_err(img)?;
            }
        }
        Ok(())
    }

    /// Copies the data regions of `path` (holes stay holes).
    fn copy_file(&mut self, path: &Path, ino: u64, len: u64) -> Result<(), PopulateError> {
        let io = |e| PopulateError::Io(path.to_path_buf(), e);
        self.b.set_size(ino, len).map_err(|e| PopulateError::Image(path.to_path_buf(), e))?;
        if len == 0 {
            return Ok(());
        }
        let mut f = File::open(path).map_err(io)?;
        if self.buf.is_empty() {
            self.buf = vec![0u8; CHUNK];
        }
        let mut buf = std::mem::take(&mut self.buf);
        let mut pos = 0u64;
        while pos < len {
            let (start, end) = match data_region(&f, pos, len) {
                Some(r) => r,
                None => break,
            };
            let mut off = start - start % 4096;
            while off < end {
                let n = ((end - off) as usize).min(CHUNK);
                f.seek(SeekFrom::Start(off)).map_err(io)?;
                let got = read_full(&mut f, &mut buf[..n]).map_err(io)?;
                if got == 0 {
                    break;
                }
                self.b
                    .write_at(ino, off, &buf[..got])
                    .map_err(|e| PopulateError::Image(path.to_path_buf(), e))?;
                self.counts.bytes += got as u64;
                off += got as u64;
            }
            pos = end.next_multiple_of(4096).max(off);
        }
        self.buf = buf;
        Ok(())
    }
}

/// novars's namespace and stored name of a host attribute name, `None`
/// for a namespace novars does not keep.
pub fn xattr_namespace(full: &[u8]) -> Option<(u8, &[u8])> {
    match full {
        b"system.posix_acl_access" => Some((xa::ACL_ACCESS, &[])),
        b"system.posix_acl_default" => Some((xa::ACL_DEFAULT, &[])),
        _ => [(&b"user."[..], xa::USER), (b"trusted.", xa::TRUSTED), (b"security.", xa::SECURITY)]
            .into_iter()
            .find_map(|(p, i)| full.strip_prefix(p).map(|n| (i, n)))
            .filter(|(_, n)| !n.is_empty()),
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in path"))
}

/// The extended attributes of `path` (a symlink's own): full name and
/// value. A host file system without attributes has none.
pub fn host_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let p = c_path(path)?;
    let unsupported = |e: &io::Error| e.raw_os_error() == Some(libc::EOPNOTSUPP);
    // The list may grow between the two calls: retry on ERANGE.
    let mut list = Vec::new();
    loop {
        // SAFETY: `p` is a NUL-terminated path; a null buffer with size 0
        // asks for the size only.
        let n = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if unsupported(&e) { Ok(Vec::new()) } else { Err(e) };
        }
        list.resize(n as usize, 0u8);
        // SAFETY: `list` has `list.len()` writable bytes.
        let got = unsafe { libc::llistxattr(p.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
        if got >= 0 {
            list.truncate(got as usize);
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::other("NUL in attribute name"))?;
        let mut value = vec![0u8; 1 << 16];
        // SAFETY: both strings are NUL-terminated; `value` has its length
        // in writable bytes.
        let n = unsafe {
            libc::lgetxattr(p.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            // Removed since the listing: nothing to copy.
            if e.raw_os_error() == Some(libc::ENODATA) {
                continue;
            }
            return Err(e);
        }
        value.truncate(n as usize);
        out.push((name.to_vec(), value));
    }
    Ok(out)
}

/// `struct fsxattr` (`linux/fs.h`), for `FS_IOC_FSGETXATTR`.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// `FS_IOC_FSGETXATTR`: `_IOR('X', 31, struct fsxattr)`.
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const _: () = assert!(std::mem::size_of::<FsXattr>() == 28);

/// The inode flags (`FS_IOC_GETFLAGS`) and project id
/// (`FS_IOC_FSGETXATTR`) of a regular file or directory; 0 where the host
/// file system has none.
fn host_flags(path: &Path) -> io::Result<(u32, u32)> {
    let f = File::open(path)?;
    let mut fsx = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes a `struct fsxattr` (28 bytes, the
    // layout of `FsXattr`) into the buffer, owned by this frame.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut fsx) };
    let projid = if r < 0 { 0 } else { fsx.projid };
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes an int into the buffer; `flags` is a
    // long (the ioctl's declared size) owned by this frame.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Ok((0, projid)),
            _ => Err(e),
        };
    }
    Ok((flags as u32, projid))
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// The next data region at or after `pos`: `(start, end)`, using
/// SEEK_DATA/SEEK_HOLE where the host file system supports them.
fn data_region(f: &File, pos: u64, len: u64) -> Option<(u64, u64)> {
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a valid fd owned by `f` has no memory effects.
    let d = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
    if d < 0 {
        let err = io::Error::last_os_error().raw_os_error();
        // ENXIO: no data past pos. Anything else: treat the rest as data.
        return if err == Some(libc::ENXIO) { None } else { Some((pos, len)) };
    }
    // SAFETY: as above.
    let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
    let end = if h < 0 { len } else { (h as u64).min(len) };
    Some((d as u64, end))
}
