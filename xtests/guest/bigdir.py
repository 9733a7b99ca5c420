#!/usr/bin/env python3
"""Large directories and files (issue 13).

  bigdir.py dir MNT N        a directory of N entries: create, lookup time
                             at 1,000 and at N entries, readdir, rename out
                             and in, unlink all (the directory log is
                             compacted on the way), checked at each step
  bigdir.py extents MNT N    a file of N extents from fragmented writes:
                             FIEMAP counts them, every block reads back
  bigdir.py sparse MNT GIB   a sparse file of GIB GiB: data at both ends
                             and in the middle, SEEK_DATA/SEEK_HOLE, size
  bigdir.py verify MNT N     after a remount: what `extents` and `sparse`
                             left is still there

Prints "ok: ..." per check; exits 1 with "FAIL: ..." on the first failure.
"""
import array
import fcntl
import os
import random
import sys
import time
from guestlib import fail, ok

BLK = 4096


def name(i):
    return f"entry-{i:07d}"


def lookup_us(d, n, samples=2000):
    """Mean time of a stat of a random existing name, in microseconds."""
    r = random.Random(n)
    picks = [os.path.join(d, name(r.randrange(n))) for _ in range(samples)]
    best = None
    for _ in range(3):
        t = time.perf_counter()
        for p in picks:
            os.stat(p)
        dt = (time.perf_counter() - t) / samples * 1e6
        best = dt if best is None else min(best, dt)
    return best


