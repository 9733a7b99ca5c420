#!/bin/sh
# Crash injection: creates, writes, appends, stores through a shared mapping + msync (the mtime they set must survive), truncates, renames, links, unlinks, symlinks, mkdir/rmdir with qemu killed at a random moment; afterwards fsck -n is clean, mount succeeds, every completed operation is there and the one in flight is wholly there or wholly absent.
# flavours: normal
# nvdimms: 1
# timeout: 300
# crash: 20
. "$NOVARS_GUEST_LIB"
set -e
WORK="python3 $NOVARS_ROOT/xtests/guest/crashwork.py"
# The workload logs each operation into its (host-shared) output dir; the
# harness hands that dir to the verify boot as $NOVARS_CRASH_DIR.
mkdir -p /tmp/m
load_novars
case "$1" in
crash)
    must "$MKFS" -q -f /dev/pmem0
    must mount -t novars /dev/pmem0 /tmp/m
    $WORK run /tmp/m "$NOVARS_OUT/oplog" "$2"
    echo "workload finished before the kill"
    ;;
verify)
    "$FSCK" -n /dev/pmem0 > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; fail "fsck -n after the crash: exit $?"; }
    cat /tmp/fsck.out
    must mount -t novars /dev/pmem0 /tmp/m
    $WORK verify /tmp/m "$NOVARS_CRASH_DIR/oplog" "$2" || fail "the tree after the crash is not a legal state"
    must umount /tmp/m
    must "$FSCK" -fn /dev/pmem0
    ok "crash $2: consistent"
    ;;
esac
