#!/usr/bin/env python3
"""Inode tables that grow, and a full file system that can be emptied.

  fullfs.py grow MNT MIN LEAVE_MIB  data space filled but LEAVE_MIB, then
                                     empty files until ENOSPC: at least MIN,
                                     the failure for space, statfs plausible;
                                     writes the count to MNT/../grow.count
  fullfs.py full MNT                 data and inode space 100% used, then
                                     every space-freeing operation succeeds
                                     (unlink, rmdir, rename over a name,
                                     truncate down, punch hole), each from a
                                     refilled file system
  fullfs.py count MNT N              the grown tree holds exactly N files

Prints "ok: ..." per check; exits 1 with "FAIL: ..." on the first failure.
"""
import ctypes
import errno
import os
import sys
from guestlib import fail, ok

PER_DIR = 10000
MIB = 1 << 20
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def df(mnt):
    s = os.statvfs(mnt)
    return {"files": s.f_files, "ffree": s.f_ffree, "used": s.f_files - s.f_ffree,
            "blocks": s.f_blocks, "bfree": s.f_bfree, "bavail": s.f_bavail,
            "bsize": s.f_frsize}


def show(what, d):
    print(f"{what}: inodes {d['files']} used {d['used']} free {d['ffree']}; "
          f"blocks {d['blocks']} free {d['bfree']} avail {d['bavail']}", flush=True)


