#!/usr/bin/env python3
"""Guest-side helper for VM tests: damage a novars image in named ways and
try mounts with the exact errno. The format is layout/FORMAT.md.

  novars_img.py mount DEV DIR [ro]     -> prints the errno name or OK
  novars_img.py log DEV INO            -> where INO's log is: "empty",
        "slot LEN" (in the record) or "pages HEAD" (first page)
  novars_img.py damage DEV WHAT [INO]  -> WHAT: sb-primary, sb-both,
        inode-csum INO, inode-size INO (u64::MAX, checksum valid),
        log-entry INO, unclean (clear CLEAN, fix checksum), journal-open INO
        (lane 0's journal holds an open transaction over INO's log tail,
        as a crash in the middle of a rename leaves it)
"""
import ctypes, errno, os, struct, sys, zlib

BS = 4096


def rd(fd, pos, n):
    return os.pread(fd, n, pos)


def wr(fd, pos, data):
    os.pwrite(fd, data, pos)


def sb(fd):
    b = rd(fd, 0, BS)
    magic, _csum, _ver = struct.unpack_from("<QII", b, 0)
    assert magic == int.from_bytes(b"NOVARSFS", "little"), "not novars"
    f = {}
    (f["blocks"], _bs, f["lanes"], f["jstart"], f["first_data"], f["root"]) = struct.unpack_from("<QIIQQQ", b, 40)
    f["seg_inodes"] = struct.unpack_from("<I", b, 92)[0]
    return b, f


SLOT_LOG = 1 << 63  # log_tail of a log in the record's inline area


def inode_crc(rec):
    """The record checksum: bytes 32..256, the inline area (160..256) as
    zeros unless it holds a symlink target (inline_len at 152)."""
    b = bytearray(rec[:256])
    if struct.unpack_from("<I", b, 152)[0] == 0:
        b[160:256] = bytes(96)
    return zlib.crc32(bytes(b[32:256]))


def inode_pos(f, ino):
    lanes = f["lanes"]
    lane, slot = ino % lanes, ino // lanes
    assert slot < f["seg_inodes"], "only first-segment inodes"
    seg_blocks = 1 + f["seg_inodes"] // 16
    seg = f["jstart"] + lanes + lane * seg_blocks
    return (seg + 1 + slot // 16) * BS + (slot % 16) * 256


def damage(dev, what, ino=None):
    fd = os.open(dev, os.O_RDWR)
    b, f = sb(fd)
    if what == "sb-primary":
        wr(fd, 200, bytes([b[200] ^ 0xFF]))
    elif what == "sb-both":
        wr(fd, 200, bytes([b[200] ^ 0xFF]))
        last = (f["blocks"] - 1) * BS
        c = rd(fd, last + 200, 1)
        wr(fd, last + 200, bytes([c[0] ^ 0xFF]))
    elif what == "inode-csum":
        p = inode_pos(f, ino) + 48  # uid: inside the checksummed part
        c = rd(fd, p, 1)
        wr(fd, p, bytes([c[0] ^ 0x01]))
    elif what == "inode-size":
        p = inode_pos(f, ino)
        rec = bytearray(rd(fd, p, 256))
        rec[64:72] = struct.pack("<Q", 2**64 - 1)
        rec[24:28] = struct.pack("<I", inode_crc(rec))
        wr(fd, p, bytes(rec))
    elif what == "journal-open":
        tail_pos = inode_pos(f, ino) + 16
        old = rd(fd, tail_pos, 8)
        seq = 77
        j = bytearray(BS)
        struct.pack_into("<4sIIIQQ", j, 0, b"NVJL", 0, 0, 1, seq, 0)
        j[32:48] = struct.pack("<Q", tail_pos) + old
        struct.pack_into("<I", j, 4, zlib.crc32(bytes(j[:48])))
        struct.pack_into("<Q", j, 24, seq)
        wr(fd, f["jstart"] * BS, bytes(j))
    elif what == "log-entry":
        head, tail = struct.unpack("<QQ", rd(fd, inode_pos(f, ino) + 8, 16))
        if tail & SLOT_LOG:
            p = inode_pos(f, ino) + 160 + 24  # a slot log: in the record
        else:
            assert head and tail, "inode has no log"
            p = head * BS + 24  # inside the first entry's body
        c = rd(fd, p, 1)
        wr(fd, p, bytes([c[0] ^ 0x01]))
    elif what == "unclean":
        # `state` (offset 128) is outside the checksum: a plain store in
        # the primary and the backup, as the kernel does at mount.
        st = struct.unpack_from("<Q", b, 128)[0]
        for base in (0, (f["blocks"] - 1) * BS):
            wr(fd, base + 128, struct.pack("<Q", st & ~1))
    else:
        sys.exit(f"unknown damage {what}")
    os.fsync(fd)
    os.close(fd)


def try_mount(dev, d, ro):
    libc = ctypes.CDLL(None, use_errno=True)
    flags = 1 if ro else 0  # MS_RDONLY
    r = libc.mount(dev.encode(), d.encode(), b"novars", ctypes.c_ulong(flags), None)
    if r == 0:
        print("OK")
    else:
        print(errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())))


def log_of(dev, ino):
    fd = os.open(dev, os.O_RDONLY)
    _, f = sb(fd)
    head, tail = struct.unpack("<QQ", rd(fd, inode_pos(f, ino) + 8, 16))
    os.close(fd)
    if tail == 0:
        print("empty")
    elif tail & SLOT_LOG:
        print("slot %d" % (tail & ~SLOT_LOG))
    else:
        print("pages %d" % head)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "mount":
        try_mount(a[1], a[2], len(a) > 3 and a[3] == "ro")
    elif a[0] == "log":
        log_of(a[1], int(a[2]))
    elif a[0] == "damage":
        damage(a[1], a[2], int(a[3]) if len(a) > 3 else None)
    else:
        sys.exit(__doc__)
