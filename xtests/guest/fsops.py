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
    rec("readdir", lambda: sorted(os.listdir(".")))
    rec("readdir g/h2", lambda: sorted(os.listdir("g/h2")))
    names = [f"many-{i:04}" for i in range(400)]
    rec("create 400", lambda: [write_file(n, n.encode()) for n in names] and None)
    rec("readdir 400", lambda: sorted(x for x in os.listdir(".") if x.startswith("many-")) == names)
    rec("unlink 200", lambda: [os.unlink(n) for n in names[::2]] and None)
    rec("readdir 200", lambda: sorted(x for x in os.listdir(".") if x.startswith("many-")) == names[1::2])
    rec("statvfs namemax", lambda: os.statvfs(".").f_namemax)
    fallocs()


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
    rec("falloc times", lambda: (os.utime("fu", ns=(1, 2)), fallocate("fu", FALLOC_FL_KEEP_SIZE, 0, 100), os.stat("fu").st_mtime_ns > 2, os.stat("fu").st_ctime_ns >= os.stat("fu").st_mtime_ns))


if __name__ == "__main__":
    cmd, root = sys.argv[1], sys.argv[2]
    if cmd == "run":
        run(root)
        out.append("== tree")
    # Wall-clock times differ between runs: only `list` (same run) has them.
    out.extend(listing(root, times=(cmd == "list")))
    print("\n".join(out))
