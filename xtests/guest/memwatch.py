#!/usr/bin/env python3
"""Time and DRAM of one command, for BENCH.md (the big_device VM test).

  memwatch.py LABEL CMD [ARG...]

Runs CMD and prints its output, then one line

  @@bench LABEL secs=S peak_kib=P kernel_kib=K slab_kib=L vmalloc_kib=V rss_kib=R exit=E

secs: wall time. peak_kib: the largest rise, sampled every 10 ms, of the
memory in use (MemTotal - MemFree - Buffers - Cached: anonymous memory,
slab, vmalloc, page tables; not the page cache) over its value before
the command. kernel_kib: the rise of Slab + VmallocUsed + PageTables
from before to after (what the kernel keeps, e.g. a mount's allocator).
slab_kib, vmalloc_kib: each of those. rss_kib: the command's largest
resident set (getrusage; a userspace tool's own memory).
"""
import os
import resource
import subprocess
import sys
import threading
import time


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


def in_use(m):
    return m["MemTotal"] - m["MemFree"] - m["Buffers"] - m["Cached"]


def main():
    label, cmd = sys.argv[1], sys.argv[2:]
    before = meminfo()
    base = in_use(before)
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], in_use(meminfo()))
            time.sleep(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.monotonic()
    rc = subprocess.call(cmd)
    secs = time.monotonic() - t0
    stop.set()
    t.join()
    after = meminfo()
    peak[0] = max(peak[0], in_use(after))
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    d = {k: after[k] - before[k] for k in ("Slab", "VmallocUsed", "PageTables")}
    print("@@bench %s secs=%.2f peak_kib=%d kernel_kib=%d slab_kib=%d vmalloc_kib=%d rss_kib=%d exit=%d"
          % (label, secs, peak[0] - base, sum(d.values()), d["Slab"], d["VmallocUsed"], rss, rc),
          flush=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
