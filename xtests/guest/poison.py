#!/usr/bin/env python3
"""Machine-check-safe reads (issue 14), through the tracing build's poison
switch (pm::Fault::Poison: every machine-check-safe read of the block named
in debugfs `poison_block` fails as a load that hit poison would).

  poison.py DEV MNT

Needs the tracing build loaded, debugfs mounted and a fresh novars on DEV.
Each case poisons one block, checks that the call concerned returns EIO
with one kernel log line naming the block, that nothing else changed, and
that everything reads back once the switch is off:
  data      a copy-on-write that must copy bytes of the poisoned block
            (an unaligned overwrite) fails, the file keeps its bytes; a
            whole-block overwrite, which copies nothing, succeeds
  log page  a directory whose first log page is poisoned cannot be loaded
            (stat, listdir); the rest of the file system works
  inode     the same for a file whose inode record block is poisoned
  sb        a mount with the superblock poisoned fails with EIO
The file system is mounted with errors=continue: a media error in metadata
marks it as needing fsck (as ext4 does) and the checks go on.
"""
import ctypes
import errno
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ace import device_offset  # noqa: E402
import novars_img  # noqa: E402
from guestlib import fail, ok  # noqa: E402

DBG = "/sys/kernel/debug/novars"
FAULT_POISON = 1 << 6
BS = 4096
libc = ctypes.CDLL(None, use_errno=True)


def poison(block):
    """Poison `block` (None: switch off)."""
    faults = int(open(f"{DBG}/faults").read(), 16)
    if block is None:
        faults &= ~FAULT_POISON
    else:
        with open(f"{DBG}/poison_block", "w") as f:
            f.write(str(block))
        faults |= FAULT_POISON
    with open(f"{DBG}/faults", "w") as f:
        f.write(hex(faults))


def kmsg_mark():
    """Writes a unique line to the kernel log and returns it: `kmsg_since`
    gives the lines after it. (A count of lines goes wrong once the ring
    buffer is full, after a test that logged much, such as the fuzz.)"""
    tag = f"novars-test: poison mark {time.monotonic_ns()}"
    with open("/dev/kmsg", "w") as k:
        k.write(tag + "\n")
    return tag


def kmsg_since(mark):
    out = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    i = out.rfind(mark)
    return out[i + len(mark):].split("\n")[1:] if i >= 0 else out.split("\n")


def expect_eio(what, fn):
    try:
        fn()
    except OSError as e:
        if e.errno != errno.EIO:
            fail(f"{what}: {errno.errorcode.get(e.errno, e.errno)}, wanted EIO")
        return
    fail(f"{what}: succeeded on a poisoned block, wanted EIO")


def one_line(mark, needle, what):
    lines = [l for l in kmsg_since(mark) if "novars" in l and needle in l]
    if len(lines) != 1:
        fail(f"{what}: {len(lines)} kernel log lines with {needle!r}, wanted 1: {kmsg_since(mark)}")


def mount(dev, mnt):
    r = libc.mount(dev.encode(), mnt.encode(), b"novars", ctypes.c_ulong(0), b"errors=continue")
    return 0 if r == 0 else ctypes.get_errno()


def umount(mnt):
    if libc.umount2(mnt.encode(), 0) != 0:
        fail(f"umount: {os.strerror(ctypes.get_errno())}")


def record_blocks(dev, ino):
    """(block of `ino`'s inode record, its first log page), read from the
    unmounted device."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        _, f = novars_img.sb(fd)
        pos = novars_img.inode_pos(f, ino)
        (head,) = struct.unpack("<Q", os.pread(fd, 8, pos + 8))  # INODE_HEAD_OFF
    finally:
        os.close(fd)
    return pos // BS, head


def main(dev, mnt):
    if mount(dev, mnt):
        fail("mount")
    f = os.path.join(mnt, "f")
    with open(f, "wb") as fh:
        fh.write(b"A" * (2 * BS))
        os.fsync(fh.fileno())
    d = os.path.join(mnt, "d")
    os.mkdir(d)
    for i in range(3):
        open(os.path.join(d, f"n{i}"), "w").close()
    g = os.path.join(mnt, "g")
    with open(g, "w") as fh:
        fh.write("g\n")
    d_ino, g_ino = os.stat(d).st_ino, os.stat(g).st_ino

    # Data: the copy-on-write of an unaligned overwrite copies the block's
    # other bytes from the old block.
    fd = os.open(f, os.O_RDWR)
    b0 = device_offset(fd, 0) // BS
    mark = kmsg_mark()
    poison(b0)
    expect_eio("unaligned overwrite of a poisoned block", lambda: os.pwrite(fd, b"x" * 100, 10))
    one_line(mark, f"media error in data block {b0}", "unaligned overwrite")
    if os.pread(fd, 2 * BS, 0) != b"A" * (2 * BS) or os.fstat(fd).st_size != 2 * BS:
        fail("the failed overwrite changed the file")
    ok(f"unaligned overwrite of poisoned block {b0}: EIO, the file unchanged, one log line")
    if os.pwrite(fd, b"y" * BS, 0) != BS:
        fail("short whole-block overwrite")
    if os.pread(fd, 2 * BS, 0) != b"y" * BS + b"A" * BS:
        fail("whole-block overwrite of a poisoned block: wrong bytes")
    ok("a whole-block overwrite of the poisoned block copies nothing and succeeds")
    poison(None)
    os.close(fd)
    umount(mnt)

    # Metadata, read when an inode is loaded: a clean mount reads no log.
    for what, ino, path in (("log page", d_ino, d), ("inode", g_ino, g)):
        rec, head = record_blocks(dev, ino)
        block = head if what == "log page" else rec
        if mount(dev, mnt):
            fail("mount")
        want = open(f, "rb").read()  # f's inode is loaded (and stays) before the poison
        mark = kmsg_mark()
        poison(block)
        expect_eio(f"stat of a {what} in poisoned block {block}", lambda: os.stat(path))
        one_line(mark, f"uncorrectable media error in block {block}", what)
        if open(f, "rb").read() != want or want != b"y" * BS + b"A" * BS:
            fail(f"with the {what} poisoned, another file reads wrong")
        if "f" not in os.listdir(mnt):
            fail(f"with the {what} poisoned, the root lists {os.listdir(mnt)}")
        poison(None)
        if what == "log page":
            if sorted(os.listdir(d)) != ["n0", "n1", "n2"]:
                fail(f"after the poison: {sorted(os.listdir(d))}")
        elif open(g).read() != "g\n":
            fail("after the poison: g reads wrong")
        ok(f"{what} in poisoned block {block}: EIO, one log line, other files fine; fine after")
        umount(mnt)

    mark = kmsg_mark()
    poison(0)
    e = mount(dev, mnt)
    poison(None)
    if e != errno.EIO:
        fail(f"mount with a poisoned superblock: {errno.errorcode.get(e, e)}, wanted EIO")
    one_line(mark, "superblock is unreadable", "superblock")
    if mount(dev, mnt):
        fail("mount after the poison")
    umount(mnt)
    ok("mount with a poisoned superblock: EIO, one log line; mounts after")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
