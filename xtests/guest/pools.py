#!/usr/bin/env python3
"""Changes while the free space is rebuilt after a crash (clean pools).

pools.py DEV MNT FILES FSCK

Makes FILES files (and a few orphans: open, unlinked), shuts the file
system down (FS_IOC_SHUTDOWN: nothing more reaches the device, the next
mount recovers as after a crash), then mounts it again and, at once,
creates, overwrites, truncates, renames and deletes files while the
kernel thread walks the logs. Checks that the first change finished
before the walk did (the mount log says when it ends), that a second
crash in the middle of that walk (a shutdown, which stops the walk)
recovers too, that fsck -fn finds the
unclean image consistent (the pools hold nothing in use) and, after a
clean unmount, that the allocator record equals the free space (nothing
leaked, nothing given twice), and that every file holds what was last
written to it.
"""

import fcntl
import hashlib
import os
import struct
import subprocess
import sys
import time

DEV, M, N, FSCK = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
SHUTDOWN = 0x8004587D  # FS_IOC_SHUTDOWN, _IOR('X', 125, __u32)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg, flush=True)


def run(*a):
    r = subprocess.run(a, capture_output=True, text=True)
    if r.returncode != 0:
        fail("%s exited %d: %s%s" % (" ".join(a), r.returncode, r.stdout, r.stderr))
    return r.stdout


def kmsg(s):
    with open("/dev/kmsg", "w") as f:
        f.write("novars-test: %s\n" % s)


def dmesg():
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout


