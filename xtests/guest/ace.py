#!/usr/bin/env python3
"""ACE-style workloads for the crash checker (issue 7, vm-tests/crashcheck.sh).

  ace.py populate DIR        the small pre-populated tree (for mkfs -d)
  ace.py dirty MNT           fill the free space with old bytes, free it
  ace.py gcprep MNT          G/ with a log one entry short of compaction
  ace.py eofprep MNT DEV     bytes past EOF in the last blocks of A/bar
                             and B/baz, stored through a mapping
  ace.py xattrprep MNT       the attributes and the immutable file that the
                             attribute and flag operations change
  ace.py tblprep MNT TOTAL   every inode slot of TOTAL taken (table growth)
  ace.py fullprep MNT        data and inode space 100% used (the reserve)
  ace.py segments DEV LANES SEG_INODES
                             each lane's inode-table segment count
  ace.py list                every single operation, one name a line
  ace.py run MNT OP [OP...]  run the operations in order on the tree at MNT
  ace.py pairs N SEED        N distinct seq-2 workloads (pairs), seeded
                             random order; N = 0: all of them
  ace.py drive SECONDS < WORKLOADS
                             trace and check workloads (crashcheck.sh)

Each operation is one system call on the tree `populate` builds (a few
need one preparatory call, e.g. open), or a few steps (a tuple in OPS,
e.g. truncate, then a MAP_SYNC store into the new hole). A MAP_SYNC store
is made durable by the program (clwb + sfence) and then reported to the
tracing build (debugfs user_store), so the trace holds it in order
(mapsync_store_fd). An operation whose target the previous one removed
fails with an errno, which is fine: the crash checker judges what the
kernel did, and a failed call must change nothing.
"""
import os, random, subprocess, sys

BLK = 4096


def data(n, seed):
    r = random.Random(seed)
    return bytes(r.randrange(256) for _ in range(n))


def populate(d):
    """A/ {foo 8 KiB, bar 100 B, empty, C/} B/ {baz 5000 B, D/, foo_hl = A/foo}
    sym -> A/foo"""
    for sub in ("A", "A/C", "B", "B/D"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for name, n in (("A/foo", 2 * BLK), ("A/bar", 100), ("A/empty", 0), ("B/baz", 5000)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data(n, name))
    os.link(os.path.join(d, "A/foo"), os.path.join(d, "B/foo_hl"))
    os.symlink("A/foo", os.path.join(d, "sym"))


def dirty(mnt):
    """Fills the free space of the file system at `mnt` with non-zero
    bytes and frees it again (files written until ENOSPC, then removed):
    the blocks and log pages later allocated hold stale data and stale log
    entries, as on a used file system."""
    import errno
    chunk = bytes([0xA5]) * (256 << 10)
    names = []
    for i in range(64):
        p = f"{mnt}/dirty{i}"
        names.append(p)
        try:
            with open(p, "wb") as f:
                for _ in range(16):
                    f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            break
    for p in names:
        if os.path.exists(p):
            os.unlink(p)


def gcprep(mnt):
    """G/ whose log is 15 full pages, one short of the log compaction bound
    (gc.rs: 16): k1 and k2, then 539 create+unlink pairs; each DENTRY
    entry of a name of at most 8 bytes takes 56 bytes, 72 to a page, so the
    1080 entries fill 15 pages exactly. The next name created in G (op
    dir_compact) opens page 16, and the kernel compacts G's log within
    that call. crashcheck.sh checks the page count (st_blocks after a
    remount) and that the call does compact."""
    g = f"{mnt}/G"
    os.mkdir(g)
    for n in ("k1", "k2"):
        with open(f"{g}/{n}", "wb") as f:
            f.write(data(100, n))
    for i in range(539):
        p = f"{g}/x{i:04d}"
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
        os.unlink(p)


def eofprep(mnt, dev):
    """Stores 0xEE through a shared mapping into every byte past EOF of the
    last page of A/bar and B/baz (a mapping reaches to the end of the
    page), and checks on the device that they are there. The operations
    that move EOF over them (truncate_up, fallocate, write_append_unaligned,
    write_past_eof_hole) must zero them durably before their commit: a
    crash image that shows them is not a state the kernel passed through."""
    import ctypes, mmap
    c = ctypes.CDLL(None, use_errno=True)
    c.mmap.restype = ctypes.c_void_p
    c.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
    c.msync.argtypes = c.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    for name in ("A/bar", "B/baz"):
        fd = os.open(f"{mnt}/{name}", os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            page, tail = size // BLK * BLK, size % BLK
            if tail == 0:
                raise ValueError(f"{name}: no partial last page")
            a = c.mmap(None, BLK, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, page)
            if a in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), f"mmap {name}")
            ctypes.memset(a + tail, 0xEE, BLK - tail)
            if c.msync(a, BLK, 4) != 0 or c.munmap(a, BLK) != 0:  # MS_SYNC
                raise OSError(ctypes.get_errno(), f"msync {name}")
            at = device_offset(fd, page)
        finally:
            os.close(fd)
        buf = mmap.mmap(-1, BLK)  # page-aligned, for O_DIRECT
        d = os.open(dev, os.O_RDONLY | os.O_DIRECT)
        try:
            os.preadv(d, [buf], at)
        finally:
            os.close(d)
        if bytes(buf[tail:]) != b"\xee" * (BLK - tail):
            raise AssertionError(f"{name}: the bytes past EOF did not reach the device")


