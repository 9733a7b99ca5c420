#!/usr/bin/env python3
"""Minimal reproducers of kernel bugs the external tools (pjdfstest, fsx,
stress-ng) found in novars, one function each. `findings.py DIR` runs every
case in DIR and prints one `case: result` line per case; the VM test
`findings.sh` runs it on ext4-DAX and on novars and wants identical output.
Results are relations (changed / unchanged, errno names), never times, so
that two file systems can be compared."""
import errno
import os
import sys
import time


def nap():
    # Longer than the coarse clock's tick (250 Hz in the guest), with room
    # for a late tick on a starved TCG vCPU.
    time.sleep(0.05)


def times(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ctime_ns


def case_truncate_times(d):
    """truncate(2) passes no ATTR_MTIME/ATTR_CTIME to ->setattr: the file
    system must set both when the size changes (pjdfstest
    truncate::update_ctime_success), and leave them when it does not."""
    p = os.path.join(d, "trunc")
    open(p, "w").close()
    out = []
    for size in (123, 123, 5000, 10, 0):
        before = times(p)
        nap()
        os.truncate(p, size)
        after = times(p)
        out.append("truncate(%d) mtime %s ctime %s" % (
            size,
            "changed" if after[0] != before[0] else "same",
            "changed" if after[1] != before[1] else "same"))
    # ftruncate passes the times itself (even for the same size).
    fd = os.open(p, os.O_RDWR)
    try:
        before = times(p)
        nap()
        os.ftruncate(fd, 0)
        after = times(p)
        out.append("ftruncate(same) mtime %s" % ("changed" if after[0] != before[0] else "same"))
    finally:
        os.close(fd)
    # The times the truncate set must survive unmount: checked by the
    # caller through `list`.
    return "; ".join(out)


def case_link_max(d):
    """link(2) returns EMLINK at the file system's LINK_MAX (pjdfstest's
    link::link_count_max cannot run on novars: glibc's pathconf knows the
    limit only of file systems whose magic it knows)."""
    sub = os.path.join(d, "links")
    os.mkdir(sub)
    p = os.path.join(sub, "f")
    open(p, "w").close()
    n = 1
    while True:
        try:
            os.link(p, os.path.join(sub, "l%d" % n))
        except OSError as e:
            res = "nlink %d then %s" % (os.stat(p).st_nlink, errno.errorcode[e.errno])
            break
        n += 1
        if n > 200000:
            res = "no limit below 200000"
            break
    for i in range(1, n):
        os.unlink(os.path.join(sub, "l%d" % i))
    os.unlink(p)
    os.rmdir(sub)
    return res


CASES = [(name[5:], fn) for name, fn in sorted(globals().items()) if name.startswith("case_")]


def main():
    d = sys.argv[1]
    only = sys.argv[2:]
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            res = fn(d)
        except OSError as e:
            res = "error %s" % errno.errorcode.get(e.errno, e.errno)
        print("%s: %s" % (name, res), flush=True)


if __name__ == "__main__":
    main()
