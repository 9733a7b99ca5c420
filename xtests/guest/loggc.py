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
  loggc.py dirchurn DIR N      directory logs: N create+unlink cycles in
                               DIR/spool (20 long-lived files and a
                               subdirectory stay), then N/4 maildir cycles
                               (create in tmp/, rename to new/ and to cur/,
                               unlink) with a replacing rename in spool;
                               free space stays flat, and directory streams
                               read one entry at a time across the churn
                               (getdents64 on an open fd, and lseek to the
                               last cookie on a fresh fd) see every
                               long-lived name exactly once
  loggc.py dircheck DIR        after remount: the spool holds exactly the
                               long-lived names and data, its directory logs
                               are within the compaction bound (st_blocks)
  loggc.py dirwarm DIR N       (crash test) the spool with its long-lived
                               names, then N create+unlink cycles
  loggc.py dirhammer DIR       (crash test) create/unlink/rename churn in the
                               spool until killed
  loggc.py dircrashcheck DIR   after the crash: every long-lived name is
                               there with its data, nothing else but names
                               of the churn
"""
import collections
import ctypes
import hashlib
import os
import struct
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


KEEP = [f"keep-{i:03d}" for i in range(20)]
OLD_MAIL = [f"old-{i:02d}" for i in range(10)]
# Directory logs are compacted at max(16, 2 x compact size) pages; a
# compaction runs right after the commit that reaches it.
DIR_LOG_BOUND = 8 * 17

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_getdents64 = 217  # x86_64


def getdents(fd, size):
    """One getdents64 call with a `size`-byte buffer: [(name, d_off)]."""
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_getdents64, fd, buf, size)
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    out, off = [], 0
    raw = buf.raw[:n]
    while off < n:
        _ino, d_off, reclen, _typ = struct.unpack_from("<QqHB", raw, off)
        name = raw[off + 19:off + reclen].split(b"\0", 1)[0].decode()
        out.append((name, d_off))
        off += reclen
    return out


class Stream:
    """A directory read one entry per step (a 48-byte buffer holds one
    entry of these names): on one open fd (`reopen` False), or by opening
    the directory afresh and seeking to the last cookie each step."""

    def __init__(self, path, reopen):
        self.path, self.reopen = path, reopen
        self.fd = None if reopen else os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self.pos, self.names, self.done, self.free = 0, [], False, []

    def step(self):
        fd = self.fd
        if self.reopen:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            os.lseek(fd, self.pos, os.SEEK_SET)
        ents = getdents(fd, 48)
        if self.reopen:
            os.close(fd)
        self.free.append(os.statvfs(self.path).f_bfree)
        if not ents:
            self.done = True
            if self.fd is not None:
                os.close(self.fd)
            return
        for name, off in ents:
            self.names.append(name)
            self.pos = off

    def check(self, survivors, ignore=()):
        """Every survivor (and . and ..) exactly once, nothing else but
        names starting with one of `ignore`. Returns the compactions seen
        (free space going up between two steps)."""
        c = collections.Counter(n for n in self.names if not (ignore and n.startswith(tuple(ignore))))
        want = collections.Counter(list(survivors) + [".", ".."])
        if c != want:
            extra, missing = c - want, want - c
            sys.exit(f"FAIL: readdir across compactions ({'lseek' if self.reopen else 'open fd'}): "
                     f"extra or repeated {dict(extra)}, missing {dict(missing)}")
        return sum(1 for a, b in zip(self.free, self.free[1:]) if b > a)


def make_spool(d):
    sp = os.path.join(d, "spool")
    os.mkdir(sp)
    for n in KEEP:
        with open(os.path.join(sp, n), "w") as f:
            f.write(n * 3)
    os.mkdir(os.path.join(sp, "keepdir"))
    return sp


def churn_once(sp, i):
    p = os.path.join(sp, f"msg-{i}")
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))
    os.unlink(p)


def run_streams(path, survivors, n, every, cycle, ignore=()):
    """Runs `cycle(i)` for i in 1..n with directory streams stepping every
    `every` cycles (a new pair once the last finished); free blocks
    sampled 20 times. Returns (free samples, streams checked, compactions
    the streams saw)."""
    free, streams, done, seen = [], [], 0, []
    step = max(n // 20, 1)
    for i in range(1, n + 1):
        cycle(i)
        if i % every == 0:
            if not streams:
                streams = [Stream(path, False), Stream(path, True)]
            for s in streams:
                s.step()
            if all(s.done for s in streams):
                for s in streams:
                    seen.append(s.check(survivors, ignore))
                done += len(streams)
                streams = []
        if i % step == 0:
            free.append(os.statvfs(path).f_bfree)
    for s in streams:
        if s.fd is not None:
            os.close(s.fd)
    return free, done, seen


def dirchurn(d, n):
    sp = make_spool(d)
    survivors = KEEP + ["keepdir"]
    # Phase A: create+unlink (a mail spool); about 36 cycles fill a page.
    free, done, seen = run_streams(sp, survivors, n, max(n // 60, 1), lambda i: churn_once(sp, i))
    print(f"spool: {n} create+unlink cycles; free blocks {free}")
    print(f"spool: {done} directory streams read across the churn, compactions seen by each {seen}")
    flat([-x for x in free], "used space (create+unlink)", 48)
    if done < 2 or min(seen) < 1:
        sys.exit(f"FAIL: no directory stream ran across a compaction ({done} streams, {seen})")
    # Phase B: maildir (cross-directory renames into cur/, which holds old
    # mails, read by the streams) and a replacing rename in the spool (a
    # renamed name gets a new cookie, so a stream may see it again: it is
    # kept out of the streams' directory).
    for sub in ("tmp", "new", "cur"):
        os.mkdir(os.path.join(sp, sub))
    cur = os.path.join(sp, "cur")
    for old in OLD_MAIL:
        with open(os.path.join(cur, old), "w") as f:
            f.write(old)
    m = max(n // 4, 1)

    def maildir(i):
        name = f"m{i}"
        p = os.path.join(sp, "tmp", name)
        with open(p, "w") as f:
            f.write(str(i))
        os.rename(p, os.path.join(sp, "new", name))
        os.rename(os.path.join(sp, "new", name), os.path.join(cur, name))
        os.unlink(os.path.join(cur, name))
        t = os.path.join(sp, "r.tmp")
        with open(t, "w") as f:
            f.write(str(i))
        os.rename(t, os.path.join(sp, "r.cur"))

    free, done, seen = run_streams(cur, OLD_MAIL, m, max(m // 40, 1), maildir)
    print(f"spool: {m} maildir + replacing-rename cycles; free blocks {free}")
    print(f"spool/cur: {done} directory streams, compactions seen by each {seen}")
    # Four directory logs churn here, each up to 16 pages.
    flat([-x for x in free], "used space (renames)", 96)
    if done < 2 or min(seen) < 1:
        sys.exit(f"FAIL: no directory stream ran across a compaction during the renames ({done} streams, {seen})")
    with open(os.path.join(d, "spool.expect"), "w") as f:
        f.write(f"{m}\n")


def dir_blocks(p):
    return os.stat(p).st_blocks


def dircheck(d):
    sp = os.path.join(d, "spool")
    with open(os.path.join(d, "spool.expect")) as f:
        m = int(f.read())
    want = sorted(KEEP + ["keepdir", "tmp", "new", "cur", "r.cur"])
    got = sorted(os.listdir(sp))
    if got != want:
        sys.exit(f"FAIL: spool after remount: {got}")
    for n in KEEP:
        with open(os.path.join(sp, n)) as f:
            if f.read() != n * 3:
                sys.exit(f"FAIL: {n} changed")
    with open(os.path.join(sp, "r.cur")) as f:
        if f.read() != str(m):
            sys.exit("FAIL: r.cur does not hold the last rename's file")
    for sub in ("tmp", "new"):
        if os.listdir(os.path.join(sp, sub)):
            sys.exit(f"FAIL: spool/{sub} is not empty")
    if sorted(os.listdir(os.path.join(sp, "cur"))) != OLD_MAIL:
        sys.exit(f"FAIL: spool/cur after remount: {sorted(os.listdir(os.path.join(sp, 'cur')))}")
    for n in OLD_MAIL:
        with open(os.path.join(sp, "cur", n)) as f:
            if f.read() != n:
                sys.exit(f"FAIL: cur/{n} changed")
    blocks = {p: dir_blocks(os.path.join(sp, p) if p else sp) for p in ("", "tmp", "new", "cur")}
    print(f"spool: ok, directory st_blocks {blocks}")
    if max(blocks.values()) > DIR_LOG_BOUND:
        sys.exit(f"FAIL: a directory log is over the compaction bound: {blocks} > {DIR_LOG_BOUND}")


def dirwarm(d, n):
    sp = make_spool(d)
    for i in range(1, n + 1):
        churn_once(sp, i)


def dirhammer(d):
    sp = os.path.join(d, "spool")
    i = 0
    while True:
        i += 1
        churn_once(sp, i)
        if i % 7 == 0:
            t = os.path.join(sp, "r.tmp")
            with open(t, "w") as f:
                f.write(str(i))
            os.rename(t, os.path.join(sp, "r.cur"))


def dircrashcheck(d):
    sp = os.path.join(d, "spool")
    names = os.listdir(sp)
    for n in KEEP:
        with open(os.path.join(sp, n)) as f:
            if f.read() != n * 3:
                sys.exit(f"FAIL: {n} lost or changed")
    other = [n for n in names if n not in KEEP and n != "keepdir" and not n.startswith(("msg-", "r."))]
    if "keepdir" not in names or other:
        sys.exit(f"FAIL: spool after the crash: {sorted(names)}")
    print(f"dircrashcheck: {len(KEEP)} long-lived names intact; {len(names)} names, st_blocks {dir_blocks(sp)}")


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
    elif cmd == "dirchurn":
        dirchurn(d, int(sys.argv[3]))
    elif cmd == "dircheck":
        dircheck(d)
    elif cmd == "dirwarm":
        dirwarm(d, int(sys.argv[3]))
    elif cmd == "dirhammer":
        dirhammer(d)
    elif cmd == "dircrashcheck":
        dircrashcheck(d)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
