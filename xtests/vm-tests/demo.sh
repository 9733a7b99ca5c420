#!/bin/sh
# The demo's guest steps (xtests/guest/demo.sh, as `cargo xt demo` runs them) all PASS: mkfs, mount, files, a MAP_SYNC store, umount, fsck, remount and verify; then a write workload cut by killing qemu, and after it fsck, mount and every completed file intact.
# flavours: normal
# nvdimms: 1
# timeout: 300
# crash: 1
# cost: 60
# A crash test of one iteration: `crash` runs the demo's `life` boot and then
# its `crash` workload (killed by the harness), `verify` checks life's steps
# (saved to $NOVARS_OUT, which survives the kill) and runs `recover`.
# `cargo xt demo` boots three VMs for the same steps; this keeps them in
# `cargo xt test` so they cannot rot unseen.
. "$NOVARS_GUEST_LIB"
DEMO=$NOVARS_ROOT/xtests/guest/demo.sh

# check_steps FILE STEP...: every `@@step` line of FILE says PASS, and each
# STEP reported PASS (a step that never ran fails too).
check_steps() {
    f=$1
    shift
    bad=$(grep '^@@step ' "$f" | grep -v '^@@step [^ ]* PASS')
    if [ -n "$bad" ]; then
        echo "$bad"
        return 1
    fi
    for s; do
        grep -q "^@@step $s PASS" "$f" || { echo "step $s did not report PASS"; return 1; }
    done
}

LIFE_STEPS="dax module mkfs mount files mapsync umount fsck remount verify verify-mapsync"
RECOVER_STEPS="module fsck-after-crash mount-after-crash recovered verify-after-crash"

case "$1" in
crash)
    # `cargo xt demo` starts on a fresh NVDIMM; this one may hold an earlier
    # file system, and mkfs.novars asks before overwriting one.
    must dd if=/dev/zero of=/dev/pmem0 bs=64k count=4 conv=notrunc
    sh "$DEMO" life > "$NOVARS_OUT/life.out" 2>&1
    cat "$NOVARS_OUT/life.out"
    check_steps "$NOVARS_OUT/life.out" $LIFE_STEPS || fail "a step of the demo's life boot did not pass"
    # Writes files until qemu is killed; prints @@crash-armed once it is busy.
    sh "$DEMO" crash
    fail "the demo's crash workload ended before the kill"
    ;;
verify)
    # The life boot's report, from before the kill (a failure there was
    # printed, but the kill may have come before the harness saw the exit).
    [ -f "$NOVARS_CRASH_DIR/life.out" ] || fail "no report of the life boot"
    sed 's/^/life: /' "$NOVARS_CRASH_DIR/life.out"
    check_steps "$NOVARS_CRASH_DIR/life.out" $LIFE_STEPS || fail "a step of the demo's life boot did not pass"
    DEMO_LIFE_DIR=$NOVARS_CRASH_DIR sh "$DEMO" recover > /tmp/recover.out 2>&1
    cat /tmp/recover.out
    check_steps /tmp/recover.out $RECOVER_STEPS || fail "a step of the demo's recover boot did not pass"
    ok "every demo step passed"
    ;;
*)
    fail "usage: $0 crash|verify I"
    ;;
esac
