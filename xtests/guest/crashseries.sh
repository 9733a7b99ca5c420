#!/bin/sh
# One boot of a crash series (see `crash_series` in xtests/src/tests.rs).
#
#   crashseries.sh HANDOFF SPEC...     SPEC = NAME:DEV:SCRIPT:VERIFY:CRASH
#
# Every crash test of a flavour shares the series' boots, each on its own
# NVDIMM (DEV). First, one test at a time, `sh SCRIPT verify VERIFY` checks
# what the previous boot's workload left (VERIFY "-": nothing to check) and
# prints `@@crash-verified NAME VERIFY` or `@@crash-failed NAME VERIFY`.
# If every check passed, `sh SCRIPT crash CRASH` of each test (CRASH "-":
# none) starts, all at once, and once each has printed `@@crash-armed` (or
# ended) this prints `@@crash-armed`: the harness kills qemu a moment later.
#
# Each test runs in a private mount namespace with its own /tmp and its
# device bind-mounted on /dev/pmem0, so scripts written for one NVDIMM and
# /tmp/m run side by side unchanged. A test's files go to $NOVARS_OUT/NAME
# (the harness hands them to the next boot as $NOVARS_CRASH_DIR =
# HANDOFF/NAME).
. "$NOVARS_GUEST_LIB"
R="$NOVARS_OUT"
H="$1"
shift

# in_ns DEV CMD...: CMD with a private /tmp and DEV seen as /dev/pmem0.
in_ns() {
    dev=$1
    shift
    unshare -m --propagation private sh -c '
        mount -t tmpfs tmpfs /tmp || exit 70
        if [ "$0" != /dev/pmem0 ]; then mount --bind "$0" /dev/pmem0 || exit 70; fi
        cd /tmp && exec "$@"' "$dev" "$@"
}

field() { echo "$1" | cut -d: -f"$2"; }

# Module loading is not safe to race: do it once, before any test.
if [ -n "${NOVARS_KO:-}" ] && ! grep -qw novars /proc/filesystems; then
    insmod "$NOVARS_KO" || fail "insmod novars.ko"
fi

failed=0
for spec; do
    name=$(field "$spec" 1) dev=$(field "$spec" 2) script=$(field "$spec" 3) v=$(field "$spec" 4)
    [ "$v" = - ] && continue
    mkdir -p "$R/$name"
    kmsg "crash series: $name verify $v"
    NOVARS_OUT="$R/$name" NOVARS_CRASH_DIR="$H/$name" in_ns "$dev" sh "$script" verify "$v" > /tmp/verify.out 2>&1
    st=$?
    sed "s/^/[$name] /" /tmp/verify.out
    if [ "$st" = 0 ]; then
        echo "@@crash-verified $name $v"
    else
        echo "@@crash-failed $name $v (exit $st)"
        failed=1
    fi
done
[ "$failed" = 0 ] || exit 1

mkdir -p /tmp/cs
started=""
for spec; do
    name=$(field "$spec" 1) dev=$(field "$spec" 2) script=$(field "$spec" 3) c=$(field "$spec" 5)
    [ "$c" = - ] && continue
    mkdir -p "$R/$name"
    rm -f "/tmp/cs/$name.out" "/tmp/cs/$name.status"
    kmsg "crash series: $name crash $c"
    (
        NOVARS_OUT="$R/$name" in_ns "$dev" sh "$script" crash "$c" > "/tmp/cs/$name.out" 2>&1
        echo $? > "/tmp/cs/$name.status"
    ) &
    started="$started $name"
done
[ -n "$started" ] || exit 0
while :; do
    all=1
    for n in $started; do
        grep -q '@@crash-armed' "/tmp/cs/$n.out" 2>/dev/null || [ -f "/tmp/cs/$n.status" ] || all=0
    done
    [ "$all" = 1 ] && break
    sleep 0.1
done
echo "@@crash-armed"
wait
# Not killed: every workload ended on its own.
for n in $started; do
    sed "s/^/[$n] /" "/tmp/cs/$n.out"
    st=$(cat "/tmp/cs/$n.status")
    if [ "$st" != 0 ]; then
        echo "@@crash-workload-failed $n (exit $st)"
        failed=1
    fi
done
exit "$failed"
