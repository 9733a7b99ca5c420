#!/bin/sh
# Sequential 1 MiB writes (fio psync, 128 MiB) to the raw device and to a
# new file on novars and ext4-DAX, several times each: shows what the
# emulated NVDIMM's host backing costs the first write to a page.
# Host: cargo xt vm [--resident] -- sh $PWD/xtests/bench/seq-touch.sh
# (BENCH.md "Issue 16, session 12": without --resident, a sparse image on
# the host's disk, the first pass over a range ran at ~250 MiB/s, later
# ones at 1.3-2.3 GiB/s.)
. "$NOVARS_GUEST_LIB"
load_novars
M=/tmp/sq; mkdir -p $M
bw() { fio --output-format=terse --terse-version=3 "$@" 2>/dev/null | awk -F';' '{ printf "%.0f MiB/s\n", $48/1024 }'; }
raw() { bw --name=r --filename=/dev/pmem0 --direct=1 --ioengine=psync --rw=write --bs=1M --size=128M --offset=$1; }
newfile() { bw --name=n --directory=$M --ioengine=psync --fallocate=none --rw=write --bs=1M --size=128M --unlink=1; }
for i in 1 2 3; do echo "raw at 768M, run $i: $(raw 768M)"; done
must mkfs.novars -q -f /dev/pmem0 >/dev/null
must novars_mount /dev/pmem0 $M
for i in 1 2 3 4; do echo "novars new file, run $i: $(newfile)"; done
umount $M
for i in 1 2 3; do echo "raw at 0, run $i: $(raw 0)"; done
must mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 $M
for i in 1 2 3; do echo "ext4 new file, run $i: $(newfile)"; done
umount $M
