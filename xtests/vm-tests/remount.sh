#!/bin/sh
# remount,ro leaves novars clean on media (allocator record, CLEAN: fsck -n quick-checks it while mounted) and refuses writes with EROFS; remount,rw clears CLEAN and writes again; busy file systems and read-only devices refuse as on ext4.
# flavours: normal
# (debug on request: `cargo xt test --vm-only --flavour debug --filter remount`)
# nvdimms: 1
# timeout: 300
# cost: 35
. "$NOVARS_GUEST_LIB"
set -e
load_novars
M=/tmp/m
mkdir -p $M

# errno of the syscalls a read-only file system must refuse, as names.
writes() {
    python3 -I - "$1" <<'PY'
import ctypes, errno, os, sys
d = sys.argv[1]
def e(f, *a):
    try:
        f(*a)
        return "ok"
    except OSError as x:
        return errno.errorcode[x.errno]
libc = ctypes.CDLL(None, use_errno=True)
def falloc(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        if libc.fallocate(fd, 0, ctypes.c_int64(0), ctypes.c_int64(4096)) != 0:
            raise OSError(ctypes.get_errno(), "fallocate")
    finally:
        os.close(fd)
print(" ".join([
    e(os.open, f"{d}/new", os.O_CREAT | os.O_WRONLY, 0o644),
    e(os.open, f"{d}/f", os.O_WRONLY),
    e(os.mkdir, f"{d}/nd"), e(os.unlink, f"{d}/f"), e(os.rename, f"{d}/f", f"{d}/g"),
    e(os.chmod, f"{d}/f", 0o600), e(os.truncate, f"{d}/f", 1), e(os.symlink, "x", f"{d}/s"),
    e(os.link, f"{d}/f", f"{d}/h"), e(os.utime, f"{d}/f"), e(falloc, f"{d}/f")]))
PY
}

# remount(2) with MS_RDONLY or without, printing OK or the errno name.
remount() {
    python3 -I - "$1" "$2" <<'PY'
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT = 1, 32
flags = MS_REMOUNT | (MS_RDONLY if sys.argv[2] == "ro" else 0)
r = libc.mount(None, sys.argv[1].encode(), None, flags, None)
print("OK" if r == 0 else errno.errorcode[ctypes.get_errno()])
PY
}

# The same sequence on ext4 and novars: write refusals and the errors of
# remounts (busy, read-only device) must be ext4's.
sequence() {
    echo data > $M/f
    exec 3>>$M/f
    echo "ro while open for writing: $(remount $M ro)"
    exec 3>&-
    echo gone > $M/orphan
    exec 3<$M/orphan
    rm $M/orphan
    echo "ro with an open unlinked file: $(remount $M ro)"
    exec 3<&-
    echo "ro: $(remount $M ro)"
    grep -q " $M [a-z0-9]* ro," /proc/mounts && echo "ro in /proc/mounts"
    echo "writes on ro: $(writes $M)"
    echo "read on ro: $(cat $M/f)"
    echo "rw: $(remount $M rw)"
    echo "writes on rw: $(writes $M)"
    echo data > $M/f
    echo "ro again: $(remount $M ro)"
    blockdev --setro /dev/pmem0
    echo "rw on a read-only device: $(remount $M rw)"
    blockdev --setrw /dev/pmem0
    echo "rw after setrw: $(remount $M rw)"
    rm -rf $M/nd $M/s $M/h $M/new $M/g
}

mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 $M
sequence > /tmp/ext4.seq
umount $M
must "$MKFS" -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M
sequence > /tmp/novars.seq
cat /tmp/novars.seq
diff -u /tmp/ext4.seq /tmp/novars.seq || fail "remount on novars differs from ext4 (- ext4, + novars)"
ok "remount ro/rw, EROFS and EBUSY/EACCES cases as on ext4"

# Going read-only leaves the media as a clean unmount does.
mkdir $M/dir && i=0 && while [ $i -lt 50 ]; do echo $i > $M/dir/f$i; i=$((i+1)); done
[ "$(remount $M ro)" = OK ] || fail "remount,ro"
# No `blockdev --flushbufs`: fsck drops the block device's page cache
# itself (DAX stores bypass it; an earlier fsck left the old superblock
# there, so this check is also that fix's regression test).
"$FSCK" -n /dev/pmem0 > /tmp/fsck.out 2>/dev/null || fail "fsck -n after remount,ro: $(cat /tmp/fsck.out)"
grep -q ': clean,' /tmp/fsck.out || fail "not clean on media after remount,ro: $(cat /tmp/fsck.out)"
"$FSCK" -fn /dev/pmem0 > /tmp/fsck.out 2>/dev/null || fail "fsck -fn after remount,ro: $(cat /tmp/fsck.out)"
ok "fsck -n: clean (quick check) and -fn clean while mounted read-only"
[ "$(remount $M rw)" = OK ] || fail "remount,rw"
"$FSCK" -n /dev/pmem0 > /tmp/fsck.out 2>/dev/null || true
grep -q ': clean,' /tmp/fsck.out && fail "CLEAN still set after remount,rw"
echo more > $M/dir/more
ok "remount,rw clears CLEAN; writes work"

# remount,ro then unmount: the next mount uses the record (no scan).
[ "$(remount $M ro)" = OK ] || fail "remount,ro"
must umount $M
kmsg "remount: mount after remount,ro + umount"
must novars_mount /dev/pmem0 $M
dmesg | sed -n '/remount: mount after remount,ro + umount/,$p' | grep -q "not cleanly unmounted" && fail "mount after remount,ro + umount scanned"
[ "$(cat $M/dir/more)" = more ] || fail "data written after remount,rw lost"
must umount $M
must "$FSCK" -fn /dev/pmem0
ok "unmount after remount,ro is clean; the next mount does not scan"
must rmmod novars
