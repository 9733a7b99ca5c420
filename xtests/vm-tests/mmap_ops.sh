#!/bin/sh
# DAX mmap on novars: MAP_SYNC accepted, read faults on holes allocate nothing, write faults allocate and are durable, 2 MiB faults (PMDs seen in /proc/PID/pagemap; xfs_io-driven, with punch, truncate and mremap of PMD-mapped files, compared with ext4-DAX), 2 MiB-aligned extents for large files, private mappings, mprotect, madvise, mremap, truncate of a mapped file, write() from a mapping of itself, mmap/read/write coherence, msync/fsync; fsck clean and data intact after remount.
# flavours: normal
# nvdimms: 1
# timeout: 300
# cost: 40 400
. "$NOVARS_GUEST_LIB"
load_novars
T=$NOVARS_ROOT/target/guest-bin/mmaptest
MS=$NOVARS_ROOT/target/guest-bin/mapsync
[ -x "$T" ] && [ -x "$MS" ] || fail "guest programs not built (cargo xt test builds xtests/guest/*.c)"
M=/tmp/m
mkdir -p $M

# 2 MiB (PMD) faults need CONFIG_TRANSPARENT_HUGEPAGE (FS_DAX_PMD); the test
# kernels have it. DAX honours the THP mode: "never" turns PMD faults off.
THP=/sys/kernel/mm/transparent_hugepage
if [ -d $THP ]; then
    echo "THP: enabled $(cat $THP/enabled)"
    grep -q '\[never\]' $THP/enabled && echo madvise > $THP/enabled
fi

# xfs_io driven through a fifo, so that its page tables can be inspected between
# its commands (xfs_io 6.1 has no sleep or shell command). `xio CMD...`
# returns once xfs_io has run them (its `file` command prints a marker).
xio_start() { # FILE
    rm -f /tmp/xio.fifo /tmp/xio.out
    mkfifo /tmp/xio.fifo
    stdbuf -oL xfs_io "$1" < /tmp/xio.fifo > /tmp/xio.out 2>&1 &
    XIO_PID=$!
    exec 9> /tmp/xio.fifo
    XIO_N=0
}
xio() {
    for c in "$@"; do echo "$c" >&9; done
    echo file >&9
    XIO_N=$((XIO_N + 1))
    i=0
    while [ "$(grep -c '^\[000\] .*)$' /tmp/xio.out)" -lt $XIO_N ]; do
        kill -0 $XIO_PID 2>/dev/null || { cat /tmp/xio.out; fail "xfs_io died during: $*"; }
        i=$((i + 1))
        [ $i -le 1200 ] || { cat /tmp/xio.out; fail "xfs_io did not finish: $*"; }
        sleep 0.1
    done
    if grep -v '^\[000\] .*)$' /tmp/xio.out | grep -q .; then
        cat /tmp/xio.out; fail "xfs_io complained during: $*"
    fi
}
xio_stop() { echo quit >&9; exec 9>&-; wait $XIO_PID; }
# kB of the running xfs_io's mappings of FILE mapped by 2 MiB PMDs (with
# data). Read from /proc/PID/pagemap (PAGEMAP_SCAN, PAGE_IS_HUGE):
# /proc/PID/smaps cannot show it on 6.12 (FilePmdMapped skips DAX's devmap
# PMDs; see mmaptest.c).
xio_pmd() { "$T" hugekb $XIO_PID "$1" || fail "mmaptest hugekb"; }
byte_at() { od -An -tx1 -j "$2" -N1 "$1" | tr -d ' '; }

# huge_faults FS DIR: xfs_io maps a 4 MiB file (the kernel picks a 2 MiB-
# aligned address), stores through it, punches a page, truncates through a
# 2 MiB range and back, grows file and mapping to 8 MiB with mremap, maps
# it again read-only. Sets PMD_W PMD_P PMD_T PMD_R PMD_RD (kB of
# PMD-mapped after each step) and checks the data.
huge_faults() {
    f=$2/huge
    rm -f $f
    must xfs_io -f -c "truncate 4m" $f
    xio_start $f
    xio "mmap -rw 0 4m" "mwrite -S 0x5a 0 4m"
    PMD_W=$(xio_pmd $f)
    xio "fpunch 1m 4k" "mread 0 4m"
    PMD_P=$(xio_pmd $f)
    xio "mwrite -S 0x33 1m 4k" "truncate 3m" "mread 0 3m" "truncate 4m" "mread 0 4m"
    PMD_T=$(xio_pmd $f)
    xio "truncate 8m" "mremap -m 8m" "mwrite -S 0x44 4m 4m"
    PMD_R=$(xio_pmd $f)
    xio "munmap" "mmap -r 0 8m" "mread 0 8m"
    PMD_RD=$(xio_pmd $f)
    xio_stop
    echo "$1: PMD-mapped kB: write faults on 4 MiB $PMD_W, after a punch $PMD_P, after truncate to 3 MiB and back $PMD_T, after mremap to 8 MiB $PMD_R, read faults on a new 8 MiB mapping $PMD_RD"
    for c in 0:5a 1048575:5a 1048576:33 1052671:33 1052672:5a 3145727:5a 3145728:00 4194303:00 4194304:44 8388607:44; do
        [ "$(byte_at $f ${c%%:*})" = "${c#*:}" ] || fail "$1: byte ${c%%:*} is $(byte_at $f ${c%%:*}), want ${c#*:}"
    done
}