def xattrprep(mnt):
    """Attributes for the operations to replace and remove, set through
    the kernel: A/foo gets user.keep (inline) and user.big (5000 bytes, in
    blocks); A/imm, a new file, is made immutable (chattr_clear_immutable
    clears it; every other operation leaves it alone)."""
    os.setxattr(f"{mnt}/A/foo", "user.keep", b"keep-me")
    os.setxattr(f"{mnt}/A/foo", "user.big", data(5000, "user.big"))
    with open(f"{mnt}/A/imm", "wb") as f:
        f.write(data(100, "A/imm"))
    chattr(f"{mnt}/A/imm", FS_IMMUTABLE_FL, 0)
    # P/: what new inodes inherit in the commit that creates them: a
    # default ACL (an access ACL and a default ACL for a subdirectory),
    # the sync and nodump flags, and project id 5 through projinherit.
    os.mkdir(f"{mnt}/P")
    os.setxattr(f"{mnt}/P", "system.posix_acl_default", ACL_RW_R)
    subprocess.run(["xfs_io", "-c", "chproj 5", "-c", "chattr +P", f"{mnt}/P"], check=True)
    chattr(f"{mnt}/P", FS_SYNC_FL | FS_NODUMP_FL, 0)
    # P/acl: a file with the access ACL it inherited, for chmod_acl.
    os.close(os.open(f"{mnt}/P/acl", os.O_CREAT | os.O_WRONLY, 0o664))


def tblprep(mnt, total):
    """Takes every free inode slot of a file system whose tables hold
    `total` slots (mkfs -N; inode 0's included): files in T/ until the
    count of inodes in use is total - 1. The next create must add a table
    segment (itable.rs); crashcheck.sh checks that it does."""
    st = os.statvfs(mnt)
    used = st.f_files - st.f_ffree
    os.mkdir(f"{mnt}/T")
    for i in range(total - 1 - used - 1):
        os.close(os.open(f"{mnt}/T/t{i}", os.O_CREAT | os.O_WRONLY, 0o644))


def fullprep(mnt):
    """Data space 100% used (a file written until ENOSPC), then inode
    space (empty files until ENOSPC): the operations traced on this base
    that free space may take only the reserve (alloc.rs Pool)."""
    import errno
    with open(f"{mnt}/F", "wb", buffering=0) as f:
        for chunk in (bytes([0x5A]) * (64 << 10), bytes([0x5A]) * BLK):
            while True:
                try:
                    f.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    os.mkdir(f"{mnt}/E")
    # Until a create fails in each directory that may take one (a create
    # needs a slot and room in its directory's log); A/C and B/D stay
    # empty for rmdir and rename over an empty directory.
    for d in ("E", ".", "A", "B"):
        i = 0
        while True:
            try:
                os.close(os.open(f"{mnt}/{d}/full{i}", os.O_CREAT | os.O_WRONLY, 0o644))
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            i += 1
    st = os.statvfs(mnt)
    if st.f_bavail > 4 or st.f_bfree <= st.f_bavail:
        sys.exit(f"fullprep: {st.f_bavail} blocks available, {st.f_bfree} free")


def segments(dev, lanes, seg_inodes):
    """Inode-table segments of each lane of the image on `dev` (FORMAT.md:
    lane L's first segment follows the superblock and the journals)."""
    import struct
    seg_blocks = 1 + seg_inodes // 16
    counts = []
    with open(dev, "rb") as d:
        for lane in range(lanes):
            blk, n = 1 + lanes + lane * seg_blocks, 0
            while blk:
                d.seek(blk * BLK + 8)
                blk, = struct.unpack("<Q", d.read(8))
                n += 1
            counts.append(n)
    return counts


def pwrite(path, off, n, flags=0):
    fd = os.open(unmapped(path), os.O_WRONLY | flags)
    try:
        os.pwrite(fd, data(n, f"{path}@{off}"), off) if not flags & os.O_APPEND else os.write(fd, data(n, path))
    finally:
        os.close(fd)


def falloc(path, mode, off, n):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(unmapped(path), os.O_WRONLY)
    try:
        if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def exchange(a, b):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def tmpfile(d):
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.close(fd)


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FALLOC_KEEP_SIZE, FALLOC_PUNCH_HOLE, FALLOC_ZERO_RANGE = 1, 2, 0x10
# The ioctls are declared with a long; the kernel reads and writes an int.
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_IMMUTABLE_FL, FS_NODUMP_FL, FS_NOATIME_FL, FS_SYNC_FL = 0x10, 0x40, 0x80, 0x8


def chattr(path, set_bits, clear_bits):
    """chattr through FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (one call that
    stores: the SETFLAGS)."""
    import fcntl, struct
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        (flags,) = struct.unpack_from("<i", buf)
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("<q", (flags | set_bits) & ~clear_bits))
    finally:
        os.close(fd)


def iflags(path):
    """FS_IOC_GETFLAGS of a regular file or directory."""
    import fcntl, struct
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        return struct.unpack_from("<i", buf)[0]
    finally:
        os.close(fd)


