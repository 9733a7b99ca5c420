#!/bin/sh
# Every common operation on novars gives the results and errno values ext4 gives in the same VM, the tree survives unmount/fsck/remount, and fsck is clean.
# flavours: normal debug
# nvdimms: 1
# timeout: 900
. "$NOVARS_GUEST_LIB"
set -e
load_novars
MKFS=$(command -v mkfs.novars || echo "$NOVARS_BIN/mkfs_novars")
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")
OPS="python3 $NOVARS_ROOT/xtests/guest/fsops.py"
mkdir -p /tmp/m
mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 /tmp/m
$OPS run /tmp/m > /tmp/ext4.out
umount /tmp/m
must "$MKFS" -q -f /dev/pmem0
must mount -t novars /dev/pmem0 /tmp/m
$OPS run /tmp/m > /tmp/novars.out
cp /tmp/ext4.out /tmp/novars.out "$NOVARS_OUT/" 2>/dev/null || true
if ! diff -u /tmp/ext4.out /tmp/novars.out; then
    fail "novars differs from ext4 (- ext4, + novars)"
fi
ok "$(grep -c ': ' /tmp/ext4.out) operations give ext4's results; trees identical"
$OPS list /tmp/m > /tmp/before
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0
ok "fsck clean after unmount"
must mount -t novars /dev/pmem0 /tmp/m
$OPS list /tmp/m > /tmp/after
diff -u /tmp/before /tmp/after || fail "tree changed across unmount/mount"
ok "tree identical after remount"
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0
must rmmod novars
