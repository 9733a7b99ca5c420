#!/usr/bin/env python3
"""Unwritten extents (fallocate without zeroing), for `vm:unwritten`.

`unwritten.py compare DIR` runs the cases below in DIR and prints one
`case: result` line each: relations only (contents, sizes, SEEK_DATA /
SEEK_HOLE answers, what FIEMAP says of chosen blocks), so ext4-DAX and
novars can be compared line by line. The writes land in the middle of
large unwritten extents: ext4 zeroes out, instead of splitting, an
unwritten extent of at most 32 KiB around a write, which novars never
does (FORMAT.md, "Unwritten extents"), and that would show in FIEMAP.

`unwritten.py stale DIR DEV` (novars only) fills free space with 0xAA,
frees it, fallocates and checks from the device (O_DIRECT at FIEMAP's
physical offsets) that fallocate wrote nothing while every read gives
zeros; then that a partial write stores its block whole (data and zeros
around it), and that log compaction keeps the rest unwritten.
"""
import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import struct
import sys

BLK = 4096
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNWRITTEN = 0x800
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
SEEK_DATA, SEEK_HOLE = 3, 4

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def falloc(fd, mode, off, n):
    if libc.fallocate(fd, mode, off, n) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def fiemap(fd, count=512):
    """Every extent as (logical, physical, length, flags)."""
    hdr = struct.pack("=QQIIII", 0, 2**63, 0, 0, count, 0)
    buf = bytearray(hdr + bytes(56 * count))
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    n = struct.unpack_from("=I", buf, 20)[0]
    out = []
    for i in range(n):
        lo, ph, ln, _, _, fl = struct.unpack_from("=QQQQQI", buf, 32 + 56 * i)
        out.append((lo, ph, ln, fl))
    return out


def kind(fd, blocks):
    """What FIEMAP says of each file block: U unwritten, W written, - none."""
    ext = fiemap(fd)
    s = ""
    for b in blocks:
        k = "-"
        for lo, _, ln, fl in ext:
            if lo <= b * BLK < lo + ln:
                k = "U" if fl & FIEMAP_EXTENT_UNWRITTEN else "W"
        s += k
    return s