def create_until_enospc(mnt, prefix, limit=None):
    """Empty files in directories of PER_DIR until a create fails.
    Returns (count, errno of the failure)."""
    n = 0
    d = None
    while limit is None or n < limit:
        if n % PER_DIR == 0:
            d = os.path.join(mnt, f"{prefix}{n // PER_DIR}")
            try:
                os.mkdir(d)
            except OSError as e:
                return n, e.errno
        try:
            os.close(os.open(os.path.join(d, str(n)), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except OSError as e:
            return n, e.errno
        n += 1
    return n, 0


def write_until_enospc(path):
    """Appends to `path` until ENOSPC (1 MiB writes, then 4 KiB ones)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    total = 0
    try:
        for chunk in (b"\xa5" * MIB, b"\x5a" * 4096):
            while True:
                try:
                    n = os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        fail(f"write to {path}: {e}")
                    break
                total += n
                if n < len(chunk):
                    break
    finally:
        os.close(fd)
    return total


def grow(mnt, minimum, leave_mib):
    d0 = df(mnt)
    show("fresh", d0)
    big = os.path.join(mnt, "big")
    size = d0["bavail"] * d0["bsize"] - leave_mib * MIB
    fd = os.open(big, os.O_CREAT | os.O_WRONLY, 0o644)
    os.posix_fallocate(fd, 0, size)
    os.close(fd)
    d1 = df(mnt)
    show(f"after a {size // MIB} MiB file", d1)
    n, err = create_until_enospc(mnt, "g")
    d2 = df(mnt)
    show(f"after {n} empty files", d2)
    if err != errno.ENOSPC:
        fail(f"create {n + 1} failed with {errno.errorcode.get(err, err)}, not ENOSPC")
    if n < minimum:
        fail(f"only {n} files before ENOSPC (want at least {minimum})")
    ok(f"{n} empty files, then ENOSPC")
    # Failed for space: what is left cannot hold another table segment
    # (at most 16 MiB) or is a small part of the file system.
    left = d2["bavail"] * d2["bsize"]
    if left > 17 * MIB:
        fail(f"ENOSPC with {left // MIB} MiB still available")
    ok(f"ENOSPC with {left // 1024} KiB available: the space ran out")
    # df -i: the used count moved by exactly the files and directories
    # made; the free estimate was of the right size before and is small
    # after.
    made = n + (n + PER_DIR - 1) // PER_DIR
    if d2["used"] - d1["used"] != made:
        fail(f"df -i used went {d1['used']} -> {d2['used']}, made {made}")
    if not (made // 2 <= d1["ffree"] <= made * 2):
        fail(f"df -i promised {d1['ffree']} free inodes, {made} fitted")
    # Slots of the last segment may stay free when the blocks run out
    # first (a new name needs room in its directory's log).
    if d2["ffree"] > made // 2:
        fail(f"df -i says {d2['ffree']} inodes free after ENOSPC")
    if d2["files"] != d2["used"] + d2["ffree"] or d0["files"] < d0["used"]:
        fail("df -i totals inconsistent")
    ok(f"df -i: {d1['ffree']} free before, {d2['ffree']} after, used +{made}")
    with open(os.path.join(mnt, "..", "grow.count"), "w") as f:
        f.write(f"{n}\n")


def count(mnt, n):
    got = 0
    for e in os.scandir(mnt):
        if e.name.startswith("g") and e.is_dir():
            got += sum(1 for _ in os.scandir(e.path))
    if got != n:
        fail(f"{got} files after remount, {n} were made")
    last = os.path.join(mnt, f"g{(n - 1) // PER_DIR}", str(n - 1))
    if not os.path.isfile(last):
        fail(f"{last} missing")
    ok(f"all {n} files there")


def refill(mnt, tag):
    """Data space to 100%, then inode space: the next write and the next
    create fail with ENOSPC."""
    write_until_enospc(os.path.join(mnt, "fill"))
    # Empty files beside it (no new directory: that needs a block of its
    # own, an empty file only a slot and room in its directory's log).
    for i in range(100000):
        try:
            os.close(os.open(os.path.join(mnt, f"x{tag}.{i}"), os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError as e:
            if e.errno != errno.ENOSPC:
                fail(f"refill {tag}: create: {e}")
            break
    d = df(mnt)
    # A write needs a block and may need a log page: a block or two can
    # stay available that no operation that adds data can use.
    if d["bavail"] * d["bsize"] > 16384:
        fail(f"refill {tag}: {d['bavail']} blocks still available")
    try:
        os.close(os.open(os.path.join(mnt, f"probe.{tag}"), os.O_CREAT | os.O_WRONLY, 0o644))
        fail(f"refill {tag}: a create still works")
    except OSError as e:
        if e.errno != errno.ENOSPC:
            fail(f"refill {tag}: create failed with {e}")
    if d["bfree"] <= d["bavail"]:
        fail(f"full, yet free {d['bfree']} <= available {d['bavail']}: no reserve shown")
    return d


def punch(path, off, length):
    fd = os.open(path, os.O_WRONLY)
    try:
        if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, length) != 0:
            e = ctypes.get_errno()
            fail(f"punch {path} {off}+{length}: {os.strerror(e)}")
    finally:
        os.close(fd)


def full(mnt):
    # Room to set up (the grown tree left no space): the big file goes.
    os.unlink(os.path.join(mnt, "big"))
    os.mkdir(os.path.join(mnt, "emptydir"))
    os.mkdir(os.path.join(mnt, "dirvictim"))
    os.mkdir(os.path.join(mnt, "dirsrc"))
    for name in ("a", "b", "c", "d"):
        with open(os.path.join(mnt, name), "wb") as f:
            f.write(bytes([ord(name)]) * 10000)
    with open(os.path.join(mnt, "data"), "wb") as f:
        f.write(b"\x11" * (8 * MIB))
    open(os.path.join(mnt, "fill"), "wb").close()
    victims = sorted(os.listdir(os.path.join(mnt, "g0")), key=int)
    steps = [
        ("unlink", lambda: [os.unlink(os.path.join(mnt, "g0", v)) for v in victims[:500]]),
        ("rmdir", lambda: os.rmdir(os.path.join(mnt, "emptydir"))),
        ("rename over a file", lambda: os.rename(os.path.join(mnt, "a"), os.path.join(mnt, "b"))),
        ("rename over a directory",
         lambda: os.rename(os.path.join(mnt, "dirsrc"), os.path.join(mnt, "dirvictim"))),
        ("truncate down", lambda: os.truncate(os.path.join(mnt, "data"), 5 * MIB + 123)),
        ("punch hole", lambda: punch(os.path.join(mnt, "c"), 1000, 5000)),
        ("truncate the filler", lambda: os.truncate(os.path.join(mnt, "fill"), 0)),
    ]
    for i, (what, step) in enumerate(steps):
        d = refill(mnt, i)
        try:
            step()
        except OSError as e:
            fail(f"{what} on a full file system: {e}")
        ok(f"{what} on a full file system (free {d['bfree']}, available {d['bavail']})")
    # What the operations left is right.
    with open(os.path.join(mnt, "b"), "rb") as f:
        if f.read() != b"a" * 10000:
            fail("b does not hold a's bytes after the rename")
    if os.path.exists(os.path.join(mnt, "a")) or os.path.exists(os.path.join(mnt, "dirsrc")):
        fail("a renamed name is still there")
    with open(os.path.join(mnt, "c"), "rb") as f:
        if f.read() != b"c" * 1000 + bytes(5000) + b"c" * 4000:
            fail("c after the punch is wrong")
    with open(os.path.join(mnt, "data"), "rb") as f:
        if f.read() != b"\x11" * (5 * MIB + 123):
            fail("data after truncate is wrong")
    ok("every operation's result is right")


def main(argv):
    if len(argv) == 5 and argv[1] == "grow":
        grow(argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) == 3 and argv[1] == "full":
        full(argv[2])
    elif len(argv) == 4 and argv[1] == "count":
        count(argv[2], int(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