# POSIX ACLs in the kernel's xattr form (posix_acl_xattr: a version word,
# then tag, permissions and id per entry, sorted by tag and id), the bytes
# getxattr returns and setxattr takes.
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 1, 2, 4, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF


def acl(*entries):
    import struct
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


# user::rw- user:1000:r-- group::r-- mask::r-- other::---
ACL_RW_R = acl((ACL_USER_OBJ, 6, ACL_UNDEFINED_ID), (ACL_USER, 4, 1000),
               (ACL_GROUP_OBJ, 4, ACL_UNDEFINED_ID), (ACL_MASK, 4, ACL_UNDEFINED_ID),
               (ACL_OTHER, 0, ACL_UNDEFINED_ID))
MAP_SHARED_VALIDATE, MAP_SYNC = 0x03, 0x80000
FS_IOC_FIEMAP = 0xC020660B


def device_offset(fd, off):
    """The device offset of byte `off` of the file (FIEMAP; novars reports
    physical offsets on its own device)."""
    import fcntl, struct
    req = bytearray(struct.pack("=QQIIII", off, 1, 0, 0, 1, 0) + bytes(56))
    fcntl.ioctl(fd, FS_IOC_FIEMAP, req)
    (mapped,) = struct.unpack_from("=I", req, 20)
    logical, physical, length = struct.unpack_from("=QQQ", req, 32)
    if mapped != 1 or not logical <= off < logical + length:
        raise OSError(5, f"FIEMAP found no block at {off}")
    return physical + off - logical


def mapsync_store(path, off, n):
    """`n` bytes at `off` of `path` stored through a MAP_SYNC mapping
    (mapsync_store_fd)."""
    fd = os.open(path, os.O_RDWR)
    try:
        mapsync_store_fd(fd, off, data(n, f"{path}@{off}:mapsync"))
    finally:
        os.close(fd)


# Inodes stored into through a mapping in this workload (one mount). Their
# pages keep DAX entries until the inode is evicted (drop_caches did not
# evict it: its mapping still holds the entries; an unmount does), and
# write() to such a page is in place, not atomic
# (README, as ext4-DAX), which the checker's all-or-nothing oracle for
# write(), truncate and fallocate does not allow. So no data call touches
# them afterwards: `unmapped` refuses with Skipped.
MAPPED = set()


class Skipped(Exception):
    pass


def unmapped(path):
    """`path`, unless its inode was stored into through a mapping."""
    try:
        if os.stat(path).st_ino in MAPPED:
            raise Skipped("data call on a file stored into through a mapping")
    except FileNotFoundError:
        pass
    return path


