#!/usr/bin/env python3
"""Log GC after the in-place paths (issue 4): write() into a mapped range,
fallocate and first-touch write faults each append to the file's log
without copying on write; the GC must keep those logs bounded too.
Usage: gc_inplace.py run DIR N | check DIR N. `run` does N in-place
writes, N fallocates and 2N faults and
checks after each phase that the log (st_blocks minus data blocks) stayed
under the compaction bound; `check` (after remount) re-reads the files."""
import mmap
import os
import sys
from guestlib import fail

PAGE = 4096
# A log is compacted at max(16, 2 x its compact size) pages (gc.rs); the
# compact logs here are 1-2 pages, so a log never passes 16 + 1 pages.
BOUND = 17


def log_pages(path, data_blocks):
    return os.stat(path).st_blocks // 8 - data_blocks


def inplace(d, n):
    p = os.path.join(d, "mapped")
    with open(p, "wb") as f:
        f.write(b"\0" * PAGE)
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, PAGE, mmap.MAP_SHARED)
    _ = m[0]                      # a DAX entry: write() now goes in place
    worst = 0
    for i in range(n):
        os.pwrite(fd, b"%08d" % i, 0)
        if m[:8] != b"%08d" % i:
            fail("in-place write %d not seen through the mapping" % i)
        worst = max(worst, log_pages(p, 1))
    m.close()
    os.close(fd)
    print("in-place write(): %d writes into a mapped page, log at most %d pages" % (n, worst))
    if worst > BOUND:
        fail("in-place writes: log grew to %d pages (bound %d)" % (worst, BOUND))


def falloc(d, n):
    p = os.path.join(d, "falloc")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    worst = 0
    for i in range(n):
        # Allocated already after the first call: each call logs its times.
        os.posix_fallocate(fd, 0, 8 * PAGE)
        worst = max(worst, log_pages(p, 8))
    os.close(fd)
    print("fallocate: %d calls, log at most %d pages" % (n, worst))
    if worst > BOUND:
        fail("fallocate: log grew to %d pages (bound %d)" % (worst, BOUND))


def faults(d, n):
    p = os.path.join(d, "faulted")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, n * PAGE)
    m = mmap.mmap(fd, n * PAGE, mmap.MAP_SHARED)
    # One block per fault (a 2 MiB PMD fault would allocate 512 at once
    # and the data-block count below would not hold).
    m.madvise(mmap.MADV_NOHUGEPAGE)
    worst = 0
    for i in range(n):
        m[i * PAGE:i * PAGE + 4] = b"%04d" % (i % 10000)
        if i % 64 == 63:
            worst = max(worst, log_pages(p, i + 1))
    m.close()
    os.close(fd)
    worst = max(worst, log_pages(p, n))
    print("write faults: %d first-touch faults, log at most %d pages" % (n, worst))
    # Each log page taken between two faults splits the data blocks into
    # runs of about 63, one WRITE entry each in the compact log: twice the
    # bound still is far below the n / 63 pages of an uncompacted log.
    if worst > 2 * BOUND:
        fail("faults: log grew to %d pages (bound %d)" % (worst, 2 * BOUND))


def check(d, n):
    with open(os.path.join(d, "mapped"), "rb") as f:
        if f.read(8) != b"%08d" % (n - 1):
            fail("mapped: last in-place write lost")
    with open(os.path.join(d, "falloc"), "rb") as f:
        b = f.read()
        if b != bytes(8 * PAGE):
            fail("falloc: contents differ")
    with open(os.path.join(d, "faulted"), "rb") as f:
        b = f.read()
        for i in range(2 * n):
            if b[i * PAGE:i * PAGE + 4] != b"%04d" % (i % 10000):
                fail("faulted: page %d differs" % i)
    print("after remount: all three files as written")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail("usage: gc_inplace.py run|check DIR N")
    d, n = sys.argv[2], int(sys.argv[3])
    if sys.argv[1] == "run":
        inplace(d, n)
        falloc(d, n)
        faults(d, 2 * n)
    else:
        check(d, n)
