#!/bin/sh
# Two processes change novars at once (creat/link/rename/unlink/mkdir/rmdir in their own and in two shared directories, writes/truncates/fallocates of their own files, write faults on their own and on one shared mapping): no lockdep report, every file as modelled after unmount, fsck -fn clean and mount.
# flavours: normal debug
# nvdimms: 1
# timeout: 600
# cost: 30 140
#
# The workload is xtests/guest/parallel_ops.py (one Python process per
# worker: a fork+exec costs about half a second on the debug kernel). It
# exercises the per-inode log locks (novafs-kmod/locks.rs): operations on
# different inodes run in parallel, several inodes are locked in inode
# order with lockdep subclasses, and two write faults on one file
# serialise on its log lock. On the debug kernel lockdep must have seen
# the log locks nested (class novars_log_lock, subclass 1 and up).
# NOVARS_PARALLEL_SECONDS sets the time (default 15 s normal, 30 s debug).
. "$NOVARS_GUEST_LIB"
if [ "$NOVARS_FLAVOUR" = debug ]; then secs=30; else secs=15; fi
SECS=${NOVARS_PARALLEL_SECONDS:-$secs}
W=/tmp/parallel
M=$W/m
mkdir -p $M
load_novars
must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M
[ "$(nproc)" -ge 2 ] || fail "needs 2 vCPUs, have $(nproc)"

must python3 "$NOVARS_ROOT/xtests/guest/parallel_ops.py" run $M "$SECS" $W/state
ok "2 workers for $SECS s, every operation succeeded"

if [ "$NOVARS_FLAVOUR" = debug ]; then
    [ -r /proc/lockdep ] || fail "no /proc/lockdep on the debug kernel"
    grep -o 'novars_log_lock[^ ]*' /proc/lockdep | sort | uniq -c
    grep -q 'novars_log_lock/1' /proc/lockdep ||
        fail "lockdep never saw two log locks nested (no novars_log_lock/1 class)"
    ok "lockdep checked the nested log locks"
fi

must umount $M
must "$FSCK" -fn /dev/pmem0
ok "fsck -fn clean after the parallel work"
must novars_mount /dev/pmem0 $M
must python3 "$NOVARS_ROOT/xtests/guest/parallel_ops.py" verify $M $W/state
ok "after unmount, fsck and mount every file is as modelled"
must umount $M
must "$FSCK" -fn /dev/pmem0
exit 0