def mapsync_store_fd(fd, off, b):
    """Stores the bytes `b` at `off` of the file open at `fd` (within one
    block) through a MAP_SYNC mapping (the first touch is a write fault: on
    a hole it allocates and commits the block), flushes and fences them
    (libpmem's pmem_persist: clwb or clflushopt, then sfence), then reports
    the store to the tracing build (debugfs user_store: device offset from
    FIEMAP, then the bytes), which records it as USER_STORE at this point
    of the trace. It changes no metadata, yet the checker then wants the
    bytes in the file in every later crash image."""
    import ctypes, mmap, struct
    n = len(b)
    if n == 0 or off // BLK != (off + n - 1) // BLK:
        raise ValueError("a reported store lies within one block")
    if os.fstat(fd).st_size < off + n:
        raise OSError(34, "file too short for the store")  # ERANGE, never SIGBUS
    length = off + n  # Python refuses a mapping longer than the file
    MAPPED.add(os.fstat(fd).st_ino)
    m = mmap.mmap(fd, length, flags=MAP_SHARED_VALIDATE | MAP_SYNC,
                  prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        buf = (ctypes.c_char * length).from_buffer(m)
        ctypes.memmove(ctypes.addressof(buf) + off, b, n)
        pmem().pmem_persist(ctypes.addressof(buf) + off, n)
        del buf
    finally:
        m.close()
    dbg = os.environ.get("ACE_DBG")
    if dbg:
        with open(f"{dbg}/user_store", "wb", buffering=0) as f:
            f.write(struct.pack("<Q", device_offset(fd, off)) + b)


_PMEM = []


def pmem():
    """libpmem (PMDK, installed by cargo xt setup for vm:pmdk)."""
    import ctypes
    if not _PMEM:
        lib = ctypes.CDLL("libpmem.so.1")
        lib.pmem_persist.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _PMEM.append(lib)
    return _PMEM[0]

# name -> function of the mount point.
OPS = {
    "creat": lambda m: os.close(os.open(f"{m}/A/new", os.O_CREAT | os.O_WRONLY, 0o644)),
    "creat_in_empty_dir": lambda m: os.close(os.open(f"{m}/A/C/new", os.O_CREAT | os.O_WRONLY, 0o644)),
    "mkdir": lambda m: os.mkdir(f"{m}/A/newdir", 0o755),
    "mknod_fifo": lambda m: os.mkfifo(f"{m}/B/fifo", 0o644),
    "tmpfile": lambda m: tmpfile(f"{m}/A"),
    "write_aligned_overwrite": lambda m: pwrite(f"{m}/A/foo", 0, BLK),
    "write_unaligned_overwrite": lambda m: pwrite(f"{m}/A/foo", 1000, 100),
    "write_unaligned_2blocks": lambda m: pwrite(f"{m}/A/foo", 4000, 600),
    "write_append_aligned": lambda m: pwrite(f"{m}/A/foo", 0, BLK, os.O_APPEND),
    "write_append_unaligned": lambda m: pwrite(f"{m}/A/bar", 0, 5000, os.O_APPEND),
    "write_empty_file": lambda m: pwrite(f"{m}/A/empty", 0, 3000),
    "write_past_eof_hole": lambda m: pwrite(f"{m}/B/baz", 5 * BLK + 10, 200),
    "truncate_down": lambda m: os.truncate(unmapped(f"{m}/A/foo"), 3000),
    "truncate_up": lambda m: os.truncate(unmapped(f"{m}/A/bar"), 20000),
    "truncate_zero": lambda m: os.truncate(unmapped(f"{m}/B/baz"), 0),
    "fallocate": lambda m: falloc(f"{m}/A/bar", 0, 0, 4 * BLK),
    "fallocate_keep_size": lambda m: falloc(f"{m}/B/baz", FALLOC_KEEP_SIZE, 8 * BLK, 2 * BLK),
    "punch_hole": lambda m: falloc(f"{m}/A/foo", FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE, 1000, BLK + 500),
    "zero_range": lambda m: falloc(f"{m}/B/baz", FALLOC_ZERO_RANGE, 100, 3000),
    "link": lambda m: os.link(f"{m}/A/bar", f"{m}/B/bar_link"),
    "unlink_last_link": lambda m: os.unlink(f"{m}/A/bar"),
    "unlink_one_of_two": lambda m: os.unlink(f"{m}/B/foo_hl"),
    "unlink_symlink": lambda m: os.unlink(f"{m}/sym"),
    "rename_same_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/A/bar2"),
    "rename_cross_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/B/bar"),
    "rename_overwrite_same_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/A/empty"),
    "rename_overwrite_cross_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/B/baz"),
    "rename_overwrite_hardlinked": lambda m: os.rename(f"{m}/B/baz", f"{m}/B/foo_hl"),
    "rename_dir_same_dir": lambda m: os.rename(f"{m}/A/C", f"{m}/A/C2"),
    "rename_dir_cross_dir": lambda m: os.rename(f"{m}/A/C", f"{m}/B/C"),
    "rename_dir_over_empty_dir": lambda m: os.rename(f"{m}/A/C", f"{m}/B/D"),
    "rename_exchange_files": lambda m: exchange(f"{m}/A/foo", f"{m}/B/baz"),
    "rename_exchange_dir_file": lambda m: exchange(f"{m}/A/C", f"{m}/B/baz"),
    "symlink_inline": lambda m: os.symlink("B/baz", f"{m}/A/sym2"),
    "symlink_long": lambda m: os.symlink("x" * 300, f"{m}/A/symlong"),
    "chmod": lambda m: os.chmod(f"{m}/A/foo", 0o600),
    "chown": lambda m: os.chown(f"{m}/A/foo", 1000, 1000),
    "utimes": lambda m: os.utime(f"{m}/A/foo", ns=(1_000_000_123, 2_000_000_456)),
    "fsync": lambda m: fsync(f"{m}/A/foo"),
    "rmdir": lambda m: os.rmdir(f"{m}/A/C"),
    # A store into a mapped block (the write fault allocates nothing).
    "mapsync_store": lambda m: mapsync_store(f"{m}/A/foo", 1000, 100),
    # Truncate up, then a store into the new hole: the write fault
    # allocates a zeroed block and commits it before the store.
    "mapsync_store_hole": (lambda m: os.truncate(unmapped(f"{m}/B/baz"), 3 * BLK),
                           lambda m: mapsync_store(f"{m}/B/baz", 2 * BLK + 100, 200)),
    # Unwritten extents (issue 16): fallocate logs B/baz's blocks 2..7 (or
    # A/foo's 2..5 past EOF) unwritten without writing them; the second
    # step writes into them in place and converts the blocks it touches in
    # its one commit (before it, they still read as zeros).
    "falloc_write_unwritten": (lambda m: falloc(f"{m}/B/baz", 0, 0, 8 * BLK),
                               lambda m: pwrite(f"{m}/B/baz", 4 * BLK + 100, 300)),
    # Copy on write of written block 1, conversion of 2 (whole) and 3
    # (partial): one commit.
    "falloc_write_across": (lambda m: falloc(f"{m}/B/baz", 0, 0, 8 * BLK),
                            lambda m: pwrite(f"{m}/B/baz", BLK + 4000, 2 * BLK)),
    # A write past EOF into blocks preallocated with KEEP_SIZE: conversion
    # and the new size in one commit.
    "falloc_keep_size_write": (
        lambda m: falloc(f"{m}/A/foo", FALLOC_KEEP_SIZE, 2 * BLK, 4 * BLK),
        lambda m: pwrite(f"{m}/A/foo", 2 * BLK + 500, 1000)),
    # A MAP_SYNC store into an unwritten block: the write fault zeroes it
    # and commits the conversion before the store.
    "mapsync_store_unwritten": (lambda m: falloc(f"{m}/B/baz", 0, 0, 4 * BLK),
                                lambda m: mapsync_store(f"{m}/B/baz", 3 * BLK + 100, 200)),
    # G's log is one entry short of 16 pages (gcprep): this create's commit
    # is followed by a compaction of the directory's log (gc.rs).
    "dir_compact": lambda m: os.close(os.open(f"{m}/G/new", os.O_CREAT | os.O_WRONLY, 0o644)),
    # Extended attributes, ACLs and inode flags (issue 15); xattrprep made
    # A/foo's user.keep and user.big (in blocks) and the immutable A/imm.
    "xattr_set": lambda m: os.setxattr(f"{m}/A/bar", "user.new", b"a new value"),
    "xattr_replace": lambda m: os.setxattr(f"{m}/A/foo", "user.keep", b"replaced"),
    "xattr_remove": lambda m: os.removexattr(f"{m}/A/foo", "user.keep"),
    "xattr_set_big": lambda m: os.setxattr(f"{m}/B/baz", "user.big", data(3000, "B/baz:big")),
    "xattr_big_to_inline": lambda m: os.setxattr(f"{m}/A/foo", "user.big", b"small now"),
    "xattr_remove_big": lambda m: os.removexattr(f"{m}/A/foo", "user.big"),
    "acl_access": lambda m: os.setxattr(f"{m}/A/bar", "system.posix_acl_access", ACL_RW_R),
    "acl_default": lambda m: os.setxattr(f"{m}/A/C", "system.posix_acl_default", ACL_RW_R),
    # After +i, later operations on A/foo fail with EPERM (and change nothing).
    "chattr_immutable": lambda m: chattr(f"{m}/A/foo", FS_IMMUTABLE_FL, 0),
    "chattr_clear_immutable": lambda m: chattr(f"{m}/A/imm", 0, FS_IMMUTABLE_FL),
    "chattr_dir_flags": lambda m: chattr(f"{m}/B", FS_NODUMP_FL | FS_NOATIME_FL, 0),
    # Creation with inherited ACLs, flags and project id (xattrprep's P/).
    "creat_inherit": lambda m: os.close(os.open(f"{m}/P/new", os.O_CREAT | os.O_WRONLY, 0o666)),
    "mkdir_inherit": lambda m: os.mkdir(f"{m}/P/sub", 0o777),
    # chmod of a file with an access ACL: the mode and the ACL in one commit.
    "chmod_acl": lambda m: os.chmod(f"{m}/P/acl", 0o640),
}



