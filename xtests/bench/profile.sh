#!/bin/sh
# Flat kernel+user profiles (perf, cpu-clock sampling: TCG has no PMU) of
# the cases where novars misses a target, on novars and on ext4-DAX for
# comparison. Host: cargo xt vm -- sh $PWD/xtests/bench/profile.sh
# Output: $NOVARS_OUT/profile-<fs>-<case>.txt (top symbols).
. "$NOVARS_GUEST_LIB"
FSBENCH=$NOVARS_ROOT/target/bench/bin/fsbench
[ -x "$FSBENCH" ] || FSBENCH=$NOVARS_ROOT/target/guest-bin/fsbench
command -v perf >/dev/null || skip "perf is not installed"
load_novars
M=/tmp/prof-mnt; mkdir -p $M
for fs in novars ext4; do
    case $fs in
    novars) must mkfs.novars -q -f /dev/pmem0 >/dev/null; must novars_mount /dev/pmem0 $M ;;
    ext4) must mkfs.ext4 -q -F /dev/pmem0; must mount -t ext4 -o dax /dev/pmem0 $M ;;
    esac
    mkdir -p $M/md $M/sw
    # creat + unlink (mdscale: create N, then unlink N, one thread)
    perf record -q -e cpu-clock -a -o /tmp/perf-md.data -- "$FSBENCH" mdscale $M/md 1 3000
    perf report -q -i /tmp/perf-md.data --stdio --sort sym 2>/dev/null | head -40 > "$NOVARS_OUT/profile-$fs-create-unlink.txt"
    # 4 KiB preads
    perf record -q -e cpu-clock -a -o /tmp/perf-rd.data -- "$FSBENCH" preadloop $M 4096 20000
    perf report -q -i /tmp/perf-rd.data --stdio --sort sym 2>/dev/null | head -40 > "$NOVARS_OUT/profile-$fs-read4k.txt"
    # sequential 1 MiB writes into a new file
    perf record -q -e cpu-clock -a -o /tmp/perf-sw.data -- fio --name=sw --directory=$M/sw --rw=write --bs=1M --size=256M --ioengine=psync --fallocate=none --output=/dev/null
    perf report -q -i /tmp/perf-sw.data --stdio --sort sym 2>/dev/null | head -40 > "$NOVARS_OUT/profile-$fs-seqwrite.txt"
    umount $M
    echo "== $fs: create+unlink"; head -25 "$NOVARS_OUT/profile-$fs-create-unlink.txt"
    echo "== $fs: seq write 1 MiB"; head -25 "$NOVARS_OUT/profile-$fs-seqwrite.txt"
    echo "== $fs: pread 4 KiB"; head -25 "$NOVARS_OUT/profile-$fs-read4k.txt"
done
