#!/bin/sh
# MAP_SYNC durability by crash: a program maps a file with MAP_SHARED_VALIDATE|MAP_SYNC, grows it with ftruncate, stores a pattern into the new pages through the mapping, flushes (clwb/clflushopt/clflush + sfence, no msync/fsync) and reports each flushed size; qemu is killed at a random moment; afterwards fsck -n is clean and every reported byte is there.
# flavours: normal
# nvdimms: 1
# timeout: 300
# crash: 20
# NOVARS_CRASH_ITERATIONS=N runs N iterations (the long mode); each is one
# boot. The workload maps up to 256 MiB (about 4 s under TCG), so the kill
# (0.2-3 s after @@crash-armed) lands while pages are being faulted in.
. "$NOVARS_GUEST_LIB"
MS=$NOVARS_ROOT/target/guest-bin/mapsync
[ -x "$MS" ] || fail "$MS is not built (cargo xt test builds xtests/guest/*.c)"
mkdir -p /tmp/m
load_novars
case "$1" in
crash)
    must "$MKFS" -q -f /dev/pmem0
    must novars_mount /dev/pmem0 /tmp/m
    # The report goes to the host-shared output dir (9p: each write is on
    # the host when it returns, so it survives the kill).
    "$MS" crash /tmp/m/data "$NOVARS_OUT/report" "$2" || fail "workload: exit $?"
    ;;
verify)
    "$FSCK" -n /dev/pmem0 > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; fail "fsck -n after the crash: exit $?"; }
    cat /tmp/fsck.out
    must novars_mount /dev/pmem0 /tmp/m
    echo "last reported: $(tail -c 40 "$NOVARS_CRASH_DIR/report" | tail -n 1)"
    "$MS" verify /tmp/m/data "$NOVARS_CRASH_DIR/report" "$2" || fail "bytes reported flushed are missing after the crash"
    must umount /tmp/m
    must "$FSCK" -fn /dev/pmem0
    ok "crash $2: every reported byte is there"
    ;;
*)
    fail "usage: $0 crash|verify I"
    ;;
esac
