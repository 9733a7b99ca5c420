#!/bin/sh
# fsx with mapread/mapwrite in the mix (plus read, write, truncate, fallocate, punch hole, msync invalidate, fsync) on novars: zero mismatches in 100000 operations, fsck clean, data intact after remount.
# flavours: normal
# nvdimms: 1
# timeout: 900
#
# fsx is the crates.io crate (`cargo xt setup`). Two files, each with its
# own seed: byte-aligned and 4 KiB-aligned operations, so that mapped
# writes meet copy-on-write and in-place write() paths, partial pages,
# truncates of mapped pages and holes read through the zero page.
# NOVARS_FSX_MMAP_OPS (default 50000 per file) sets the operation count per
# file (the long mode: e.g. 1000000); NOVARS_FSX_SEED (default 11) the seed.
. "$NOVARS_GUEST_LIB"
command -v fsx >/dev/null || fail "fsx not found on PATH ($PATH): run \`cargo xt setup\`"
load_novars
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")
OPS=${NOVARS_FSX_MMAP_OPS:-50000}
SEED=${NOVARS_FSX_SEED:-11}
W=/tmp/fsxm
mkdir -p $W/m

# conf ALIGN FALLOCATE_WEIGHT (ALIGN is also the smallest operation: fsx rounds sizes down to ALIGN,
# and a zero-length fallocate is EINVAL everywhere).
conf() {
    cat <<CONF
flen = 4194304
[opsize]
max = 131072
min = $1
align = $1
[weights]
close_open = 1
read = 6
write = 6
mapread = 10
mapwrite = 10
invalidate = 1
truncate = 3
fsync = 1
fdatasync = 1
posix_fallocate = $2
punch_hole = 2
CONF
}

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
total=0
for align in 1 4096; do
    # fsx 0.3.2 can align a posix_fallocate near the end of the file down
    # to length 0 (EINVAL everywhere): only the byte-aligned file has them.
    conf $align $([ $align = 1 ] && echo 2 || echo 0) > $W/fsx-$align.toml
    kmsg "mmap_fsx: align $align seed $SEED ops $OPS"
    start=$(date +%s)
    fsx -N "$OPS" -S "$SEED" -f $W/fsx-$align.toml -P "$NOVARS_OUT" $W/m/file-$align > $W/fsx-$align.out 2>&1
    rc=$?
    tail -3 $W/fsx-$align.out
    echo "fsx (mmap mix) align $align seed $SEED: $OPS operations in $(( $(date +%s) - start )) s, exit $rc"
    [ $rc -eq 0 ] || { tail -40 $W/fsx-$align.out; fail "fsx (align $align, seed $SEED) found a mismatch or error"; }
    grep -q "All operations completed A-OK" $W/fsx-$align.out || fail "fsx did not report completion"
    total=$((total + OPS))
    SEED=$((SEED + 1))
done
ok "fsx with mapread/mapwrite: $total operations, zero mismatches"
must cp $W/m/file-1 $W/m/file-4096 /tmp/
must umount $W/m
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $W/m
cmp $W/m/file-1 /tmp/file-1 || fail "file-1 changed across unmount/mount"
cmp $W/m/file-4096 /tmp/file-4096 || fail "file-4096 changed across unmount/mount"
must umount $W/m
ok "fsck clean, fsx's files intact after remount"
