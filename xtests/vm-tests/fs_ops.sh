#!/bin/sh
# Every common operation on novars gives the results and errno values ext4 gives in the same VM, the tree survives unmount/fsck/remount, and fsck is clean.
# flavours: normal
# nvdimms: 1
# timeout: 900
# cost: 60 1400
. "$NOVARS_GUEST_LIB"
set -e
load_novars
OPS="python3 $NOVARS_ROOT/xtests/guest/fsops.py"
mkdir -p /tmp/m
mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 /tmp/m
$OPS run /tmp/m > /tmp/ext4.out
umount /tmp/m
must "$MKFS" -q -f /dev/pmem0
must mount -t novars /dev/pmem0 /tmp/m
$OPS run /tmp/m > /tmp/novars.out
cp /tmp/ext4.out /tmp/novars.out "$NOVARS_OUT/" 2>/dev/null || true
if ! diff -u /tmp/ext4.out /tmp/novars.out; then
    fail "novars differs from ext4 (- ext4, + novars)"
fi
ok "$(grep -c ': ' /tmp/ext4.out) operations give ext4's results; trees identical"
$OPS list /tmp/m > /tmp/before
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0
ok "fsck clean after unmount"
must mount -t novars /dev/pmem0 /tmp/m
$OPS list /tmp/m > /tmp/after
diff -u /tmp/before /tmp/after || fail "tree changed across unmount/mount"
ok "tree identical after remount"

# Both vCPUs allocate at once, each from its own allocator lane (the lane
# of a CPU owns a region of the device: files written on CPU 1 start in
# the upper half); creating, writing, fallocating and removing files
# concurrently leaves every byte right and fsck clean.
W="$NOVARS_ROOT/xtests/guest/lanes.py"
taskset -c 0 python3 "$W" write /tmp/m/cpu0 0 & p0=$!
taskset -c 1 python3 "$W" write /tmp/m/cpu1 1 & p1=$!
wait $p0 || fail "writer on CPU 0"
wait $p1 || fail "writer on CPU 1"
python3 "$W" check /tmp/m/cpu0 0 || fail "data written on CPU 0"
python3 "$W" check /tmp/m/cpu1 1 || fail "data written on CPU 1"
python3 "$W" lanes /tmp/m /dev/pmem0 || fail "CPUs did not allocate from their own lanes"
ok "two CPUs allocating at once: data intact, each CPU in its own lane"
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0
must rmmod novars
