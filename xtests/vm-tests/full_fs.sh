#!/bin/sh
# Inode tables grow at run time: on a default 1 GiB file system with all but 88 MiB of the data space taken, empty files until ENOSPC number at least 200,000 and fail for space, with df -i plausible before and after; they survive unmount, fsck -fn and remount. Then with data and inode space 100% used, unlink, rmdir, rename over a file and a directory, truncate down and punch hole each succeed (each from a refilled file system), statfs shows the reserve (free > available), and fsck -fn is clean.
# flavours: normal
# nvdimms: 1
# timeout: 1200
# cost: 115
#
# Environment:
#   NOVARS_FULLFS_MIN    files required before ENOSPC (default 200000)
#   NOVARS_FULLFS_LEAVE  MiB of data space left for the files (default 88)
. "$NOVARS_GUEST_LIB"
load_novars
F="python3 $NOVARS_ROOT/xtests/guest/fullfs.py"
MIN=${NOVARS_FULLFS_MIN:-200000}
LEAVE=${NOVARS_FULLFS_LEAVE:-88}
W=/tmp/fullfs
mkdir -p $W/m

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
df -i $W/m
$F grow $W/m "$MIN" "$LEAVE" || fail "inode tables did not grow to the space"
df -i $W/m
N=$(cat $W/grow.count)
must umount $W/m
must "$FSCK" -fn /dev/pmem0
ok "fsck -fn clean after $N files"
must novars_mount /dev/pmem0 $W/m
$F count $W/m "$N" || fail "files lost across unmount"
$F full $W/m || fail "a full file system could not be emptied"
df $W/m
must umount $W/m
must "$FSCK" -fn /dev/pmem0
ok "fsck -fn clean after the full file system was worked on"
must novars_mount /dev/pmem0 $W/m
$F count $W/m "$((N - 500))" || fail "files after the unlinks"
must umount $W/m
exit 0
