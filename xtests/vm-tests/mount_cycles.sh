#!/bin/sh
# 100 mount/work/unmount cycles of novars leak nothing: kmemleak finds no unreferenced object, novars's inode cache is empty after each unmount, the files of every cycle survive, fsck clean, and the module unloads.
# flavours: debug
# nvdimms: 1
# timeout: 900
# cost: 50 290
#
# Each cycle (xtests/guest/mount_cycles.py) mounts, checks the previous
# cycle's files, creates, writes, appends, links, renames, symlinks,
# truncates and unlinks a little, reads a directory, and unmounts; every
# 10th cycle also remounts read-only and back, and every 10th makes a
# read-only mount. NOVARS_MOUNT_CYCLES sets the count (default
# 100). Leaks are judged by kmemleak (the debug kernel has it): every object
# allocated during the cycles and still unreferenced after them is a report,
# which also fails the test through the kernel-log scan. /proc/slabinfo is
# shown for novars's own cache and the kmalloc caches, but judged only for
# novars_inode_cache: under KASAN freed objects wait in a quarantine, so
# kmalloc counts do not fall back when memory is freed.
. "$NOVARS_GUEST_LIB"
CYCLES=${NOVARS_MOUNT_CYCLES:-100}
W=/tmp/cycles
M=$W/m
mkdir -p $M
KL=/sys/kernel/debug/kmemleak
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
if [ "$NOVARS_FLAVOUR" = debug ]; then
    [ -w $KL ] || fail "no $KL on the debug kernel (kmemleak disabled? see the boot log)"
fi

# slab NAME: active objects of cache NAME, after flushing KASAN's quarantine
# for it (writing `shrink`).
slab() {
    [ -w /sys/kernel/slab/$1/shrink ] && echo 1 > /sys/kernel/slab/$1/shrink
    awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "none" }' /proc/slabinfo
}
kmalloc_total() { awk '$1 ~ /^kmalloc-[0-9]+k?$/ { s += $2 } END { print s + 0 }' /proc/slabinfo; }

load_novars
must mkfs.novars -q -f /dev/pmem0

# The cycles run in one Python process (xtests/guest/mount_cycles.py): a
# fork+exec per step costs about half a second on the debug kernel.
cycles() { python3 "$NOVARS_ROOT/xtests/guest/mount_cycles.py" /dev/pmem0 $M "$1" "$2" || fail "cycles $1..$2"; }

# Warm-up cycles first, so that one-time allocations (caches, lazily
# created kernel structures) are not counted; then forget what kmemleak
# knows so far.
cycles 1 2
sleep 1
[ -w $KL ] && echo clear > $KL
ino0=$(slab novars_inode_cache)
km0=$(kmalloc_total)
start=$(date +%s)
cycles 3 $((CYCLES + 2))
echo "$CYCLES cycles in $(( $(date +%s) - start )) s"
ok "$CYCLES mount/work/unmount cycles; every cycle's files were intact at the next mount"
sleep 1
ino1=$(slab novars_inode_cache)
km1=$(kmalloc_total)
echo "novars_inode_cache active objects: $ino0 before, $ino1 after (unmounted)"
echo "kmalloc-* active objects: $km0 before, $km1 after (informational; KASAN quarantine)"
grep -E '^(novars|kmalloc-[0-9]+k? )' /proc/slabinfo | awk '{ print "  " $1, $2, $3 }'
case $ino1 in
    0|none) ;;
    *) fail "$ino1 novars inodes still allocated after unmount" ;;
esac
ok "no novars inode left in novars_inode_cache after unmount"

must "$FSCK" -fn /dev/pmem0
ok "fsck clean after $CYCLES cycles"
kmsg "mount_cycles: rmmod"
must rmmod novars
grep -qw novars /proc/filesystems && fail "novars still registered after rmmod"
ok "module unloaded"

if [ -w $KL ]; then
    # kmemleak reports only objects older than 5 s, and a scan can miss an
    # object whose last pointer was just dropped: scan twice.
    sleep 6
    echo scan > $KL
    sleep 1
    echo scan > $KL
    leaks=$(grep -c "unreferenced object" $KL)
    if [ "$leaks" -gt 0 ]; then
        head -80 $KL
        fail "kmemleak: $leaks unreferenced objects after $CYCLES cycles"
    fi
    ok "kmemleak: no unreferenced object after $CYCLES cycles and rmmod"
else
    echo "kmemleak not available on the $NOVARS_FLAVOUR kernel: leak check by slabinfo only"
fi
exit 0
