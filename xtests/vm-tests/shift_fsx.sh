#!/bin/sh
# Collapse and insert range on files with any number of extents: shiftfsx (xtests/guest/shiftfsx.c: write, read, mapwrite, mapread, truncate, punch hole, zero range, fallocate, collapse range, insert range, fsync, checked against a model of the file) runs 2 x 50,000 operations on novars, two files at once, with zero mismatches; fsck clean; the files identical after remount.
# flavours: normal
# nvdimms: 1
# timeout: 1200
# cost: 165
#
# NOVARS_SHIFTFSX_OPS sets the operations per file (default 50000: 100,000
# in all); NOVARS_SHIFTFSX_SEED the first seed (default 1);
# NOVARS_SHIFTFSX_MAXLEN the largest file (default 4 MiB, as the fsx test;
# 16 MiB took 369 s under TCG).
. "$NOVARS_GUEST_LIB"
load_novars
T=$NOVARS_ROOT/target/guest-bin/shiftfsx
OPS=${NOVARS_SHIFTFSX_OPS:-50000}
SEED=${NOVARS_SHIFTFSX_SEED:-1}
MAXLEN=${NOVARS_SHIFTFSX_MAXLEN:-4194304}
W=/tmp/shiftfsx
mkdir -p $W/m
[ -x "$T" ] || fail "$T is not built"

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
start=$(date +%s)
for i in 1 2; do
    ( "$T" $W/m/file$i "$OPS" $((SEED + i - 1)) "$MAXLEN" > $W/out$i 2>&1; echo $? > $W/rc$i ) &
done
wait
for i in 1 2; do
    cat $W/out$i
    [ "$(cat $W/rc$i)" = 0 ] || fail "shiftfsx file$i (seed $((SEED + i - 1))) exited $(cat $W/rc$i)"
    for k in collapse insert; do
        n=$(sed -n "s/^$k //p" $W/out$i)
        [ "${n:-0}" -gt 0 ] || fail "file$i: no $k operation ran"
    done
done
ok "2 x $OPS operations with collapse and insert range, no mismatch ($(( $(date +%s) - start )) s)"
md5sum $W/m/file1 $W/m/file2 > $W/sums
must umount $W/m
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $W/m
md5sum -c $W/sums || fail "files changed across unmount"
ok "files identical after remount, fsck clean"
must umount $W/m
exit 0
