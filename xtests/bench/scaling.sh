#!/bin/sh
# 1 vs 2 threads on novars builds and ext4-DAX in one boot: the 2-thread
# cases of the benchmark suite (create/unlink by 1 and 2 threads in
# separate directories: fsbench mdscale, as create-1t/-2t and
# unlink-1t/-2t; fio psync -j1/-j2 4 KiB appends with an fsync each, 4 KiB
# random overwrites and 1 MiB sequential writes, as in suite.sh).
# Several novars.ko builds can be compared in the same boot (e.g. before
# and after a locking change): each run formats and measures every build
# and ext4 in turn, so host load drifts hit all alike.
#
# Usage (host): cargo xt vm -- sh $PWD/xtests/bench/scaling.sh RUNS NAME=KO...
# Prints the median and the best of RUNS per case and build, and the
# 2-thread/1-thread ratio of each pair for both; every measurement goes to
# $NOVARS_OUT/scaling.txt (R NAME RUN CASE VALUE UNIT). On a loaded host
# (the 2 vCPUs are 2 qemu threads competing with everything else) single
# runs swing several-fold; the best of many short runs is the one taken
# when the host gave the guest both CPUs.
. "$NOVARS_GUEST_LIB"
RUNS=${1:-5}
shift
[ $# -ge 1 ] || fail "usage: scaling.sh RUNS NAME=KO..."
N=${NOVARS_SCALING_FILES:-2000}
# NOVARS_SCALING_DATA=1: also the data-bound fio cases (1 MiB sequential
# and 4 KiB random writes, -j1/-j2).
DATA=${NOVARS_SCALING_DATA:-}
DEV=/dev/pmem0
M=/tmp/scal
OUT=$NOVARS_OUT/scaling.txt
mkdir -p $M /tmp/scal-work
: > "$OUT"
SRC=$NOVARS_ROOT/xtests/guest/fsbench.c
FSBENCH=
for b in "$NOVARS_ROOT/target/guest-bin/fsbench" "$NOVARS_ROOT/target/bench/bin/fsbench"; do
    if [ -x "$b" ] && ! [ "$SRC" -nt "$b" ]; then FSBENCH=$b; break; fi
done
[ -n "$FSBENCH" ] || { gcc -O2 -pthread -o /tmp/scal-work/fsbench "$SRC" || fail "cannot build fsbench"; FSBENCH=/tmp/scal-work/fsbench; }

fio_jobs() {
    printf '[global]\ndirectory=%s\nioengine=psync\nfallocate=none\nstonewall\ngroup_reporting\nthread\n' "$1"
    for j in 1 2; do
        printf '[append-4k+fsync-j%s]\nrw=write\nbs=4k\nsize=2M\nfsync=1\nnumjobs=%s\nfilename_format=ap.$jobnum\nunlink=1\n' $j $j
        [ -n "$DATA" ] || continue
        printf '[seq-write-1m-j%s]\nrw=write\nbs=1M\nsize=64M\nnumjobs=%s\nfilename_format=sw.$jobnum\nunlink=1\n' $j $j
        printf '[rand-write-4k-j%s]\nrw=randwrite\nbs=4k\nsize=32M\ntime_based\nruntime=500ms\nnumjobs=%s\nfilename_format=rd.$jobnum\n' $j $j
    done
}

measure() { # NAME RUN: on the file system mounted at $M
    mkdir -p $M/md1 $M/md2 $M/fio
    "$FSBENCH" mdscale $M/md1 1 $N || fail "$1: mdscale 1"
    "$FSBENCH" mdscale $M/md2 2 $((N / 2)) || fail "$1: mdscale 2"
    fio_jobs $M/fio > /tmp/scal-work/job.fio
    fio --output-format=terse --terse-version=3 /tmp/scal-work/job.fio > /tmp/scal-work/fio.out ||
        fail "$1: fio"
    awk -F';' '$1 == 3 {
        name = $3
        if (name ~ /^seq/) print "fio-" name, $48 / 1024, "MiB/s"
        else print "fio-" name, $49, "ops/s"
    }' /tmp/scal-work/fio.out
    rm -f $M/fio/rd.*
}

r=1
while [ "$r" -le "$RUNS" ]; do
    for spec in "$@" ext4; do
        name=${spec%%=*}
        if [ "$name" = ext4 ]; then
            mkfs.ext4 -q -F $DEV && mount -t ext4 -o dax $DEV $M || fail "ext4 mount"
        else
            ko=${spec#*=}
            rmmod novars 2>/dev/null
            insmod "$ko" || fail "insmod $ko"
            mkfs.novars -q -f $DEV && novars_mount $DEV $M || fail "$name mount"
        fi
        echo "scaling: run $r/$RUNS: $name"
        measure "$name" $r | awk -v n="$name" -v r=$r 'NF == 3 { print "R", n, r, $1, $2, $3 }' >> "$OUT"
        umount $M || fail "umount $name"
        [ "$name" = ext4 ] || fsck.novars -n $DEV > /dev/null || fail "$name: fsck after run $r"
    done
    r=$((r + 1))
done
rmmod novars 2>/dev/null

# Median and best per (build, case), then 2-thread / 1-thread per pair.
awk '
    $1 == "R" { k = $2 SUBSEP $4; v[k, ++n[k]] = $5; unit[$4] = $6; fs[$2] = 1; cs[$4] = 1 }
    function sorted(k, a,   i, j, t, c) {
        c = n[k]; for (i = 1; i <= c; i++) a[i] = v[k, i]
        for (i = 2; i <= c; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return c
    }
    END {
        for (f in fs) for (c in cs) if (n[f, c]) {
            cnt = sorted(f SUBSEP c, a)
            m[f, c] = cnt % 2 ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
            b[f, c] = unit[c] ~ /^(us|ms|MiB)$/ ? a[1] : a[cnt]
        }
        printf "%-24s %-6s", "case: median / best", "unit"; for (f in fs) printf " %21s", f; printf "\n"
        for (c in cs) { printf "%-24s %-6s", c, unit[c]; for (f in fs) printf " %10.1f /%9.1f", m[f, c], b[f, c]; printf "\n" }
        printf "\n2 threads / 1 thread, median / best (above 1: 2 threads do more):\n"
        for (c in cs) {
            if (c !~ /(-2t|-j2)$/) continue
            one = c; sub(/2t$/, "1t", one); sub(/j2$/, "j1", one)
            printf "%-28s", c " / " substr(one, length(one) - 1)
            for (f in fs) printf "  %s %.2f / %.2f", f, (m[f, one] ? m[f, c] / m[f, one] : 0), (b[f, one] ? b[f, c] / b[f, one] : 0)
            printf "\n"
        }
    }' "$OUT" | tee "$NOVARS_OUT/scaling-summary.txt"
