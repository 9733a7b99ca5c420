#!/usr/bin/env python3
"""Hostile images for the kernel (issue 14): every on-media structure of a
small base image mutated at random and by field-aware rules, each image
mounted, worked on and unmounted.

  fuzzimg.py run BASE DEV MNT COUNT SEED   COUNT mutated images of BASE
                                           (the named regressions first)

BASE is an image file (mkfs -d of a tree, then worked on, so that logs hold
every entry kind, tables are grown and an allocator record exists). Each
mutation is applied to a copy of BASE; with probability 3/4 the checksum
of the mutated structure is recomputed, so that the checks behind the
checksum are reached. The image is written to DEV and mounted at MNT; a
refused mount must answer EINVAL, EUCLEAN or EROFS; a mounted image is
walked (stat, readdir, readlink, every file read), written (create, write,
append, punch, truncate, rename, unlink, mkdir, a store through a
mapping) and unmounted. Errors of those calls are fine (EUCLEAN for a
damaged inode); an errno outside the expected set, a mount or unmount
slower than 20 s, or a Python exception fails the run. The kernel log is
judged by the harness (no BUG, WARNING, Oops, KASAN, lockdep, hang).

Each image's mutations are printed before it is mounted, so a crash names
its case; rerun one with SEED and COUNT.
"""
import ctypes
import errno
import mmap
import os
import random
import struct
import sys
import time
import zlib

BS = 4096
U64 = 2**64 - 1
OK_ERRNOS = {errno.EUCLEAN, errno.EIO, errno.ENOENT, errno.ENOSPC, errno.EROFS, errno.EINVAL,
             errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.EFBIG, errno.EBUSY,
             errno.ENAMETOOLONG, errno.EMLINK, errno.ENOMEM, errno.EOVERFLOW, errno.ELOOP,
             errno.ENODATA, errno.EPERM, errno.EACCES, errno.ENXIO, errno.ESPIPE}
MOUNT_ERRNOS = {errno.EINVAL, errno.EUCLEAN, errno.EROFS}

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def crc(b):
    return zlib.crc32(bytes(b)) & 0xFFFFFFFF


def u64(b, off):
    return struct.unpack_from("<Q", b, off)[0]


def u32(b, off):
    return struct.unpack_from("<I", b, off)[0]


