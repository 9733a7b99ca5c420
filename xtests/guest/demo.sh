#!/bin/sh
# Guest side of `cargo xt demo` (xtests/src/demo.rs boots the VMs and prints
# the verdicts). Each step reports one line:
#   @@step ID PASS|FAIL|NOTYET|INFO MESSAGE
# NOTYET means the piece does not exist yet; the message names its issue.
# Usage: demo.sh life|crash|recover
. "$NOVARS_GUEST_LIB"

DEV=/dev/pmem0
MNT=/tmp/mnt-novars   # the guest's / is the host's, read-only
FILES=$MNT/demo
PATTERN_FILE=$MNT/mapsync
# What later boots must find again is kept on the host: boot 1 writes it into
# its run directory; later boots read it there (DEMO_LIFE_DIR, read-only).
STATE=$NOVARS_OUT/state
LIFE_STATE=${DEMO_LIFE_DIR:-$NOVARS_OUT}/state

step() { id=$1; verdict=$2; shift 2; echo "@@step $id $verdict $*"; }
# Run a command, indent its output, return its status.
run_quiet() { out=$("$@" 2>&1); rc=$?; [ -n "$out" ] && echo "$out" | sed 's/^/    /'; return $rc; }

mkdir -p "$MNT"

try_mount() {
    if run_quiet novars_mount "$DEV" "$MNT"; then return 0; fi
    if mount_not_implemented; then return 2; fi
    return 1
}

# $1 = step id: report the mount verdict; exit status 0 if mounted.
mount_step() {
    try_mount; rc=$?
    case $rc in
        0) step "$1" PASS "mount -t novars $DEV $MNT (busybox mount, see lib.sh)"; return 0 ;;
        2) step "$1" NOTYET "mount -t novars: not implemented yet (issue 4, the kernel module)"; return 1 ;;
        *) step "$1" FAIL "mount -t novars $DEV $MNT failed"; return 1 ;;
    esac
}

load_module_step() {
    if [ -z "${NOVARS_KO:-}" ]; then
        step module FAIL "novars.ko did not build (see the host output)"; return 1
    fi
    if grep -qw novars /proc/filesystems || run_quiet insmod "$NOVARS_KO"; then
        if grep -qw novars /proc/filesystems; then
            step module PASS "insmod novars.ko: 'novars' is in /proc/filesystems"; return 0
        fi
    fi
    step module FAIL "insmod $NOVARS_KO did not register fs type novars"; return 1
}

# The steps that need a mounted novars, reported as not there yet ($1: why).
mount_later_steps() {
    step files NOTYET "create/write/read files: $1 (issue 4)"
    step mapsync NOTYET "MAP_SYNC store: $1 (issue 4)"
    step umount NOTYET "umount: $1 (issue 4)"
    step remount NOTYET "mount again and verify: $1 (issue 4)"
}

# $1 = step id. Only called once mkfs.novars made a file system.
fsck_step() {
    if ! have_tool fsck.novars; then
        step "$1" NOTYET "fsck.novars: not implemented yet (issue 3)"; return 1
    fi
    if run_quiet fsck.novars "$DEV"; then step "$1" PASS "fsck.novars $DEV: clean"
    else step "$1" FAIL "fsck.novars $DEV reported problems (exit $?)"; fi
}

# Deterministic file content: file N is the line "novars demo file N" 1000 times.
content() { i=0; while [ $i -lt 1000 ]; do echo "novars demo file $1"; i=$((i + 1)); done; }

# Is $PATTERN_FILE exactly 4096 bytes of 0x5a ('Z')? Compared with cmp
# against a generated file: parsing od output is fragile (without -v, od
# prints `*` for repeated lines).
pattern_intact() {
    dd if=/dev/zero bs=4096 count=1 2>/dev/null | tr '\000' 'Z' > /tmp/demo-mapsync.expected
    cmp -s /tmp/demo-mapsync.expected "$PATTERN_FILE"
}

