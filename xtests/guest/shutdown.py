#!/usr/bin/env python3
"""FS_IOC_SHUTDOWN on a mounted novars (vm:shutdown).

usage: shutdown.py MNT DEV SIZE FLAGS

(SIZE: the bytes of DEV the file system uses, the bytes hashed; FLAGS: 0
for xfs_io's `shutdown`, 1 for `shutdown -f`.)

Before: files written and fsync'd, a file open for writing, a shared
mapping with a store made durable by msync. Then `xfs_io -x -c shutdown`
(with `-f` for FLAGS 1) shuts the file system down, and every call on it
must fail with EIO: on the open descriptor (read, write, fsync, fallocate,
a new mapping, msync), by path (stat, open, create, mkdir, rmdir, unlink,
rename, link, symlink, chmod, chown, utime, truncate, xattrs, readdir),
and a store through the old mapping must get SIGBUS. (readlink answers
from the target kept in memory since the inode was read, as ext4's fast
symlinks do.) The
device's bytes (read with O_DIRECT) must be the same before those calls
and after them. statfs still answers, as on ext4 and xfs. Prints one line
per check; exits 1 on the first failure.
"""
import errno
import hashlib
import mmap
import os
import signal
import subprocess
import sys
from guestlib import fail, ok

MNT, DEV, SIZE, FLAGS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def device_hash():
    """sha256 of the device's first SIZE bytes read with O_DIRECT (no page
    cache)."""
    fd = os.open(DEV, os.O_RDONLY | os.O_DIRECT)
    h = hashlib.sha256()
    buf = mmap.mmap(-1, 1 << 20)
    try:
        left = SIZE
        while left > 0:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            h.update(buf[: min(n, left)])
            left -= n
    finally:
        os.close(fd)
    return h.hexdigest()


def p(name):
    return os.path.join(MNT, name)


# Before the shutdown.
os.makedirs(p("d/sub"))
for i in range(20):
    with open(p(f"d/f{i}"), "wb") as f:
        f.write(os.urandom(3000 + i * 1000))
        os.fsync(f.fileno())
os.setxattr(p("d/f0"), "user.k", b"v")
fd = os.open(p("open"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"a" * 8192)
mfd = os.open(p("mapped"), os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(mfd, 2 * 4096)
m = mmap.mmap(mfd, 2 * 4096, mmap.MAP_SHARED)
m[0:5] = b"store"
m.flush()

cmd = ["xfs_io", "-x", "-c", "shutdown -f" if FLAGS == 1 else "shutdown", MNT]
r = subprocess.run(cmd, capture_output=True, text=True)
if r.returncode or r.stderr:
    fail(f"{' '.join(cmd)}: exit {r.returncode} {r.stderr.strip()}")
ok(f"{' '.join(cmd)}")
h0 = device_hash()


def eio(what, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        if e.errno != errno.EIO:
            fail(f"{what}: {errno.errorcode.get(e.errno, e.errno)}, expected EIO")
        return
    fail(f"{what}: succeeded after the shutdown")


def sigbus_store():
    """A store through the old mapping, in a child: must die of SIGBUS."""
    pid = os.fork()
    if pid == 0:
        m[4096:4100] = b"late"
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    if not os.WIFSIGNALED(st) or os.WTERMSIG(st) != signal.SIGBUS:
        fail(f"store through a mapping after the shutdown: status {st}, expected SIGBUS")


checks = [
    ("read(2)", lambda: os.pread(fd, 10, 0)),
    ("write(2)", lambda: os.pwrite(fd, b"b" * 100, 0)),
    ("append write(2)", lambda: os.pwrite(fd, b"b" * 100, 8192)),
    ("fsync(2)", lambda: os.fsync(fd)),
    ("fdatasync(2)", lambda: os.fdatasync(fd)),
    ("fallocate(2)", lambda: os.posix_fallocate(fd, 0, 1 << 20)),
    ("ftruncate(2)", lambda: os.ftruncate(fd, 10)),
    ("new mmap(2)", lambda: mmap.mmap(fd, 4096, mmap.MAP_SHARED)),
    ("msync(2)", lambda: m.flush()),
    ("stat(2)", lambda: os.stat(p("d/f1"))),
    ("stat(2) of the root", lambda: os.stat(MNT)),
    ("open(2) O_RDONLY", lambda: os.open(p("d/f2"), os.O_RDONLY)),
    ("open(2) O_CREAT", lambda: os.open(p("d/new"), os.O_RDWR | os.O_CREAT, 0o644)),
    ("readdir", lambda: os.listdir(p("d"))),
    ("mkdir(2)", lambda: os.mkdir(p("d/newdir"))),
    ("rmdir(2)", lambda: os.rmdir(p("d/sub"))),
    ("unlink(2)", lambda: os.unlink(p("d/f3"))),
    ("rename(2)", lambda: os.rename(p("d/f4"), p("d/f4b"))),
    ("link(2)", lambda: os.link(p("d/f5"), p("d/f5b"))),
    ("symlink(2)", lambda: os.symlink("t", p("d/ln"))),
    ("chmod(2)", lambda: os.chmod(p("d/f6"), 0o600)),
    ("chown(2)", lambda: os.chown(p("d/f6"), 1, 1)),
    ("utime(2)", lambda: os.utime(p("d/f7"), (1, 1))),
    ("truncate(2)", lambda: os.truncate(p("d/f8"), 0)),
    ("getxattr(2)", lambda: os.getxattr(p("d/f0"), "user.k")),
    ("setxattr(2)", lambda: os.setxattr(p("d/f0"), "user.k", b"w")),
    ("listxattr(2)", lambda: os.listxattr(p("d/f0"))),
    ("removexattr(2)", lambda: os.removexattr(p("d/f0"), "user.k")),
]
for what, fn in checks:
    eio(what, fn)
ok(f"{len(checks)} calls after the shutdown all fail with EIO")
sigbus_store()
ok("a store through a mapping made before the shutdown gets SIGBUS")
st = os.statvfs(MNT)
if st.f_blocks == 0:
    fail("statfs after the shutdown: no blocks")
ok("statfs still answers")
if device_hash() != h0:
    fail("the device changed after the shutdown")
ok("the device is unchanged by every call after the shutdown")
os.close(fd)
m.close()
os.close(mfd)
