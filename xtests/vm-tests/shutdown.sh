#!/bin/sh
# FS_IOC_SHUTDOWN, labels and the UUID: after `xfs_io -x -c shutdown` (and `shutdown -f`) every call on novars fails with EIO, a store through an old mapping gets SIGBUS, and the device's bytes do not change, not even at unmount; the next mount recovers as after a crash with everything written before; fsck -fn clean; bad flags EINVAL, a user EPERM. `xfs_io -c label` reads and sets the label (EINVAL past 63 bytes, EPERM for a user, EROFS read-only, EIO after a shutdown), the label survives a remount and is in the backup superblock too; FS_IOC_GETFSUUID gives mkfs's UUID.
# flavours: normal
# nvdimms: 1
# timeout: 600
# cost: 105
. "$NOVARS_GUEST_LIB"
load_novars
SD="python3 $NOVARS_ROOT/xtests/guest/shutdown.py"
W=/tmp/shutdown
M=$W/m
mkdir -p $M
command -v xfs_io > /dev/null || fail "xfs_io is missing (cargo xt setup installs xfsprogs)"

# The file system uses the first 128 MiB of the device (hashing 1 GiB
# under TCG takes 80 s): devhash hashes those.
SIZE=128
devhash() { dd if=/dev/pmem0 iflag=direct bs=1M count=$SIZE status=none | sha256sum; }
# fsioctl PATH CMD ARG: an ioctl by number with a u32 argument, errno name or "ok".
fsioctl() {
    python3 -c '
import errno, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.ioctl(fd, int(sys.argv[2], 0), struct.pack("I", int(sys.argv[3])))
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$@"
}
SHUTDOWN=0x8004587d   # _IOR('X', 125, __u32)

for flags in 0 1; do
    must mkfs.novars -q -f /dev/pmem0 ${SIZE}M
    must novars_mount /dev/pmem0 $M
    # Work that is durable before the shutdown, then the shutdown itself.
    $SD $M /dev/pmem0 $((SIZE << 20)) $flags || fail "shutdown.py (flags $flags)"
    after=$(devhash)
    must umount $M
    [ "$(devhash)" = "$after" ] || fail "the unmount after a shutdown wrote to the device (flags $flags)"
    ok "unmount after the shutdown wrote nothing (flags $flags)"
    dmesg | grep -q "unmounted after a shutdown" || fail "no unmount line after the shutdown"
    must "$FSCK" -fn /dev/pmem0
    dmesg -C
    must novars_mount /dev/pmem0 $M
    dmesg | grep -q "not cleanly unmounted; free space is rebuilt" || fail "the mount after a shutdown did not recover as after a crash: $(dmesg | grep novars)"
    [ "$(head -c 5 $M/mapped)" = store ] || fail "the msync'd store before the shutdown is lost"
    [ "$(ls $M/d | wc -l)" = 21 ] || fail "files written before the shutdown are missing: $(ls $M/d)"
    [ "$(stat -c %s $M/open)" = 8192 ] || fail "the write before the shutdown is lost"
    getfattr -n user.k --only-values $M/d/f0 | grep -qx v || fail "the xattr set before the shutdown is lost"
    # The recovered file system works.
    must sh -c "echo again > $M/d/again && sync"
    must umount $M
    must "$FSCK" -fn /dev/pmem0
    ok "the mount after the shutdown (flags $flags) recovered everything, and works"
done

