#!/bin/sh
# Crash-state checker on real kernel traces: mount/unmount, every seq-1 operation of an ACE-style workload (MAP_SYNC stores included), a time-bounded sample of seq-2 pairs and of a seeded multi-fd fuzzer, traced by the tracing build of novars.ko and replayed by novars-crashcheck (every crash image fsck-clean and a legal tree), with zero violations; and each of the 7 deliberate faults is reported (the clean pools' too); also seq-1 creates on full inode tables (each adds a segment) and space-freeing operations on a 100% full file system (the reserve).
# flavours: normal
# module: trace
# nvdimms: 1
# timeout: 600
# cost: 310
#
# Needs the tracing build (`cargo xt module --trace`; `cargo xt test`
# builds it for this test) and target/release/novars-crashcheck. Each
# workload starts from the same 16 MiB file system (ace.py populate, mkfs
# -d); its trace starts after the mount (the base image is read then) and
# ends before the unmount, except for `mount_unmount`, which traces both.
# Traces, base images and reports are kept in $NOVARS_OUT/crashcheck/.
# Environment:
#   NOVARS_ACE_SEQ2_SECONDS  seconds spent on seq-2 pairs (default 25)
#   NOVARS_ACE_SEQ2=all      every seq-2 pair instead (the long mode: 2916
#                            pairs; 1764 took 44 min on a loaded host, so
#                            expect about 75; needs NOVARS_TEST_TIMEOUT=5400
#                            on the host)
#   NOVARS_ACE_SEED          seed of the seq-2 sample's order and of the
#                            fuzzer (default: the time)
#   NOVARS_ACE_FUZZ="N K"    at most N fuzzer workloads of K calls (default
#                            "1000 25"; N = 0: off)
#   NOVARS_ACE_FUZZ_SECONDS  seconds spent on fuzzer workloads (default 15)
#   NOVARS_ACE_MOUNT_SAMPLE  crash images per workload also mounted by the
#                            kernel and compared (default 1 in seq-1 and the
#                            fuzzer, 0 in seq-2; every unexpected violation's
#                            first image is mounted regardless)
#   NOVARS_ACE_MOUNT_EVERY   seq-1 and fuzzer workloads sampled: one in N
#                            (default 8 and 2; each mount costs about 3 s
#                            under TCG)
#   NOVARS_ACE_MOUNT_FAULTS=1 also mount each fault's first violating image
#                            and keep its base image (runnable reproducers)
#   NOVARS_ACE_ONLY="op..."  only these seq-1 operations, no seq-2 (and no
#                            fuzzer unless NOVARS_ACE_FUZZ is set)
#   NOVARS_TRACE_KO          another tracing build of novars.ko
#   NOVARS_ACE_DIRTY=0       leave the free space of the base image zeroed
. "$NOVARS_GUEST_LIB"
ACE="python3 $NOVARS_ROOT/xtests/guest/ace.py"
CC=$NOVARS_BIN/novars-crashcheck
KO=${NOVARS_TRACE_KO:-${NOVARS_KO%/*/novafs-kmod/novars.ko}/$NOVARS_FLAVOUR-trace/novafs-kmod/novars.ko}
DBG=/sys/kernel/debug/novars
FS_MIB=${NOVARS_ACE_FS_MIB:-16}
W=/tmp/cc
T=$NOVARS_OUT/crashcheck
[ -x "$CC" ] || fail "$CC is not built (cargo build --release -p crashcheck)"
[ -f "$KO" ] || fail "the tracing build $KO is missing (cargo xt module --trace)"

grep -q '^novars ' /proc/modules && must rmmod novars
must insmod "$KO"
[ -d /sys/kernel/debug/novars ] || must mount -t debugfs none /sys/kernel/debug
[ -d $DBG ] || fail "$KO is not a tracing build (no $DBG)"
mkdir -p $W/src $W/m $T
$ACE populate $W/src
must "$MKFS" -q -f -U clear -d $W/src /dev/pmem0 ${FS_MIB}M
# G/ with a directory log one entry short of the compaction bound (16
# pages): op dir_compact's create makes the kernel compact it (gc.rs).
novars_mount /dev/pmem0 $W/m || fail "mount for the log GC preparation"
$ACE gcprep $W/m || fail "ace.py gcprep"
# Bytes past EOF (stored through a mapping) that the extending operations
# must zero durably before they commit (issue 14: no stale data).
$ACE eofprep $W/m /dev/pmem0 || fail "ace.py eofprep"
# Attributes to replace and remove, an immutable file to clear (issue 15).
$ACE xattrprep $W/m || fail "ace.py xattrprep"
must umount $W/m
# Dirty free space: every free block (data and log pages) holds old
# bytes, so a block reused without being zeroed, or zeroed without being
# made durable, shows in the files (ace.py dirty).
if [ "${NOVARS_ACE_DIRTY:-1}" != 0 ]; then
    novars_mount /dev/pmem0 $W/m || fail "mount for dirtying free space"
    $ACE dirty $W/m || fail "dirtying free space"
    must umount $W/m
fi
must dd if=/dev/pmem0 of=$W/clean.img bs=1M count=$FS_MIB status=none
cp $W/clean.img $T/clean.img
# dir_compact really compacts: G's log is 15 pages (st_blocks, computed
# when the inode is read) and 1 page after the create. (The driver
# restores clean.img before every workload.)
novars_mount /dev/pmem0 $W/m || fail "mount for the log GC check"
gb=$(stat -c %b $W/m/G)
$ACE run $W/m dir_compact > /dev/null
must umount $W/m
novars_mount /dev/pmem0 $W/m || fail "mount for the log GC check"
ga=$(stat -c %b $W/m/G)
must umount $W/m
[ "$gb" = 120 ] && [ "$ga" = 8 ] || fail "dir_compact: G/ has $gb blocks before and $ga after, want 120 and 8 (a compaction)"
echo "dir_compact: G/'s log 15 pages before, 1 after (compacted in the traced call)"

export ACE_DEV=/dev/pmem0 ACE_CLEAN=$W/clean.img ACE_FS_MIB=$FS_MIB ACE_MNT=$W/m ACE_DBG=$DBG \
    ACE_OUT=$T ACE_TMP=$W ACE_CC=$CC ACE_FSCK=$FSCK

# seq-1: the mount and unmount, then every single operation.
if [ -n "${NOVARS_ACE_ONLY:-}" ]; then
    for op in $NOVARS_ACE_ONLY; do
        if [ $op = mount_unmount ]; then echo "$op 0 clean"; else echo "$op 0 clean $op"; fi
    done
else
    echo "mount_unmount 0 clean"
    $ACE list | while read op; do echo "$op 0 clean $op"; done
fi > $W/seq1
echo "seq-1:"
ACE_MOUNT_SAMPLE=${NOVARS_ACE_MOUNT_SAMPLE:-1} ACE_MOUNT_EVERY=${NOVARS_ACE_MOUNT_EVERY:-8} $ACE drive 100000 < $W/seq1 || fail "seq-1: violations (reports in $T)"
ok "seq-1: every operation, zero violations"

# Table growth and the reserve, seq-1 from two more bases of the same tree
# (dirty free space too). grow.img: tables of 64 slots a lane (-N 128),
# every slot taken (ace.py tblprep): each create below adds a segment
# (itable.rs), checked on the untraced run first. full.img: data and inode
# space 100% used (ace.py fullprep): each operation below frees space and
# may take only the reserve (alloc.rs Pool).
must "$MKFS" -q -f -U clear -l 2 -N 128 -d $W/src /dev/pmem0 ${FS_MIB}M
novars_mount /dev/pmem0 $W/m || fail "mount for the table growth base"
$ACE dirty $W/m || fail "dirtying free space"
$ACE tblprep $W/m 128 || fail "ace.py tblprep"
must umount $W/m
must dd if=/dev/pmem0 of=$W/grow.img bs=1M count=$FS_MIB status=none
before=$($ACE segments /dev/pmem0 2 64)
novars_mount /dev/pmem0 $W/m || fail "mount for the table growth check"
$ACE run $W/m creat > /dev/null
must umount $W/m
after=$($ACE segments /dev/pmem0 2 64)
[ "$before" = "1 1" ] && { [ "$after" = "2 1" ] || [ "$after" = "1 2" ]; } \
    || fail "creat on the full tables: segments per lane $before before, $after after (want 1 1, then one more)"
echo "table growth: segments per lane $before before a create, $after after"
must "$MKFS" -q -f -U clear -d $W/src /dev/pmem0 ${FS_MIB}M
novars_mount /dev/pmem0 $W/m || fail "mount for the full base"
$ACE dirty $W/m || fail "dirtying free space"
$ACE fullprep $W/m || fail "ace.py fullprep"
must umount $W/m
must dd if=/dev/pmem0 of=$W/full.img bs=1M count=$FS_MIB status=none
cp $W/grow.img $W/full.img $T/
for op in creat mkdir tmpfile symlink_long; do echo "grow-$op 0 clean $op"; done > $W/seqg
echo "seq-1 on full inode tables:"
ACE_CLEAN=$W/grow.img ACE_MOUNT_SAMPLE=1 ACE_MOUNT_EVERY=2 $ACE drive 100000 < $W/seqg \
    || fail "table growth: violations (reports in $T)"
for op in unlink_last_link unlink_one_of_two rmdir rename_overwrite_same_dir \
    rename_overwrite_cross_dir truncate_down punch_hole creat; do
    echo "full-$op 0 clean $op"
done > $W/seqf
echo "seq-1 on a full file system:"
ACE_CLEAN=$W/full.img ACE_MOUNT_SAMPLE=1 ACE_MOUNT_EVERY=2 $ACE drive 100000 < $W/seqf \
    || fail "full file system: violations (reports in $T)"
for op in $(sed -n 's/^full-\([a-z_]*\) .*/\1/p' $W/seqf); do
    want=ok
    [ $op != creat ] || want="No space left on device"
    grep -q "^$op\[0\]: $want\$" $T/full-$op.ops || fail "full-$op: $(cat $T/full-$op.ops), want $want"
done
ok "seq-1: table growth and the reserve, zero violations"

# seq-2: pairs in a seeded random order, for a time budget (or all).
if [ -z "${NOVARS_ACE_ONLY:-}" ]; then
    seed=${NOVARS_ACE_SEED:-$(date +%s)}
    budget=${NOVARS_ACE_SEQ2_SECONDS:-25}
    [ "${NOVARS_ACE_SEQ2:-}" != all ] || budget=1000000
    $ACE pairs 0 $seed | while read a b; do echo "$a+$b 0 clean $a $b"; done > $W/seq2
    echo "seq-2: $(wc -l < $W/seq2) pairs, seed $seed, budget $budget s:"
    ACE_MOUNT_SAMPLE=${NOVARS_ACE_MOUNT_SAMPLE:-0} $ACE drive $budget < $W/seq2 || fail "seq-2: violations (reports in $T; NOVARS_ACE_SEED=$seed)"
    ok "seq-2: zero violations in the pairs run"
fi

# The seeded random fuzzer: several open fds, each workload a sequence of
# system calls (ace.py fuzz_steps).
# With NOVARS_ACE_ONLY it runs only if NOVARS_ACE_FUZZ is given.
set -- ${NOVARS_ACE_FUZZ:-1000 25}
if { [ -z "${NOVARS_ACE_ONLY:-}" ] || [ -n "${NOVARS_ACE_FUZZ:-}" ]; } && [ "$1" -gt 0 ]; then
    base=${NOVARS_ACE_SEED:-$(date +%s)}
    i=0
    while [ $i -lt $1 ]; do
        echo "fuzz-$((base + i))x$2 0 clean fuzz:$((base + i)):$2"
        i=$((i + 1))
    done > $W/fuzz
    fbudget=${NOVARS_ACE_FUZZ_SECONDS:-15}
    echo "fuzz: up to $1 workloads of $2 calls, seeds from $base, budget $fbudget s:"
    ACE_MOUNT_SAMPLE=${NOVARS_ACE_MOUNT_SAMPLE:-1} ACE_MOUNT_EVERY=${NOVARS_ACE_MOUNT_EVERY:-2} \
        $ACE drive $fbudget < $W/fuzz \
        || fail "fuzz: violations (reports in $T; NOVARS_ACE_SEED=$base)"
    ok "fuzz: zero violations"
fi

# The checker must catch each deliberate fault (pm.rs `Fault`: bit, name,
# an operation that exercises it); the same operations passed in seq-1
# with the faults off.
cat > $W/faults <<EOF2
fault-drop_commit_flush $((1 << 0)) violations write_append_unaligned
fault-drop_commit_fence $((1 << 1)) violations write_append_unaligned
fault-tail_before_entry $((1 << 2)) violations write_append_unaligned
fault-dentry_in_place $((1 << 3)) violations rename_overwrite_same_dir
fault-rename_without_journal $((1 << 4)) violations rename_cross_dir
fault-fault_commit_no_flush $((1 << 5)) violations mapsync_store_hole
fault-drop_commit_flush_xattr $((1 << 0)) violations xattr_set
fault-pool_keep $((1 << 7)) violations write_append_unaligned
fault-pool_keep_creat $((1 << 7)) violations creat
EOF2
echo "faults:"
ACE_MOUNT_SAMPLE=0 ACE_MOUNT_FAULTS=${NOVARS_ACE_MOUNT_FAULTS:-0} $ACE drive 100000 < $W/faults || fail "a deliberate fault went unreported"
ok "faults: all 7 reported (the first also in an untraced setxattr, the clean pool's in a creat too), none with the faults off"
