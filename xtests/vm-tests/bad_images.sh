#!/bin/sh
# Foreign, zeroed, random, non-DAX and damaged images never oops: mount fails with one clear log line and EINVAL or EUCLEAN; a damaged primary superblock falls back to the backup.
# flavours: normal
# (not on debug by default: 2-3 min there, over the CI budget of `cargo xt test`; run it with
#  `cargo xt test --vm-only --flavour debug --filter bad_images` after changes to its code paths)
# nvdimms: 1
# timeout: 600
# cost: 60
. "$NOVARS_GUEST_LIB"
set -e
load_novars
IMG="python3 $NOVARS_ROOT/xtests/guest/novars_img.py"
mkdir -p /tmp/m
expect() { # expect ERRNO LOGTEXT description
    got=$($IMG mount /dev/pmem0 /tmp/m ro)
    if [ "$got" = OK ]; then umount /tmp/m; fail "$3: mounted, expected $1"; fi
    [ "$got" = "$1" ] || fail "$3: mount failed with $got, expected $1"
    dmesg | tail -5 | grep -q "novars: .*$2" || fail "$3: no '$2' line in the kernel log"
    ok "$3: $got, logged '$2'"
}
fresh() { "$MKFS" -q -f -l 1 /dev/pmem0; }

mkfs.ext4 -q -F /dev/pmem0 && expect EINVAL "not a novars file system" "ext4 image"
mkfs.xfs -q -f /dev/pmem0 && expect EINVAL "not a novars file system" "xfs image"
dd if=/dev/zero of=/dev/pmem0 bs=1M count=8 status=none && expect EINVAL "not a novars file system" "zeroed device"
dd if=/dev/urandom of=/dev/pmem0 bs=1M count=8 status=none && expect EINVAL "not a novars file system" "random bytes"

# A reformatted device whose last block still holds a novars backup: the
# primary has no novars magic, so the backup must not be used (issue 14).
fresh; dd if=/dev/zero of=/dev/pmem0 bs=1M count=1 conv=notrunc status=none \
    && expect EINVAL "not a novars file system" "no primary magic, old novars backup"
fresh; mkfs.ext4 -q -F /dev/pmem0 16M && expect EINVAL "not a novars file system" "ext4 over novars, novars backup left"
fresh; $IMG damage /dev/pmem0 sb-both && expect EUCLEAN "corrupted superblock" "both superblocks damaged"
fresh; $IMG damage /dev/pmem0 inode-csum 1 && expect EUCLEAN "inode 1: invalid inode record" "root inode checksum"
fresh; $IMG damage /dev/pmem0 sb-primary
[ "$($IMG mount /dev/pmem0 /tmp/m ro)" = OK ] || fail "primary superblock damaged: backup not used"
dmesg | tail -3 | grep -q "using the backup" || fail "no backup-superblock line"
umount /tmp/m
ok "damaged primary superblock: mounted from the backup"

# A damaged log on a clean image: the mount succeeds (no scan), the inode
# fails with EUCLEAN when used (an unclean image: below).
# The file's one WRITE is in its record (a slot log), or, with
# `-O ^slot_log`, in a log page.
mkdir -p /tmp/src && echo data > /tmp/src/file
for feat in ^slot_log slot_log; do
    "$MKFS" -q -f -l 1 -O $feat -d /tmp/src /dev/pmem0
    $IMG damage /dev/pmem0 log-entry 3
    [ "$($IMG mount /dev/pmem0 /tmp/m ro)" = OK ] || fail "$feat: clean image with one bad log did not mount"
    cat /tmp/m/file 2>/tmp/err && fail "$feat: read a file whose log is corrupt"
    grep -q "Structure needs cleaning" /tmp/err || fail "$feat: expected EUCLEAN, got: $(cat /tmp/err)"
    umount /tmp/m
    ok "corrupt file log (-O $feat): EUCLEAN on access"
done
# Unclean, the mount leaves the scan to a thread (the free-space rebuild;
# every change waits for it): it finds the damage, logs it, and
# errors=remount-ro applies. The first change fails with EUCLEAN if it
# waited for the rebuild, with EROFS if the rebuild had failed before it.
$IMG damage /dev/pmem0 unclean
dmesg -C
novars_mount /dev/pmem0 /tmp/m || fail "unclean image with a corrupt log: the mount failed"
touch /tmp/m/new 2>/tmp/err && fail "unclean image with a corrupt log: a change worked"
grep -Eq "Structure needs cleaning|Read-only file system" /tmp/err || fail "unclean image with a corrupt log: expected EUCLEAN or EROFS, got: $(cat /tmp/err)"
grep -q '^/dev/pmem0 /tmp/m novars ro,' /proc/mounts || fail "unclean image with a corrupt log: not read-only after the error: $(grep pmem0 /proc/mounts)"
dmesg | grep -q "inode 3: log entry checksum mismatch" || fail "unclean image with a corrupt log: no log line for the inode"
dmesg | grep -q "free space could not be rebuilt.*remounting read-only" || fail "unclean image with a corrupt log: no log line for the rebuild"
touch /tmp/m/new2 2>/tmp/err && fail "unclean image with a corrupt log: a change worked after the error"
grep -q "Read-only file system" /tmp/err || fail "unclean image with a corrupt log: expected EROFS after the error, got: $(cat /tmp/err)"
umount /tmp/m
ok "unclean image with a corrupt log: mounts; the rebuild finds the damage (logged, read-only; the change fails)"

