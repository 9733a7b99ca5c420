#!/bin/sh
# fsx (seeded random read/write/mapread/mapwrite/msync-invalidate/truncate/fallocate/punch-hole/copy_file_range/sendfile/fsync with data verification after every read) on novars: 100000 operations, zero mismatches, fsck clean, files intact after remount.
# flavours: normal
# nvdimms: 1
# timeout: 900
# cost: 420
#
# fsx is the crates.io crate (pinned by `cargo xt setup`). Two files, each
# with its own seed and its own fsx process, run at once (one per vCPU): one
# with byte-aligned operations, one with 4 KiB-aligned operations (whole-block
# copy-on-write), so that mapped writes meet the copy-on-write and in-place
# write() paths, partial pages, truncates of mapped pages and holes read
# through the zero page. This is the fsx of both issue 4 (read/write/
# truncate/fallocate/punch/copy_file_range) and issue 5 (mmap ops in the mix).
# NOVARS_FSX_OPS (default 50000 per file, so 100000 in all) sets the
# operation count per file (the long mode: e.g. 1000000); NOVARS_FSX_SEED
# (default 1) the first seed.
. "$NOVARS_GUEST_LIB"
command -v fsx >/dev/null || fail "fsx not found on PATH ($PATH): run \`cargo xt setup\`"
load_novars
OPS=${NOVARS_FSX_OPS:-50000}
SEED=${NOVARS_FSX_SEED:-1}
W=/tmp/fsx
mkdir -p $W/m
# fsx_conf ALIGN FALLOCATE_WEIGHT: files up to 4 MiB, so that multi-block
# extents, holes and truncates across extents happen. ALIGN is also the
# smallest operation, and only the byte-aligned file has posix_fallocate:
# fsx 0.3.2 rounds a posix_fallocate's length (not its offset) down to
# `align`, can reach length 0 near the end of the file, and then reports the
# EINVAL every Linux file system gives as a failure.
fsx_conf() {
    cat <<CONF
flen = 4194304
[opsize]
max = 262144
min = $1
align = $1
[weights]
close_open = 1
read = 8
write = 8
mapread = 6
mapwrite = 6
invalidate = 1
truncate = 3
fsync = 1
fdatasync = 1
posix_fallocate = $2
punch_hole = 2
sendfile = 2
copy_file_range = 3
CONF
}
must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
start=$(date +%s)
seed=$SEED
for align in 1 4096; do
    fsx_conf $align $([ $align = 1 ] && echo 2 || echo 0) > $W/fsx-$align.toml
    kmsg "fsx: align $align seed $seed ops $OPS"
    # -P: where fsx writes its .fsxlog/.fsxgood artifacts on a mismatch.
    ( fsx -N "$OPS" -S "$seed" -f $W/fsx-$align.toml -P "$NOVARS_OUT" $W/m/file-$align > $W/fsx-$align.out 2>&1
      echo $? > $W/fsx-$align.rc ) &
    seed=$((seed + 1))
done
wait
total=0
seed=$SEED
for align in 1 4096; do
    rc=$(cat $W/fsx-$align.rc 2>/dev/null || echo none)
    echo "fsx align $align seed $seed: $OPS operations, exit $rc ($(( $(date +%s) - start )) s for both files)"
    if [ "$rc" != 0 ]; then
        # fsx's verdict comes first, then the history of the last operations.
        cp $W/fsx-$align.out $W/fsx-$align.toml "$NOVARS_OUT/"
        grep -v '^\[ERROR fsx\] *[0-9]* [A-Z_]' $W/fsx-$align.out | head -30
        tail -20 $W/fsx-$align.out
        fail "fsx (align $align, seed $seed) found a mismatch or error; full output in fsx-$align.out"
    fi
    grep -q "All operations completed A-OK" $W/fsx-$align.out || fail "fsx (align $align) did not report completion"
    total=$((total + OPS))
    seed=$((seed + 1))
done
ok "fsx (mmap ops in the mix): $total operations, zero mismatches"
# The data must also survive an unmount: compare after remount with a copy
# taken before.
must cp $W/m/file-1 $W/m/file-4096 /tmp/
must umount $W/m
must "$FSCK" -fn /dev/pmem0
ok "fsck clean after fsx"
must novars_mount /dev/pmem0 $W/m
cmp $W/m/file-1 /tmp/file-1 || fail "file-1 changed across unmount/mount"
cmp $W/m/file-4096 /tmp/file-4096 || fail "file-4096 changed across unmount/mount"
ok "fsx's files intact after remount"
must umount $W/m
exit 0
