#!/bin/sh
# A NVDIMM past the old 128 GiB limit (160 GiB; NOVARS_BIG_SIZE=256G NOVARS_BIG_FILES=100000 for the long mode): mkfs, mount, many files by two writers, unmount, fsck, clean mount, more files until qemu is killed; then fsck -n clean, mount with recovery, every completed file intact, fsck -fn clean; time and DRAM of each step.
# flavours: normal
# nvdimms: 1
# size: ${NOVARS_BIG_SIZE:-160G}
# timeout: ${NOVARS_BIG_TIMEOUT:-600}
# crash: 1
# cost: 140
# A crash test of one iteration in a crash series of its own (its NVDIMM
# size differs from the other crash tests'): `crash` makes the file system
# and the files and is killed by the harness; `verify` (the next boot)
# checks them. Each step's time and memory (`xtests/guest/memwatch.py`)
# goes to $NOVARS_OUT/bench.txt and is printed by `verify`: BENCH.md's
# "Big devices" numbers come from the long mode.
. "$NOVARS_GUEST_LIB"
FILES=${NOVARS_BIG_FILES:-20000}
HALF=$((FILES / 2))
BIG="python3 $NOVARS_ROOT/xtests/guest/bigfiles.py"
WATCH="python3 $NOVARS_ROOT/xtests/guest/memwatch.py"

# measure LABEL CMD...: run CMD under memwatch; its @@bench line goes to
# $NOVARS_OUT/bench.txt too (the crash boot's output is lost in the kill).
measure() {
    label=$1
    shift
    echo "+ $*"
    $WATCH "$label" "$@" > /tmp/measure.out 2>&1
    st=$?
    cat /tmp/measure.out
    grep '^@@bench ' /tmp/measure.out >> "$NOVARS_OUT/bench.txt"
    return $st
}

# writers FROM TO: both writers create their files FROM..TO-1 (TO 0: until
# killed), in parallel (each CPU allocates from its own lane).
writers() {
    $BIG create /tmp/m 0 "$1" "$2" "$NOVARS_OUT/progress0" &
    p0=$!
    $BIG create /tmp/m 1 "$1" "$2" "$NOVARS_OUT/progress1" &
    p1=$!
    wait $p0 || fail "writer 0 failed"
    wait $p1 || fail "writer 1 failed"
}

mkdir -p /tmp/m
load_novars
bytes=$(blockdev --getsize64 /dev/pmem0)
case "$1" in
crash)
    echo "/dev/pmem0: $((bytes >> 30)) GiB; $FILES files, then more until the kill"
    [ "$bytes" -gt $((128 << 30)) ] || echo "note: the NVDIMM is not above 128 GiB (NOVARS_BIG_SIZE?)"
    : > "$NOVARS_OUT/bench.txt"
    echo "@@bench device bytes=$bytes files=$FILES" >> "$NOVARS_OUT/bench.txt"
    measure mkfs "$MKFS" -f /dev/pmem0 || fail "mkfs.novars"
    measure mount-empty busybox mount -t novars /dev/pmem0 /tmp/m || fail "mount"
    t0=$(date +%s)
    writers 0 "$HALF"
    t1=$(date +%s)
    echo "@@bench create files=$FILES secs=$((t1 - t0))" | tee -a "$NOVARS_OUT/bench.txt"
    df -k /tmp/m
    df -i /tmp/m
    measure umount umount /tmp/m || fail "umount"
    measure fsck-clean "$FSCK" -fn /dev/pmem0 || fail "fsck -fn after a clean unmount"
    measure mount-clean busybox mount -t novars /dev/pmem0 /tmp/m || fail "clean mount"
    # More files until the harness kills qemu (0.2-3 s after the mark).
    writers "$HALF" 0 &
    sleep 2
    echo "@@crash-armed"
    wait
    fail "the writers ended before the kill"
    ;;
verify)
    [ -f "$NOVARS_CRASH_DIR/bench.txt" ] || fail "no report from the crash boot"
    cat "$NOVARS_CRASH_DIR/bench.txt" > "$NOVARS_OUT/bench.txt"
    measure fsck-after-crash "$FSCK" -n /dev/pmem0 || fail "fsck -n after the crash"
    dmesg -c > /dev/null
    measure mount-after-crash busybox mount -t novars /dev/pmem0 /tmp/m || fail "mount after the crash"
    dmesg | grep -q "not cleanly unmounted; free space is rebuilt" || fail "the mount after the crash did not see the crash"
    # The free space is rebuilt at first use (here statfs): the scan of
    # every log a mount after a crash did before.
    measure rebuild-after-crash df -k /tmp/m || fail "statfs after the crash"
    dmesg | grep novars
    dmesg | grep -q "free space rebuilt" || fail "the free space was not rebuilt"
    df -i /tmp/m
    $BIG verify /tmp/m 0 "$NOVARS_CRASH_DIR/progress0" || fail "writer 0's files"
    $BIG verify /tmp/m 1 "$NOVARS_CRASH_DIR/progress1" || fail "writer 1's files"
    measure umount-after-crash umount /tmp/m || fail "umount"
    measure fsck-after-recovery "$FSCK" -fn /dev/pmem0 || fail "fsck -fn after the recovery"
    measure mount-clean-2 busybox mount -t novars /dev/pmem0 /tmp/m || fail "clean mount"
    must umount /tmp/m
    echo "---- time (s) and DRAM (KiB) of each step ($((bytes >> 30)) GiB):"
    cat "$NOVARS_OUT/bench.txt"
    ok "every completed file intact after the crash; fsck clean"
    ;;
*)
    fail "usage: $0 crash|verify I"
    ;;
esac