# extents_aligned FILE: every extent's device offset matches its file offset
# modulo 2 MiB (FIEMAP, 512-byte units), i.e. PMD-mappable. Lines look like
# "0: [0..8191]: 4096..12287"; splitting at non-digits keeps the awk
# program POSIX (a bracket expression holding "[." or "[:" is read as a
# collating symbol or class by GNU awk and rejected).
extents_aligned() {
    xfs_io -c "fiemap" "$1" | awk '$2 ~ /^\[/ && $3 != "hole" {
        split($2, l, /[^0-9]+/); split($3, p, /[^0-9]+/)
        n++; if ((p[1] - l[2]) % 4096) bad++ }
        END { print n + 0, bad + 0 }'
}

# ext4-DAX in the same VM for comparison (reported, not required).
if [ -d $THP ]; then
    must mkfs.ext4 -q -F /dev/pmem0
    must mount -t ext4 -o dax /dev/pmem0 $M
    huge_faults ext4-DAX $M
    must umount $M
fi

must "$MKFS" -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M

# MAP_SYNC is accepted (xfs_io -S: MAP_SHARED_VALIDATE|MAP_SYNC).
must xfs_io -f -c "truncate 64k" $M/sync
"$MS" probe $M/sync || fail "MAP_SYNC refused on novars"
xfs_io -c "mmap -S -rw 0 64k" -c "mwrite -S 0x5a 0 64k" -c "munmap" $M/sync || fail "xfs_io mmap -S"
[ "$(od -An -tx1 -j 65535 -N1 $M/sync | tr -d ' ')" = 5a ] || fail "MAP_SYNC store not in the file"
ok "MAP_SYNC mapping accepted and written"

# A write fault allocates exactly the touched page; a read fault none.
# (st_blocks also counts the inode's log pages, and the fault's entry
# moves the log out of the inode record: FIEMAP counts the data.)
must xfs_io -f -c "truncate 1m" $M/sparse
b0=$(stat -c %b $M/sparse)
xfs_io -c "mmap -r 0 1m" -c "mread 0 1m" $M/sparse > /dev/null || fail "mread of holes"
[ "$(stat -c %b $M/sparse)" = "$b0" ] || fail "read faults on holes allocated blocks: $b0 -> $(stat -c %b $M/sparse)"
xfs_io -c "mmap -rw 0 1m" -c "mwrite -S 0x41 512k 1" $M/sparse > /dev/null || fail "mwrite"
xfs_io -c "fiemap" $M/sparse > /tmp/fiemap.txt
[ "$(grep '\[' /tmp/fiemap.txt | grep -vc hole)" = 1 ] || { cat /tmp/fiemap.txt; fail "one write fault should allocate one 4 KiB block"; }
grep -q "\[1024\.\.1031\]: [0-9]" /tmp/fiemap.txt || { cat /tmp/fiemap.txt; fail "fiemap: the block is not the one at 512k"; }
ok "read faults on holes allocate nothing; a write fault allocates its page"

# mremap grows the mapping; madvise; msync -s of the dirty page only.
must xfs_io -f -c "truncate 256k" $M/remap
xfs_io -c "mmap -rw 0 64k" -c "mwrite -S 0x31 0 64k" -c "mremap -m 256k" \
    -c "mwrite -S 0x32 128k 64k" -c "madvise -s 0 256k" -c "madvise -w 0 256k" \
    -c "madvise -r 0 256k" -c "madvise -d 0 64k" -c "mread -v 0 4" \
    -c "msync -s 128k 4k" -c "msync -i 0 256k" $M/remap || fail "xfs_io mremap/madvise/msync"
