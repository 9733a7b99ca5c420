#!/bin/sh
# Guest side of `cargo xt bench`: every case of cases.txt on ext4 -o dax,
# xfs -o dax and novars (each formatted fresh on /dev/pmem0, in turn, in
# every run) plus the raw /dev/pmem0 for the fio bandwidth ceilings.
# The measuring programs are fio and xtests/guest/fsbench.c.
# Usage: suite.sh full|quick RUNS [RESULTS]    then: suite.sh check RESULTS
# Result lines (RESULTS, default $NOVARS_OUT/bench.txt):
#   R FS RUN CASE VALUE UNIT      one measurement
#   NA FS CASE REASON             the case cannot run on FS (mmap cases only)
#   ERR FS CASE MESSAGE           the case failed: `check` fails on it
# `quick` runs every case briefly with scaled-down sizes (10k/100k-file
# cases use 200/400 files): it proves the suite works, its numbers are not
# for reading.
# BENCH_CASES (set by `cargo xt bench --filter`): only these cases (exact
# names, space-separated) are run, recorded and checked; unset: all.
. "$NOVARS_GUEST_LIB"
HERE=$NOVARS_ROOT/xtests/bench
CASES=$HERE/cases.txt
SEL=${BENCH_CASES:-}
# wants ERE: does the selection hold a case matching ERE (always without one)?
wants() {
    [ -z "$SEL" ] && return 0
    printf '%s\n' $SEL | grep -Eq "$1"
}

# check RESULTS: every case of cases.txt has a number (or, for an mmap case,
# an n/a) for every file system it lists, and no case failed.
check() {
    awk -v results="$1" -v sel="$SEL" '
        BEGIN {
            nsel = split(sel, s, " ")
            for (i = 1; i <= nsel; i++) want[s[i]] = 1
            while ((getline l < results) > 0) {
                split(l, f, " ")
                if (f[1] == "R") have[f[4] " " f[2]] = 1
                else if (f[1] == "NA") na[f[3] " " f[2]] = 1
                else if (f[1] == "ERR") { print "failed: " l; bad++ }
            }
        }
        /^#/ || NF < 4 { next }
        nsel && !want[$1] { next }
        {
            n = split($3, fss, ",")
            for (i = 1; i <= n; i++) {
                k = $1 " " fss[i]
                if (have[k]) continue
                if (na[k] && $4 == "mmap") continue
                print "no number: " $1 " on " fss[i] (na[k] ? " (n/a is only allowed for mmap cases)" : "")
                bad++
            }
            cases++
        }
        END {
            if (bad) { print bad " problem(s)"; exit 1 }
            print "all " cases (nsel ? " selected" : "") " cases have a number (or an mmap n/a) for every file system"
        }' "$CASES"
}

if [ "${1:-}" = check ]; then
    check "${2:-$NOVARS_OUT/bench.txt}"
    exit $?
fi

MODE=${1:-quick}
RUNS=${2:-1}
OUT=${3:-$NOVARS_OUT/bench.txt}
DEV=/dev/pmem0
M=/tmp/bench-mnt
FSLIST="ext4 xfs novars"
case $MODE in
full)
    FALLOC_MIB=512
    SYS_N=500; FIO_RT=500ms; FIO_RD=64M; FIO_SEQ_MIB=384; FIO_APPEND=2M
    WL_SECS=1; WL_FILES=500; MD_N=1000; MAP_PAGES=500; MAP_MIB=128; FSYNC_ROUNDS=1000; SMALL=10000; LARGE=100000 ;;
quick)
    FALLOC_MIB=64
    SYS_N=50; FIO_RT=100ms; FIO_RD=8M; FIO_SEQ_MIB=8; FIO_APPEND=256k
    WL_SECS=0.3; WL_FILES=50; MD_N=100; MAP_PAGES=100; MAP_MIB=8; FSYNC_ROUNDS=20; SMALL=200; LARGE=400 ;;
*) fail "mode must be full or quick" ;;
esac

load_novars
mkdir -p "$M" /tmp/bench
echo "# mode $MODE" > "$OUT"
[ -n "$SEL" ] && echo "# cases $SEL" >> "$OUT"

