#!/bin/sh
# Call-graph profiles (perf, cpu-clock: TCG has no PMU) of single
# `fsbench syscalls` cases, on novars and ext4-DAX. Only the named case's
# loop is sampled (fsbench's FSBENCH_PROFILE + perf's control fifo).
# Host: cargo xt vm -- sh $PWD/xtests/bench/profile-ops.sh [CASES] [N]
#   CASES: comma list of fsbench syscalls cases (default
#   overwrite-4k,creat,rename,unlink); N: iterations (default 20000).
# Output: $NOVARS_OUT/prof-<fs>-<case>-{flat,children}.txt
. "$NOVARS_GUEST_LIB"
FSBENCH=$NOVARS_ROOT/target/bench/bin/fsbench
[ -x "$FSBENCH" ] || FSBENCH=$NOVARS_ROOT/target/guest-bin/fsbench
command -v perf >/dev/null || skip "perf is not installed"
CASES=${1:-overwrite-4k,creat,rename,unlink}
N=${2:-20000}
load_novars
echo 0 > /proc/sys/kernel/kptr_restrict # module symbols in the reports
# perf finds a module's symbols in a .ko under /lib/modules/$(uname -r)
KDIR=/lib/modules/$(uname -r)/extra
mkdir -p $KDIR 2>/dev/null && cp "$NOVARS_KO" $KDIR/ 2>/dev/null ||
    echo "note: cannot copy novars.ko to $KDIR: module symbols unresolved"
M=/tmp/prof-mnt; mkdir -p $M
CTL=/tmp/perf-ctl; ACK=/tmp/perf-ack
for fs in ${PROFILE_FS:-novars ext4}; do
    for c in $(echo "$CASES" | tr , ' '); do
        case $fs in
        novars) must mkfs.novars -q -f /dev/pmem0 >/dev/null; must novars_mount /dev/pmem0 $M ;;
        ext4) must mkfs.ext4 -q -F /dev/pmem0; must mount -t ext4 -o dax /dev/pmem0 $M ;;
        esac
        mkdir -p $M/sys
        rm -f $CTL $ACK; mkfifo $CTL $ACK
        FSBENCH_PROFILE=$c FSBENCH_PERF_CTL=$CTL perf record -q -g -e cpu-clock -F 4000 \
            --control fifo:$CTL,$ACK -D -1 -o /tmp/perf.data -- "$FSBENCH" syscalls $M/sys $N \
            > /tmp/prof-times.txt 2>/dev/null
        grep "^$c " /tmp/prof-times.txt
        base=$NOVARS_OUT/prof-$fs-$c
        perf report -q -i /tmp/perf.data --stdio --no-children --sort sym -g none 2>/dev/null | head -60 > $base-flat.txt
        perf report -q -i /tmp/perf.data --stdio --children --sort sym -g none 2>/dev/null | head -120 > $base-children.txt
        perf report -q -i /tmp/perf.data --stdio --no-children --sort sym -g folded,0.5,caller 2>/dev/null > $base-folded.txt
        # perf leaves the module's functions unresolved (no .ko under
        # /lib/modules on the shared root): name them from kallsyms.
        perf script -i /tmp/perf.data -F ip,sym > $base-script.txt 2>&1
        grep '\[novars\]' /proc/kallsyms > $base-kallsyms.txt
        python3 $NOVARS_ROOT/xtests/bench/perf-syms.py $base-script.txt \
            $base-kallsyms.txt ${PROFILE_TOP:-40} > $base-resolved.txt
        echo "== $fs $c"; cat $base-resolved.txt
        umount $M
    done
done
