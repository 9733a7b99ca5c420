#!/usr/bin/env python3
"""Two processes change one novars file system at the same time (per-inode
log locks, issue 4). Usage:
  parallel_ops.py run DIR SECONDS STATE   work for SECONDS, write the model
  parallel_ops.py verify DIR STATE        the tree under DIR equals the model

Each worker w (0, 1) runs until the time is up, at the same time as the
other (both start on a shared go signal):
- namespace work in its own directory DIR/wW: create + write, append,
  link, rename, unlink, mkdir + a file inside + rmdir, symlinks; the last
  few files of each kind stay;
- writes to its own file DIR/dataW (pwrite at seeded offsets, truncate,
  fallocate) and first-touch write faults on its own mapping DIR/mapW;
- renames between two shared directories DIR/x and DIR/y (worker 0 moves
  its files x -> y, worker 1 y -> x), creates in both;
- first-touch write faults on pages of one shared file DIR/shared (worker
  w takes pages w, w + 2, ...), so two faults on one inode run at once.
Every worker keeps a model of the files it owns (path -> bytes); `verify`
compares the tree with the union after unmount, fsck and mount. Exits 1
with a message on any error or mismatch."""
import hashlib
import json
import mmap
import os
import random
import sys
import time
from guestlib import fail

PAGE = 4096
KEEP = 8          # files of each kind that stay


def put(path, data, flags=os.O_CREAT | os.O_EXCL | os.O_WRONLY):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def pattern(w, i, n):
    return bytes([(w * 31 + i * 7 + k) & 0xFF for k in range(n)])


def worker(d, w, seconds, go, out):
    rnd = random.Random(1000 + w)
    model = {}
    mine = os.path.join(d, "w%d" % w)
    os.mkdir(mine)
    data = os.path.join(d, "data%d" % w)
    put(data, b"")
    mapf = os.path.join(d, "map%d" % w)
    put(mapf, b"")
    map_pages = 256
    os.truncate(mapf, map_pages * PAGE)
    xy = [os.path.join(d, "x"), os.path.join(d, "y")]
    src, dst = (xy[0], xy[1]) if w == 0 else (xy[1], xy[0])
    fd_data = os.open(data, os.O_RDWR)
    fd_map = os.open(mapf, os.O_RDWR)
    m_own = mmap.mmap(fd_map, map_pages * PAGE, mmap.MAP_SHARED)
    fd_sh = os.open(os.path.join(d, "shared"), os.O_RDWR)
    sh_pages = os.fstat(fd_sh).st_size // PAGE
    m_sh = mmap.mmap(fd_sh, sh_pages * PAGE, mmap.MAP_SHARED)
    data_model = bytearray()
    own_touched = {}
    while not os.path.exists(go):
        time.sleep(0.001)
    end = time.time() + seconds
    i = 0
    counts = {"ops": 0}
    while time.time() < end:
        i += 1
        # Namespace work in the worker's own directory.
        f = os.path.join(mine, "f%d" % i)
        body = pattern(w, i, 100 + (i % 5) * 1000)
        put(f, body)
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"+%d" % i)
        os.close(fd)
        body += b"+%d" % i
        os.link(f, os.path.join(mine, "l%d" % i))
        os.rename(os.path.join(mine, "l%d" % i), os.path.join(mine, "r%d" % i))
        os.unlink(f)
        model["w%d/r%d" % (w, i)] = body
        if i > KEEP:
            os.unlink(os.path.join(mine, "r%d" % (i - KEEP)))
            del model["w%d/r%d" % (w, i - KEEP)]
        if i % 3 == 0:
            sub = os.path.join(mine, "d%d" % i)
            os.mkdir(sub)
            put(os.path.join(sub, "in"), b"x")
            os.unlink(os.path.join(sub, "in"))
            os.rmdir(sub)
        if i % 4 == 0:
            os.symlink("target-%d-%d" % (w, i), os.path.join(mine, "s%d" % i))
            os.unlink(os.path.join(mine, "s%d" % i))
        # Cross-directory renames through the shared directories.
        name = "m%d-%d" % (w, i)
        put(os.path.join(src, name), pattern(w, i, 64))
        os.rename(os.path.join(src, name), os.path.join(dst, name))
        model["%s/%s" % (os.path.basename(dst), name)] = pattern(w, i, 64)
        if i > KEEP:
            old = "m%d-%d" % (w, i - KEEP)
            os.unlink(os.path.join(dst, old))
            del model["%s/%s" % (os.path.basename(dst), old)]
        # Data: pwrite, sometimes truncate or fallocate.
        off = rnd.randrange(0, 64) * 512
        chunk = pattern(w, i, rnd.choice([1, 512, 4096, 5000]))
        os.pwrite(fd_data, chunk, off)
        if len(data_model) < off:
            data_model.extend(bytes(off - len(data_model)))
        data_model[off:off + len(chunk)] = chunk
        if i % 7 == 0:
            n = rnd.randrange(0, 40000)
            os.ftruncate(fd_data, n)
            if n < len(data_model):
                del data_model[n:]
            else:
                data_model.extend(bytes(n - len(data_model)))
        if i % 11 == 0:
            n = len(data_model) + 8192
            os.posix_fallocate(fd_data, 0, n)
            data_model.extend(bytes(n - len(data_model)))
        # Write faults: own mapping, then the shared file (pages w, w+2...).
        p = rnd.randrange(0, map_pages)
        m_own[p * PAGE:p * PAGE + 8] = b"%08d" % (i % 10**8)
        own_touched[p] = b"%08d" % (i % 10**8)
        q = (2 * i + w) % sh_pages
        m_sh[q * PAGE:q * PAGE + 4] = b"W%d%02d" % (w, i % 100)
        counts["ops"] += 13
    m_own.flush()
    m_sh.flush()
    m_own.close()
    m_sh.close()
    os.close(fd_map)
    os.close(fd_sh)
    os.close(fd_data)
    model["data%d" % w] = bytes(data_model)
    own = bytearray(map_pages * PAGE)
    for p, v in own_touched.items():
        own[p * PAGE:p * PAGE + 8] = v
    model["map%d" % w] = bytes(own)
    for k in ("data%d" % w, "map%d" % w):
        with open(os.path.join(d, k), "rb") as f:
            if f.read() != model[k]:
                fail("worker %d: %s differs from the model before unmount" % (w, k))
    state = {k: hashlib.sha256(v).hexdigest() for k, v in model.items()}
    with open(out, "w") as fo:
        json.dump({"iterations": i, "ops": counts["ops"], "files": state}, fo)


