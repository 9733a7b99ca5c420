#!/usr/bin/env python3
"""Concurrent allocation check for vm:fs_ops (run pinned to one CPU each).

  lanes.py write DIR SEED   create, write, fallocate, truncate and remove
                            files in DIR (deterministic from SEED)
  lanes.py check DIR SEED   the files DIR must hold after `write`
  lanes.py lanes ROOT DEV   files of ROOT/cpu0 start in the lower half of
                            DEV, those of ROOT/cpu1 in the upper half
"""
import ctypes, fcntl, os, random, struct, sys

N = 60


def content(seed, i):
    r = random.Random(seed * 1000 + i)
    n = r.choice((1, 100, 4096, 5000, 65536, 300000))
    return bytes(r.getrandbits(8) for _ in range(min(n, 64))) * (n // 64) + b"x" * (n % 64)


def write(d, seed):
    os.mkdir(d)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    for i in range(N):
        p = f"{d}/f{i}"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        data = content(seed, i)
        os.write(fd, data)
        if i % 4 == 1 and libc.fallocate(fd, 1, len(data), 1 << 20) != 0:  # KEEP_SIZE
            sys.exit(f"fallocate {p}: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
        if i % 5 == 2:
            os.truncate(p, len(data) // 2)
        if i % 3 == 0 and i > 0:
            os.unlink(f"{d}/f{i - 3}")


def expected(seed):
    files = {}
    for i in range(N):
        data = content(seed, i)
        if i % 5 == 2:
            data = data[: len(data) // 2]
        files[f"f{i}"] = data
        if i % 3 == 0 and i > 0:
            del files[f"f{i - 3}"]
    return files


def check(d, seed):
    exp = expected(seed)
    got = sorted(os.listdir(d))
    if got != sorted(exp):
        sys.exit(f"{d}: names differ: {sorted(set(got) ^ set(exp))}")
    for n, data in exp.items():
        with open(f"{d}/{n}", "rb") as f:
            if f.read() != data:
                sys.exit(f"{d}/{n}: data differs")


def first_physical(p):
    """Physical byte offset of the first extent (FIEMAP)."""
    FS_IOC_FIEMAP = 0xC020660B
    hdr = struct.pack("QQIIII", 0, 1 << 62, 0, 0, 1, 0)
    buf = bytearray(hdr + bytes(56))
    with open(p, "rb") as f:
        fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf)
    mapped, = struct.unpack_from("I", buf, 20)
    if not mapped:
        return None
    _logical, physical = struct.unpack_from("QQ", buf, 32)
    return physical


def lanes(root, dev):
    size = int(open(f"/sys/class/block/{os.path.basename(dev)}/size").read()) * 512
    for cpu in (0, 1):
        for n in os.listdir(f"{root}/cpu{cpu}"):
            ph = first_physical(f"{root}/cpu{cpu}/{n}")
            if ph is not None and (ph >= size // 2) != (cpu == 1):
                sys.exit(f"cpu{cpu}/{n} starts at byte {ph} of {size}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2], int(sys.argv[3]))
    elif cmd == "check":
        check(sys.argv[2], int(sys.argv[3]))
    elif cmd == "lanes":
        lanes(sys.argv[2], sys.argv[3])
