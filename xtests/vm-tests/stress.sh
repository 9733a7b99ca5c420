#!/bin/sh
# stress-ng's file-system stressors, 2 workers each, all at once on novars for a bounded time: no kernel warning or lockdep report, no stressor failure, fsck clean afterwards.
# flavours: debug
# nvdimms: 1
# timeout: 900
# cost: 50 150
#
# Default: 60 s of stressing (the debug kernel's lockdep, KASAN and list
# debugging watch every lock and allocation). NOVARS_STRESS_SECONDS sets the
# time (e.g. 600 for a long run); NOVARS_STRESS_WORKERS the workers per
# stressor (default 2, one per vCPU).
# Stressors: stress-ng's "filesystem" class minus those that test something
# else (bind mounts, binder, procfs, fs-verity, the notify APIs, xattrs,
# chattr/inode flags and file ioctls novars does not implement) plus seek.
# Measured on the debug kernel (loaded machine): 148 s of wall time for the
# 60 s run; stress-ng printed bogo-op metrics for only 12 of the 33
# stressors (access..fcntl), so the later ones may make little progress
# with 66 workers on 2 TCG vCPUs: a longer NOVARS_STRESS_SECONDS helps.
. "$NOVARS_GUEST_LIB"
command -v stress-ng >/dev/null || fail "stress-ng not installed: run \`cargo xt setup\`"
load_novars
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")
SECONDS_=${NOVARS_STRESS_SECONDS:-60}
N=${NOVARS_STRESS_WORKERS:-2}
W=/tmp/stress
mkdir -p $W/m

STRESSORS="access chdir chmod chown copy-file dentry dir dirdeep dirmany dup
fallocate fcntl fiemap filename flock fpunch fsize fstat getdent hdd iomix
link locka lockf lockofd mknod open rename seek symlink sync-file touch utime"
args=""
for s in $STRESSORS; do args="$args --$s $N"; done

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
kmsg "stress: $SECONDS_ s, $N workers per stressor"
start=$(date +%s)
# Bounded sizes (copy-file takes 128M at least): the device is 1 GiB.
# shellcheck disable=SC2086
stress-ng $args --temp-path $W/m --timeout "${SECONDS_}s" --verify --metrics-brief \
    --hdd-bytes 32M --iomix-bytes 32M --fallocate-bytes 32M --copy-file-bytes 128M \
    --sync-file-bytes 16M --dirdeep-dirs 1 --dirdeep-inodes 2000 \
    --log-file $W/stress.log > $W/stress.out 2>&1
rc=$?
echo "stress-ng: exit $rc after $(( $(date +%s) - start )) s"
cp $W/stress.log $W/stress.out "$NOVARS_OUT/" 2>/dev/null || true
# stress-ng's verdict: its "fail:" lines (a stressor's own verification
# failed, or it got an unexpected errno) and its exit status: 0 all passed,
# 3 a stressor lacked a resource, 4 one is not implemented here (both are
# skips, listed); anything else failed.
grep -E "^stress-ng: (fail|error|warn|skip)" $W/stress.out | head -40
case $rc in
    0|3|4) ;;
    *) tail -60 $W/stress.out; fail "stress-ng exited $rc" ;;
esac
grep -q "^stress-ng: fail" $W/stress.out && fail "a stressor reported a failure"
grep -q "unsuccessful run" $W/stress.out && fail "stress-ng: unsuccessful run"
grep "stress-ng: metrc" $W/stress.out
grep "run completed" $W/stress.out || fail "stress-ng did not complete its run"
ok "stress-ng: $(echo $STRESSORS | wc -w) stressors x $N workers for ${SECONDS_} s"
# Everything they left behind must still be removable, then the fs checked.
rm -rf $W/m/tmp-stress-ng-* || fail "cannot remove what stress-ng left"
must umount $W/m
must "$FSCK" -fn /dev/pmem0
ok "fsck clean after stress-ng"
exit 0
