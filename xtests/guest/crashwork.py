#!/usr/bin/env python3
"""Crash-consistency workload for the crash_ops VM test.

  crashwork.py run MNT OPLOG SEED     run ops until killed, logging each
  crashwork.py verify MNT OPLOG SEED  check the tree after the crash

Every operation is ONE system call, so novars must make it all-or-nothing,
except `mapstore`: a store through a shared mapping, then msync(MS_SYNC),
after which the data and the mtime the store set are durable.
Before op k the workload appends "B k" to OPLOG (on the host, fsynced);
after it returns, "E k" (for a mapstore "E k MTIME_NS", the file's mtime
after the msync). The workload is deterministic from SEED, and a model
(dicts) replays it: after a crash, the tree must equal the model after
the last op that ended, or (for the op in flight) after that op; and a
file's mtime is no older than the one a completed mapstore reported.
"""
import hashlib, mmap, os, random, stat, sys

DIRS = ["d0", "d1", "d2"]
NAMES = [f"f{i}" for i in range(8)]


class Model:
    def __init__(self):
        self.dirs = {""} | set()
        self.files = {}   # path -> inode id
        self.links = {}   # path -> target
        self.inodes = {}  # id -> bytearray
        self.next = 1

    def clone(self):
        m = Model()
        m.dirs = set(self.dirs)
        m.files = dict(self.files)
        m.links = dict(self.links)
        m.inodes = {k: bytearray(v) for k, v in self.inodes.items()}
        m.next = self.next
        return m

    def exists(self, p):
        return p in self.dirs or p in self.files or p in self.links

    def listing(self):
        out = []
        nl = {}
        for i in self.files.values():
            nl[i] = nl.get(i, 0) + 1
        for d in sorted(self.dirs - {""}):
            out.append(f"{d} dir")
        for p, i in sorted(self.files.items()):
            data = bytes(self.inodes[i])
            out.append(f"{p} file s{len(data)} n{nl[i]} {hashlib.sha1(data).hexdigest()[:12]}")
        for p, t in sorted(self.links.items()):
            out.append(f"{p} link {t}")
        return sorted(out)


def actual_listing(mnt):
    out = []
    for d, dirs, files in os.walk(mnt):
        dirs[:] = [x for x in dirs if not (d == mnt and x == "lost+found")]
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, mnt)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out.append(f"{rel} dir")
            elif stat.S_ISLNK(st.st_mode):
                out.append(f"{rel} link {os.readlink(p)}")
            else:
                with open(p, "rb") as f:
                    data = f.read()
                out.append(f"{rel} file s{len(data)} n{st.st_nlink} {hashlib.sha1(data).hexdigest()[:12]}")
    return sorted(out)


def ops(seed):
    """Yields (description, fn(mnt), model_fn(model)) forever."""
    rng = random.Random(seed)
    m = Model()
    k = 0
    while True:
        k += 1
        choice = rng.random()
        d = rng.choice(DIRS + [""])
        p = os.path.join(d, rng.choice(NAMES)) if d else rng.choice(NAMES)
        if d and d not in m.dirs:
            op = ("mkdir", d)
        elif choice < 0.18:
            op = ("create", p)
        elif choice < 0.22:
            op = ("mapstore", p, rng.random(), rng.randbytes(rng.choice([1, 8])))
        elif choice < 0.45:
            op = ("pwrite", p, rng.randrange(0, 150_000), rng.randbytes(rng.choice([1, 100, 4096, 5000, 40_000, 70_000])))
        elif choice < 0.55:
            op = ("append", p, rng.randbytes(rng.choice([10, 3000, 9000])))
        elif choice < 0.63:
            op = ("truncate", p, rng.choice([0, 1, 4095, 4096, 10_000, 200_000]))
        elif choice < 0.73:
            q = rng.choice(DIRS + [""])
            q = os.path.join(q, rng.choice(NAMES)) if q else rng.choice(NAMES)
            op = ("rename", p, q)
        elif choice < 0.80:
            q = rng.choice(DIRS)
            op = ("link", p, os.path.join(q, rng.choice(NAMES) + "L"))
        elif choice < 0.90:
            op = ("unlink", p)
        elif choice < 0.95:
            op = ("symlink", "target-" + "x" * rng.choice([1, 200]), p + "S")
        elif choice < 0.98:
            op = ("rmdir", rng.choice(DIRS))
        else:
            op = ("mkdir", rng.choice(DIRS))
        # Apply to the model; ops that must fail (ENOENT, EEXIST, ...)
        # fail in the model too and change nothing.
        ok = apply_model(m, op)
        yield k, op, ok, m


def apply_model(m, op):
    kind = op[0]
    if kind == "mkdir":
        if m.exists(op[1]):
            return False
        m.dirs.add(op[1])
    elif kind == "create":
        if m.exists(op[1]):
            return False
        m.files[op[1]] = m.next
        m.inodes[m.next] = bytearray()
        m.next += 1
    elif kind in ("pwrite", "append"):
        if op[1] not in m.files:
            return False
        data = m.inodes[m.files[op[1]]]
        off = op[2] if kind == "pwrite" else len(data)
        buf = op[3] if kind == "pwrite" else op[2]
        if len(data) < off:
            data.extend(bytes(off - len(data)))
        data[off:off + len(buf)] = buf
    elif kind == "mapstore":
        if op[1] not in m.files:
            return False
        data = m.inodes[m.files[op[1]]]
        off = mapstore_offset(len(data), op[2], len(op[3]))
        if off is None:
            return False
        data[off:off + len(op[3])] = op[3]
    elif kind == "truncate":
        if op[1] not in m.files:
            return False
        data = m.inodes[m.files[op[1]]]
        n = op[2]
        if n < len(data):
            del data[n:]
        else:
            data.extend(bytes(n - len(data)))
    elif kind == "rename":
        a, b = op[1], op[2]
        if a not in m.files or b in m.dirs:
            return False
        if a == b or m.files.get(b) == m.files[a]:
            return True  # two names of one inode: POSIX says do nothing
        m.links.pop(b, None)  # a symlink at b is replaced
        m.files[b] = m.files.pop(a)
    elif kind == "link":
        a, b = op[1], op[2]
        if a not in m.files or m.exists(b):
            return False
        m.files[b] = m.files[a]
    elif kind == "unlink":
        if op[1] not in m.files:
            return False
        del m.files[op[1]]
    elif kind == "symlink":
        if m.exists(op[2]):
            return False
        m.links[op[2]] = op[1]
    elif kind == "rmdir":
        d = op[1]
        if d not in m.dirs or any(x.startswith(d + "/") for x in list(m.files) + list(m.links)):
            return False
        m.dirs.discard(d)
    return True