def seeks(fd, offsets):
    out = []
    for w, name in ((SEEK_DATA, "D"), (SEEK_HOLE, "H")):
        for o in offsets:
            try:
                out.append("%s%d=%d" % (name, o // BLK, os.lseek(fd, o, w) // BLK))
            except OSError as e:
                out.append("%s%d=%s" % (name, o // BLK, errno.errorcode[e.errno]))
    return " ".join(out)


def digest(fd, size):
    data = os.pread(fd, size + BLK, 0)
    nz = sum(1 for i in range(0, len(data), BLK) if any(data[i:i + BLK]))
    return "size %d read %d nonzero-blocks %d md5 %s" % (
        os.fstat(fd).st_size, len(data), nz, hashlib.md5(data).hexdigest()[:12])


def new(d, name):
    return os.open(os.path.join(d, name), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)


N = 256  # blocks in each fallocated file: 1 MiB


def case_falloc_reads_zeros(d):
    fd = new(d, "a")
    falloc(fd, 0, 0, N * BLK)
    r = "%s; fiemap %s; %s" % (digest(fd, N * BLK), kind(fd, [0, 128, 255]),
                               seeks(fd, [0, 128 * BLK]))
    os.close(fd)
    return r


def case_partial_write(d):
    fd = new(d, "b")
    falloc(fd, 0, 0, N * BLK)
    os.pwrite(fd, b"x" * 100, 128 * BLK + 1000)
    r = "%s; fiemap %s; %s" % (digest(fd, N * BLK), kind(fd, [0, 127, 128, 129, 255]),
                               seeks(fd, [0, 128 * BLK, 129 * BLK]))
    # A write across the edge of the written block into unwritten ones.
    os.pwrite(fd, b"y" * (2 * BLK), 129 * BLK - 10)
    r += "; then %s; fiemap %s" % (digest(fd, N * BLK), kind(fd, [128, 129, 130, 131, 132]))
    os.close(fd)
    return r


def case_keep_size(d):
    fd = new(d, "c")
    os.pwrite(fd, b"z" * 5000, 0)
    falloc(fd, FALLOC_FL_KEEP_SIZE, 0, N * BLK)
    r = "%s; fiemap %s" % (digest(fd, 5000), kind(fd, [0, 1, 2, 128, 255]))
    os.pwrite(fd, b"w" * 10, 200 * BLK)
    r += "; extended %s; fiemap %s; %s" % (
        digest(fd, 200 * BLK + 10), kind(fd, [2, 100, 200, 201]), seeks(fd, [0, 2 * BLK]))
    os.close(fd)
    return r


def case_punch(d):
    fd = new(d, "e")
    falloc(fd, 0, 0, N * BLK)
    os.pwrite(fd, b"p" * BLK, 64 * BLK)
    falloc(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 60 * BLK, 10 * BLK)
    falloc(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 200 * BLK + 7, 3 * BLK)
    r = "%s; fiemap %s; %s" % (digest(fd, N * BLK), kind(fd, [59, 60, 64, 69, 70, 201, 202]),
                               seeks(fd, [0, 60 * BLK]))
    os.close(fd)
    return r


def case_zero_range(d):
    fd = new(d, "f")
    os.pwrite(fd, b"q" * (N * BLK), 0)
    falloc(fd, FALLOC_FL_ZERO_RANGE, 64 * BLK, 128 * BLK)
    r = "%s; fiemap %s" % (digest(fd, N * BLK), kind(fd, [63, 64, 128, 191, 192]))
    os.close(fd)
    return r


def case_truncate(d):
    fd = new(d, "g")
    falloc(fd, 0, 0, N * BLK)
    os.pwrite(fd, b"t" * 10, 100 * BLK)
    os.ftruncate(fd, 100 * BLK + 5)
    os.ftruncate(fd, 150 * BLK)
    r = "%s; fiemap %s" % (digest(fd, 150 * BLK), kind(fd, [0, 99, 100, 101, 200]))
    os.close(fd)
    return r


def case_mmap(d):
    fd = new(d, "h")
    falloc(fd, 0, 0, N * BLK)
    m = mmap.mmap(fd, N * BLK)
    before = m[64 * BLK:64 * BLK + 8]  # a read fault: the zero page
    m[64 * BLK + 8:64 * BLK + 12] = b"mmap"  # a write fault on it
    m.flush()
    r = "read %r; %s; fiemap %s" % (before, digest(fd, N * BLK), kind(fd, [63, 64, 65]))
    m.close()
    os.close(fd)
    return r


def case_copy_file_range(d):
    fd = new(d, "i")
    falloc(fd, 0, 0, N * BLK)
    os.pwrite(fd, b"c" * 10, 128 * BLK)
    out = new(d, "i2")
    n = os.copy_file_range(fd, out, N * BLK, 0, 0)
    r = "copied %d; %s" % (n, digest(out, N * BLK))
    os.close(out)
    os.close(fd)
    return r


CASES = [case_falloc_reads_zeros, case_partial_write, case_keep_size, case_punch,
         case_zero_range, case_truncate, case_mmap, case_copy_file_range]


def compare(d):
    for c in CASES:
        print("%s: %s" % (c.__name__[5:], c(d)), flush=True)


def relist(d):
    """The files' contents and block kinds as they are (after a remount)."""
    for name in sorted(os.listdir(d)):
        fd = os.open(os.path.join(d, name), os.O_RDONLY)
        size = os.fstat(fd).st_size
        print("%s: %s; fiemap %s" % (name, digest(fd, size),
                                     kind(fd, [0, 64, 100, 128, 129, 200, 255])))
        os.close(fd)


def device_bytes(dev, phys, n):
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, n)  # page aligned, for O_DIRECT
    os.preadv(fd, [buf], phys)
    os.close(fd)
    return bytes(buf)


def stale(d, dev):
    # One CPU: novars allocates from the running CPU's lane, so the
    # fallocate below gets the blocks the unlink freed only if it runs
    # where the writes did.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    # Old bytes in free space.
    p = os.path.join(d, "old")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    st = os.statvfs(d)
    n = min(st.f_bavail * st.f_frsize // 2, 64 << 20) // BLK * BLK
    for off in range(0, n, 1 << 20):
        os.pwrite(fd, b"\xaa" * min(1 << 20, n - off), off)
    os.close(fd)
    os.unlink(p)
    fd = new(d, "pre")
    falloc(fd, 0, 0, n)
    ext = fiemap(fd)
    if not ext or any(not fl & FIEMAP_EXTENT_UNWRITTEN for _, _, _, fl in ext):
        sys.exit("fallocate left extents not flagged unwritten: %r" % ext)
    stale = 0
    for lo, ph, ln, _ in ext:
        stale += device_bytes(dev, ph, ln).count(b"\xaa" * BLK)
    if stale * 2 < n // BLK:
        sys.exit("fallocate wrote its blocks: %d of %d still hold the old bytes"
                 % (stale, n // BLK))
    print("ok: fallocate of %d blocks wrote none (%d hold the old bytes)" % (n // BLK, stale))
    data = os.pread(fd, n, 0)
    if data.count(0) != n:
        sys.exit("an unwritten block read other than zeros")
    print("ok: every byte reads as zero")
    # A partial write stores its whole block: data and zeros around it.
    lo, ph, ln, _ = ext[0]
    os.pwrite(fd, b"D" * 100, lo + 1000)
    blk = device_bytes(dev, ph, BLK)
    if blk != bytes(1000) + b"D" * 100 + bytes(BLK - 1100):
        sys.exit("the converted block holds %r" % blk[:1200])
    if kind(fd, [lo // BLK, lo // BLK + 1]) != "WU":
        sys.exit("after a partial write: %s, not WU" % kind(fd, [lo // BLK, lo // BLK + 1]))
    print("ok: a partial write converts its block only, zeros around the data")
    # Log compaction (16 pages of 63 WRITE entries) keeps the flag.
    for i in range(2000):
        os.pwrite(fd, b"%d" % i, 2 * BLK)
    # Without compaction 2000 WRITE entries take 32 log pages.
    if os.fstat(fd).st_blocks * 512 > n + 20 * BLK:
        sys.exit("the log was not compacted: st_blocks %d" % os.fstat(fd).st_blocks)
    k = kind(fd, [0, 1, 2, 3, n // BLK - 1])
    if k != "WUWUU":
        sys.exit("after compaction: %s, not WUWUU" % k)
    data = os.pread(fd, n, 0)
    if data.count(0xAA):
        sys.exit("stale bytes readable after compaction")
    print("ok: compaction keeps unwritten extents (%s)" % k)
    os.close(fd)


if __name__ == "__main__":
    if sys.argv[1] == "compare":
        compare(sys.argv[2])
    elif sys.argv[1] == "relist":
        relist(sys.argv[2])
    else:
        stale(sys.argv[2], sys.argv[3])
