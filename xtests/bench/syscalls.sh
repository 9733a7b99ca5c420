#!/bin/sh
# Syscall latencies on ext4 -o dax, xfs -o dax and novars, same VM boot, same
# emulated NVDIMM, each formatted fresh; RUNS runs each, medians printed with
# the novars/ext4 ratio (above 1: novars faster).
# Host:  gcc -O2 -o target/bench/syscalls xtests/bench/syscalls.c
#        cargo xt vm -- sh $PWD/xtests/bench/syscalls.sh [N] [RUNS]
. "$NOVARS_GUEST_LIB"
N=${1:-2000}; RUNS=${2:-5}
B=$NOVARS_ROOT/target/bench/syscalls
load_novars
MKFS=$(command -v mkfs.novars || echo "$NOVARS_BIN/mkfs_novars")
mkdir -p /tmp/m /tmp/res
for fs in ext4 xfs novars; do
    for r in $(seq "$RUNS"); do
        case $fs in
            ext4) mkfs.ext4 -q -F /dev/pmem0 && mount -t ext4 -o dax /dev/pmem0 /tmp/m ;;
            xfs) mkfs.xfs -q -f /dev/pmem0 && mount -t xfs -o dax /dev/pmem0 /tmp/m ;;
            novars) "$MKFS" -q -f /dev/pmem0 && mount -t novars /dev/pmem0 /tmp/m ;;
        esac || fail "mount $fs"
        "$B" /tmp/m "$N" > /tmp/res/$fs.$r || fail "benchmark on $fs"
        umount /tmp/m
    done
done
python3 - "$RUNS" <<'PY'
import statistics, sys
runs = int(sys.argv[1])
res = {}
for fs in ("ext4", "xfs", "novars"):
    for r in range(1, runs + 1):
        for line in open(f"/tmp/res/{fs}.{r}"):
            case, ns = line.split()
            res.setdefault(case, {}).setdefault(fs, []).append(float(ns))
print(f"{'case':16} {'ext4 us':>9} {'xfs us':>9} {'novars us':>9} {'vs ext4':>8} {'vs xfs':>8}   (median of {runs}; ratio > 1: novars faster)")
for case, v in res.items():
    e, x, n = (statistics.median(v[k]) / 1000 for k in ("ext4", "xfs", "novars"))
    print(f"{case:16} {e:9.2f} {x:9.2f} {n:9.2f} {e / n:8.2f} {x / n:8.2f}")
PY
