#!/bin/sh
# fsx (seeded random read/write/truncate/fallocate/punch-hole/copy_file_range/sendfile with data verification after every read) on novars: zero mismatches, fsck clean afterwards.
# flavours: normal
# nvdimms: 1
# timeout: 900
#
# fsx is the crates.io crate (pinned by `cargo xt setup`). Two files are
# exercised one after the other, each with its own seed: one with byte-aligned
# operations, one with 4 KiB-aligned operations (whole-block COW).
# NOVARS_FSX_OPS (default 50000 per file, so 100000 in all) sets the
# operation count per file; NOVARS_FSX_SEED (default 1) the first seed.
# No mmap operations here: vm:mmap_fsx runs fsx with them (its own seeds).
. "$NOVARS_GUEST_LIB"
command -v fsx >/dev/null || fail "fsx not found on PATH ($PATH): run \`cargo xt setup\`"
load_novars
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")
OPS=${NOVARS_FSX_OPS:-50000}
SEED=${NOVARS_FSX_SEED:-1}
W=/tmp/fsx
mkdir -p $W/m

# fsx_conf ALIGN FALLOCATE_WEIGHT: the configuration (file up to 4 MiB so
# that multi-block extents, holes and truncates across extents happen).
# Operations are at least 1 byte long and the 4 KiB-aligned run has no
# posix_fallocate: fsx 0.3.2 aligns a posix_fallocate's length down to
# `align` (not its offset) and then calls it with length 0, which is EINVAL
# on every Linux file system and which fsx reports as a failure.
fsx_conf() {
    cat <<EOF
flen = 4194304
[opsize]
max = 262144
min = 1
align = $1
[weights]
close_open = 1
read = 10
write = 10
mapread = 0
mapwrite = 0
invalidate = 0
truncate = 3
fsync = 1
fdatasync = 1
posix_fallocate = $2
punch_hole = 2
sendfile = 2
copy_file_range = 4
EOF
}

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
total=0
for align in 1 4096; do
    if [ $align = 1 ]; then fsx_conf $align 2; else fsx_conf $align 0; fi > $W/fsx-$align.toml
    kmsg "fsx: align $align seed $SEED ops $OPS"
    start=$(date +%s)
    # -P: where fsx writes its .fsxlog/.fsxgood artifacts on a mismatch.
    fsx -N "$OPS" -S "$SEED" -f $W/fsx-$align.toml -P "$NOVARS_OUT" $W/m/file-$align > $W/fsx-$align.out 2>&1
    rc=$?
    echo "fsx align $align seed $SEED: $OPS operations in $(( $(date +%s) - start )) s, exit $rc"
    if [ $rc -ne 0 ]; then
        # fsx's verdict comes first, then the history of the last operations.
        cp $W/fsx-$align.out $W/fsx-$align.toml "$NOVARS_OUT/"
        grep -v '^\[ERROR fsx\] *[0-9]* [A-Z_]' $W/fsx-$align.out | head -30
        tail -20 $W/fsx-$align.out
        fail "fsx (align $align, seed $SEED) found a mismatch or error; full output in fsx-$align.out"
    fi
    grep -q "All operations completed A-OK" $W/fsx-$align.out || fail "fsx did not report completion"
    total=$((total + OPS))
    SEED=$((SEED + 1))
done
ok "fsx: $total operations, zero mismatches"
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
