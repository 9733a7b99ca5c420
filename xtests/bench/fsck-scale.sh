#!/bin/sh
# fsck and a shutdown during the free-space rebuild at FILES files
# (default 1,000,000 1 KiB files in 1000 directories), novars against
# ext4-DAX's e2fsck, one boot (about 7 minutes at 1,000,000).
# Host: cargo xt vm --resident --size 16G --memory 3G -- sh $PWD/xtests/bench/fsck-scale.sh [FILES]
# (--resident needs 16 GiB free in /dev/shm; without it the first pass
# over the device pays host page faults.) Prints each check's time, its
# passes (-tt) and peak memory; then, on novars, how long FS_IOC_SHUTDOWN
# takes right after a mount after a crash (the walk of every log is
# running: the shutdown stops it) and that the next mount recovers and
# fsck finds the image clean.
. "$NOVARS_GUEST_LIB"
FILES=${1:-1000000}
M=/tmp/fs
. "$NOVARS_ROOT/xtests/bench/scale-lib.sh"
timed() { # LABEL CMD...: runs CMD, prints its time, fails on a non-zero exit
    label=$1; shift
    sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(now_ms)
    /usr/bin/time -f "peak RSS %M KiB" -o /tmp/fs-time.txt "$@" > /tmp/fs-out.txt 2>&1; rc=$?
    echo "$label: $(( $(now_ms) - t0 )) ms (exit $rc), $(cat /tmp/fs-time.txt | tail -n 1)"
    grep -E "^Pass [0-9] \(|^Memory" /tmp/fs-out.txt
    [ $rc -eq 0 ] || { tail -n 20 /tmp/fs-out.txt; fail "$label failed"; }
}
for fs in novars ext4; do
    make_files $fs $FILES
    case $fs in
    novars)
        for r in 1 2; do timed "fsck.novars -fn, run $r" fsck.novars -fn -tt $DEV; done
        must "$FSBENCH" unclean $DEV
        dmesg -C
        must novars_mount $DEV $M
        # The ioctl itself (xfs_io -c shutdown calls statfs first, which
        # waits for the walk).
        python3 -c "
import fcntl, os, struct, time
fd = os.open('$M', os.O_RDONLY)
t = time.time()
fcntl.ioctl(fd, 0x8004587D, struct.pack('I', 2))  # FS_IOC_SHUTDOWN, NOLOGFLUSH
print('novars: FS_IOC_SHUTDOWN right after the mount after a crash: %.0f ms' % ((time.time() - t) * 1000))
" || fail "shutdown failed"
        dmesg | grep -E "rebuil" || true
        t0=$(now_ms); must umount $M; echo "novars: unmount after it: $(( $(now_ms) - t0 )) ms"
        must novars_mount $DEV $M
        t0=$(now_ms); must df $M >/dev/null; echo "novars: df after the next mount (waits for the walk): $(( $(now_ms) - t0 )) ms"
        must umount $M
        timed "fsck.novars -fn after the recovery" fsck.novars -fn -tt $DEV ;;
    ext4)
        for r in 1 2; do timed "e2fsck -fn, run $r" e2fsck -fn $DEV; done ;;
    esac
done