class Layout:
    """Where the metadata of an image is (FORMAT.md), read from its bytes."""

    def __init__(self, img):
        self.img = img
        self.blocks = u64(img, 40)
        self.lanes = u32(img, 52)
        self.seg_inodes = u32(img, 92)
        self.first_data = u64(img, 64)
        self.seg_blocks = 1 + self.seg_inodes // 16
        self.journals = [1 + i for i in range(self.lanes)]
        self.segments = []   # (lane, index, block)
        for lane in range(self.lanes):
            blk, i = 1 + self.lanes + lane * self.seg_blocks, 0
            seen = set()
            while blk and blk < self.blocks and blk not in seen:
                seen.add(blk)
                self.segments.append((lane, i, blk))
                blk, i = u64(img, blk * BS + 8), i + 1
        self.inodes = []     # (ino, pos) of LIVE records
        for lane, i, blk in self.segments:
            for s in range(self.seg_inodes):
                pos = (blk + 1 + s // 16) * BS + (s % 16) * 256
                if img[pos:pos + 8] == b"NVINODE1":
                    self.inodes.append(((i * self.seg_inodes + s) * self.lanes + lane, pos))
        self.pages = []      # log page blocks
        self.entries = []    # (pos, len) of committed entries
        for _, pos in self.inodes:
            head, tail = u64(img, pos + 8), u64(img, pos + 16)
            if not tail:
                continue
            blk, seen = head, set()
            while blk and blk < self.blocks and blk not in seen:
                seen.add(blk)
                self.pages.append(blk)
                nxt = u64(img, blk * BS + 4040)
                used = tail % BS if blk == tail // BS else nxt & 0xFFF
                off = 0
                while off + 16 <= min(used, 4032):
                    ln = struct.unpack_from("<H", img, blk * BS + off + 2)[0]
                    if ln < 16 or ln % 8 or off + ln > used:
                        break
                    self.entries.append((blk * BS + off, ln))
                    off += ln
                if blk == tail // BS:
                    break
                blk = nxt >> 12
        self.records = []    # allocator-record blocks
        blk, seen = u64(img, 136), set()
        while blk and blk < self.blocks and blk not in seen:
            seen.add(blk)
            self.records.append(blk)
            blk = u64(img, blk * BS + 24)
        self.data_blocks = []  # blocks of WRITE entries
        for pos, ln in self.entries:
            if img[pos] == 1 and ln >= 64:
                self.data_blocks.append(u64(img, pos + 24))


def fix_sb(img, base):
    b = bytearray(img[base:base + BS])
    b[8:12] = bytes(4)
    b[104:168] = bytes(64)
    struct.pack_into("<I", img, base + 8, crc(b))


def fix_counted(img, blk, state=False):
    """A journal or allocator-record block: CRC-32 of its header and
    `count` 16-byte entries, `csum` (and a journal's `state`) as zero."""
    p = blk * BS
    count = min(u32(img, p + 12), 254)
    b = bytearray(img[p:p + 32 + 16 * count])
    b[4:8] = bytes(4)
    if state:
        b[24:32] = bytes(8)
    struct.pack_into("<I", img, p + 4, crc(b))


def fix_journal(img, blk):
    fix_counted(img, blk, state=True)


def fix_seg(img, blk):
    p = blk * BS
    struct.pack_into("<I", img, p + 4, crc(img[p + 16:p + 64]))


def fix_inode(img, pos):
    struct.pack_into("<I", img, pos + 24, crc(img[pos + 32:pos + 256]))


def fix_page(img, blk):
    p = blk * BS + 4032
    struct.pack_into("<I", img, p + 4, crc(img[p + 16:p + 64]))


def fix_entry(img, pos, ln):
    b = bytearray(img[pos:pos + ln])
    b[4:8] = bytes(4)
    struct.pack_into("<I", img, pos + 4, crc(b))


def fix_record(img, blk):
    fix_counted(img, blk)


class Mutator:
    def __init__(self, base, rng):
        self.base = base
        self.lay = Layout(base)
        self.rng = rng

    def value(self, cur, size):
        """A boundary or hostile value for a field holding `cur`."""
        lay, r = self.lay, self.rng
        mx = (1 << (8 * size)) - 1
        pool = [0, 1, mx, mx - 1, (cur + 1) & mx, (cur - 1) & mx, cur ^ (1 << r.randrange(8 * size)),
                r.randrange(mx + 1), lay.blocks & mx, (lay.blocks - 1) & mx, lay.first_data & mx,
                (lay.first_data - 1) & mx, 1 << (8 * size - 1)]
        if size == 8:
            pool += [r.choice(lay.pages or [0]), r.choice(lay.pages or [0]) * BS + r.randrange(4033),
                     r.choice(lay.data_blocks or [0]), r.choice([s[2] for s in lay.segments]),
                     r.choice(lay.records or [0])]
        return r.choice(pool)

    def field(self, img, pos, fields):
        """Sets one of `fields` ((offset, size) pairs) at `pos`."""
        off, size = self.rng.choice(fields)
        cur = int.from_bytes(img[pos + off:pos + off + size], "little")
        v = self.value(cur, size)
        img[pos + off:pos + off + size] = v.to_bytes(size, "little")
        return f"+{off}:{size} {cur:#x}->{v:#x}"

    def mutate(self, img):
        lay, r = self.lay, self.rng
        fix = r.random() < 0.75
        kind = r.choice(["sb", "sb", "backup", "journal", "seg", "inode", "inode", "inode", "page",
                         "entry", "entry", "entry", "entry", "record", "flip", "shared", "loop"])
        if kind in ("sb", "backup"):
            base = 0 if kind == "sb" else (lay.blocks - 1) * BS
            d = self.field(img, base, [(40, 8), (48, 4), (52, 4), (56, 8), (64, 8), (72, 8), (80, 8),
                                       (88, 4), (92, 4), (128, 8), (136, 8), (144, 8), (152, 8),
                                       (160, 8), (168, 4), (16, 8), (24, 8), (32, 8), (12, 4)])
            if fix:
                fix_sb(img, base)
        elif kind == "journal":
            blk = r.choice(lay.journals)
            d = self.field(img, blk * BS, [(8, 4), (12, 4), (16, 8), (24, 8), (32, 8), (40, 8),
                                           (48, 8), (56, 8)])
            if r.random() < 0.5:  # open it: state = seq
                img[blk * BS + 24:blk * BS + 32] = img[blk * BS + 16:blk * BS + 24]
                d += " open"
            if fix:
                fix_journal(img, blk)
        elif kind == "seg":
            _, _, blk = r.choice(lay.segments)
            d = self.field(img, blk * BS, [(8, 8), (16, 4), (20, 4), (24, 4), (0, 4)])
            if fix:
                fix_seg(img, blk)
        elif kind == "inode" and lay.inodes:
            ino, pos = r.choice(lay.inodes)
            d = f"ino {ino} " + self.field(img, pos, [(0, 8), (8, 8), (16, 8), (32, 8), (40, 4),
                                                      (44, 4), (56, 4), (64, 8), (72, 8), (80, 8),
                                                      (96, 4), (112, 4), (152, 4)])
            if fix:
                fix_inode(img, pos)
        elif kind == "page" and lay.pages:
            blk = r.choice(lay.pages)
            d = f"page {blk} " + self.field(img, blk * BS + 4032, [(0, 4), (8, 8), (16, 8), (24, 4),
                                                                  (32, 8)])
            if fix:
                fix_page(img, blk)
        elif kind == "entry" and lay.entries:
            pos, ln = r.choice(lay.entries)
            fields = [(0, 1), (1, 1), (2, 2), (8, 8)] + [(o, 8) for o in range(16, ln - 7, 8)] \
                + [(o, 4) for o in range(16, ln - 3, 4)]
            if img[pos] == 5 and ln >= 48:
                fields += [(40, 1), (41, 1)]
            d = f"entry at {pos} type {img[pos]} " + self.field(img, pos, fields)
            if fix:
                fix_entry(img, pos, ln)
        elif kind == "record" and lay.records:
            blk = r.choice(lay.records)
            d = f"record {blk} " + self.field(img, blk * BS, [(8, 2), (10, 2), (12, 4), (16, 8),
                                                             (24, 8), (32, 8), (40, 8), (48, 8),
                                                             (56, 8)])
            if fix:
                fix_record(img, blk)
        elif kind == "shared" and len(lay.entries) > 1:
            # A WRITE entry pointed at a block another entry owns.
            writes = [(p, n) for p, n in lay.entries if img[p] == 1 and n >= 64]
            if len(writes) < 2:
                return "nothing"
            (p, n), (q, _) = r.sample(writes, 2)
            img[p + 24:p + 32] = img[q + 24:q + 32]
            fix_entry(img, p, n)
            d = f"WRITE at {p} shares the block of the WRITE at {q}"
            fix = True
        elif kind == "loop":
            # A chain pointing back at itself: a segment, a log page or a
            # record block.
            what = r.choice(["seg", "page", "record"])
            if what == "seg":
                _, _, blk = r.choice(lay.segments)
                struct.pack_into("<Q", img, blk * BS + 8, blk)
            elif what == "page" and lay.pages:
                blk = r.choice(lay.pages)
                struct.pack_into("<Q", img, blk * BS + 4040, (blk << 12) | 4032)
            elif lay.records:
                blk = lay.records[0]
                struct.pack_into("<Q", img, blk * BS + 24, blk)
                fix_record(img, blk)
            else:
                return "nothing"
            d = f"{what} chain loops"
            fix = True
        else:
            # Random bytes in a random metadata block.
            blocks = [0, lay.blocks - 1] + lay.journals + [s[2] for s in lay.segments] + \
                lay.pages + lay.records
            blk = r.choice(blocks)
            for _ in range(r.randrange(1, 9)):
                img[blk * BS + r.randrange(BS)] = r.randrange(256)
            d = f"bytes of block {blk}"
            kind, fix = "flip", False
        return f"{kind}{' (csum fixed)' if fix else ''}: {d}"


def regressions(base):
    """The named cases of issue 14, each a function of a copy of BASE."""
    lay = Layout(base)
    files = [(ino, pos) for ino, pos in lay.inodes if u32(base, pos + 44) & 0o170000 == 0o100000]
    cases = []

    def size_max(img):
        ino, pos = files[0]
        struct.pack_into("<Q", img, pos + 64, U64)
        fix_inode(img, pos)
        return f"size u64::MAX (inode {ino}), then punch"

    def nlink0(img):
        ino, pos = files[-1]
        struct.pack_into("<I", img, pos + 56, 0)
        fix_inode(img, pos)
        # and every LINK entry of that inode's log says 0
        return f"named inode {ino} with link count 0"

    def record_loop(img):
        if lay.records:
            struct.pack_into("<Q", img, lay.records[0] * BS + 24, lay.records[0])
            fix_record(img, lay.records[0])
        return "self-looping allocator record"

    def shared(img):
        writes = [(p, n) for p, n in lay.entries if img[p] == 1 and n >= 64]
        (p, n), (q, _) = writes[0], writes[-1]
        img[p + 24:p + 32] = img[q + 24:q + 32]
        fix_entry(img, p, n)
        return "two files sharing a block"

    def reformatted(img):
        img[0:BS] = bytes(BS)
        return "primary without magic, old novars backup"

    cases += [size_max, nlink0, record_loop, shared, reformatted]
    return cases


def mount(dev, mnt):
    t = time.monotonic()
    r = libc.mount(dev.encode(), mnt.encode(), b"novars", 0, None)
    e = ctypes.get_errno() if r else 0
    return e, time.monotonic() - t


def attempt(fn, bad):
    try:
        return fn()
    except OSError as e:
        if e.errno not in OK_ERRNOS:
            bad.append(f"{fn.__name__ if hasattr(fn, '__name__') else fn}: {e}")
    except (ValueError, OverflowError):
        pass
    return None


def exercise(mnt, bad):
    """Walks and works on a mounted image; errors are fine, not panics."""
    files, dirs = [], []
    for root, ds, fs in os.walk(mnt, onerror=lambda e: bad.append(str(e)) if e.errno not in OK_ERRNOS else None):
        for n in ds:
            dirs.append(os.path.join(root, n))
        for n in fs:
            files.append(os.path.join(root, n))
    for p in files + dirs:
        st = attempt(lambda: os.lstat(p), bad)
        if st is None:
            continue
        if os.path.islink(p):
            attempt(lambda: os.readlink(p), bad)
            continue
        if not os.path.isfile(p):
            continue

        def read():
            # The first and last MiB: a damaged size may claim terabytes.
            with open(p, "rb") as f:
                f.read(1 << 20)
                if st.st_size > 1 << 20:
                    f.seek(max(st.st_size - (1 << 20), 1 << 20))
                    f.read(1 << 20)
        attempt(read, bad)
    regular = [p for p in files if not os.path.islink(p) and os.path.isfile(p)]
    for p in regular[:6]:
        def work():
            fd = os.open(p, os.O_RDWR)
            try:
                os.pwrite(fd, b"fuzz" * 300, 100)
                os.write(fd, b"append")
                os.posix_fallocate(fd, 0, 8192)
                libc.fallocate(fd, 3, 0, 4096)  # punch, keep size
                size = os.fstat(fd).st_size
                if 0 < size < (1 << 30):
                    m = mmap.mmap(fd, min(size, 4096))
                    m[0:4] = b"mmap"
                    m.close()
                os.ftruncate(fd, 1000)
            finally:
                os.close(fd)
        attempt(work, bad)
    for i, p in enumerate(files[6:12]):
        attempt(lambda: os.rename(p, os.path.join(mnt, f"renamed{i}")), bad)
    for p in files[12:16]:
        attempt(lambda: os.unlink(p), bad)
    attempt(lambda: os.mkdir(os.path.join(mnt, "fuzzdir")), bad)
    attempt(lambda: os.close(os.open(os.path.join(mnt, "fuzzdir", "new"), os.O_CREAT | os.O_WRONLY)), bad)
    attempt(lambda: os.listdir(mnt), bad)


def run(base_path, dev, mnt, count, seed):
    with open(base_path, "rb") as f:
        base = f.read()
    rng = random.Random(seed)
    mut = Mutator(base, rng)
    lay = mut.lay
    print(f"base: {lay.blocks} blocks, {len(lay.segments)} segments, {len(lay.inodes)} inodes, "
          f"{len(lay.pages)} log pages, {len(lay.entries)} entries, {len(lay.records)} record blocks",
          flush=True)
    cases = regressions(base)
    refused = mounted = 0
    slow = 0.0
    fd = os.open(dev, os.O_RDWR)
    t0 = time.monotonic()
    for i in range(len(cases) + count):
        img = bytearray(base)
        if i < len(cases):
            what = "regression: " + cases[i](img)
        else:
            what = "; ".join(mut.mutate(img) for _ in range(rng.choice([1, 1, 1, 2, 3])))
        print(f"image {i}: {what}", flush=True)
        os.pwrite(fd, img, 0)
        os.fsync(fd)
        e, dt = mount(dev, mnt)
        slow = max(slow, dt)
        bad = []
        if dt > 20:
            bad.append(f"mount took {dt:.1f} s")
        if e:
            refused += 1
            if e not in MOUNT_ERRNOS:
                bad.append(f"mount failed with {errno.errorcode.get(e, e)}")
        else:
            mounted += 1
            exercise(mnt, bad)
            t = time.monotonic()
            if libc.umount2(mnt.encode(), 0):
                bad.append(f"umount: {os.strerror(ctypes.get_errno())}")
            if time.monotonic() - t > 20:
                bad.append("umount took over 20 s")
        if bad:
            print(f"FAIL: image {i} ({what}): " + "; ".join(bad[:5]), flush=True)
            sys.exit(1)
    os.close(fd)
    n = len(cases) + count
    print(f"ok: {n} images ({len(cases)} regressions): {mounted} mounted and worked on, "
          f"{refused} refused; slowest mount {slow:.2f} s; {time.monotonic() - t0:.0f} s", flush=True)


def main(argv):
    if len(argv) == 7 and argv[1] == "run":
        run(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
