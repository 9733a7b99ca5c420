#!/usr/bin/env python3
"""Many small files, for the big_device VM test.

  bigfiles.py create MNT W FROM TO PROGRESS   files FROM..TO-1 of writer W
  bigfiles.py verify MNT W PROGRESS           after a crash
  bigfiles.py check MNT W COUNT               after a clean unmount

Writer W's file J is MNT/wW/dK/fJ (K = J // 1000) with a size and bytes
that follow from (W, J): created with O_CREAT|O_EXCL and one write(), so
after a crash each file is absent, empty (created, not yet written) or
whole. A writer creates its files in order and after every 500 appends
"J" (files 0..J-1 are complete) to PROGRESS, fsynced (on the host-shared
directory, so it survives the kill). `TO` = 0: until killed.

After a crash, writer W's files must be a prefix 0..N-1 with N at least
the last PROGRESS value, every one whole except possibly the last, which
may be empty (the create was committed, the write was not), and nothing
past it.
"""
import os
import sys

PER_DIR = 1000


def size_of(w, j):
    # 1 byte to about 9 KiB: most in one block, some over two or three.
    return 1 + (j * 7919 + w * 104729) % 9000


def content(w, j):
    tag = b"w%d:f%d;" % (w, j)
    n = size_of(w, j)
    return (tag * (n // len(tag) + 1))[:n]


def path(mnt, w, j):
    return os.path.join(mnt, "w%d" % w, "d%d" % (j // PER_DIR), "f%d" % j)


def create(mnt, w, first, to, progress):
    log = open(progress, "a", buffering=1)
    j = first
    while to == 0 or j < to:
        if j % PER_DIR == 0 or j == first:
            os.makedirs(os.path.dirname(path(mnt, w, j)), exist_ok=True)
        fd = os.open(path(mnt, w, j), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            data = content(w, j)
            if os.write(fd, data) != len(data):
                print("short write at file %d of writer %d" % (j, w), flush=True)
                sys.exit(3)
        finally:
            os.close(fd)
        j += 1
        if j % 500 == 0:
            log.write("%d\n" % j)
            log.flush()
            os.fsync(log.fileno())
    log.write("%d\n" % j)
    log.flush()
    os.fsync(log.fileno())


def read(p):
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def existing(mnt, w):
    """Every file index of writer W present under MNT."""
    found = set()
    top = os.path.join(mnt, "w%d" % w)
    if not os.path.isdir(top):
        return found
    for d in os.listdir(top):
        for f in os.listdir(os.path.join(top, d)):
            found.add(int(f[1:]))
    return found


def verify(mnt, w, progress, exact=None):
    done = 0
    if progress is not None:
        try:
            vals = open(progress).read().split()
            done = int(vals[-1]) if vals else 0
        except FileNotFoundError:
            done = 0
    have = existing(mnt, w)
    n = 0
    while n in have:
        n += 1
    bad = []
    if n < done:
        bad.append("files 0..%d were complete before the crash, but file %d is missing" % (done, n))
    extra = sorted(j for j in have if j >= n)
    if extra:
        bad.append("files past the first missing one (%d): %s" % (n, extra[:5]))
    empty_last = False
    for j in range(n):
        got = read(path(mnt, w, j))
        if got == content(w, j):
            continue
        if got == b"" and j == n - 1 and j >= done and exact is None:
            empty_last = True  # created, its write not committed
            continue
        bad.append("file %d: %s bytes, want %d" % (j, None if got is None else len(got), size_of(w, j)))
        if len(bad) > 5:
            break
    if exact is not None and n != exact:
        bad.append("%d files, want %d" % (n, exact))
    for b in bad:
        print("writer %d: %s" % (w, b))
    if bad:
        return 1
    print("writer %d: %d files intact (%d logged complete before the crash%s)"
          % (w, n, done, "; the last one empty: its write was in flight" if empty_last else ""))
    return 0


if __name__ == "__main__":
    cmd, mnt, w = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "create":
        create(mnt, w, int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif cmd == "verify":
        sys.exit(verify(mnt, w, sys.argv[4]))
    elif cmd == "check":
        sys.exit(verify(mnt, w, None, exact=int(sys.argv[4])))
    else:
        sys.exit("usage: bigfiles.py create|verify|check ...")