# The measuring program xtests/guest/fsbench.c: built on the host (by
# `cargo xt test` into target/guest-bin, by `cargo xt bench` into
# target/bench/bin); compiled here (7 s or more under TCG) only if neither
# is there and up to date.
SRC=$NOVARS_ROOT/xtests/guest/fsbench.c
FSBENCH=
for b in "$NOVARS_ROOT/target/guest-bin/fsbench" "$NOVARS_ROOT/target/bench/bin/fsbench"; do
    if [ -x "$b" ] && ! [ "$SRC" -nt "$b" ]; then FSBENCH=$b; break; fi
done
if [ -z "$FSBENCH" ]; then
    echo "bench: compiling fsbench in the guest (no up-to-date host build)"
    gcc -O2 -pthread -o /tmp/bench/fsbench "$SRC" || fail "cannot compile fsbench.c"
    FSBENCH=/tmp/bench/fsbench
fi
command -v fio >/dev/null || fail "fio is not installed (cargo xt setup)"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(date +%s%N)
say() { echo "bench: [$(( ($(date +%s%N) - T0) / 1000000 )) ms] $*"; }
# rec FS RUN < "CASE VALUE UNIT" lines
rec() {
    awk -v fs="$1" -v run="$2" -v sel="$SEL" '
        BEGIN { nsel = split(sel, s, " "); for (i = 1; i <= nsel; i++) want[s[i]] = 1 }
        NF == 3 && (!nsel || want[$1]) { print "R", fs, run, $1, $2, $3 }' >> "$OUT"
}
err() { echo "ERR $1 $2 $3" >> "$OUT"; echo "bench: FAILED: $1 $2: $3"; }
mkfs_fs() { # FS [more mkfs options]
    fs=$1; shift
    case $fs in
    ext4) mkfs.ext4 -q -F "$@" $DEV ;;
    xfs) mkfs.xfs -q -f "$@" $DEV ;;
    novars) mkfs.novars -q -f "$@" $DEV ;;
    esac
}
mount_fs() {
    case $1 in
    novars) novars_mount $DEV $M ;;
    *) mount -t "$1" -o dax $DEV $M ;;
    esac
}
fresh() { mkfs_fs "$1" >/dev/null && mount_fs "$1"; }
opts_of() { case $1 in novars) echo "" ;; *) echo dax ;; esac; }

