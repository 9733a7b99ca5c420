#!/bin/sh
# A/B comparison of novars.ko builds on the `fsbench syscalls` cases
# (appends, overwrites, reads, creat/stat/rename/unlink/mkdir/rmdir), in
# one boot, against ext4-DAX: each run formats and measures every build
# and ext4 in turn, so host load drifts hit all alike.
#
# Usage (host): cargo xt vm -- sh $PWD/xtests/bench/ab.sh RUNS N NAME=KO[@MKFSOPTS]...
#   RUNS rounds, N iterations per case; MKFSOPTS (no spaces) go to
#   mkfs.novars for that build (`old=A.ko@-O^slot_log` for a module from
#   before slot logs). Prints per case and build the
#   median and the best of the runs, and the median ratio to ext4 (above
#   1: faster than ext4). Raw lines in $NOVARS_OUT/ab.txt.
. "$NOVARS_GUEST_LIB"
RUNS=${1:-5}
N=${2:-500}
shift 2
[ $# -ge 1 ] || fail "usage: ab.sh RUNS N NAME=KO..."
FSBENCH=$NOVARS_ROOT/target/bench/bin/fsbench
[ -x "$FSBENCH" ] || FSBENCH=$NOVARS_ROOT/target/guest-bin/fsbench
DEV=/dev/pmem0
M=/tmp/ab
OUT=$NOVARS_OUT/ab.txt
mkdir -p $M
: > "$OUT"
r=1
while [ $r -le "$RUNS" ]; do
    for spec in ext4 "$@"; do
        name=${spec%%=*}
        if [ "$name" = ext4 ]; then
            must mkfs.ext4 -q -F $DEV
            must mount -t ext4 -o dax $DEV $M
        else
            ko=${spec#*=}
            opts=""
            case $ko in *@*) opts=${ko#*@}; ko=${ko%@*} ;; esac
            rmmod novars 2>/dev/null
            must insmod "$ko"
            must mkfs.novars -q -f $opts $DEV >/dev/null
            must novars_mount $DEV $M
        fi
        mkdir -p $M/sys
        "$FSBENCH" syscalls $M/sys "$N" | awk -v n="$name" -v r=$r '{ print "R", n, r, $1, $2, $3 }' >> "$OUT"
        umount $M
    done
    r=$((r + 1))
done
awk '
$1 == "R" { k = $4 SUBSEP $2; v[k, ++c[k]] = $5; unit[$4] = $6; if (!($4 in seen)) { seen[$4] = 1; cases[++nc] = $4 }
            if (!($2 in bs)) { bs[$2] = 1; builds[++nb] = $2 } }
function med(k,   i, j, t, n, a) { n = c[k]; for (i = 1; i <= n; i++) a[i] = v[k, i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function best(k,   i, b) { b = v[k, 1]; for (i = 2; i <= c[k]; i++) if (v[k, i] < b) b = v[k, i]; return b }
END {
    printf "%-18s", "case (us, median/best)"; for (b = 1; b <= nb; b++) printf " %18s", builds[b]; for (b = 2; b <= nb; b++) printf " %10s", builds[b] "/ext4"; printf "\n"
    for (i = 1; i <= nc; i++) { cs = cases[i]; printf "%-18s", cs
        for (b = 1; b <= nb; b++) { k = cs SUBSEP builds[b]; printf " %9.2f/%8.2f", med(k), best(k) }
        e = med(cs SUBSEP "ext4")
        for (b = 2; b <= nb; b++) { m = med(cs SUBSEP builds[b]); printf " %10.2f", (m > 0 ? e / m : 0) }
        printf "\n" }
}' "$OUT"
