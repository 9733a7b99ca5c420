#!/bin/sh
# The emulated NVDIMM is DAX-capable and ext4 mounts on it with -o dax (baseline sanity).
# flavours: normal
# nvdimms: 1
# timeout: 300
# cost: 5 30
. "$NOVARS_GUEST_LIB"

q=/sys/block/pmem0/queue/dax
[ "$(cat $q)" = 1 ] || fail "$q is $(cat $q), want 1"
ok "$q = 1"

must mkfs.ext4 -q -F /dev/pmem0
mkdir -p /tmp/mnt
must mount -t ext4 -o dax /dev/pmem0 /tmp/mnt
grep -E '^/dev/pmem0 /tmp/mnt ext4 .*dax' /proc/mounts || fail "ext4 is not mounted with dax"
must xfs_io -f -c "pwrite -q -S 0xab 0 1m" -c fsync /tmp/mnt/f
# A file on a DAX mount carries STATX_ATTR_DAX (0x200000).
attrs=$(xfs_io -c "statx -r" /tmp/mnt/f | sed -n 's/^stat.attributes = //p')
[ $((attrs & 0x200000)) -ne 0 ] || fail "file is not DAX (statx attributes $attrs)"
must xfs_io -f -c "truncate 4096" -c "mmap -S -rw 0 4096" -c "mwrite -S 0x5a 0 4096" -c munmap /tmp/mnt/sync
ok "MAP_SYNC mapping works on ext4-dax"
must umount /tmp/mnt
must mount -t ext4 -o dax /dev/pmem0 /tmp/mnt
[ "$(od -An -tx1 -N1 /tmp/mnt/sync | tr -d ' ')" = 5a ] || fail "MAP_SYNC data lost across remount"
must umount /tmp/mnt
ok "ext4 -o dax on /dev/pmem0"