[ "$(od -An -tx1 -j 131172 -N1 $M/remap | tr -d ' ')" = 32 ] || fail "store after mremap lost"
[ "$(od -An -tx1 -j 60000 -N1 $M/remap | tr -d ' ')" = 31 ] || fail "store before mremap lost (MADV_DONTNEED on a file mapping must keep data)"
ok "mremap, madvise, msync"

# Truncate of a file mapped by another process (xfs_io keeps it mapped).
must xfs_io -f -c "pwrite -S 0x61 0 32k" $M/tr
xfs_io -c "mmap -rw 0 32k" -c "mread 0 32k" -c "truncate 5000" -c "mread 0 4096" \
    -c "truncate 32k" -c "mread -v 4996 8" $M/tr > /tmp/tr.out || { cat /tmp/tr.out; fail "truncate while mapped"; }
grep -q "00001384:  61 61 61 61 00 00 00 00" /tmp/tr.out || { cat /tmp/tr.out; fail "after truncate to 5000 and back, bytes 5000.. are not zero"; }
ok "truncate of a mapped file"

# 2 MiB faults. A kernel with THP must map 2 MiB pages (a kernel without
# it cannot: reported, and the test kernels all have it).
if [ -d $THP ]; then
    huge_faults novars $M
    [ "$PMD_W" = 4096 ] || fail "novars: write faults on a 4 MiB mapping gave $PMD_W kB of PMD mappings, want 4096"
    [ "$PMD_P" = 2048 ] || fail "novars: after punching a page of the first 2 MiB, $PMD_P kB PMD-mapped, want 2048 (the untouched 2 MiB)"
    [ "$PMD_R" -ge 4096 ] || fail "novars: the 4 MiB grown by mremap is not PMD-mapped ($PMD_R kB)"
    [ "$PMD_RD" = 4096 ] || fail "novars: read faults on the 8 MiB file gave $PMD_RD kB of PMD mappings, want 4096 ([4m, 8m))"
    ok "xfs_io: 2 MiB faults, punch, truncate and mremap of PMD-mapped files"
    "$T" pmd $M || fail "mmaptest pmd"
    # Large files get 2 MiB-aligned extents: 1 MiB write()s, fallocate,
    # and a file grown by 64 KiB appends (aligned from its third MiB on).
    must xfs_io -f -c "pwrite -b 1m 0 8m" $M/w1m
    must xfs_io -f -c "falloc 0 8m" $M/fa
    must xfs_io -f -c "pwrite -b 64k 0 8m" $M/w64k
    for f in w1m fa w64k; do
        set -- $(extents_aligned $M/$f)
        echo "$f: $1 extent(s), $2 not 2 MiB-aligned"
        [ "$1" -ge 1 ] && [ "$2" = 0 ] || [ $f = w64k ] || { xfs_io -c "fiemap -v" $M/$f; fail "$f: extents not 2 MiB-aligned"; }
        # fa is unwritten (reads map the zero page, as on ext4): its
        # write faults convert and map whole aligned 2 MiB extents.
        case $f in
        fa) how=write; faults='"mmap -w 0 8m" "mwrite 0 8m"' ;;
        *) how=read; faults='"mmap -r 0 8m" "mread 0 8m"' ;;
        esac
        xio_start $M/$f
        eval xio $faults
        kb=$(xio_pmd $M/$f)
        xio_stop
        echo "$f: $kb kB PMD-mapped after $how faults on 8 MiB"
        case $f in
        w64k) want=6144 ;; # the first 2 MiB were appended before the file was large
        *) want=8192 ;;
        esac
        [ "$kb" -ge $want ] || { xfs_io -c "fiemap -v" $M/$f; fail "$f: $kb kB PMD-mapped, want at least $want"; }
    done
    ok "large files get 2 MiB-aligned extents (1 MiB writes, fallocate (unwritten: write faults), 64 KiB appends past 2 MiB)"
else
    echo "NOTE: kernel without CONFIG_TRANSPARENT_HUGEPAGE: no PMD faults; 2 MiB mapping checks not run"
    must xfs_io -f -c "truncate 4m" $M/pmd
fi
for t in coherence private truncate mprotect self; do
    "$T" $t $M || fail "mmaptest $t"
done

# Everything survives unmount, fsck and a new mount.
sum=$(md5sum $M/coh $M/pmd $M/self | md5sum)
must umount $M
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $M
[ "$sum" = "$(md5sum $M/coh $M/pmd $M/self | md5sum)" ] || fail "mapped data changed across remount"
must umount $M
ok "fsck clean, data intact after remount"