def big_dir(mnt, n):
    d = os.path.join(mnt, "big")
    os.mkdir(d)
    t0 = time.perf_counter()
    small = None
    for i in range(n):
        os.close(os.open(os.path.join(d, name(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        if i + 1 == 1000:
            # Drop the dentry cache so that lookups reach novars.
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")
            small = lookup_us(d, 1000)
    ok(f"{n} creates in one directory ({time.perf_counter() - t0:.0f} s)")
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    large = lookup_us(d, n)
    print(f"lookup (stat of a random name, dentry cache dropped first): "
          f"{small:.1f} us at 1000 entries, {large:.1f} us at {n}", flush=True)
    # Flat: a lookup that walked the names would be hundreds of times
    # slower at 100,000 than at 1,000.
    if large > 4 * small + 20:
        fail(f"lookup time not flat: {small:.1f} us at 1000 entries, {large:.1f} us at {n}")
    ok("lookup time flat")
    names = os.listdir(d)
    if len(names) != n or len(set(names)) != n:
        fail(f"readdir: {len(names)} names ({len(set(names))} distinct), want {n}")
    ok(f"readdir: all {n} names, once each")
    other = os.path.join(mnt, "other")
    os.mkdir(other)
    moved = range(0, n, 10)
    for i in moved:
        os.rename(os.path.join(d, name(i)), os.path.join(other, name(i)))
    for i in moved:
        os.rename(os.path.join(other, name(i)), os.path.join(d, f"back-{i:07d}"))
    if os.listdir(other) or len(os.listdir(d)) != n:
        fail("rename out and back in lost or kept names")
    ok(f"{len(moved)} names renamed out and back in")
    # Unlink the 90% still called entry-*: the log then holds about
    # 2.1 N entries for N/10 live names, and compacts on the way (gc.rs).
    for i in range(n):
        if i % 10:
            os.unlink(os.path.join(d, name(i)))
    os.rmdir(other)
    ok(f"{n - len(moved)} names unlinked")


def dir_gc(mnt, n):
    """After a remount (st_blocks of a directory is its log, as loaded):
    the log of the N/10 names left is compacted; they are all there; then
    the rest goes."""
    d = os.path.join(mnt, "big")
    left = sorted(os.listdir(d))
    want = sorted(f"back-{i:07d}" for i in range(0, n, 10))
    if left != want:
        fail(f"{len(left)} names after remount, want the {len(want)} back-* names")
    pages = os.stat(d).st_blocks // 8
    # 56 bytes a DENTRY entry, 72 to a page: the live names need this many
    # pages; uncompacted, the log would be about 21 times that.
    need = (len(want) + 71) // 72
    print(f"directory log after remount: {pages} pages for {len(want)} names ({need} needed)",
          flush=True)
    if pages > max(16, 4 * need):
        fail(f"directory log of {pages} pages for {len(want)} names: not compacted")
    ok("directory log compacted")
    for e in left:
        os.unlink(os.path.join(d, e))
    os.rmdir(d)
    ok("every name unlinked, directory removed")


FS_IOC_FIEMAP = 0xC020660B


def fiemap_count(fd):
    """Extents FIEMAP reports (fm_extent_count 0: count only)."""
    req = array.array("B", bytes(32))
    # fm_start 0, fm_length ~0, flags 0, mapped 0, extent_count 0
    req[8:16] = array.array("B", (0xFF,) * 8)
    fcntl.ioctl(fd, FS_IOC_FIEMAP, req, True)
    return int.from_bytes(req[20:24], "little")


def block_bytes(i):
    return (i.to_bytes(8, "little") * (BLK // 8))


def extents(mnt, n):
    p = os.path.join(mnt, "frag")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    t0 = time.perf_counter()
    # Every other block: each written block is an extent of its own.
    for i in range(n):
        os.pwrite(fd, block_bytes(i), 2 * i * BLK)
    got = fiemap_count(fd)
    if got != n:
        fail(f"FIEMAP: {got} extents, want {n}")
    ok(f"{n} extents from fragmented writes ({time.perf_counter() - t0:.0f} s); FIEMAP agrees")
    verify_frag(fd, n)
    os.close(fd)


def verify_frag(fd, n):
    for i in range(n):
        if os.pread(fd, BLK, 2 * i * BLK) != block_bytes(i):
            fail(f"frag block {2 * i} reads wrong")
        if i % 997 == 0 and os.pread(fd, BLK, (2 * i + 1) * BLK) != bytes(BLK):
            fail(f"frag hole {2 * i + 1} is not zeros")
    ok(f"all {n} extents read back, holes zero")


def sparse_points(gib):
    size = gib << 30
    return size, [0, size // 2 + 12345, size - 100]


def sparse(mnt, gib):
    size, points = sparse_points(gib)
    p = os.path.join(mnt, "sparse")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, size)
    for off in points:
        os.pwrite(fd, b"novars" * 10, off)
    verify_sparse(fd, gib)
    os.close(fd)


def verify_sparse(fd, gib):
    size, points = sparse_points(gib)
    st = os.fstat(fd)
    if st.st_size != size:
        fail(f"sparse size {st.st_size}, want {size}")
    if st.st_blocks * 512 > 16 * BLK * len(points):
        fail(f"sparse file uses {st.st_blocks * 512} bytes")
    for off in points:
        if os.pread(fd, 60, off) != b"novars" * 10:
            fail(f"sparse data at {off} wrong")
    mid = points[1] // BLK * BLK
    if os.lseek(fd, BLK, os.SEEK_DATA) != mid:
        fail("SEEK_DATA after the first block does not find the middle")
    if os.lseek(fd, mid, os.SEEK_HOLE) != mid + BLK:
        fail("SEEK_HOLE after the middle block is wrong")
    if os.pread(fd, 100, mid + 8 * BLK) != bytes(100):
        fail("a hole of the sparse file is not zeros")
    ok(f"sparse file of {gib} GiB: size, data, holes, SEEK_DATA/SEEK_HOLE")


def verify(mnt, n, gib):
    fd = os.open(os.path.join(mnt, "frag"), os.O_RDONLY)
    if fiemap_count(fd) != n:
        fail("frag extents changed across remount")
    verify_frag(fd, n)
    os.close(fd)
    fd = os.open(os.path.join(mnt, "sparse"), os.O_RDONLY)
    verify_sparse(fd, gib)
    os.close(fd)


def main(argv):
    if len(argv) == 4 and argv[1] == "dir":
        big_dir(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "dirgc":
        dir_gc(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "extents":
        extents(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "sparse":
        sparse(argv[2], int(argv[3]))
    elif len(argv) == 5 and argv[1] == "verify":
        verify(argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