def listing(mnt):
    """The tree as the kernel shows it: per path type, mode, owner, size,
    link count, content hash or symlink target, extended attributes (name
    and value hash) and inode flags (times are not compared)."""
    import hashlib
    out = []
    for d, dirs, files in os.walk(mnt):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            what = ""
            if os.path.islink(p):
                what = os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    what = hashlib.sha1(f.read()).hexdigest()[:16]
            for x in sorted(os.listxattr(p, follow_symlinks=False)):
                v = os.getxattr(p, x, follow_symlinks=False)
                what += f" {x}={hashlib.sha1(v).hexdigest()[:12]}"
            if not os.path.islink(p) and (os.path.isfile(p) or os.path.isdir(p)):
                what += f" f{iflags(p):x}"
            out.append(f"{os.path.relpath(p, mnt)} {st.st_mode:o} {st.st_uid}:{st.st_gid} "
                       f"s{st.st_size if not os.path.isdir(p) else 0} n{st.st_nlink} {what}")
    return out


def libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def check_errno(r, what):
    import ctypes
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


class Driver:
    """Traces workloads with the tracing build of novars.ko and checks each
    trace with novars-crashcheck, two checks running beside the tracing.

    Environment (set by crashcheck.sh): ACE_DEV the device, ACE_CLEAN the
    image every workload starts from, ACE_FS_MIB its size, ACE_MNT the
    mount point, ACE_DBG the debugfs directory, ACE_OUT where traces and
    reports go, ACE_TMP scratch (base images), ACE_CC the checker,
    ACE_FSCK fsck.novars, ACE_MOUNT_SAMPLE crash images per sampled
    workload that are also mounted by the kernel (below), ACE_MOUNT_EVERY
    one workload in this many is sampled (the first included),
    ACE_MOUNT_FAULTS=1 also mounts the first violating image of each
    expected violation (a deliberate fault; informative only) and keeps
    its base image for the reproducers (as for every unexpected result).

    The kernel's own recovery is checked on a sample: for ACE_MOUNT_SAMPLE
    crash images of each workload (seeded by its name) and for the first
    image of every unexpected violation, the image is re-created
    (`--only ID --dump`), written to the device and mounted; the tree the
    kernel shows must be one the workload passed through (listed at every
    call boundary while tracing) and `fsck -fn` after the unmount clean.

    A workload line is `NAME FAULTS EXPECT [OP...]`: FAULTS the pm.rs fault
    bits, EXPECT `clean` (exit 0) or `violations` (exit 1). The base image
    is read after the mount and the trace stops before the unmount, except
    for the workload named `mount_unmount`, which traces both.
    """

    def __init__(self):
        e = os.environ
        self.dev, self.clean, self.mnt = e["ACE_DEV"], e["ACE_CLEAN"], e["ACE_MNT"]
        self.dbg, self.out, self.tmp, self.cc = e["ACE_DBG"], e["ACE_OUT"], e["ACE_TMP"], e["ACE_CC"]
        self.size = int(e["ACE_FS_MIB"]) << 20
        with open(self.clean, "rb") as f:
            self.clean_bytes = f.read()
        self.libc = libc()
        self.running = []
        self.fsck = e["ACE_FSCK"]
        self.sample = int(e.get("ACE_MOUNT_SAMPLE", "1"))
        self.every = max(1, int(e.get("ACE_MOUNT_EVERY", "1")))
        self.mount_faults = e.get("ACE_MOUNT_FAULTS", "0") == "1"
        self.legal = {}
        self.results = {"workloads": 0, "images": 0, "unexpected": 0, "mounted": 0}
        # Where the time goes: tracing (restore, mount, workload, trace
        # read), waiting for a free checker slot or the last checks, and the
        # checkers' own time (they run beside the tracing, two at a time).
        self.secs = {"trace": 0.0, "wait": 0.0, "check": 0.0, "mount": 0.0}

    def knob(self, name, val):
        with open(f"{self.dbg}/{name}", "w") as f:
            f.write(val)

    def restore(self):
        with open(self.dev, "r+b", buffering=0) as d:
            d.write(self.clean_bytes)
            os.fsync(d.fileno())

    def snapshot(self, path):
        with open(self.dev, "rb", buffering=0) as d, open(path, "wb") as f:
            f.write(d.read(self.size))

    def mount(self):
        check_errno(self.libc.mount(self.dev.encode(), self.mnt.encode(), b"novars", 0, None), "mount")

    def umount(self):
        check_errno(self.libc.umount2(self.mnt.encode(), 0), "umount")

    def trace(self, name, faults, names):
        base = f"{self.tmp}/{name}.img"
        self.restore()
        whole = name == "mount_unmount"
        if whole:
            with open(base, "wb") as f:
                f.write(self.clean_bytes[: self.size])
            self.knob("enable", "1")
            self.mount()
        else:
            self.mount()
            self.snapshot(base)
            self.knob("enable", "1")
        self.knob("faults", str(faults))
        # Reading does not store (novars keeps atime in DRAM): the listings
        # leave the trace alone.
        legal = [listing(self.mnt)]
        MAPPED.clear()
        with open(f"{self.out}/{name}.ops", "w") as log:
            for n in names:
                for i, f in enumerate(steps_of(self.mnt, n)):
                    try:
                        f(self.mnt)
                        log.write(f"{n}[{i}]: ok\n")
                    except OSError as e:
                        log.write(f"{n}[{i}]: {os.strerror(e.errno)}\n")
                    except Skipped as e:
                        log.write(f"{n}[{i}]: skipped: {e}\n")
                    legal.append(listing(self.mnt))
        self.legal[name] = legal
        self.knob("faults", "0")
        if not whole:
            self.knob("enable", "0")
        self.umount()
        self.knob("enable", "0")
        with open(f"{self.dbg}/trace", "rb") as t, open(f"{self.out}/{name}.bin", "wb") as f:
            f.write(t.read())
        return base

    def start_check(self, name, base, expect):
        import subprocess, time
        t0 = time.monotonic()
        while len(self.running) >= 2:
            self.reap(block=True)
        self.secs["wait"] += time.monotonic() - t0
        out = open(f"{self.out}/{name}.out", "w")
        p = subprocess.Popen([self.cc, "--base", base, "--trace", f"{self.out}/{name}.bin", "--max-random", "8"],
                             stdout=out, stderr=subprocess.STDOUT)
        self.running.append((p, name, base, expect, out))

    def reap(self, block=False):
        import shutil
        for item in list(self.running):
            p, name, base, expect, out = item
            if p.poll() is None and not block:
                continue
            st = p.wait()
            out.close()
            self.running.remove(item)
            with open(f"{self.out}/{name}.out") as f:
                report = f.read()
            want = 0 if expect == "clean" else 1
            if st != 0 and (st != want or self.mount_faults):
                # Keep the base image beside the trace (both in the host's
                # log directory), so that each reproducer runs as printed
                # (a deliberate fault's only on request: 16 MiB through 9p
                # cost about 3 s each).
                shutil.copy(base, f"{self.out}/{name}.img")
                report = report.replace(base, f"{self.out}/{name}.img")
                with open(f"{self.out}/{name}.out", "w") as f:
                    f.write(report)
            line = next((l for l in report.splitlines() if l.startswith("crash images")), "no report")
            try:
                self.secs["check"] += float(report.rsplit(" in ", 1)[1].split()[0])
            except (IndexError, ValueError):
                pass
            viol = next((l for l in report.splitlines() if l.startswith("violations")), "")
            self.results["workloads"] += 1
            try:
                self.results["images"] += int(line.split("checked ")[1].split(";")[0])
            except (IndexError, ValueError):
                pass
            ok = st == want
            print(f"{name:<48} {line.replace('crash images: ', '')}" + ("" if expect == "clean" else f"; {viol}"))
            if st == 1 and expect != "clean":
                repro = next((l.strip() for l in report.splitlines() if l.strip().startswith("reproduce:")), "")
                print(f"  first {repro}")
            if not ok:
                self.results["unexpected"] += 1
                if st == 0:
                    shutil.copy(base, f"{self.out}/{name}.img")
                print(f"UNEXPECTED: {name}: novars-crashcheck exited {st}, expected {want} ({expect}); "
                      f"reproduce with --base {self.out}/{name}.img")
                with open(f"{self.out}/{name}.ops") as f:
                    print(f.read() + report)
            every = self.results["workloads"] % self.every == 1 or self.every == 1
            if ok and expect == "clean" and self.sample and every:
                import random
                try:
                    n = int(line.split("generated ")[1].split(",")[0])
                except (IndexError, ValueError):
                    n = 0
                r = random.Random(name)
                for i in sorted(r.sample(range(n), min(self.sample, n))):
                    self.kernel_check(name, base, i, expect_legal=True)
            elif not ok or self.mount_faults:
                bad = [l.split()[2].rstrip(":") for l in report.splitlines() if l.startswith("VIOLATION image")]
                for i in bad[:1]:
                    self.kernel_check(name, base, int(i), expect_legal=False)
            self.legal.pop(name, None)
            os.unlink(base)
            if block:
                return

    def kernel_check(self, name, base, image, expect_legal):
        """Mounts crash image `image` of workload `name` with the kernel."""
        import time
        t0 = time.monotonic()
        try:
            self._kernel_check(name, base, image, expect_legal)
        finally:
            self.secs["mount"] += time.monotonic() - t0

    def _kernel_check(self, name, base, image, expect_legal):
        import subprocess
        img = f"{self.tmp}/crash.img"
        r = subprocess.run([self.cc, "--base", base, "--trace", f"{self.out}/{name}.bin", "--max-random", "8",
                            "--only", str(image), "--dump", img], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if r.returncode not in (0, 1) or not os.path.exists(img):
            print(f"UNEXPECTED: {name}: image {image} could not be re-created (exit {r.returncode})")
            self.results["unexpected"] += 1
            return
        with open(img, "rb") as f, open(self.dev, "r+b", buffering=0) as d:
            d.write(f.read())
            os.fsync(d.fileno())
        os.unlink(img)
        what = "mounted by the kernel"
        try:
            self.mount()
            try:
                got = listing(self.mnt)
            finally:
                self.umount()
        except OSError as e:
            got, what = None, f"kernel mount failed: {e}"
        fsck = subprocess.run([self.fsck, "-fn", self.dev], capture_output=True, text=True)
        legal = got is not None and got in self.legal.get(name, [])
        self.results["mounted"] += 1
        verdict = "legal tree" if legal else "NOT a legal tree"
        verdict += ", fsck -fn clean" if fsck.returncode == 0 else f", fsck -fn exit {fsck.returncode}"
        print(f"  image {image} {what}: {verdict}")
        if expect_legal and (not legal or fsck.returncode != 0):
            self.results["unexpected"] += 1
            print(f"UNEXPECTED: {name}: the kernel's recovery of image {image} disagrees with the checker")
            print(fsck.stdout + fsck.stderr)
            if got is not None:
                print("kernel tree:\n  " + "\n  ".join(got))
                for i, t in enumerate(self.legal.get(name, [])):
                    print(f"legal tree {i}:\n  " + "\n  ".join(t))

    def drive(self, seconds, lines):
        import time
        start = time.monotonic()
        for line in lines:
            w = line.split()
            if len(w) < 3:
                continue
            if time.monotonic() - start >= seconds:
                break
            name, faults, expect, names = w[0], int(w[1]), w[2], w[3:]
            unknown = [n for n in names if not known(n)]
            if unknown:
                sys.exit(f"unknown operation(s): {' '.join(unknown)}")
            t0 = time.monotonic()
            base = self.trace(name, faults, names)
            self.secs["trace"] += time.monotonic() - t0
            self.start_check(name, base, expect)
            self.reap()
        t0 = time.monotonic()
        while self.running:
            self.reap(block=True)
        self.secs["wait"] += time.monotonic() - t0
        r, t = self.results, self.secs
        print(f"{r['workloads']} workloads, {r['images']} crash images checked, "
              f"{r['mounted']} mounted by the kernel, "
              f"{r['unexpected']} unexpected results, {time.monotonic() - start:.0f} s "
              f"(tracing {t['trace']:.0f} s, checks {t['check']:.0f} s beside it, "
              f"waiting for checks {t['wait']:.0f} s, kernel mounts {t['mount']:.0f} s)")
        return 1 if r["unexpected"] else 0


def fuzz_steps(mnt, seed, n):
    """A seeded random sequence of `n` system calls with up to 4 open file
    descriptors (the `fuzz:SEED:N` workload): open, create, pwrite,
    append, ftruncate, fallocate, fchmod, close (an unlinked file's last
    close frees it), unlink, rename (over existing names too), link, mkdir,
    rmdir, symlink, a store through a MAP_SYNC mapping of an open file
    (reported: mapsync_store_fd). Each step is a function run after the
    previous one."""
    r = random.Random(seed)
    fds = []

    def data_fd():
        """An open file for a data call, none if it was stored into
        through a mapping (MAPPED)."""
        fd = r.choice(fds)
        return None if os.fstat(fd).st_ino in MAPPED else fd

    def paths(kind):
        out = []
        for d, dirs, files in os.walk(mnt):
            # lost+found stays: fsck (like e2fsck) calls its absence an error.
            dirs[:] = [x for x in dirs if not (d == mnt and x == "lost+found")]
            out += [os.path.join(d, x) for x in (dirs if kind == "dir" else files)]
        return out + ([mnt] if kind == "dir" else [])

    def pick(kind):
        c = paths(kind)
        return r.choice(c) if c else None

    def new_name():
        return os.path.join(pick("dir"), f"z{r.randrange(12)}")

    def step():
        k = r.randrange(15)
        if k == 0 and len(fds) < 4 and (p := pick("file")):
            if not os.path.islink(p):
                fds.append(os.open(p, os.O_RDWR))
        elif k == 1 and len(fds) < 4:
            fds.append(os.open(new_name(), os.O_RDWR | os.O_CREAT, 0o644))
        elif k in (2, 3) and fds and (fd := data_fd()) is not None:
            os.pwrite(fd, data(r.randrange(1, 9000), r.random()), r.randrange(0, 20000))
        elif k == 4 and fds and (fd := data_fd()) is not None:
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, data(r.randrange(1, 5000), r.random()))
        elif k == 5 and fds and (fd := data_fd()) is not None:
            os.ftruncate(fd, r.randrange(0, 24000))
        elif k == 6 and fds and (fd := data_fd()) is not None:
            import ctypes
            mode = r.choice([0, FALLOC_KEEP_SIZE, FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE])
            check_errno(libc().fallocate(fd, mode, ctypes.c_long(r.randrange(0, 16000)),
                                         ctypes.c_long(r.randrange(1, 12000))), "fallocate")
        elif k == 7 and fds:
            os.fchmod(r.choice(fds), r.choice([0o600, 0o644, 0o755]))
        elif k == 8 and fds:
            fd = r.choice(fds)
            fds.remove(fd)
            os.close(fd)
        elif k == 9 and (p := pick("file")):
            os.unlink(p)
        elif k == 10 and (p := pick(r.choice(["file", "dir"]))) and p != mnt:
            os.rename(p, new_name())
        elif k == 11 and (p := pick("file")):
            os.link(p, new_name())
        elif k == 12:
            os.mkdir(new_name()) if r.random() < 0.7 else os.symlink("t" * r.randrange(1, 200), new_name())
        elif k == 13 and (p := pick("dir")) and p != mnt:
            os.rmdir(p)
        elif k == 14 and fds:
            fd = r.choice(fds)
            size = os.fstat(fd).st_size
            if size:
                off = r.randrange(size)
                n = min(r.randrange(1, 300), size - off, BLK - off % BLK)
                mapsync_store_fd(fd, off, data(n, r.random()))


    def close_all(_m=None):
        while fds:
            os.close(fds.pop())

    return [lambda _m: step() for _ in range(n)] + [close_all]


