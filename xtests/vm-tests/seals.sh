#!/bin/sh
# Sealed block maps (NOVARS_IOC_SEAL): every EBUSY case (truncate both ways, fallocate punch/zero/collapse/insert, allocating write), in-place writes and stores with FIEMAP identical, one hold per open file, release on close, dup, exit and SIGKILL; a seal never reaches the media (fsck clean, none after remount).
# flavours: normal
# nvdimms: 1
# timeout: 300
# cost: 6 60
. "$NOVARS_GUEST_LIB"
load_novars
S=$NOVARS_ROOT/target/guest-bin/sealtest
[ -x "$S" ] || fail "$S not built (cargo xt test builds xtests/guest/*.c)"
M=/tmp/m
mkdir -p $M
must "$MKFS" -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M
"$S" all $M || fail "sealtest"

# A seal held by a running process: visible, then gone with the process,
# and nothing of it on the media.
"$S" hold $M/held 1048576 > /tmp/hold.out &
pid=$!
for i in $(seq 50); do grep -q sealed /tmp/hold.out && break; sleep 0.1; done
grep -q sealed /tmp/hold.out || fail "holder did not seal"
[ "$("$S" info $M/held)" = "holders 1" ] || fail "seal of a running holder not visible"
xfs_io -c "truncate 0" $M/held 2>&1 | grep -q "Device or resource busy" || fail "truncate of a held file did not fail with EBUSY"
kill -9 $pid
wait $pid 2>/dev/null
[ "$("$S" info $M/held)" = "holders 0" ] || fail "seal survived SIGKILL of its holder"
ok "seal released by SIGKILL of the holding process"
"$S" hold $M/held 4096 > /tmp/hold.out &
pid=$!
for i in $(seq 50); do grep -q sealed /tmp/hold.out && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
must umount $M
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $M
[ "$("$S" info $M/held)" = "holders 0" ] || fail "a seal came back after remount"
must xfs_io -c "truncate 0" $M/held
must umount $M
ok "no seal on the media: fsck clean, none after remount"
