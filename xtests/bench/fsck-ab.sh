#!/bin/sh
# A/B of two fsck.novars binaries in one boot: 100,000 files of 1 KiB
# (FILES to change it), caches dropped before each check, the binaries
# alternating, RUNS rounds (default 3); prints each check's time and its
# pass 2 (tables and logs).
# Host: cargo xt vm --size 2G -- sh $PWD/xtests/bench/fsck-ab.sh OLD NEW [RUNS] [FILES]
# With `-- sh -c "FSCK_AB_PERF=1 sh .../fsck-ab.sh OLD NEW"`: also a perf
# profile of NEW (see the end).
#   OLD, NEW: paths of fsck.novars builds the guest can read (e.g. a
#   worktree's target/release/fsck_novars and this one's).
. "$NOVARS_GUEST_LIB"
OLD=$1; NEW=$2; RUNS=${3:-3}; FILES=${4:-100000}
[ -x "$OLD" ] && [ -x "$NEW" ] || fail "usage: fsck-ab.sh OLD NEW [RUNS] [FILES]"
M=/tmp/ab-mnt
. "$NOVARS_ROOT/xtests/bench/scale-lib.sh"
populate_novars $FILES
r=1
while [ $r -le $RUNS ]; do
    for v in old new; do
        if [ $v = old ]; then F=$OLD; else F=$NEW; fi
        sync; echo 3 > /proc/sys/vm/drop_caches
        t0=$(now_ms)
        "$F" -fn -tt $DEV > /tmp/ab-out.txt 2>&1 || { cat /tmp/ab-out.txt; fail "$v: fsck failed"; }
        echo "$v run $r: $(( $(now_ms) - t0 )) ms; $(grep "^Pass 2 (" /tmp/ab-out.txt); $(grep "^Memory" /tmp/ab-out.txt)"
    done
    r=$((r + 1))
done
# FSCK_AB_PERF=1: one more check of NEW under perf (cpu-clock, call
# graphs), reports in $NOVARS_OUT/fsck-{flat,children}.txt.
if [ "${FSCK_AB_PERF:-0}" = 1 ]; then
    command -v perf >/dev/null || fail "perf is not installed"
    sync; echo 3 > /proc/sys/vm/drop_caches
    echo 0 > /proc/sys/kernel/kptr_restrict
    must perf record -q -g -e cpu-clock -F 4000 -o /tmp/ab-perf.data -- "$NEW" -fn $DEV
    perf report -i /tmp/ab-perf.data --stdio --no-children --sort sym -g none 2>/dev/null | head -70 > $NOVARS_OUT/fsck-flat.txt
    perf report -i /tmp/ab-perf.data --stdio --children --sort sym -g none 2>/dev/null | head -120 > $NOVARS_OUT/fsck-children.txt
    echo "profile: $NOVARS_OUT/fsck-flat.txt, fsck-children.txt"
fi
