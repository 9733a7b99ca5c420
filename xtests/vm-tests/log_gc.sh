#!/bin/sh
# Log garbage collection: a 4 KiB block overwritten over and over, a many-extent file, truncate loops, and 20000 create+unlink cycles plus maildir renames in one directory (long-lived names kept, directory streams read one entry at a time across the compactions) run in flat space; the compacted logs replay to the same files and names after remount and fsck is clean. NOVARS_GC_WRITES sets the overwrites (default 10000; the million in the long mode), NOVARS_GC_DIR_CYCLES the create+unlink cycles (default 20000).
# flavours: normal
# nvdimms: 1
# timeout: 900
# cost: 60
. "$NOVARS_GUEST_LIB"
set -e
load_novars
GC="python3 $NOVARS_ROOT/xtests/guest/loggc.py"
N=${NOVARS_GC_WRITES:-10000}
D=${NOVARS_GC_DIR_CYCLES:-20000}
mkdir -p /tmp/m
must "$MKFS" -q -f /dev/pmem0
must mount -t novars /dev/pmem0 /tmp/m
kmsg "log_gc: overwrite $N"
$GC overwrite /tmp/m "$N" || fail "overwrite"
$GC extents /tmp/m $((N / 3)) || fail "extents"
$GC truncate /tmp/m $((N / 6)) || fail "truncate"
kmsg "log_gc: directory churn $D"
$GC dirchurn /tmp/m "$D" || fail "directory churn"
$GC check /tmp/m || fail "check before remount"
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0
must mount -t novars /dev/pmem0 /tmp/m
$GC check /tmp/m || fail "check after remount"
$GC dircheck /tmp/m || fail "directory check after remount"
must umount /tmp/m
if dmesg | grep -E "novars.*(compaction failed|does not replay)"; then
    fail "log compaction reported a problem"
fi
ok "log GC: flat space, same files and names after remount, fsck clean"