# fio: one invocation per file system and run, every job stonewalled (one
# after the other, each its own reporting group), 1 then 2 jobs.
fio_jobs() { # TARGET(dir or "raw") MMAP(yes/no)
    if [ "$1" = raw ]; then
        printf '[global]\nfilename=%s\ndirect=1\nioengine=psync\noffset_increment=%s\n' $DEV 256M
    else
        printf '[global]\ndirectory=%s\nioengine=psync\nfallocate=none\n' "$1"
    fi
    # full: jobs one after the other (stonewall); quick: all at once, each
    # its own reporting group (fio's fixed cost per stonewalled job is
    # about half a second under TCG).
    if [ $MODE = full ]; then printf 'stonewall\n'; else printf 'new_group\n'; fi
    printf 'group_reporting\nthread\n'
    for j in 1 2; do
        seqfile=""; rdfile=""
        [ "$1" = raw ] || { seqfile="filename_format=sw.\$jobnum
unlink=1"; rdfile="filename_format=rd.\$jobnum"; }
        # FIO_SEQ_MIB in all, split among the jobs (384 MiB: a 128 MiB
        # write lasted 60-100 ms, short enough for one host hiccup to
        # halve it).
        printf '[seq-write-1m-j%s]\nrw=write\nbs=1M\nsize=%sM\nnumjobs=%s\n%s\n' $j $((FIO_SEQ_MIB / j)) $j "$seqfile"
        if [ "$1" != raw ]; then
            printf '[append-4k+fsync-j%s]\nrw=write\nbs=4k\nsize=%s\nfsync=1\nnumjobs=%s\nfilename_format=ap.$jobnum\nunlink=1\n' $j $FIO_APPEND $j
        fi
        for rw in seq-read-1m:read:1M rand-read-4k:randread:4k rand-write-4k:randwrite:4k; do
            IFS=: read -r name mode bs <<EOF
$rw
EOF
            printf '[%s-j%s]\nrw=%s\nbs=%s\nsize=%s\ntime_based\nruntime=%s\nnumjobs=%s\n%s\n' \
                "$name" $j $mode $bs $FIO_RD $FIO_RT $j "$rdfile"
        done
        if [ "$2" = yes ]; then
            for rw in rand-read-4k:randread rand-write-4k:randwrite; do
                name=${rw%%:*}; mode=${rw#*:}
                printf '[mmap-%s-j%s]\nioengine=mmap\nrw=%s\nbs=4k\nsize=%s\ntime_based\nruntime=%s\nnumjobs=%s\n%s\n' \
                    "$name" $j $mode $FIO_RD $FIO_RT $j "$rdfile"
            done
        fi
    done
}

# Terse v3: field 3 job name, 5 error, 7/8 read KiB/s and IOPS, 48/49 write.
fio_run() { # FS RUN TARGET MMAP
    say "$1: fio"
    fio_jobs "$3" "$4" > /tmp/bench/job.fio
    if ! fio --output-format=terse --terse-version=3 /tmp/bench/job.fio > /tmp/bench/fio.out 2> /tmp/bench/fio.err; then
        err "$1" fio "$(tail -n 3 /tmp/bench/fio.err | tr '\n' ' ')"
    fi
    awk -F';' '$1 == 3 {
        name = $3; e = $5
        if (e != 0) { print "fio-" name, "error", e; next }
        isread = name ~ /read/
        bw = isread ? $7 : $48; iops = isread ? $8 : $49
        if (name ~ /^seq/) print "fio-" name, bw / 1024, "MiB/s"
        else print "fio-" name, iops, "ops/s"
    }' /tmp/bench/fio.out > /tmp/bench/fio.res
    grep -v " error " /tmp/bench/fio.res | rec "$1" "$2"
    grep " error " /tmp/bench/fio.res | while read -r c _ e; do err "$1" "$c" "fio error $e"; done
    rm -f "$3"/rd.* 2>/dev/null
    true
}

step() { # FS RUN CASE-LABEL CMD...: run a measuring command, record its lines
    fs=$1; run=$2; label=$3; shift 3
    say "$fs: $label"
    if "$@" > /tmp/bench/step.out 2> /tmp/bench/step.err; then
        rec "$fs" "$run" < /tmp/bench/step.out
    else
        err "$fs" "$label" "$(tail -n 2 /tmp/bench/step.err | tr '\n' ' ')"
    fi
}

# fallocate(1) of FALLOC_MIB into a new file, in ms (with 3 decimals):
# 512 MiB, as 1 GiB does not fit the bench's 1 GiB NVDIMM (vm:unwritten
# times 1 GiB on a 2 GiB one).
falloc_case() { # DIR
    t0=$(date +%s%N)
    fallocate -l ${FALLOC_MIB}M "$1/f" || return 1
    t1=$(date +%s%N)
    rm "$1/f"
    echo "falloc-512m $(( (t1 - t0) / 1000000 )).$(printf %03d $(( (t1 - t0) / 1000 % 1000 )))" ms
}

MMAP_ext4=yes; MMAP_xfs=yes; MMAP_novars=yes
r=1
while [ "$r" -le "$RUNS" ]; do
    for fs in $FSLIST; do
        say "run $r/$RUNS: $fs"
        fresh $fs || { err $fs mkfs "mkfs or mount failed"; continue; }
        if [ $r = 1 ]; then
            if ! "$FSBENCH" mmapprobe $M 2>/tmp/bench/probe.err; then
                eval MMAP_$fs=no
                say "$fs: no shared mmap with MAP_SYNC ($(cat /tmp/bench/probe.err)): mmap cases n/a"
                for c in $(awk '!/^#/ && $4 == "mmap" { print $1 }' "$CASES"); do
                    echo "NA $fs $c n/a: mmap not supported" >> "$OUT"
                done
            fi
        fi
        eval mm=\$MMAP_$fs
        mkdir -p $M/sys $M/fio $M/mail $M/fsrv $M/md1 $M/md2 $M/map
        wants '^(append-|overwrite-|read-|creat$|stat$|rename$|unlink$|mkdir$|rmdir$)' &&
            step $fs $r syscalls "$FSBENCH" syscalls $M/sys $SYS_N
        wants '^falloc-' && mkdir -p $M/fa && step $fs $r falloc falloc_case $M/fa
        wants '^fio-' && fio_run $fs $r $M/fio $mm
        wants '^mail$' && step $fs $r mail "$FSBENCH" mail $M/mail $WL_SECS $WL_FILES
        wants '^fileserver$' && step $fs $r fileserver "$FSBENCH" fileserver $M/fsrv $WL_SECS $WL_FILES
        wants '^(create|unlink)-1t$' && step $fs $r mdscale-1t "$FSBENCH" mdscale $M/md1 1 $MD_N
        wants '^(create|unlink)-2t$' && step $fs $r mdscale-2t "$FSBENCH" mdscale $M/md2 2 $MD_N
        [ $mm = yes ] && wants '^(fault-4k|fsync-4-dirty)' &&
            step $fs $r mapsync "$FSBENCH" mapsync $M/map $MAP_PAGES $MAP_MIB
        [ $mm = yes ] && wants '^fsync-1-dirty' &&
            step $fs $r fsyncmap "$FSBENCH" fsyncmap $M/map $FSYNC_ROUNDS
        umount $M || err $fs umount "umount failed"
    done
    if wants '^fio-'; then
        say "run $r/$RUNS: raw /dev/pmem0"
        fio_run raw $r raw no
    fi
    r=$((r + 1))
done

# Mount and fsck times on populated images, DRAM per 100k files. Crash:
# ext4/xfs are shut down (FS_IOC_SHUTDOWN without a log flush: their
# journal must be replayed); novars gets its superblock CLEAN bit cleared
# after unmount (fsbench unclean: what a power cut leaves; the allocator
# record is not trusted, mount rebuilds free space from every log).
mem_kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
fsck_fs() {
    case $1 in
    ext4) e2fsck -fn $DEV ;;
    xfs) xfs_repair -n $DEV ;;
    novars) fsck.novars -fn $DEV ;;
    esac > /tmp/bench/fsck.out 2>&1
}
wants '^(mount-|fsck-|dram-|crash-first)' || FSLIST_IMAGES=""
for fs in ${FSLIST_IMAGES-$FSLIST}; do
    # One image per file system: SMALL files, measured, then grown to LARGE.
    # ext4 and novars fix their inode count at mkfs (novars: 65536 on 1 GiB
    # by default; its inode tables do not grow yet): room for LARGE files.
    case $fs in xfs) extra="" ;; *) extra="-N $((LARGE + 20000))" ;; esac
    mkfs_fs $fs $extra >/dev/null || { err $fs mount-clean-10k "mkfs failed"; continue; }
    from=0
    for size in $SMALL $LARGE; do
        if [ $size = $SMALL ]; then label=10k; else label=100k; fi
        say "images: $fs, $size files as ${label}"
        mount_fs $fs && "$FSBENCH" populate $M $from $size 1024 && umount $M ||
            { err $fs mount-clean-$label "building the image failed"; break; }
        from=$size
        r=1
        while [ "$r" -le "$RUNS" ]; do
            sync; echo 3 > /proc/sys/vm/drop_caches
            free0=$(mem_kib MemFree)
            if t=$("$FSBENCH" mount $DEV $M $fs "$(opts_of $fs)"); then
                echo "mount-clean-$label $t ms" | rec $fs $r
                if [ $label = 100k ]; then
                    "$FSBENCH" statall $M 2>/dev/null
                    free1=$(mem_kib MemFree)
                    echo "dram-100k $(( free0 - free1 ))" | awk '{ print $1, $2 / 1024, "MiB" }' | rec $fs $r
                fi
                umount $M
            else
                err $fs mount-clean-$label "mount failed"
            fi
            say "$fs: crash-$label"
            case $fs in
            novars) "$FSBENCH" unclean $DEV ;;
            *) mount_fs $fs && touch $M/p0000/crash-$r && sync && xfs_io -x -c shutdown $M && umount $M ;;
            esac || err $fs mount-crash-$label "could not make a crashed image"
            if t=$("$FSBENCH" mount $DEV $M $fs "$(opts_of $fs)"); then
                echo "mount-crash-$label $t ms" | rec $fs $r
                # The first change after it: novars rebuilds its free
                # space here (deferred from the mount), the others have
                # replayed their journal at mount.
                t0=$(now_ms)
                if touch $M/p0000/first-$r; then
                    echo "crash-first-change-$label $(( $(now_ms) - t0 )) ms" | rec $fs $r
                else
                    err $fs crash-first-change-$label "the first change after a crash failed"
                fi
                umount $M
            else
                err $fs mount-crash-$label "mount after a crash failed"
            fi
            say "$fs: fsck-$label"
            t0=$(now_ms)
            if fsck_fs $fs; then
                echo "fsck-$label $(( $(now_ms) - t0 )) ms" | rec $fs $r
            else
                err $fs fsck-$label "fsck found problems: $(tail -n 2 /tmp/bench/fsck.out | tr '\n' ' ')"
            fi
            r=$((r + 1))
        done
    done
done
say "done"
check "$OUT"
