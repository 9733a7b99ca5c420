#!/bin/sh
# Crash-state checker on real kernel traces: every seq-1 operation and a time-bounded sample of seq-2 pairs, traced by the tracing build of novars.ko and replayed by novars-crashcheck (every crash image fsck-clean and a legal tree), with zero violations; and each of the 5 deliberate faults is reported.
# flavours: normal
# nvdimms: 1
# size: 1G
# timeout: 600
#
# Needs the tracing build (`cargo xt module --trace`, which `cargo xt test`
# builds for this test) and target/release/novars-crashcheck.
# Environment:
#   NOVARS_ACE_SEQ2_SECONDS  seconds of seq-2 pairs (default 60)
#   NOVARS_ACE_SEQ2=all      every seq-2 pair (the long mode, hours)
#   NOVARS_ACE_ONLY="op..."  run only these seq-1 operations (debugging)
. "$NOVARS_GUEST_LIB"
ACE="python3 $NOVARS_ROOT/xtests/guest/ace.py"
CC=$NOVARS_BIN/novars-crashcheck
MKFS=$(command -v mkfs.novars || echo "$NOVARS_BIN/mkfs_novars")
KO=${NOVARS_TRACE_KO:-${NOVARS_KO%/*/novafs-kmod/novars.ko}/$NOVARS_FLAVOUR-trace/novafs-kmod/novars.ko}
DBG=/sys/kernel/debug/novars
FS_MIB=16
W=/tmp/cc
[ -x "$CC" ] || fail "$CC is not built (cargo build --release -p crashcheck)"
[ -f "$KO" ] || fail "the tracing build $KO is missing (cargo xt module --trace)"

grep -q '^novars ' /proc/modules && must rmmod novars
must insmod "$KO"
[ -d /sys/kernel/debug/novars ] || must mount -t debugfs none /sys/kernel/debug
[ -d $DBG ] || fail "$KO is not a tracing build (no $DBG)"
T=$NOVARS_OUT/crashcheck
mkdir -p $W/src $W/m $T
$ACE populate $W/src
must "$MKFS" -q -f -U clear -d $W/src /dev/pmem0 ${FS_MIB}M
must dd if=/dev/pmem0 of=$W/base.img bs=1M count=$FS_MIB status=none
cp $W/base.img $T/base.img

# trace NAME FAULTS OP...: the image restored to base.img, tracing on,
# mount, the operations, unmount; the trace in $T/NAME.bin.
trace() {
    name=$1 faults=$2
    shift 2
    dd if=$W/base.img of=/dev/pmem0 bs=1M conv=fsync status=none || fail "restoring the base image"
    echo 1 > $DBG/enable
    novars_mount /dev/pmem0 $W/m || fail "mount for $name"
    echo "$faults" > $DBG/faults
    $ACE run $W/m "$@" > $T/$name.ops
    echo 0 > $DBG/faults
    umount $W/m || fail "umount after $name"
    echo 0 > $DBG/enable
    cat $DBG/trace > $T/$name.bin
}

# check NAME: crashcheck of one trace; prints one line; returns its status.
check() {
    "$CC" --base $W/base.img --trace $T/$1.bin --max-random 8 > $T/$1.out 2>&1
    st=$?
    # Reproducers name the copy of the base image the host can read.
    sed -i "s#--base $W/base.img#--base $T/base.img#" $T/$1.out
    printf '%-32s %s\n' "$1" "$(grep -m1 'crash images' $T/$1.out)"
    return $st
}

viol=0
for op in ${NOVARS_ACE_ONLY:-$($ACE list)}; do
    trace "$op" 0 "$op"
    check "$op" || { viol=$((viol + 1)); cat $T/$op.ops $T/$op.out; }
done
[ $viol -eq 0 ] || fail "seq-1: $viol operations with violations"
ok "seq-1: every operation, zero violations"

# The checker must catch each deliberate fault (pm.rs `Fault`: bit, name,
# an operation that exercises it); the same operations passed above with
# the faults off.
caught=0
for f in "0 drop_commit_flush write_append_unaligned" \
         "1 drop_commit_fence write_append_unaligned" \
         "2 tail_before_entry write_append_unaligned" \
         "3 dentry_in_place rename_overwrite_same_dir" \
         "4 rename_without_journal rename_cross_dir"; do
    set -- $f
    trace "fault-$2" $((1 << $1)) "$3"
    if check "fault-$2"; then
        cat $T/fault-$2.ops
        fail "fault $2 ($3): the checker found no violation"
    fi
    grep -m1 '^violations' $T/fault-$2.out
    caught=$((caught + 1))
done
ok "faults: all $caught caught (violations reported), none with the faults off"
