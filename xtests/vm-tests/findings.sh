#!/bin/sh
# Minimal reproducers of the kernel bugs pjdfstest, fsx and stress-ng found (xtests/guest/findings.py) give ext4-DAX's results on novars, also after a remount; fsck clean.
# flavours: normal
# nvdimms: 1
# timeout: 600
# cost: 100
. "$NOVARS_GUEST_LIB"
load_novars
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")
F="python3 $NOVARS_ROOT/xtests/guest/findings.py"
W=/tmp/findings
mkdir -p $W/m

must mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 $W/m
$F $W/m > $W/ext4.out || fail "findings.py failed on ext4"
stat -c '%n %s %Y.%y %Z' $W/m/trunc > $W/ext4.stat
must umount $W/m

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
$F $W/m > $W/novars.out || fail "findings.py failed on novars"
cat $W/novars.out
diff -u $W/ext4.out $W/novars.out || fail "novars differs from ext4 (- ext4, + novars)"
ok "$(wc -l < $W/ext4.out) cases give ext4's results"
stat -c '%n %s %Y.%y %Z' $W/m/trunc > $W/before
must umount $W/m
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $W/m
stat -c '%n %s %Y.%y %Z' $W/m/trunc > $W/after
diff -u $W/before $W/after || fail "times set by truncate changed across unmount/mount"
ok "times set by truncate survive unmount"
must umount $W/m
exit 0
