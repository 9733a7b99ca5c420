#!/bin/sh
# A populated novars image for profiling fsck.novars on the host: FILES
# files of 1 KiB (default 100,000) made by the kernel module, the device
# copied (sparse) to $NOVARS_OUT/img-FILES.
# Host: cargo xt vm --size 1G -- sh $PWD/xtests/bench/fsck-image.sh [FILES]
# then e.g. perf record --call-graph dwarf target/release/fsck.novars -fn IMG
. "$NOVARS_GUEST_LIB"
FILES=${1:-100000}
M=/tmp/fi-mnt
. "$NOVARS_ROOT/xtests/bench/scale-lib.sh"
populate_novars $FILES
must dd if=$DEV of=$NOVARS_OUT/img-$FILES bs=1M conv=sparse status=none
echo "image: $NOVARS_OUT/img-$FILES"