def mapstore_offset(size, frac, n):
    """Where a mapstore of `n` bytes goes in a file of `size` bytes: inside
    the file (a store past EOF is not file data); None if it does not fit.
    One byte, or 8 bytes at an 8-aligned offset: a single store, so a kill
    cannot leave half of it (nothing but msync orders a mapped store)."""
    if size < n:
        return None
    return int(frac * (size - n)) & ~(n - 1)


def do(mnt, op):
    """Runs `op`: False if it failed, True or (mapstore) the file's mtime
    after the msync if it succeeded."""
    kind = op[0]
    P = lambda x: os.path.join(mnt, x)
    try:
        if kind == "mkdir":
            os.mkdir(P(op[1]))
        elif kind == "create":
            os.close(os.open(P(op[1]), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        elif kind == "pwrite":
            fd = os.open(P(op[1]), os.O_WRONLY)
            try:
                os.pwrite(fd, op[3], op[2])
            finally:
                os.close(fd)
        elif kind == "mapstore":
            fd = os.open(P(op[1]), os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                off = mapstore_offset(size, op[2], len(op[3]))
                if off is None:
                    return False
                with mmap.mmap(fd, size) as mp:
                    mp[off:off + len(op[3])] = op[3]
                    mp.flush()  # msync(MS_SYNC) of the whole mapping
                return os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
        elif kind == "append":
            fd = os.open(P(op[1]), os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, op[2])
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(P(op[1]), op[2])
        elif kind == "rename":
            os.rename(P(op[1]), P(op[2]))
        elif kind == "link":
            os.link(P(op[1]), P(op[2]))
        elif kind == "unlink":
            os.unlink(P(op[1]))
        elif kind == "symlink":
            os.symlink(op[1], P(op[2]))
        elif kind == "rmdir":
            os.rmdir(P(op[1]))
        return True
    except OSError:
        return False


def run(mnt, oplog, seed):
    log = open(oplog, "a", buffering=1)
    for k, op, ok_model, _ in ops(seed):
        log.write(f"B {k}\n")
        log.flush()
        os.fsync(log.fileno())
        got = do(mnt, op)
        ok = got is not False
        if ok != ok_model:
            print(f"op {k} {op[0]} {op[1]!r}: returned {ok}, model says {ok_model}", flush=True)
            sys.exit(3)
        log.write(f"E {k} {got}\n" if op[0] == "mapstore" and ok else f"E {k}\n")
        log.flush()
        os.fsync(log.fileno())
        if k == 30:
            print("@@crash-armed", flush=True)
        if k >= 20000:
            return


def verify(mnt, oplog, seed):
    # A line cut short by the crash is ignored (its op counts as begun).
    lines = [l.split() for l in open(oplog).read().split("\n")]
    begun = [int(l[1]) for l in lines if len(l) >= 2 and l[0] == "B"]
    ended = {int(l[1]): l[2:] for l in lines if len(l) >= 2 and l[0] == "E"}
    last_end = max(ended, default=0)
    inflight = max(begun, default=0) if max(begun, default=0) > last_end else None
    states = {}
    synced = {}  # model inode -> mtime a completed mapstore's msync made durable
    for k, op, ok, m in ops(seed):
        if op[0] == "mapstore" and ok and k in ended and ended[k]:
            synced[m.files[op[1]]] = int(ended[k][0])
        if k == last_end:
            states["after last completed op %d" % k] = (m.listing(), dict(m.files))
        if inflight and k == inflight:
            states["after in-flight op %d (%s)" % (k, op[0])] = (m.listing(), dict(m.files))
        if k >= (inflight or last_end):
            break
    if last_end == 0:
        states["empty"] = (Model().listing(), {})
    got = actual_listing(mnt)
    for name, (want, files) in states.items():
        if got == want:
            print(f"crash state matches: {name} ({len(got)} paths; {last_end} ops completed)")
            old = [(p, os.lstat(os.path.join(mnt, p)).st_mtime_ns, synced[i])
                   for p, i in files.items() if i in synced
                   and os.lstat(os.path.join(mnt, p)).st_mtime_ns < synced[i]]
            for p, have, want_t in old:
                print(f"  {p}: mtime {have} older than {want_t}, which msync made durable")
            print(f"mtimes after msync: {len(synced)} files, {len(old)} older than msync left them")
            return 1 if old else 0
    for name, (want, _) in states.items():
        print(f"--- expected {name}")
        for line in sorted(set(want) ^ set(got)):
            print(("  expected: " if line in want else "  found:    ") + line)
    return 1


if __name__ == "__main__":
    cmd, mnt, oplog, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if cmd == "run":
        run(mnt, oplog, seed)
    else:
        sys.exit(verify(mnt, oplog, seed))