def run(d, seconds, state):
    for sub in ("x", "y"):
        os.mkdir(os.path.join(d, sub))
    put(os.path.join(d, "shared"), b"")
    os.truncate(os.path.join(d, "shared"), 512 * PAGE)
    go = os.path.join(state + ".go")
    if os.path.exists(go):
        os.unlink(go)
    pids = []
    for w in (0, 1):
        pid = os.fork()
        if pid == 0:
            try:
                worker(d, w, seconds, go, "%s.%d" % (state, w))
                os._exit(0)
            except BaseException as e:  # report and fail the worker
                print("FAIL: worker %d: %r" % (w, e), flush=True)
                os._exit(1)
        pids.append(pid)
    open(go, "w").close()
    t0 = time.time()
    bad = 0
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        if st != 0:
            bad += 1
    if bad:
        fail("%d worker(s) failed" % bad)
    files = {}
    total = 0
    for w in (0, 1):
        with open("%s.%d" % (state, w)) as f:
            s = json.load(f)
        print("worker %d: %d iterations, about %d operations" % (w, s["iterations"], s["ops"]))
        total += s["ops"]
        files.update(s["files"])
    # The shared file: its pages as the workers left them.
    with open(os.path.join(d, "shared"), "rb") as f:
        files["shared"] = hashlib.sha256(f.read()).hexdigest()
    with open(state, "w") as f:
        json.dump(files, f)
    print("%d files in the model; %.1f s; about %d operations in all" % (len(files), time.time() - t0, total))


def verify(d, state):
    with open(state) as f:
        files = json.load(f)
    have = {}
    for root, dirs, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, d)
            if rel == "lost+found" or rel.startswith("lost+found/"):
                continue
            with open(p, "rb") as f:
                have[rel] = hashlib.sha256(f.read()).hexdigest()
        for sub in dirs:
            if sub.startswith("d"):
                fail("directory %s left behind" % os.path.join(root, sub))
    missing = sorted(set(files) - set(have))
    extra = sorted(set(have) - set(files))
    wrong = sorted(k for k in files if k in have and have[k] != files[k])
    if missing or extra or wrong:
        fail("tree differs from the model: missing %s, extra %s, wrong %s" % (missing[:5], extra[:5], wrong[:5]))
    print("tree equals the model: %d files" % len(files))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        run(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3])
    else:
        fail("usage: parallel_ops.py run DIR SECONDS STATE | verify DIR STATE")
