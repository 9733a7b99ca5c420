#!/usr/bin/env python3
"""Mount/work/unmount cycles of novars in one process (a fork+exec per
step costs about half a second on the debug kernel under TCG).
Usage: mount_cycles.py DEV DIR FIRST LAST. Cycle i mounts DEV on DIR, checks
cycle i-1's files and removes them, creates, writes, appends, links,
symlinks, unlinks, truncates, lists and renames a little, and unmounts;
every 10th cycle also remounts read-only and back, and cycle i % 10 == 5
makes an extra read-only mount. Cycle i % 10 == 7 mounts an image marked
unclean (as after a crash: the free space is rebuilt at first use) and
starts with four threads changing it at once, so that one rebuilds while
the others wait. Exits 1 with a message on any mismatch."""
import ctypes
import os
import sys
import threading
from guestlib import fail
from novars_img import damage

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MS_RDONLY, MS_REMOUNT = 1, 32


def mount(dev, d, flags=0):
    if libc.mount(dev.encode(), d.encode(), b"novars", flags, None) != 0:
        fail("mount %s (flags %#x): %s" % (d, flags, os.strerror(ctypes.get_errno())))


def umount(d):
    if libc.umount2(d.encode(), 0) != 0:
        fail("umount %s: %s" % (d, os.strerror(ctypes.get_errno())))


def read(p):
    with open(p) as f:
        return f.read()


def first_changes_at_once(m, i):
    """Four threads create, write and remove a file each, all at once."""
    errors = []
    go = threading.Barrier(4)

    def work(k):
        p = "%s/lazy%d" % (m, k)
        try:
            go.wait()
            with open(p, "w") as f:
                f.write("rebuilt %d\n" % k)
            if read(p) != "rebuilt %d\n" % k:
                errors.append("%s: wrong data" % p)
            os.unlink(p)
        except OSError as e:
            errors.append("%s: %s" % (p, e))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail("cycle %d, first changes after an unclean mount: %s" % (i, "; ".join(errors)))


def cycle(dev, m, i):
    if i % 10 == 7:
        damage(dev, "unclean")
        mount(dev, m)
        first_changes_at_once(m, i)
    else:
        mount(dev, m)
    if i > 1:
        d = "%s/d%d" % (m, i - 1)
        if read(d + "/f") != "cycle %d\n" % (i - 1):
            fail("cycle %d: d%d/f lost its data" % (i, i - 1))
        if read(d + "/g") != "cycle %d\nappended\n" % (i - 1):
            fail("cycle %d: d%d/g lost its append" % (i, i - 1))
        if os.readlink(d + "/s") != "f":
            fail("cycle %d: d%d/s lost its target" % (i, i - 1))
        if os.stat(d + "/f").st_nlink != 2:
            fail("cycle %d: d%d/f lost its hard link" % (i, i - 1))
        if os.path.lexists(d + "/gone"):
            fail("cycle %d: unlinked d%d/gone is back" % (i, i - 1))
        if os.stat(d + "/big").st_size != 5000:
            fail("cycle %d: d%d/big has the wrong size" % (i, i - 1))
        for n in os.listdir(d):
            os.unlink(d + "/" + n)
        os.rmdir(d)
    t = "%s/t%d" % (m, i)
    os.mkdir(t)
    with open(t + "/f", "w") as f:
        f.write("cycle %d\n" % i)
    with open(t + "/g", "w") as f:
        f.write("cycle %d\n" % i)
    with open(t + "/g", "a") as f:
        f.write("appended\n")
    os.link(t + "/f", t + "/hard")
    os.symlink("f", t + "/s")
    with open(t + "/gone", "w") as f:
        f.write("soon gone\n")
    os.unlink(t + "/gone")
    with open(t + "/big", "wb") as f:
        f.write(b"\xa5" * 20000)
    os.truncate(t + "/big", 5000)
    for n in range(8):
        open("%s/e%d" % (t, n), "w").close()
    os.listdir(t)
    for n in range(8):
        os.unlink("%s/e%d" % (t, n))
    os.rename(t, "%s/d%d" % (m, i))
    if i % 10 == 0:
        mount(dev, m, MS_REMOUNT | MS_RDONLY)
        mount(dev, m, MS_REMOUNT)
    umount(m)
    if i % 10 == 5:
        mount(dev, m, MS_RDONLY)
        if read("%s/d%d/f" % (m, i)) != "cycle %d\n" % i:
            fail("cycle %d: d%d/f wrong on the read-only mount" % (i, i))
        umount(m)


def main():
    dev, m, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for i in range(first, last + 1):
        cycle(dev, m, i)


if __name__ == "__main__":
    main()
