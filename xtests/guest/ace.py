#!/usr/bin/env python3
"""ACE-style workloads for the crash checker (issue 7, vm-tests/crashcheck.sh).

  ace.py populate DIR        the small pre-populated tree (for mkfs -d)
  ace.py list                every single operation, one name a line
  ace.py run MNT OP [OP...]  run the operations in order on the tree at MNT
  ace.py pairs N SEED        N distinct seq-2 workloads (pairs), seeded
                             random order; N = 0: all of them
  ace.py drive SECONDS < WORKLOADS
                             trace and check workloads (crashcheck.sh)

Each operation is one system call on the tree `populate` builds (a few
need one preparatory call, e.g. open). An operation whose target the
previous one removed fails with an errno, which is fine: the crash checker
judges what the kernel did, and a failed call must change nothing.
"""
import os, random, sys

BLK = 4096


def data(n, seed):
    r = random.Random(seed)
    return bytes(r.randrange(256) for _ in range(n))


def populate(d):
    """A/ {foo 8 KiB, bar 100 B, empty, C/} B/ {baz 5000 B, D/, foo_hl = A/foo}
    sym -> A/foo"""
    for sub in ("A", "A/C", "B", "B/D"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for name, n in (("A/foo", 2 * BLK), ("A/bar", 100), ("A/empty", 0), ("B/baz", 5000)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data(n, name))
    os.link(os.path.join(d, "A/foo"), os.path.join(d, "B/foo_hl"))
    os.symlink("A/foo", os.path.join(d, "sym"))


def pwrite(path, off, n, flags=0):
    fd = os.open(path, os.O_WRONLY | flags)
    try:
        os.pwrite(fd, data(n, f"{path}@{off}"), off) if not flags & os.O_APPEND else os.write(fd, data(n, path))
    finally:
        os.close(fd)


def falloc(path, mode, off, n):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_WRONLY)
    try:
        if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def exchange(a, b):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def tmpfile(d):
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.close(fd)


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FALLOC_KEEP_SIZE, FALLOC_PUNCH_HOLE, FALLOC_ZERO_RANGE = 1, 2, 0x10

# name -> function of the mount point.
OPS = {
    "creat": lambda m: os.close(os.open(f"{m}/A/new", os.O_CREAT | os.O_WRONLY, 0o644)),
    "creat_in_empty_dir": lambda m: os.close(os.open(f"{m}/A/C/new", os.O_CREAT | os.O_WRONLY, 0o644)),
    "mkdir": lambda m: os.mkdir(f"{m}/A/newdir", 0o755),
    "mknod_fifo": lambda m: os.mkfifo(f"{m}/B/fifo", 0o644),
    "tmpfile": lambda m: tmpfile(f"{m}/A"),
    "write_aligned_overwrite": lambda m: pwrite(f"{m}/A/foo", 0, BLK),
    "write_unaligned_overwrite": lambda m: pwrite(f"{m}/A/foo", 1000, 100),
    "write_unaligned_2blocks": lambda m: pwrite(f"{m}/A/foo", 4000, 600),
    "write_append_aligned": lambda m: pwrite(f"{m}/A/foo", 0, BLK, os.O_APPEND),
    "write_append_unaligned": lambda m: pwrite(f"{m}/A/bar", 0, 5000, os.O_APPEND),
    "write_empty_file": lambda m: pwrite(f"{m}/A/empty", 0, 3000),
    "write_past_eof_hole": lambda m: pwrite(f"{m}/B/baz", 5 * BLK + 10, 200),
    "truncate_down": lambda m: os.truncate(f"{m}/A/foo", 3000),
    "truncate_up": lambda m: os.truncate(f"{m}/A/bar", 20000),
    "truncate_zero": lambda m: os.truncate(f"{m}/B/baz", 0),
    "fallocate": lambda m: falloc(f"{m}/A/bar", 0, 0, 4 * BLK),
    "fallocate_keep_size": lambda m: falloc(f"{m}/B/baz", FALLOC_KEEP_SIZE, 8 * BLK, 2 * BLK),
    "punch_hole": lambda m: falloc(f"{m}/A/foo", FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE, 1000, BLK + 500),
    "zero_range": lambda m: falloc(f"{m}/B/baz", FALLOC_ZERO_RANGE, 100, 3000),
    "link": lambda m: os.link(f"{m}/A/bar", f"{m}/B/bar_link"),
    "unlink_last_link": lambda m: os.unlink(f"{m}/A/bar"),
    "unlink_one_of_two": lambda m: os.unlink(f"{m}/B/foo_hl"),
    "unlink_symlink": lambda m: os.unlink(f"{m}/sym"),
    "rename_same_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/A/bar2"),
    "rename_cross_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/B/bar"),
    "rename_overwrite_same_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/A/empty"),
    "rename_overwrite_cross_dir": lambda m: os.rename(f"{m}/A/bar", f"{m}/B/baz"),
    "rename_overwrite_hardlinked": lambda m: os.rename(f"{m}/B/baz", f"{m}/B/foo_hl"),
    "rename_dir_same_dir": lambda m: os.rename(f"{m}/A/C", f"{m}/A/C2"),
    "rename_dir_cross_dir": lambda m: os.rename(f"{m}/A/C", f"{m}/B/C"),
    "rename_dir_over_empty_dir": lambda m: os.rename(f"{m}/A/C", f"{m}/B/D"),
    "rename_exchange_files": lambda m: exchange(f"{m}/A/foo", f"{m}/B/baz"),
    "rename_exchange_dir_file": lambda m: exchange(f"{m}/A/C", f"{m}/B/baz"),
    "symlink_inline": lambda m: os.symlink("B/baz", f"{m}/A/sym2"),
    "symlink_long": lambda m: os.symlink("x" * 300, f"{m}/A/symlong"),
    "chmod": lambda m: os.chmod(f"{m}/A/foo", 0o600),
    "chown": lambda m: os.chown(f"{m}/A/foo", 1000, 1000),
    "utimes": lambda m: os.utime(f"{m}/A/foo", ns=(1_000_000_123, 2_000_000_456)),
    "fsync": lambda m: fsync(f"{m}/A/foo"),
    "rmdir": lambda m: os.rmdir(f"{m}/A/C"),
}


def libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def check_errno(r, what):
    import ctypes
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


class Driver:
    """Traces workloads with the tracing build of novars.ko and checks each
    trace with novars-crashcheck, two checks running beside the tracing.

    Environment (set by crashcheck.sh): ACE_DEV the device, ACE_CLEAN the
    image every workload starts from, ACE_FS_MIB its size, ACE_MNT the
    mount point, ACE_DBG the debugfs directory, ACE_OUT where traces and
    reports go, ACE_TMP scratch (base images), ACE_CC the checker.

    A workload line is `NAME FAULTS EXPECT [OP...]`: FAULTS the pm.rs fault
    bits, EXPECT `clean` (exit 0) or `violations` (exit 1). The base image
    is read after the mount and the trace stops before the unmount, except
    for the workload named `mount_unmount`, which traces both.
    """

    def __init__(self):
        e = os.environ
        self.dev, self.clean, self.mnt = e["ACE_DEV"], e["ACE_CLEAN"], e["ACE_MNT"]
        self.dbg, self.out, self.tmp, self.cc = e["ACE_DBG"], e["ACE_OUT"], e["ACE_TMP"], e["ACE_CC"]
        self.size = int(e["ACE_FS_MIB"]) << 20
        with open(self.clean, "rb") as f:
            self.clean_bytes = f.read()
        self.libc = libc()
        self.running = []
        self.results = {"workloads": 0, "images": 0, "unexpected": 0}

    def knob(self, name, val):
        with open(f"{self.dbg}/{name}", "w") as f:
            f.write(val)

    def restore(self):
        with open(self.dev, "r+b", buffering=0) as d:
            d.write(self.clean_bytes)
            os.fsync(d.fileno())

    def snapshot(self, path):
        with open(self.dev, "rb", buffering=0) as d, open(path, "wb") as f:
            f.write(d.read(self.size))

    def mount(self):
        check_errno(self.libc.mount(self.dev.encode(), self.mnt.encode(), b"novars", 0, None), "mount")

    def umount(self):
        check_errno(self.libc.umount2(self.mnt.encode(), 0), "umount")

    def trace(self, name, faults, names):
        base = f"{self.tmp}/{name}.img"
        self.restore()
        whole = name == "mount_unmount"
        if whole:
            with open(base, "wb") as f:
                f.write(self.clean_bytes[: self.size])
            self.knob("enable", "1")
            self.mount()
        else:
            self.mount()
            self.snapshot(base)
            self.knob("enable", "1")
        self.knob("faults", str(faults))
        with open(f"{self.out}/{name}.ops", "w") as log:
            for n in names:
                try:
                    OPS[n](self.mnt)
                    log.write(f"{n}: ok\n")
                except OSError as e:
                    log.write(f"{n}: {os.strerror(e.errno)}\n")
        self.knob("faults", "0")
        if not whole:
            self.knob("enable", "0")
        self.umount()
        self.knob("enable", "0")
        with open(f"{self.dbg}/trace", "rb") as t, open(f"{self.out}/{name}.bin", "wb") as f:
            f.write(t.read())
        return base

    def start_check(self, name, base, expect):
        import subprocess
        while len(self.running) >= 2:
            self.reap(block=True)
        out = open(f"{self.out}/{name}.out", "w")
        p = subprocess.Popen([self.cc, "--base", base, "--trace", f"{self.out}/{name}.bin", "--max-random", "8"],
                             stdout=out, stderr=subprocess.STDOUT)
        self.running.append((p, name, base, expect, out))

    def reap(self, block=False):
        import shutil
        for item in list(self.running):
            p, name, base, expect, out = item
            if p.poll() is None and not block:
                continue
            st = p.wait()
            out.close()
            self.running.remove(item)
            with open(f"{self.out}/{name}.out") as f:
                report = f.read()
            line = next((l for l in report.splitlines() if l.startswith("crash images")), "no report")
            viol = next((l for l in report.splitlines() if l.startswith("violations")), "")
            want = 0 if expect == "clean" else 1
            self.results["workloads"] += 1
            try:
                self.results["images"] += int(line.split("checked ")[1].split(";")[0])
            except (IndexError, ValueError):
                pass
            ok = st == want
            print(f"{name:<48} {line.replace('crash images: ', '')}" + ("" if expect == "clean" else f"; {viol}"))
            if not ok:
                self.results["unexpected"] += 1
                shutil.copy(base, f"{self.out}/{name}.img")
                print(f"UNEXPECTED: {name}: novars-crashcheck exited {st}, expected {want} ({expect}); "
                      f"reproduce with --base {self.out}/{name}.img")
                with open(f"{self.out}/{name}.ops") as f:
                    print(f.read() + report)
            os.unlink(base)
            if block:
                return

    def drive(self, seconds, lines):
        import time
        start = time.monotonic()
        for line in lines:
            w = line.split()
            if len(w) < 3:
                continue
            if time.monotonic() - start >= seconds:
                break
            name, faults, expect, names = w[0], int(w[1]), w[2], w[3:]
            unknown = [n for n in names if n not in OPS]
            if unknown:
                sys.exit(f"unknown operation(s): {' '.join(unknown)}")
            base = self.trace(name, faults, names)
            self.start_check(name, base, expect)
            self.reap()
        while self.running:
            self.reap(block=True)
        r = self.results
        print(f"{r['workloads']} workloads, {r['images']} crash images checked, "
              f"{r['unexpected']} unexpected results, {time.monotonic() - start:.0f} s")
        return 1 if r["unexpected"] else 0


def run(mnt, names):
    for n in names:
        try:
            OPS[n](mnt)
            print(f"  {n}: ok")
        except OSError as e:
            print(f"  {n}: {os.strerror(e.errno)}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "populate":
        populate(argv[2])
    elif len(argv) == 2 and argv[1] == "list":
        print("\n".join(OPS))
    elif len(argv) >= 4 and argv[1] == "run":
        unknown = [n for n in argv[3:] if n not in OPS]
        if unknown:
            sys.exit(f"unknown operation(s): {' '.join(unknown)}")
        run(argv[2], argv[3:])
    elif len(argv) == 3 and argv[1] == "drive":
        sys.exit(Driver().drive(float(argv[2]), sys.stdin.read().splitlines()))
    elif len(argv) == 4 and argv[1] == "pairs":
        pairs = [(a, b) for a in OPS for b in OPS]
        random.Random(int(argv[3])).shuffle(pairs)
        n = int(argv[2]) or len(pairs)
        for a, b in pairs[:n]:
            print(a, b)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