life() {
    q=/sys/block/pmem0/queue/dax
    if [ "$(cat $q 2>/dev/null)" = 1 ]; then step dax PASS "$DEV is an fsdax namespace with DAX ($q = 1)"
    else step dax FAIL "$DEV has no DAX"; return; fi

    load_module_step || return

    if ! have_tool mkfs.novars; then
        step mkfs NOTYET "mkfs.novars: not implemented yet (issue 3)"
        step mount NOTYET "mount -t novars: needs mkfs.novars first (issue 3), then the module (issue 4)"
        mount_later_steps "needs mkfs.novars (issue 3) and mount"
        step fsck NOTYET "fsck.novars: needs a file system made by mkfs.novars (issue 3)"
        return
    fi
    if run_quiet mkfs.novars "$DEV"; then step mkfs PASS "mkfs.novars $DEV"
    else step mkfs FAIL "mkfs.novars $DEV failed"; return; fi

    if ! mount_step mount; then
        mount_later_steps "needs mount"
        fsck_step fsck
        return
    fi

    # Files: create, write, read back.
    mkdir -p "$FILES" && content 1 > "$FILES/small" \
        && dd if=/dev/urandom of="$FILES/big" bs=1M count=4 status=none \
        && (cd "$FILES" && sha256sum small big > "$STATE.sums") \
        && (cd "$FILES" && sha256sum -c --quiet "$STATE.sums")
    if [ $? = 0 ]; then step files PASS "created, wrote and read back $FILES/small and a 4 MiB file"
    else step files FAIL "file create/write/read-back failed"; fi

    # MAP_SYNC: a store through a MAP_SYNC mapping is durable once the fault
    # returned, without msync (vm:mapsync_crash proves it by killing qemu);
    # here: accepted, and read() sees the stores; the remount below checks
    # they are on the media.
    out=$(xfs_io -f -c "truncate 4096" -c "mmap -S -rw 0 4096" -c "mwrite -S 0x5a 0 4096" -c "munmap" "$PATTERN_FILE" 2>&1)
    if echo "$out" | grep -q "Operation not supported"; then
        step mapsync FAIL "mmap(MAP_SYNC) refused with EOPNOTSUPP on novars"
    elif [ -z "$out" ] && pattern_intact; then
        echo 5a > "$STATE.mapsync"; step mapsync PASS "stored 4 KiB of 0x5a through a MAP_SYNC mapping; read() sees them"
    else
        echo "$out" | sed 's/^/    /'; step mapsync FAIL "MAP_SYNC store failed"
    fi

    if run_quiet umount "$MNT"; then step umount PASS "umount $MNT"
    else step umount FAIL "umount $MNT failed"; return; fi

    fsck_step fsck

    if ! mount_step remount; then return; fi
    if (cd "$FILES" && sha256sum -c --quiet "$STATE.sums"); then step verify PASS "files read back identical after remount"
    else step verify FAIL "files differ after remount"; fi
    if [ -e "$STATE.mapsync" ]; then
        if pattern_intact; then
            step verify-mapsync PASS "MAP_SYNC data intact after remount"
        else step verify-mapsync FAIL "MAP_SYNC data lost after remount"; fi
    fi
    run_quiet umount "$MNT" || step umount2 FAIL "umount failed"
}

# Writes files w.N (through w.N.tmp + rename) until qemu is killed.
crash() {
    load_module_step || return
    mount_step mount-before-crash || return
    mkdir -p "$FILES/crash"
    n=1
    while :; do
        content "$n" > "$FILES/crash/w.$n.tmp" && mv "$FILES/crash/w.$n.tmp" "$FILES/crash/w.$n" || {
            step workload FAIL "write $n failed"; return; }
        [ $n = 20 ] && echo "@@crash-armed"
        n=$((n + 1))
    done
}

recover() {
    load_module_step || return
    fsck_step fsck-after-crash
    mount_step mount-after-crash || return
    bad=0; good=0
    for f in "$FILES"/crash/w.*; do
        case $f in *.tmp|*'*') continue ;; esac
        n=${f##*/w.}
        if content "$n" | cmp -s - "$f"; then good=$((good + 1)); else bad=$((bad + 1)); echo "    damaged: $f"; fi
    done
    if [ $bad = 0 ] && [ $good -gt 0 ]; then step recovered PASS "all $good completed files intact after the crash"
    else step recovered FAIL "$bad damaged, $good intact completed files after the crash"; fi
    if (cd "$FILES" && sha256sum -c --quiet "$LIFE_STATE.sums"); then step verify-after-crash PASS "earlier files intact"
    else step verify-after-crash FAIL "earlier files damaged"; fi
    run_quiet umount "$MNT" || step umount3 FAIL "umount failed"
}

case ${1:-} in
    life) life ;;
    crash) crash ;;
    recover) recover ;;
    *) echo "usage: demo.sh life|crash|recover"; exit 2 ;;
esac
exit 0