def content(name, gen):
    """What file `name` holds after its `gen`th write: nothing for most
    first writes (the walk's cost is per inode), else up to 12 KiB."""
    h = hashlib.sha256(("%s/%d" % (name, gen)).encode()).digest()
    if gen == 0 and h[2] % 8 != 0:
        return b""
    size = (h[0] << 8 | h[1]) % 12289
    return (h * (size // len(h) + 1))[:size]


expect = {}  # path relative to M -> bytes, or None for gone


def write(rel, gen):
    data = content(rel, gen)
    with open(os.path.join(M, rel), "wb") as f:
        f.write(data)
    expect[rel] = data


def shutdown():
    fd = os.open(M, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, SHUTDOWN, struct.pack("I", 2))
    finally:
        os.close(fd)


def mount():
    run("busybox", "mount", "-t", "novars", DEV, M)


def rebuilt():
    return "free space rebuilt" in dmesg()


def changes(round_, names, until_rebuilt, at_least):
    """Changes of every kind, in batches, to the files `names` (and new
    ones); returns the batches done before the rebuild ended (with
    `until_rebuilt`, stops when it has)."""
    done_before = 0
    i = 0
    while True:
        # The first change at once after the mount, before anything else.
        before = i == 0 or not rebuilt()
        for _ in range(20):
            if i == 1:
                kmsg("round %d: first change done" % round_)
            k = i % 5
            old = names[(i * 7919 + round_) % len(names)]
            if k == 0:
                write("new/r%d-%06d" % (round_, i), 0)
            elif k == 1 and expect.get(old) is not None:
                write(old, round_ * 100000 + i)  # overwrite: copy-on-write
            elif k == 2 and expect.get(old) is not None:
                os.unlink(os.path.join(M, old))
                expect[old] = None
            elif k == 3 and expect.get(old) is not None:
                os.truncate(os.path.join(M, old), 100)
                d = expect[old]
                expect[old] = d[:100] + bytes(max(0, 100 - len(d)))
            elif k == 4 and expect.get(old) is not None:
                new = "new/m%d-%06d" % (round_, i)
                os.rename(os.path.join(M, old), os.path.join(M, new))
                expect[new], expect[old] = expect[old], None
            i += 1
        if before:
            done_before += 1
        if until_rebuilt and not before and i >= at_least:
            return done_before
        if not until_rebuilt and i >= at_least:
            return done_before


def verify(what):
    for rel, data in expect.items():
        p = os.path.join(M, rel)
        if data is None:
            if os.path.exists(p):
                fail("%s: %s was deleted but is there" % (what, rel))
            continue
        try:
            with open(p, "rb") as f:
                got = f.read()
        except OSError as e:
            fail("%s: %s: %s" % (what, rel, e))
        if got != data:
            fail("%s: %s holds %d bytes, not the %d last written" % (what, rel, len(got), len(data)))
    ok("%s: all %d files as last written, %d deleted ones gone"
       % (what, sum(v is not None for v in expect.values()), sum(v is None for v in expect.values())))


def fsck_clean(what, unclean):
    r = subprocess.run([FSCK, "-fn", DEV], capture_output=True, text=True)
    if r.returncode != 0 or "CLEAN_POOL_IN_USE" in r.stdout:
        fail("fsck -fn %s: exit %d\n%s%s" % (what, r.returncode, r.stdout, r.stderr))
    if not unclean and "ORPHAN_INODE" in r.stdout:
        fail("fsck -fn %s: orphans left after a clean unmount\n%s" % (what, r.stdout))
    ok("fsck -fn %s: clean" % what)


run("mkfs.novars", "-q", "-f", DEV)
mount()
os.makedirs(os.path.join(M, "new"))
for d in range(100):
    os.makedirs(os.path.join(M, "d%02d" % d))
t = time.time()
for i in range(N):
    write("d%02d/f%06d" % (i % 100, i), 0)
ok("%d files made in %.1f s" % (N, time.time() - t))
# Orphans at the crash: open, then unlinked.
held = []
for i in range(5):
    rel = "d00/f%06d" % (i * 100)
    held.append(open(os.path.join(M, rel), "rb"))
    os.unlink(os.path.join(M, rel))
    expect[rel] = None
shutdown()
for f in held:
    f.close()
run("umount", M)
fsck_clean("after the first crash", True)

# Round 1: changes while the walk runs; round 2: a crash in the middle of
# the walk, then changes again.
for round_ in (1, 2, 3):
    names = sorted(k for k, v in expect.items() if v is not None)
    run("dmesg", "-C")
    t = time.time()
    mount()
    if round_ == 2:
        changes(round_, names, False, 20)
        during = not rebuilt()
        # The shutdown stops the walk (it waits for no more than the inode
        # being read); the changes before it were made from the pools.
        kmsg("round 2: shutting down")
        t0 = time.time()
        shutdown()
        took = time.time() - t0
        m = dmesg()
        if "could not be rebuilt" in m:
            fail("round 2: the shutdown was taken for damage:\n%s" % m)
        ended = m.find("free space rebuilt")
        if ended < 0 or ended > m.find("round 2: shutting down"):
            # The walk was still running when the shutdown came: it stops
            # (or, rarely, it ended in the instant between the two; then
            # the shutdown returned at once all the same).
            if "free-space rebuild stopped by the shutdown" in m:
                ok("round 2: the shutdown stopped the rebuild in %.3f s" % took)
            elif took < 0.05:
                ok("round 2: the rebuild ended as the shutdown came (%.3f s)" % took)
            else:
                fail("round 2: the shutdown did not stop the rebuild (it took %.2f s):\n%s" % (took, m))
        t0 = time.time()
        run("umount", M)
        ok("round 2: unmounted in %.3f s" % (time.time() - t0))
        fsck_clean("after a crash during the rebuild", True)
        ok("round 2: crashed %s the free space was rebuilt, after 20 changes"
           % ("while" if during else "(the rebuild had just ended) after"))
        continue
    before = changes(round_, names, True, 200)
    took = time.time() - t
    m = dmesg()
    if "changes go on meanwhile, from the clean pools" not in m:
        fail("round %d: the mount after the crash did not start from the pools:\n%s" % (round_, m))
    first = m.find("round %d: first change done" % round_)
    done = m.find("free space rebuilt")
    if first < 0 or done < 0 or first > done:
        fail("round %d: the first change did not finish before the rebuild (too few files for this machine? NOVARS_POOLS_FILES):\n%s" % (round_, m))
    ok("round %d: %d batches of 20 changes done while the free space was rebuilt (%.1f s)" % (round_, before, took))
    verify("round %d, after the rebuild" % round_)
    if round_ == 1:
        shutdown()
        run("umount", M)
        fsck_clean("after a crash with changes made during the rebuild", True)
    else:
        run("umount", M)
        fsck_clean("after a clean unmount", False)

mount()
verify("after a clean mount")
run("umount", M)
