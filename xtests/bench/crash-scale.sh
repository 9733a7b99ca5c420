#!/bin/sh
# The mount after a crash and the first change after it, at FILES files
# (default 1,000,000 1 KiB files, in 1000 directories), on novars and
# ext4-DAX, one boot: what BENCH.md "crash at 1,000,000 files" reports.
# Host: cargo xt vm --size 16G --memory 3G -- sh $PWD/xtests/bench/crash-scale.sh [FILES] [RUNS]
# A crash: novars's CLEAN bit cleared after a clean unmount (fsbench
# unclean, as the suite's mount-crash cases); ext4 shut down
# (xfs_io -x -c shutdown) after a last change. Each run prints the mount's
# time, the first change's (a create through the shell, no process
# started) and, for novars, when statfs (which waits for the walk of the
# logs) answers.
. "$NOVARS_GUEST_LIB"
FILES=${1:-1000000}
RUNS=${2:-3}
M=/tmp/cs
. "$NOVARS_ROOT/xtests/bench/scale-lib.sh"
for fs in novars ext4; do
    make_files $fs $FILES
    r=1
    while [ $r -le $RUNS ]; do
        case $fs in
        novars) must "$FSBENCH" unclean $DEV ;;
        ext4) must mount -t ext4 -o dax $DEV $M; touch $M/p0000/crash-$r; sync
              xfs_io -x -c shutdown $M; must umount $M ;;
        esac
        sync; echo 3 > /proc/sys/vm/drop_caches
        dmesg -C
        t=$("$FSBENCH" mount $DEV $M $fs "$( [ $fs = ext4 ] && echo dax )") || fail "$fs: mount after the crash"
        t0=$(now_ms)
        : > $M/p0000/first-$r || fail "$fs: the first change"
        t1=$(now_ms)
        df $M > /dev/null
        t2=$(now_ms)
        echo "$fs run $r: mount-crash $t ms, first-change $((t1 - t0)) ms, statfs (after the walk) $((t2 - t0)) ms"
        dmesg | grep -E "novars.*(rebuilt|scanned|pools)" | sed 's/^/    /'
        must umount $M
        r=$((r + 1))
    done
done
