#!/usr/bin/env python3
"""Runs one sequence of file-system operations under a mount point and
prints a transcript: each operation with its result or errno name, then a
listing of the final tree. The same transcript is expected from ext4 and
novars (VM test fs_ops), so everything file-system specific (inode numbers,
directory sizes, block counts, lost+found) is left out.

  fsops.py run DIR      -> operations + final listing
  fsops.py list DIR     -> final listing only
"""
import ctypes, errno, os, stat, sys

libc = ctypes.CDLL(None, use_errno=True)
out = []


def rec(name, fn, *a):
    try:
        r = fn(*a)
        out.append(f"{name}: ok {r!r}" if r is not None else f"{name}: ok")
        return r
    except OSError as e:
        out.append(f"{name}: {errno.errorcode.get(e.errno, e.errno)}")
        return None


def renameat2(a, b, flags):
    AT_FDCWD = -100
    r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE = 0x01, 0x02, 0x08
FALLOC_FL_ZERO_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE = 0x10, 0x20, 0x40
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(p, mode, off, length, flags=os.O_RDWR):
    fd = os.open(p, flags)
    try:
        if libc.fallocate(fd, mode, off, length) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def pattern(n, seed=1):
    return bytes((i * 13 + seed + i // 4096) % 251 + 1 for i in range(n))


def write_file(p, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(p, flags, mode)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def read_file(p, n=1 << 20, off=0):
    fd = os.open(p, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def digest(b):
    import hashlib
    return hashlib.sha256(b).hexdigest()[:16] + f"/{len(b)}"


def listing(root, times=True):
    lines = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not (d == root and x == "lost+found"))
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            kind = stat.S_IFMT(st.st_mode)
            extra = ""
            if stat.S_ISREG(st.st_mode):
                extra = digest(read_file(p, st.st_size + 1))
            elif stat.S_ISLNK(st.st_mode):
                extra = "-> " + os.readlink(p)
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else "-"
            lines.append(f"{rel} {kind:o} {stat.S_IMODE(st.st_mode):o} {st.st_uid}:{st.st_gid} n{st.st_nlink} s{size} m{st.st_mtime_ns if times and not stat.S_ISDIR(st.st_mode) else '-'} {extra}")
    return lines


def run(root):
    os.chdir(root)
    rec("write a", write_file, "a", b"hello\n")
    rec("read a", lambda: read_file("a"))
    rec("create excl a", write_file, "a", b"x", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    rec("append a", write_file, "a", b"world\n", os.O_WRONLY | os.O_APPEND)
    rec("read a", lambda: read_file("a"))
    rec("pwrite hole", lambda: (lambda fd: (os.pwrite(fd, b"end", 3 * 4096 + 100), os.close(fd)))(os.open("sparse", os.O_WRONLY | os.O_CREAT, 0o600)))
    rec("read hole", lambda: read_file("sparse", 8192, 0) == bytes(8192))
    rec("read tail", lambda: read_file("sparse", 100, 3 * 4096 + 98))
    rec("unaligned overwrite", lambda: (lambda fd: (os.pwrite(fd, b"ABCDEFGH" * 700, 1000), os.close(fd)))(os.open("sparse", os.O_WRONLY)))
    rec("read back", lambda: digest(read_file("sparse")))
    def seeks():
        fd = os.open("sparse", os.O_RDONLY)
        try:
            r = []
            for off in (0, 4096, 8192, 12288, 12387):
                for how in (os.SEEK_DATA, os.SEEK_HOLE):
                    try:
                        r.append(os.lseek(fd, off, how))
                    except OSError as e:
                        r.append(errno.errorcode[e.errno])
            return r
        finally:
            os.close(fd)
    rec("seek data/hole", seeks)
    big = bytes((i * 7 + i // 4096) % 251 for i in range(3 * 1024 * 1024 + 777))
    rec("write big", write_file, "big", big)
    rec("read big", lambda: read_file("big", 8 << 20) == big)
    rec("writev", lambda: (lambda fd: (os.writev(fd, [b"one", b"two", b"three"]), os.close(fd)))(os.open("vec", os.O_WRONLY | os.O_CREAT, 0o644)))
    rec("pwritev", lambda: (lambda fd: (os.pwritev(fd, [b"AA", b"BB"], 5000), os.close(fd)))(os.open("vec", os.O_WRONLY)))
    rec("truncate down", os.truncate, "big", 10000)
    rec("truncate up", os.truncate, "big", 20000)
    rec("read truncated", lambda: (read_file("big", 20000)[:10000] == big[:10000], read_file("big", 20000)[10000:] == bytes(10000)))
    rec("mkdir d", os.mkdir, "d", 0o755)
    rec("mkdir d again", os.mkdir, "d", 0o755)
    rec("mkdir d/e", os.mkdir, "d/e", 0o700)
    rec("rmdir nonempty", os.rmdir, "d")
    rec("unlink dir", os.unlink, "d")
    rec("rmdir file", os.rmdir, "a")
    rec("link", os.link, "a", "d/a-link")
    rec("link dir", os.link, "d", "d-link")
    rec("nlink", lambda: os.stat("a").st_nlink)
    rec("symlink short", os.symlink, "a", "sl")
    rec("symlink long", os.symlink, "x" * 3000, "sl-long")
    rec("readlink", os.readlink, "sl")
    rec("readlink long", lambda: len(os.readlink("sl-long")))
    rec("read via symlink", lambda: read_file("sl"))
    rec("mkfifo", os.mkfifo, "fifo", 0o640)
    rec("mknod chr", os.mknod, "chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    rec("rdev", lambda: (os.major(os.stat("chr").st_rdev), os.minor(os.stat("chr").st_rdev)))
    rec("name 255", write_file, "n" * 255, b"long")
    rec("name 256", write_file, "n" * 256, b"long")
    rec("chmod", os.chmod, "a", 0o4751)
    rec("chown", os.chown, "a", 1000, 2000)
    rec("utime ns", os.utime, "a", None, False, None) if False else rec("utime ns", lambda: os.utime("a", ns=(1_000_000_123, 2_000_000_456)))
    rec("stat a", lambda: (oct(os.stat("a").st_mode), os.stat("a").st_uid, os.stat("a").st_gid, os.stat("a").st_mtime_ns, os.stat("a").st_atime_ns))
    rec("stat times ordered", lambda: os.stat("sparse").st_mtime_ns >= os.stat("a").st_mtime_ns and os.stat("sparse").st_ctime_ns >= os.stat("sparse").st_mtime_ns)
    rec("rename", os.rename, "a", "d/e/a")
    rec("rename missing", os.rename, "a", "b")
    rec("rename noreplace exists", renameat2, "big", "vec", 1)
    rec("rename noreplace", renameat2, "big", "big2", 1)
    rec("rename over file", os.rename, "vec", "big2")
    rec("rename file over dir", os.rename, "big2", "d")
    rec("rename dir over file", os.rename, "d", "sl")
    rec("mkdir f", os.mkdir, "f")
    rec("mkdir g/h", lambda: (os.mkdir("g"), os.mkdir("g/h")))
    rec("rename dir over nonempty", os.rename, "f", "g")
    rec("rename dir across", os.rename, "d/e", "g/h2")
    rec("rename dir into itself", os.rename, "g", "g/h/x")
    rec("dir nlinks", lambda: (os.stat("d").st_nlink, os.stat("g").st_nlink, os.stat(".").st_nlink))
    rec("rename dir over empty dir", os.rename, "f", "g/h")
    rec("dir nlinks after", lambda: (os.stat("g").st_nlink, os.stat(".").st_nlink))
    rec("unlink", os.unlink, "d/a-link")
    rec("nlink after unlink", lambda: os.stat("g/h2/a").st_nlink)
    rec("open unlinked", lambda: (lambda fd: (os.unlink("n" * 255), os.write(fd, b"still"), os.pread(fd, 10, 0), os.close(fd)))(os.open("n" * 255, os.O_RDWR)))
    def tmpfile(link):
        fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o640)
        try:
            os.write(fd, b"anonymous data")
            st = os.fstat(fd)
            if link:
                os.link(f"/proc/self/fd/{fd}", "from-tmpfile", follow_symlinks=True)
            return (st.st_nlink, oct(st.st_mode), os.pread(fd, 100, 0))
        finally:
            os.close(fd)
    rec("O_TMPFILE unlinked", tmpfile, False)
    rec("O_TMPFILE linked", tmpfile, True)
    rec("tmpfile nlink", lambda: os.stat("from-tmpfile").st_nlink)
    rec("exchange missing", renameat2, "from-tmpfile", "nonexistent", 2)
    rec("exchange files", renameat2, "from-tmpfile", "g/h2/a", 2)
    rec("exchanged", lambda: (read_file("from-tmpfile"), read_file("g/h2/a")))
    rec("exchange dir and file", renameat2, "g/h", "from-tmpfile", 2)
    rec("exchanged nlinks", lambda: (os.stat(".").st_nlink, os.stat("g").st_nlink, os.stat("from-tmpfile/").st_nlink if os.path.isdir("from-tmpfile") else None))
    rec("exchange back", renameat2, "g/h", "from-tmpfile", 2)
    whiteouts()
    rec("readdir", lambda: sorted(os.listdir(".")))
    rec("readdir g/h2", lambda: sorted(os.listdir("g/h2")))
    names = [f"many-{i:04}" for i in range(400)]
    rec("create 400", lambda: [write_file(n, n.encode()) for n in names] and None)
    rec("readdir 400", lambda: sorted(x for x in os.listdir(".") if x.startswith("many-")) == names)
    rec("unlink 200", lambda: [os.unlink(n) for n in names[::2]] and None)
    rec("readdir 200", lambda: sorted(x for x in os.listdir(".") if x.startswith("many-")) == names[1::2])
    rec("statvfs namemax", lambda: os.statvfs(".").f_namemax)
    fallocs()
    namespace_more()
    data_more()


def whiteouts():
    """RENAME_WHITEOUT (4): the old name becomes a 0:0 character device
    with mode 0, in the same operation; then overlayfs on top, which needs
    it for renames and uses whiteouts for deletions."""
    RW = 4
    node = lambda p: (lambda st: (oct(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), st.st_nlink, st.st_uid, st.st_gid, st.st_size))(os.lstat(p))
    rec("whiteout rename", lambda: (write_file("w1", b"white"), renameat2("w1", "w2", RW), node("w1"), read_file("w2")))
    rec("whiteout over a file", lambda: (write_file("w3", b"three"), write_file("w4", b"four"), renameat2("w3", "w4", RW), node("w3"), read_file("w4")))
    rec("whiteout noreplace exists", renameat2, "w2", "w4", RW | 1)
    rec("whiteout noreplace", lambda: (renameat2("w2", "w5", RW | 1), node("w2"), read_file("w5")))
    rec("whiteout exchange", renameat2, "w5", "w4", RW | 2)
    rec("whiteout missing", renameat2, "nothere", "w6", RW)
    rec("whiteout a dir across", lambda: (os.mkdir("wd"), os.mkdir("wd/sub"), renameat2("wd", "g/wd", RW), node("wd"), os.stat("g").st_nlink, os.stat(".").st_nlink, os.listdir("g/wd")))
    rec("whiteout a whiteout", lambda: (renameat2("w1", "w7", RW), node("w1"), node("w7")))
    rec("unlink whiteout", os.unlink, "w7")
    rec("whiteouts listed", lambda: sorted(x for x in os.listdir(".") if x.startswith("w")))
    def overlay():
        import subprocess
        for d in ("ovl/lower/d", "ovl/upper", "ovl/work", "ovl/merged"):
            os.makedirs(d)
        for n in ("keep", "gone", "moved", "d/inner"):
            write_file("ovl/lower/" + n, n.encode())
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=ovl/lower,upperdir=ovl/upper,workdir=ovl/work", "ovl/merged"],
                       check=True, capture_output=True)
        r = []
        try:
            for f, *a in ((os.unlink, "ovl/merged/gone"), (os.rename, "ovl/merged/moved", "ovl/merged/moved2"),
                          (os.rename, "ovl/merged/d", "ovl/merged/d2"), (write_file, "ovl/merged/new", b"new")):
                try:
                    f(*a)
                    r.append("ok")
                except OSError as e:
                    r.append(errno.errorcode.get(e.errno, e.errno))
            merged = sorted(os.listdir("ovl/merged"))
        finally:
            subprocess.run(["umount", "ovl/merged"], check=True)
        upper = sorted((n, oct(os.lstat("ovl/upper/" + n).st_mode)) for n in os.listdir("ovl/upper"))
        subprocess.run(["rm", "-rf", "ovl"], check=True)
        return r, merged, upper
    rec("overlayfs upper", overlay)


class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]


libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]


def readdir_with_pos(d):
    """(name, telldir before it) for the rest of stream d."""
    out = []
    while True:
        pos = libc.telldir(d)
        e = libc.readdir(d)
        if not e:
            return out
        n = e.contents.d_name.decode()
        if n not in (".", ".."):
            out.append((n, pos))


def namespace_more():
    """Readdir offsets across concurrent changes, hash collisions in the
    directory index, names of 255 bytes."""
    os.mkdir("rd")
    names = [f"e{i:03}" for i in range(120)]
    for n in names:
        write_file("rd/" + n, b"")
    def telldir_seekdir():
        d = libc.opendir(b"rd")
        try:
            first = []
            while len(first) < 40:
                pos = libc.telldir(d)
                e = libc.readdir(d)
                if not e:
                    break
                n = e.contents.d_name.decode()
                if n not in (".", ".."):
                    first.append((n, pos))
            seen = [n for n, _ in first]
            # Concurrent changes: new names, removals of names already read
            # and of names not read yet.
            unread = [n for n in names if n not in seen]
            for i in range(30):
                write_file(f"rd/new{i:02}", b"")
            for n in seen[:10] + unread[:10]:
                os.unlink("rd/" + n)
            # Drop libc's buffer: continue from the offset, read afresh.
            libc.seekdir(d, libc.telldir(d))
            rest = readdir_with_pos(d)
            restn = [n for n, _ in rest]
            once = all(restn.count(n) == 1 for n in unread[10:])
            no_repeat = not (set(restn) & set(seen)) and len(restn) == len(set(restn))
            no_deleted = not (set(restn) & set(unread[:10]))
            # seekdir back to an offset taken before the changes.
            n20, p20 = first[20]
            libc.seekdir(d, p20)
            e = libc.readdir(d)
            again = e.contents.d_name.decode() if e else None
            # and to one taken after them.
            mid_n, mid_p = rest[len(rest) // 2]
            libc.seekdir(d, mid_p)
            e = libc.readdir(d)
            again2 = e.contents.d_name.decode() if e else None
            return (len(seen), once, no_repeat, no_deleted, again == n20, again2 == mid_n)
        finally:
            libc.closedir(d)
    rec("telldir/seekdir across changes", telldir_seekdir)
    rec("readdir after changes", lambda: (len(os.listdir("rd")), all(os.path.exists("rd/" + n) for n in os.listdir("rd"))))
    # Which names were removed depends on the order of readdir.
    rec("remove rd", lambda: __import__("shutil").rmtree("rd"))
    # Names whose FNV-1a hashes (novars's directory index) are equal.
    pairs = [("collide-63438", "collide-318226"), ("collide-63439", "collide-318227"), ("collide-63436", "collide-318228")]
    def collisions():
        os.mkdir("hc")
        r = []
        for a, b in pairs:
            write_file("hc/" + a, a.encode())
            r.append(os.path.exists("hc/" + b))
            write_file("hc/" + b, b.encode())
            r.append((read_file("hc/" + a), read_file("hc/" + b)))
        os.unlink("hc/" + pairs[0][0])
        r.append((os.path.exists("hc/" + pairs[0][0]), read_file("hc/" + pairs[0][1])))
        os.rename("hc/" + pairs[1][1], "hc/" + pairs[1][0])
        r.append((sorted(os.listdir("hc")), read_file("hc/" + pairs[1][0])))
        os.link("hc/" + pairs[2][0], "hc/" + pairs[0][0])
        r.append(sorted(os.listdir("hc")))
        return r
    rec("hash collisions", collisions)
    rec("name 255 ops", lambda: (os.mkdir("L" * 255), os.rename("L" * 255, "M" * 255), os.symlink("t", "M" * 255 + "/" + "s" * 255),
                                 os.readlink("M" * 255 + "/" + "s" * 255), os.listdir("M" * 255)))
    rec("name 256 lookup", os.stat, "x" * 256)
    rec("name 256 rename", os.rename, "M" * 255, "N" * 256)


STATX_BTIME, STATX_ATTR_DAX, AT_FDCWD = 0x800, 0x200000, -100


def statx(p):
    buf = ctypes.create_string_buffer(256)
    r = libc.syscall(332, AT_FDCWD, p.encode(), 0x100, 0xfff, buf)  # __NR_statx (x86_64), AT_SYMLINK_NOFOLLOW
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    import struct
    mask, = struct.unpack_from("I", buf, 0)
    attrs, = struct.unpack_from("Q", buf, 8)
    amask, = struct.unpack_from("Q", buf, 56)
    bsec, bnsec = struct.unpack_from("qI", buf, 80)
    msec, mnsec = struct.unpack_from("qI", buf, 112)
    return mask, attrs, amask, (bsec, bnsec), (msec, mnsec)


def data_more():
    """O_DIRECT, preadv2/pwritev2 flags, copy_file_range, sendfile,
    splice, fsync/fdatasync/syncfs, statx (btime, STATX_ATTR_DAX)."""
    import mmap
    def odirect():
        fd = os.open("od", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        try:
            buf = mmap.mmap(-1, 8192)
            buf.write(pattern(8192, 3))
            n = os.pwrite(fd, buf, 4096)
            rb = mmap.mmap(-1, 8192)
            m = os.preadv(fd, [rb], 4096)
            return n, m, rb[:] == pattern(8192, 3), os.fstat(fd).st_size
        finally:
            os.close(fd)
    rec("O_DIRECT write/read", odirect)
    def v2():
        fd = os.open("v2", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            r = []
            for name in ("RWF_HIPRI", "RWF_DSYNC", "RWF_SYNC", "RWF_APPEND", "RWF_NOWAIT"):
                flag = getattr(os, name)
                try:
                    r.append((name, os.pwritev(fd, [b"ab", name.encode()], 3, flag)))
                except OSError as e:
                    r.append((name, errno.errorcode[e.errno]))
                try:
                    b = bytearray(40)
                    r.append((name, os.preadv(fd, [b], 0, flag), bytes(b)))
                except OSError as e:
                    r.append((name, errno.errorcode[e.errno]))
            r.append(os.fstat(fd).st_size)
            return r
        finally:
            os.close(fd)
    rec("preadv2/pwritev2 flags", v2)
    src = pattern(300000, 5)
    write_file("cf-src", src)
    def cfr():
        a = os.open("cf-src", os.O_RDONLY)
        b = os.open("cf-dst", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            n = os.copy_file_range(a, b, 200000, 1000, 5000)
            n2 = os.copy_file_range(a, b, 100000)
            return n, n2, os.fstat(b).st_size
        finally:
            os.close(a)
            os.close(b)
    rec("copy_file_range", cfr)
    rec("copied bytes", lambda: (lambda d: (d[:100000] == src[:100000], d[100000:] == src[96000:201000]))(read_file("cf-dst")))
    def sendfile():
        a = os.open("cf-src", os.O_RDONLY)
        b = os.open("sf-dst", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            n = 0
            while n < 150000:
                k = os.sendfile(b, a, 7 + n, 150000 - n)
                if k <= 0:
                    break
                n += k
            return n, read_file("sf-dst") == src[7:150007]
        finally:
            os.close(a)
            os.close(b)
    rec("sendfile", sendfile)
    def splice():
        a = os.open("cf-src", os.O_RDONLY)
        b = os.open("sp-dst", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        r, w = os.pipe()
        try:
            total = 0
            while total < 100000:
                k = os.splice(a, w, min(65536, 100000 - total), offset_src=3333 + total)
                k2 = os.splice(r, b, k)
                total += k2
            return total, read_file("sp-dst") == src[3333:103333]
        finally:
            for f in (a, b, r, w):
                os.close(f)
    rec("splice", splice)
    def syncs():
        fd = os.open("cf-dst", os.O_RDWR)
        dfd = os.open(".", os.O_RDONLY)
        try:
            libc.syncfs.argtypes = [ctypes.c_int]
            return (os.fsync(fd), os.fdatasync(fd), os.fsync(dfd), libc.syncfs(fd), os.sync())
        finally:
            os.close(fd)
            os.close(dfd)
    rec("fsync/fdatasync/syncfs", syncs)
    def uring():
        """io_uring reads and writes (fio), verified; fio's exit status,
        the file's size and its digest."""
        import shutil, subprocess
        if not shutil.which("fio"):
            return "no fio"
        r = subprocess.run(["fio", "--name=uring", "--filename=uring", "--ioengine=io_uring", "--rw=randwrite",
                            "--bs=4k", "--size=512k", "--iodepth=8", "--randseed=7", "--verify=crc32c",
                            "--do_verify=1", "--direct=1", "--verify_state_save=0", "--output=/dev/null"], capture_output=True)
        r2 = subprocess.run(["fio", "--name=uring2", "--filename=uring", "--ioengine=io_uring", "--rw=read",
                             "--bs=64k", "--size=512k", "--iodepth=4", "--output=/dev/null"], capture_output=True)
        size = os.stat("uring").st_size
        os.unlink("uring")  # fio's verify headers hold times
        return r.returncode, r2.returncode, size
    rec("io_uring (fio)", uring)
    def sx():
        r = []
        for p in ("cf-src", "rd", "sl"):
            mask, attrs, amask, bt, mt = statx(p)
            r.append((p, bool(mask & STATX_BTIME), bt[0] > 0, bool(attrs & STATX_ATTR_DAX), bool(amask & STATX_ATTR_DAX)))
        return r
    rec("statx btime/dax", sx)
    rec("lchown/lutimes symlink", lambda: (os.chown("sl", 7, 8, follow_symlinks=False), os.utime("sl", ns=(5, 6_000_000_007), follow_symlinks=False),
                                           (lambda st: (st.st_uid, st.st_gid, st.st_mtime_ns))(os.lstat("sl")), os.stat("sl").st_uid))
    rec("utimens ns", lambda: (os.utime("cf-src", ns=(123_456_789_012_345_678, 987_654_321_999_999_999)), statx("cf-src")[4], os.stat("cf-src").st_atime_ns))
    rec("utimens omit/now", lambda: (lambda m: (os.utime("cf-src"), statx("cf-src")[4] != m))(statx("cf-src")[4]))


def fallocs():
    """fallocate in every mode ext4 supports on DAX, and its errors.
    Block counts differ between file systems (novars counts its log
    pages), so they are compared as lower bounds of what must have been
    allocated or freed."""
    blocks = lambda p: os.stat(p).st_blocks
    st = lambda p: (os.stat(p).st_size, digest(read_file(p, 1 << 22)))
    rec("falloc extend", lambda: (write_file("fa", b"x" * 100), fallocate("fa", 0, 0, 10000), st("fa"), blocks("fa") >= 24)[1:])
    rec("falloc read zeros", lambda: read_file("fa", 20000) == b"x" * 100 + bytes(9900))
    b0 = blocks("fa")
    rec("falloc keep_size past eof", lambda: (fallocate("fa", FALLOC_FL_KEEP_SIZE, 10000, 1 << 20), st("fa"), blocks("fa") - b0 >= 2040, read_file("fa", 10, 10000)))
    rec("falloc write into prealloc", lambda: (lambda fd: (os.pwrite(fd, b"inside", 50000), os.close(fd)))(os.open("fa", os.O_WRONLY)))
    rec("falloc truncate into prealloc", lambda: (os.truncate("fa", 70000), st("fa"), read_file("fa", 10, 65000) == bytes(10)))
    rec("falloc inside, no change", lambda: (fallocate("fa", 0, 0, 4096), st("fa")))
    rec("falloc unaligned extend", lambda: (write_file("fu", b"y" * 5000), fallocate("fu", 0, 7000, 3), st("fu")))
    data = pattern(64 * 1024)
    rec("punch setup", write_file, "fp", data)
    b1 = blocks("fp")
    rec("punch hole", lambda: (fallocate("fp", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 25000), st("fp"), b1 - blocks("fp") >= 32))
    rec("punched bytes", lambda: (lambda b: (b[:5000] == data[:5000], b[5000:30000] == bytes(25000), b[30000:] == data[30000:]))(read_file("fp")))
    def seeks(p, offs):
        fd = os.open(p, os.O_RDONLY)
        try:
            r = []
            for off in offs:
                for how in (os.SEEK_DATA, os.SEEK_HOLE):
                    try:
                        r.append(os.lseek(fd, off, how))
                    except OSError as e:
                        r.append(errno.errorcode[e.errno])
            return r
        finally:
            os.close(fd)
    rec("punch seeks", seeks, "fp", (0, 4096, 8192, 20000, 28672, 40000))
    rec("punch within a block", lambda: (fallocate("fp", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 40000, 100), read_file("fp", 300, 39900) == data[39900:40000] + bytes(100) + data[40100:40200]))
    rec("punch past eof", lambda: (fallocate("fp", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 4096), st("fp")))
    rec("punch to eof and beyond", lambda: (fallocate("fp", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 60000, 1 << 20), st("fp")))
    rec("punch without keep_size", fallocate, "fp", FALLOC_FL_PUNCH_HOLE, 0, 4096)
    data2 = pattern(48 * 1024, 7)
    rec("zero setup", write_file, "fz", data2)
    rec("zero range", lambda: (fallocate("fz", FALLOC_FL_ZERO_RANGE, 3000, 17000), st("fz")))
    rec("zeroed bytes", lambda: (lambda b: (b[:3000] == data2[:3000], b[3000:20000] == bytes(17000), b[20000:] == data2[20000:]))(read_file("fz")))
    rec("zero range extends", lambda: (fallocate("fz", FALLOC_FL_ZERO_RANGE, 45000, 10000), st("fz")))
    b2 = blocks("fz")
    rec("zero range keep_size past eof", lambda: (fallocate("fz", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 60000, 40000), st("fz"), blocks("fz") - b2 >= 72))
    rec("zero range on a hole", lambda: (fallocate("sparse", FALLOC_FL_ZERO_RANGE, 100, 5000), digest(read_file("sparse"))))
    rec("falloc enospc", lambda: (write_file("fe", b""), fallocate("fe", FALLOC_FL_KEEP_SIZE, 0, 1 << 40)))
    rec("unlink after enospc", os.unlink, "fe")
    rec("falloc unsupported mode", fallocate, "fa", FALLOC_FL_UNSHARE_RANGE, 0, 4096)
    rec("falloc punch|zero", fallocate, "fa", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    rec("falloc read-only fd", fallocate, "fa", 0, 0, 4096, os.O_RDONLY)
    rec("falloc zero length", fallocate, "fa", 0, 0, 0)
    rec("falloc negative offset", fallocate, "fa", 0, -1, 4096)
    rec("falloc too big", fallocate, "fa", 0, (1 << 62), 1 << 62)
    rec("falloc suid cleared", lambda: (os.chmod("fu", 0o6755), fallocate("fu", 0, 0, 8192), oct(os.stat("fu").st_mode)))
    d3 = pattern(16 * 4096, 11)
    rec("shift setup", write_file, "fs", d3)
    rec("collapse range", lambda: (fallocate("fs", FALLOC_FL_COLLAPSE_RANGE, 3 * 4096, 2 * 4096), st("fs"), read_file("fs") == d3[:3 * 4096] + d3[5 * 4096:]))
    d4 = d3[:3 * 4096] + d3[5 * 4096:]
    rec("insert range", lambda: (fallocate("fs", FALLOC_FL_INSERT_RANGE, 2 * 4096, 3 * 4096), st("fs"), read_file("fs") == d4[:2 * 4096] + bytes(3 * 4096) + d4[2 * 4096:]))
    rec("inserted hole", seeks, "fs", (0, 8192, 12288, 20480))
    rec("collapse unaligned", fallocate, "fs", FALLOC_FL_COLLAPSE_RANGE, 100, 4096)
    rec("collapse to eof", fallocate, "fs", FALLOC_FL_COLLAPSE_RANGE, 4096, os.stat("fs").st_size - 4096)
    rec("insert at eof", fallocate, "fs", FALLOC_FL_INSERT_RANGE, os.stat("fs").st_size, 4096)
    rec("insert unaligned", fallocate, "fs", FALLOC_FL_INSERT_RANGE, 4096, 100)
    rec("collapse keep_size", fallocate, "fs", FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    rec("collapse|insert", fallocate, "fs", FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE, 0, 4096)
    rec("collapse partial tail", lambda: (write_file("ft", d3[:5 * 4096 + 123]), fallocate("ft", FALLOC_FL_COLLAPSE_RANGE, 0, 4096), st("ft")))
    rec("insert sparse", lambda: (fallocate("sparse", FALLOC_FL_INSERT_RANGE, 4096, 8192), st("sparse"), seeks("sparse", (0, 4096, 12288, 16384))))
    rec("falloc times", lambda: (os.utime("fu", ns=(1, 2)), fallocate("fu", FALLOC_FL_KEEP_SIZE, 0, 100), os.stat("fu").st_mtime_ns > 2, os.stat("fu").st_ctime_ns >= os.stat("fu").st_mtime_ns))


if __name__ == "__main__":
    cmd, root = sys.argv[1], sys.argv[2]
    if cmd == "run":
        run(root)
        out.append("== tree")
    # Wall-clock times differ between runs: only `list` (same run) has them.
    out.extend(listing(root, times=(cmd == "list")))
    print("\n".join(out))