def steps_of(mnt, name):
    """The steps of operation `name`: one, or a fuzz sequence."""
    if name.startswith("fuzz:"):
        _, seed, n = name.split(":")
        return fuzz_steps(mnt, int(seed), int(n))
    op = OPS[name]
    return list(op) if isinstance(op, tuple) else [op]


def known(name):
    if name.startswith("fuzz:"):
        parts = name.split(":")
        return len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()
    return name in OPS


def run(mnt, names):
    for n in names:
        for i, f in enumerate(steps_of(mnt, n)):
            try:
                f(mnt)
                print(f"  {n}[{i}]: ok")
            except OSError as e:
                print(f"  {n}[{i}]: {os.strerror(e.errno)}")
            except Skipped as e:
                print(f"  {n}[{i}]: skipped: {e}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "populate":
        populate(argv[2])
    elif len(argv) == 3 and argv[1] == "gcprep":
        gcprep(argv[2])
    elif len(argv) == 3 and argv[1] == "xattrprep":
        xattrprep(argv[2])
    elif len(argv) == 4 and argv[1] == "eofprep":
        eofprep(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "tblprep":
        tblprep(argv[2], int(argv[3]))
    elif len(argv) == 3 and argv[1] == "fullprep":
        fullprep(argv[2])
    elif len(argv) == 5 and argv[1] == "segments":
        print(*segments(argv[2], int(argv[3]), int(argv[4])))
    elif len(argv) == 3 and argv[1] == "dirty":
        dirty(argv[2])
    elif len(argv) == 2 and argv[1] == "list":
        print("\n".join(OPS))
    elif len(argv) >= 4 and argv[1] == "run":
        unknown = [n for n in argv[3:] if n not in OPS]
        if unknown:
            sys.exit(f"unknown operation(s): {' '.join(unknown)}")
        run(argv[2], argv[3:])
    elif len(argv) == 3 and argv[1] == "drive":
        sys.exit(Driver().drive(float(argv[2]), sys.stdin.read().splitlines()))
    elif len(argv) == 4 and argv[1] == "pairs":
        pairs = [(a, b) for a in OPS for b in OPS]
        random.Random(int(argv[3])).shuffle(pairs)
        n = int(argv[2]) or len(pairs)
        for a, b in pairs[:n]:
            print(a, b)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