# errors= with damage found while mounted (issue 14), as on ext4: the
# superblock records the error (fsck -n then exits 4), continue keeps the
# mount writable, remount-ro (the default) makes it read-only. (panic is
# errors_panic.sh: it stops the VM.)
for mode in continue remount-ro; do
    "$MKFS" -q -f -l 1 -d /tmp/src /dev/pmem0
    $IMG damage /dev/pmem0 log-entry 3
    novars_mount -o errors=$mode /dev/pmem0 /tmp/m || fail "mount with errors=$mode"
    cat /tmp/m/file 2>/tmp/err && fail "errors=$mode: read a file whose log is corrupt"
    grep -q "Structure needs cleaning" /tmp/err || fail "errors=$mode: expected EUCLEAN, got: $(cat /tmp/err)"
    dmesg | tail -3 | grep -q "inode 3: .*run fsck.novars" || fail "errors=$mode: no log line"
    if [ $mode = continue ]; then
        touch /tmp/m/after 2>/dev/null || fail "errors=continue: the mount stopped taking changes"
        grep -q '^/dev/pmem0 /tmp/m novars rw,' /proc/mounts || fail "errors=continue: not read-write: $(grep pmem0 /proc/mounts)"
    else
        dmesg | tail -3 | grep -q "remounting read-only" || fail "errors=remount-ro: no remount line"
        touch /tmp/m/after 2>/tmp/err && fail "errors=remount-ro: a change after the error worked"
        grep -q "Read-only file system" /tmp/err || fail "errors=remount-ro: expected EROFS, got $(cat /tmp/err)"
        grep -q '^/dev/pmem0 /tmp/m novars ro,' /proc/mounts || fail "errors=remount-ro: /proc/mounts says $(grep pmem0 /proc/mounts)"
    fi
    umount /tmp/m
    rc=0; "$FSCK" -n /dev/pmem0 > /tmp/fsck.out 2>&1 || rc=$?
    [ $rc = 4 ] || fail "errors=$mode: fsck -n exited $rc after the error, want 4: $(cat /tmp/fsck.out)"
    ok "errors=$mode: EUCLEAN, logged, superblock marked, $([ $mode = continue ] && echo still writable || echo read-only)"
done

# Issue 14's regression: a size of u64::MAX with a valid checksum once
# mounted, showed size -1, and a punch hole overflowed (kernel BUG).
"$MKFS" -q -f -l 1 -d /tmp/src /dev/pmem0
$IMG damage /dev/pmem0 inode-size 3
[ "$($IMG mount /dev/pmem0 /tmp/m)" = OK ] || fail "clean image with one bad inode did not mount"
stat /tmp/m/file 2>/tmp/err && fail "stat of an inode whose size is u64::MAX worked"
grep -q "Structure needs cleaning" /tmp/err || fail "expected EUCLEAN, got: $(cat /tmp/err)"
fallocate -p -o 0 -l 4096 /tmp/m/file 2>/dev/null && fail "punch in an inode whose size is u64::MAX worked"
dmesg | tail -3 | grep -q "inode 3: invalid inode record" || fail "no log line for the bad size"
umount /tmp/m
ok "inode size u64::MAX: EUCLEAN on access, no overflow"

# A block device without DAX.
dd if=/dev/zero of=/tmp/loop.img bs=1M count=64 status=none
"$MKFS" -q -f /tmp/loop.img
LOOP=$(losetup -f --show /tmp/loop.img)
got=$(python3 -c "
import ctypes, errno; l = ctypes.CDLL(None, use_errno=True)
r = l.mount(b'$LOOP', b'/tmp/m', b'novars', ctypes.c_ulong(1), None)
print('OK' if r == 0 else errno.errorcode[ctypes.get_errno()])")
losetup -d "$LOOP"
[ "$got" = EINVAL ] || fail "non-DAX device: $got"
dmesg | tail -3 | grep -q "does not support DAX" || fail "no DAX message"
ok "non-DAX block device: EINVAL, 'does not support DAX'"
must rmmod novars
