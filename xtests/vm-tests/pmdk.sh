#!/bin/sh
# A real MAP_SYNC client: PMDK's pmem_map_file sees persistent memory (MAP_SYNC) on novars as on ext4-DAX, pmem_memcpy_persist data survives a remount, and pmempool creates and checks an obj pool on both; fsck clean.
# flavours: normal
# nvdimms: 1
# timeout: 300
# cost: 25
. "$NOVARS_GUEST_LIB"
command -v pmempool >/dev/null || skip "pmempool not installed (cargo xt setup installs pmdk-tools)"
P=$NOVARS_ROOT/target/guest-bin/pmemmap
[ -x "$P" ] || fail "$P not built (needs libpmem-dev; cargo xt test builds xtests/guest/*.c)"
load_novars
M=/tmp/m
mkdir -p $M
unset PMEM_IS_PMEM_FORCE
for fs in ext4 novars; do
    case $fs in
        ext4) must mkfs.ext4 -q -F /dev/pmem0; must mount -t ext4 -o dax /dev/pmem0 $M ;;
        novars) must "$MKFS" -q -f /dev/pmem0; must novars_mount /dev/pmem0 $M ;;
    esac
    out=$("$P" $M/raw 8388608) || fail "$fs: pmem_map_file: $out"
    echo "$fs: $out"
    case "$out" in
        "is_pmem 1 pmem_is_pmem 1"*) ok "$fs: libpmem maps with MAP_SYNC (is_pmem 1)" ;;
        *) fail "$fs: libpmem does not see persistent memory: $out" ;;
    esac
    must pmempool create --layout=xt -s 32M obj $M/pool.obj
    must pmempool check -v $M/pool.obj
    pmempool info $M/pool.obj | grep -E "^(Layout|Pool size|UUID)" || fail "$fs: pmempool info"
    ok "$fs: pmempool create + check of an obj pool"
    must umount $M
    case $fs in
        ext4) must mount -t ext4 -o dax /dev/pmem0 $M ;;
        novars) must "$FSCK" -fn /dev/pmem0; must novars_mount /dev/pmem0 $M ;;
    esac
    must "$P" -c $M/raw 8388608
    must pmempool check $M/pool.obj
    must umount $M
    ok "$fs: data and pool intact after remount"
done
