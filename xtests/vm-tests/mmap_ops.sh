#!/bin/sh
# DAX mmap on novars: MAP_SYNC accepted, read faults on holes allocate nothing, write faults allocate and are durable, 2 MiB faults (smaps FilePmdMapped), private mappings, mprotect, madvise, mremap, truncate of a mapped file, write() from a mapping of itself, mmap/read/write coherence, msync/fsync; fsck clean and data intact after remount.
# flavours: normal debug
# nvdimms: 1
# timeout: 300
# cost: 18 40
. "$NOVARS_GUEST_LIB"
load_novars
MKFS=$(command -v mkfs.novars || echo "$NOVARS_BIN/mkfs_novars")
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")
T=$NOVARS_ROOT/target/guest-bin/mmaptest
MS=$NOVARS_ROOT/target/guest-bin/mapsync
[ -x "$T" ] && [ -x "$MS" ] || fail "guest programs not built (cargo xt test builds xtests/guest/*.c)"
M=/tmp/m
mkdir -p $M
must "$MKFS" -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M

# MAP_SYNC is accepted (xfs_io -S: MAP_SHARED_VALIDATE|MAP_SYNC).
must xfs_io -f -c "truncate 64k" $M/sync
"$MS" probe $M/sync || fail "MAP_SYNC refused on novars"
xfs_io -c "mmap -S -rw 0 64k" -c "mwrite -S 0x5a 0 64k" -c "munmap" $M/sync || fail "xfs_io mmap -S"
[ "$(od -An -tx1 -j 65535 -N1 $M/sync | tr -d ' ')" = 5a ] || fail "MAP_SYNC store not in the file"
ok "MAP_SYNC mapping accepted and written"

# A write fault allocates exactly the touched page; a read fault none.
# (st_blocks also counts the inode's log pages: compare differences.)
must xfs_io -f -c "truncate 1m" $M/sparse
b0=$(stat -c %b $M/sparse)
xfs_io -c "mmap -r 0 1m" -c "mread 0 1m" $M/sparse > /dev/null || fail "mread of holes"
[ "$(stat -c %b $M/sparse)" = "$b0" ] || fail "read faults on holes allocated blocks: $b0 -> $(stat -c %b $M/sparse)"
xfs_io -c "mmap -rw 0 1m" -c "mwrite -S 0x41 512k 1" $M/sparse > /dev/null || fail "mwrite"
[ "$(stat -c %b $M/sparse)" = $((b0 + 8)) ] || fail "one write fault should allocate one 4 KiB block: st_blocks $b0 -> $(stat -c %b $M/sparse)"
xfs_io -c "fiemap" $M/sparse | grep -q "\[1024\.\.1031\]" || { xfs_io -c "fiemap" $M/sparse; fail "fiemap: block not at 512k"; }
ok "read faults on holes allocate nothing; a write fault allocates its page"

# mremap grows the mapping; madvise; msync -s of the dirty page only.
must xfs_io -f -c "truncate 256k" $M/remap
xfs_io -c "mmap -rw 0 64k" -c "mwrite -S 0x31 0 64k" -c "mremap -m 256k" \
    -c "mwrite -S 0x32 128k 64k" -c "madvise -s 0 256k" -c "madvise -w 0 256k" \
    -c "madvise -r 0 256k" -c "madvise -d 0 64k" -c "mread -v 0 4" \
    -c "msync -s 128k 4k" -c "msync -i 0 256k" $M/remap || fail "xfs_io mremap/madvise/msync"
[ "$(od -An -tx1 -j 131172 -N1 $M/remap | tr -d ' ')" = 32 ] || fail "store after mremap lost"
[ "$(od -An -tx1 -j 60000 -N1 $M/remap | tr -d ' ')" = 31 ] || fail "store before mremap lost (MADV_DONTNEED on a file mapping must keep data)"
ok "mremap, madvise, msync"

# Truncate of a file mapped by another process (xfs_io keeps it mapped).
must xfs_io -f -c "pwrite -S 0x61 0 32k" $M/tr
xfs_io -c "mmap -rw 0 32k" -c "mread 0 32k" -c "truncate 5000" -c "mread 0 4096" \
    -c "truncate 32k" -c "mread -v 4996 8" $M/tr > /tmp/tr.out || { cat /tmp/tr.out; fail "truncate while mapped"; }
grep -q "00001384:  61 61 61 61 00 00 00 00" /tmp/tr.out || { cat /tmp/tr.out; fail "after truncate to 5000 and back, bytes 5000.. are not zero"; }
ok "truncate of a mapped file"

# 2 MiB faults need CONFIG_TRANSPARENT_HUGEPAGE (FS_DAX_PMD), which the
# test kernels do not enable yet: reported, not failed, without it.
if [ -d /sys/kernel/mm/transparent_hugepage ]; then
    "$T" pmd $M || fail "mmaptest pmd"
else
    echo "NOTE: kernel without CONFIG_TRANSPARENT_HUGEPAGE: no PMD faults; 2 MiB mapping check not run"
    must xfs_io -f -c "truncate 4m" $M/pmd
fi
for t in coherence private truncate mprotect self; do
    "$T" $t $M || fail "mmaptest $t"
done

# Everything survives unmount, fsck and a new mount.
sum=$(md5sum $M/coh $M/pmd $M/self | md5sum)
must umount $M
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $M
[ "$sum" = "$(md5sum $M/coh $M/pmd $M/self | md5sum)" ] || fail "mapped data changed across remount"
must umount $M
ok "fsck clean, data intact after remount"
