#!/bin/sh
# Machine-check-safe reads: with the tracing build's poison switch on one block, a copy-on-write that must copy from it, the load of a directory whose log page or of a file whose inode record is poisoned, and a mount with the superblock poisoned each return EIO to the program with one kernel log line, change nothing else and work again once the switch is off; fsck then repairs the error state and finds the file system clean; no panic.
# flavours: normal
# module: trace
# nvdimms: 1
# timeout: 300
# cost: 10
#
# The switch (pm::Fault::Poison, debugfs `poison_block`) stands in for a
# load that hits a poisoned pmem line, which emulated pmem cannot raise:
# every read the module makes of pmem goes through copy_mc_to_kernel
# (media.rs), where the switch acts.
. "$NOVARS_GUEST_LIB"
KO=${NOVARS_TRACE_KO:-${NOVARS_KO%/*/novafs-kmod/novars.ko}/$NOVARS_FLAVOUR-trace/novafs-kmod/novars.ko}
[ -f "$KO" ] || fail "the tracing build $KO is missing (cargo xt module --trace)"
grep -q '^novars ' /proc/modules && must rmmod novars
must insmod "$KO"
[ -d /sys/kernel/debug/novars ] || must mount -t debugfs none /sys/kernel/debug
[ -f /sys/kernel/debug/novars/poison_block ] || fail "$KO has no poison switch"
must "$MKFS" -q -f /dev/pmem0
mkdir -p /tmp/poison
python3 "$NOVARS_ROOT/xtests/guest/poison.py" /dev/pmem0 /tmp/poison || fail "poison.py"
"$FSCK" -fy /dev/pmem0 > /tmp/poison.fsck 2>&1
rc=$?
[ $rc -le 1 ] || { cat /tmp/poison.fsck; fail "fsck -fy exited $rc"; }
grep -q "kernel recorded errors" /tmp/poison.fsck || { cat /tmp/poison.fsck; fail "fsck -fy did not report the error state the media errors left"; }
must "$FSCK" -fn /dev/pmem0
ok "fsck -fy cleared the error state (exit $rc); fsck -fn clean"
must rmmod novars
