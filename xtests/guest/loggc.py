#!/usr/bin/env python3
"""Log garbage collection workloads (xtests/vm-tests/log_gc.sh).

  loggc.py overwrite DIR N     overwrite one 4 KiB block N times; prints the
                               file's st_blocks and the fs's free blocks as it
                               goes and fails if either keeps growing
  loggc.py extents DIR N       a file of many extents (every other block of
                               2000), then N overwrites of one block; the
                               compacted log spans several pages
  loggc.py truncate DIR N      N truncates up and down (SETATTR entries)
  loggc.py check DIR           the files hold what the workloads left
  loggc.py hammer DIR PROG     overwrite one block (and truncate a second
                               file) until killed, recording in PROG every
                               50th completed write (fsynced)
  loggc.py hammercheck DIR PROG  after the crash: the block holds write k or
                               a later one (k: the last recorded), never a
                               mix of two writes
"""
import hashlib
import os
import sys

BS = 4096


def pattern(i):
    return (i.to_bytes(8, "little") * (BS // 8))


def space(path, fd):
    st = os.fstat(fd)
    vfs = os.statvfs(path)
    return st.st_blocks, vfs.f_bfree


def flat(samples, what, slack):
    """The last sample may exceed the smallest after warm-up by `slack`."""
    warm = samples[len(samples) // 4:]
    lo, hi = min(warm), max(warm)
    if hi - lo > slack:
        sys.exit(f"FAIL: {what} grows: {samples}")


def overwrite(d, n, name="ow", off=0, data_blocks=1, max_log_pages=17):
    path = os.path.join(d, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, pattern(0), off)
    blocks, free = [], []
    step = max(n // 20, 1)
    for i in range(1, n + 1):
        if os.pwrite(fd, pattern(i), off) != BS:
            sys.exit("FAIL: short write")
        if i % step == 0:
            b, f = space(d, fd)
            blocks.append(b)
            free.append(f)
    print(f"{name}: {n} overwrites; st_blocks {blocks}")
    print(f"{name}: free blocks {free}")
    if os.pread(fd, BS, off) != pattern(n):
        sys.exit("FAIL: the block does not hold the last write")
    os.close(fd)
    # The log is compacted once it reaches max(16, 2 x its compact size)
    # pages: st_blocks (512-byte units) never exceeds data + that bound.
    bound = 8 * (data_blocks + max_log_pages)
    if max(blocks) > bound:
        sys.exit(f"FAIL: {name}: st_blocks {max(blocks)} > {bound}: the log is not compacted")
    flat([-x for x in free], "used space", 64)
    with open(os.path.join(d, name + ".expect"), "w") as f:
        f.write(f"{off} {n}\n")


def extents(d, n):
    path = os.path.join(d, "ext")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for b in range(0, 4000, 2):
        os.pwrite(fd, pattern(1_000_000 + b), b * BS)
    os.close(fd)
    # 2000 WRITE entries of 64 bytes compact to 33 pages: compaction at 66.
    overwrite(d, n, "ext", 0, data_blocks=2000, max_log_pages=67)
    fd = os.open(path, os.O_RDONLY)
    h = hashlib.sha256(os.pread(fd, 4000 * BS, 0)).hexdigest()
    os.close(fd)
    with open(os.path.join(d, "ext.sha"), "w") as f:
        f.write(h + "\n")
    print(f"ext: sha256 {h}")


def truncate(d, n):
    path = os.path.join(d, "tr")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, pattern(7), 0)
    blocks = []
    step = max(n // 20, 1)
    for i in range(1, n + 1):
        os.ftruncate(fd, BS + (i % 3) * 100)
        os.ftruncate(fd, BS)
        if i % step == 0:
            blocks.append(os.fstat(fd).st_blocks)
    print(f"tr: {n} truncate pairs; st_blocks {blocks}")
    if max(blocks) > 8 * (1 + 17):
        sys.exit(f"FAIL: tr: st_blocks {max(blocks)}: the log is not compacted")
    if os.pread(fd, BS + 10, 0) != pattern(7):
        sys.exit("FAIL: truncates changed the data")
    os.close(fd)


def check(d):
    for name in ("ow", "ext"):
        with open(os.path.join(d, name + ".expect")) as f:
            off, n = map(int, f.read().split())
        fd = os.open(os.path.join(d, name), os.O_RDONLY)
        if os.pread(fd, BS, off) != pattern(n):
            sys.exit(f"FAIL: {name} lost its last write")
        st = os.fstat(fd)
        os.close(fd)
        print(f"{name}: ok, st_blocks {st.st_blocks}")
    fd = os.open(os.path.join(d, "ext"), os.O_RDONLY)
    h = hashlib.sha256(os.pread(fd, 4000 * BS, 0)).hexdigest()
    os.close(fd)
    with open(os.path.join(d, "ext.sha")) as f:
        if f.read().strip() != h:
            sys.exit("FAIL: the many-extent file changed")
    with open(os.path.join(d, "tr"), "rb") as f:
        if f.read() != pattern(7):
            sys.exit("FAIL: tr changed")
    print("check: ok")


def hammer(d, prog):
    fd = os.open(os.path.join(d, "hot"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, pattern(0), 0)
    log = open(prog, "a", buffering=1)
    i = 0
    while True:
        i += 1
        if os.pwrite(fd, pattern(i), 0) != BS:
            sys.exit("FAIL: short write")
        if i % 50 == 0:
            log.write(f"{i}\n")
            log.flush()
            os.fsync(log.fileno())
        if i == 200:
            print("@@crash-armed", flush=True)


def hammercheck(d, prog):
    done = [int(x) for x in open(prog).read().split()] or [0]
    k = done[-1]
    with open(os.path.join(d, "hot"), "rb") as f:
        b = f.read()
    if len(b) != BS:
        sys.exit(f"FAIL: hot is {len(b)} bytes")
    j = int.from_bytes(b[:8], "little")
    if b != pattern(j):
        sys.exit("FAIL: the block mixes two writes")
    if j < k:
        sys.exit(f"FAIL: write {k} had returned, the block holds write {j}")
    st = os.stat(os.path.join(d, "hot"))
    print(f"hammercheck: last recorded {k}, block holds {j}, st_blocks {st.st_blocks}")


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "overwrite":
        overwrite(d, int(sys.argv[3]))
    elif cmd == "extents":
        extents(d, int(sys.argv[3]))
    elif cmd == "truncate":
        truncate(d, int(sys.argv[3]))
    elif cmd == "check":
        check(d)
    elif cmd == "hammer":
        hammer(d, sys.argv[3])
    elif cmd == "hammercheck":
        hammercheck(d, sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