must mkfs.novars -q -f -L first -U 01234567-89ab-cdef-0123-456789abcdef /dev/pmem0 ${SIZE}M
must novars_mount /dev/pmem0 $M
# Bad flags, and a user without CAP_SYS_ADMIN.
[ "$(fsioctl $M $SHUTDOWN 3)" = EINVAL ] || fail "shutdown flag 3: $(fsioctl $M $SHUTDOWN 3), expected EINVAL"
[ "$(setpriv --reuid 1000 --regid 1000 --clear-groups --inh-caps=-all --bounding-set=-all sh -c "$(command -v python3) -c 'import fcntl,os,struct,errno
try:
    fcntl.ioctl(os.open(\"$M\", os.O_RDONLY), $SHUTDOWN, struct.pack(\"I\", 2)); print(\"ok\")
except OSError as e: print(errno.errorcode[e.errno])'")" = EPERM ] || fail "a user could shut the file system down"
touch $M/still || fail "the file system went down on a refused shutdown"
ok "shutdown: flag 3 EINVAL, a user EPERM, nothing shut down"

# The UUID (FS_IOC_GETFSUUID: the VFS's, from super_set_uuid at mount).
uuid=$(python3 -c '
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
b = bytearray(17)
fcntl.ioctl(fd, 0x80111500, b)
u = b[1:1 + b[0]].hex()
print(u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:])' $M) || fail "FS_IOC_GETFSUUID failed"
[ "$uuid" = 01234567-89ab-cdef-0123-456789abcdef ] || fail "FS_IOC_GETFSUUID gave $uuid"
ok "FS_IOC_GETFSUUID gives mkfs's UUID"

# Labels.
xfs_io -c label $M | grep -qx 'label = "first"' || fail "label after mkfs -L: $(xfs_io -c label $M)"
must xfs_io -c "label -s second-label" $M
xfs_io -c label $M | grep -qx 'label = "second-label"' || fail "label not set: $(xfs_io -c label $M)"
long=$(printf 'x%.0s' $(seq 64))
xfs_io -c "label -s $long" $M 2>&1 | grep -q "Invalid argument" || fail "a 64-byte label was not refused with EINVAL"
must xfs_io -c "label -s $(printf 'y%.0s' $(seq 63))" $M
xfs_io -c label $M | grep -q "label = \"y\{63\}\"" || fail "a 63-byte label was not kept"
setpriv --reuid 1000 --regid 1000 --clear-groups --inh-caps=-all --bounding-set=-all xfs_io -c "label -s user" $M 2>&1 | grep -q "Operation not permitted" || fail "a user could set the label"
must xfs_io -c "label -s third" $M
must umount $M
must "$FSCK" -fn /dev/pmem0
must novars_mount -o ro /dev/pmem0 $M
xfs_io -c label $M | grep -qx 'label = "third"' || fail "label lost across a remount: $(xfs_io -c label $M)"
xfs_io -c "label -s ro" $M 2>&1 | grep -q "Read-only file system" || fail "a label was set on a read-only mount"
must umount $M
# The backup superblock has the label too: with the primary's label
# damaged (its checksum then fails), the mount takes the backup.
printf 'Z' | dd of=/dev/pmem0 bs=1 seek=192 conv=notrunc status=none
dmesg -C
must novars_mount /dev/pmem0 $M
dmesg | grep -q "using the backup" || fail "the damaged primary was not replaced by the backup: $(dmesg | grep novars)"
xfs_io -c label $M | grep -qx 'label = "third"' || fail "the backup superblock has another label: $(xfs_io -c label $M)"
must umount $M
"$FSCK" -fy /dev/pmem0 > $W/fsck.out 2>&1
rc=$?
[ $rc = 1 ] || { cat $W/fsck.out; fail "fsck -fy of the damaged primary exited $rc, expected 1"; }
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $M
xfs_io -c label $M | grep -qx 'label = "third"' || fail "label after fsck's repair: $(xfs_io -c label $M)"
[ "$(fsioctl $M $SHUTDOWN 0)" = ok ] || fail "shutdown with flags 0 (FS_SHUTDOWN_FLAGS_DEFAULT) failed"
xfs_io -c "label -s late" $M 2>&1 | grep -q "Input/output error" || fail "a label was set after a shutdown"
must umount $M
ok "labels: set, read, 63 bytes kept, 64 EINVAL, user EPERM, read-only EROFS, after a shutdown EIO; kept across a remount and in the backup superblock"
