#!/usr/bin/env python3
"""Hostile images for the kernel (issue 14): the cases of the Rust
mutation engine (`imgfuzz/`, the `novars-imgfuzz` binary; the same engine
as the host fuzz of fsck), each mounted, worked on and unmounted.

  fuzzimg.py run BASE DEV MNT COUNT SEED   the named regressions, then COUNT
                                           random cases of SEED

BASE is an image file (mkfs -d of a tree, then worked on, so that logs hold
every entry kind, tables are grown and an allocator record exists).
`novars-imgfuzz write BASE CASE DEV` writes each case's image to DEV and
says what it mutated. Every 8th image (NOVARS_FUZZ_REPAIR_EVERY) is first repaired with
`fsck.novars -fy`: if fsck says it is clean or corrected (exit 0 or 1),
the kernel must mount it, and after the work and the unmount `fsck.novars
-fn` must call it clean (exit 0). Any other image is mounted as it is: a
refused mount must answer EINVAL, EUCLEAN or EROFS. A mounted image is
walked (stat, readdir, readlink, every file read), written (create, write,
append, punch, truncate, rename, unlink, mkdir, a store through a mapping)
and unmounted. Errors of those calls are fine (EUCLEAN for a damaged
inode); an errno outside the expected set, a mount or unmount slower than
20 s, or a Python exception fails the run. The kernel log is judged by the
harness (no BUG, WARNING, Oops, KASAN, lockdep, hang).

Each image's case and mutations are printed before it is mounted, so a
crash names its case; `novars-imgfuzz write BASE CASE DEV` rebuilds it.
"""
import ctypes
import errno
import mmap
import os
import shutil
import subprocess
import sys
import time

OK_ERRNOS = {errno.EUCLEAN, errno.EIO, errno.ENOENT, errno.ENOSPC, errno.EROFS, errno.EINVAL,
             errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.EFBIG, errno.EBUSY,
             errno.ENAMETOOLONG, errno.EMLINK, errno.ENOMEM, errno.EOVERFLOW, errno.ELOOP,
             errno.ENODATA, errno.EPERM, errno.EACCES, errno.ENXIO, errno.ESPIPE}
MOUNT_ERRNOS = {errno.EINVAL, errno.EUCLEAN, errno.EROFS}

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def mount(dev, mnt):
    # errors= given: a mutated superblock may ask for errors=panic, which
    # the kernel would obey (as ext4 does; vm:errors_panic tests that).
    t = time.monotonic()
    r = libc.mount(dev.encode(), mnt.encode(), b"novars", 0, b"errors=remount-ro")
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


def tool(name):
    """A workspace binary: on PATH in the guest, else in $NOVARS_BIN."""
    return shutil.which(name) or os.path.join(os.environ.get("NOVARS_BIN", ""), name)


IMGFUZZ, FSCK = tool("novars-imgfuzz"), tool("fsck.novars")
# Every REPAIR_EVERY-th image is repaired by fsck -fy before the mount.
REPAIR_EVERY = max(1, int(os.environ.get("NOVARS_FUZZ_REPAIR_EVERY", "8")))


def fsck(args, dev):
    """Runs fsck.novars; its exit status and the last lines it printed."""
    r = subprocess.run([FSCK, *args, dev], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
    return r.returncode, " / ".join(tail)


def run(base, dev, mnt, count, seed):
    cases = subprocess.run([IMGFUZZ, "cases", str(seed), str(count)], check=True,
                           capture_output=True, text=True).stdout.split()
    refused = mounted = repaired = 0
    slow = 0.0
    t0 = time.monotonic()
    for i, case in enumerate(cases):
        # The tool opens, writes, syncs and closes DEV: with no opener left,
        # the block device's page cache is dropped, so the mount and fsck
        # read what it wrote.
        w = subprocess.run([IMGFUZZ, "write", base, case, dev], capture_output=True, text=True)
        if w.returncode:
            print(f"FAIL: image {i} ({case}): novars-imgfuzz: {w.stderr.strip()}", flush=True)
            sys.exit(1)
        what = w.stdout.strip()
        bad = []
        # Every REPAIR_EVERY-th image is repaired first; then fsck's word that it is
        # clean or corrected binds the kernel.
        fixed = None
        if i % REPAIR_EVERY == REPAIR_EVERY - 1:
            rc, out = fsck(["-fy"], dev)
            what += f"; fsck -fy exit {rc}"
            if rc in (0, 1):
                fixed = rc
            elif rc & ~(1 | 4 | 8) or rc & (1 | 8) == (1 | 8):
                # Beyond fsck(8)'s corrected/uncorrected/operational, or
                # repairs claimed by a run that could not check.
                bad.append(f"fsck -fy exited {rc}: {out}")
        print(f"image {i}: {what}", flush=True)
        e, dt = mount(dev, mnt)
        slow = max(slow, dt)
        if dt > 20:
            bad.append(f"mount took {dt:.1f} s")
        if e:
            refused += 1
            if e not in MOUNT_ERRNOS:
                bad.append(f"mount failed with {errno.errorcode.get(e, e)}")
            if fixed is not None:
                bad.append(f"fsck -fy exited {fixed} but the mount failed with "
                           f"{errno.errorcode.get(e, e)}")
        else:
            mounted += 1
            exercise(mnt, bad)
            t = time.monotonic()
            if libc.umount2(mnt.encode(), 0):
                bad.append(f"umount: {os.strerror(ctypes.get_errno())}")
            if time.monotonic() - t > 20:
                bad.append("umount took over 20 s")
            if fixed is not None and not bad:
                repaired += 1
                rc, out = fsck(["-fn"], dev)
                if rc != 0:
                    bad.append(f"repaired, mounted, worked on: fsck -fn exited {rc}: {out}")
        if bad:
            print(f"FAIL: image {i} ({what}): " + "; ".join(bad[:5]), flush=True)
            sys.exit(1)
    print(f"ok: {len(cases)} images ({len(cases) - count} named): {mounted} mounted and worked "
          f"on ({repaired} of them repaired by fsck -fy first, clean after), {refused} refused; "
          f"slowest mount {slow:.2f} s; {time.monotonic() - t0:.0f} s", flush=True)


def main(argv):
    if len(argv) == 7 and argv[1] == "run":
        run(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
