#!/bin/sh
# Log garbage collection under power loss: one 4 KiB block overwritten (its log compacted about every thousand writes) and a directory churned by create/unlink/rename (its log compacted about every 500 cycles) until qemu is killed; afterwards fsck -n is clean, mount succeeds, the block holds the last write that had returned or a later one, whole, and the directory's long-lived names are all there.
# flavours: normal
# nvdimms: 1
# timeout: 300
# crash: 4
. "$NOVARS_GUEST_LIB"
set -e
GC="python3 $NOVARS_ROOT/xtests/guest/loggc.py"
mkdir -p /tmp/m
load_novars
case "$1" in
crash)
    must "$MKFS" -q -f /dev/pmem0
    must mount -t novars /dev/pmem0 /tmp/m
    $GC dirwarm /tmp/m 700 || fail "directory warm-up"
    $GC dirhammer /tmp/m &
    $GC hammer /tmp/m "$NOVARS_OUT/progress"
    ;;
verify)
    "$FSCK" -n /dev/pmem0 > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; fail "fsck -n after the crash: exit $?"; }
    must mount -t novars /dev/pmem0 /tmp/m
    $GC hammercheck /tmp/m "$NOVARS_CRASH_DIR/progress" || fail "the hot block after the crash"
    $GC dircrashcheck /tmp/m || fail "the directory after the crash"
    must umount /tmp/m
    must "$FSCK" -fn /dev/pmem0
    ok "crash $2: consistent"
    ;;
esac
