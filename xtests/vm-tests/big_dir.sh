#!/bin/sh
# Large directories and files: one directory of 100,000 entries (create, lookup time flat from 1,000 entries, readdir, 10,000 renames out and back in, 90% unlinked and the directory log compacted, checked after remount), a file of 20,000 extents from fragmented writes (FIEMAP, read back; 100,000 in the long mode), a sparse file of 64 GiB (data, holes, SEEK_DATA/SEEK_HOLE); all survive unmount, fsck -fn and remount.
# flavours: normal
# nvdimms: 1
# timeout: 1800
# cost: 115
#
# Environment:
#   NOVARS_BIGDIR_ENTRIES  entries of the directory (default 100000; the
#                          long mode of issue 13: 1000000)
#   NOVARS_BIGDIR_EXTENTS  extents of the fragmented file (default 20000;
#                          100000, the count, took 253 s under TCG)
. "$NOVARS_GUEST_LIB"
load_novars
B="python3 $NOVARS_ROOT/xtests/guest/bigdir.py"
N=${NOVARS_BIGDIR_ENTRIES:-100000}
X=${NOVARS_BIGDIR_EXTENTS:-20000}
W=/tmp/bigdir
mkdir -p $W/m

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
$B dir $W/m "$N" || fail "directory of $N entries"
$B extents $W/m "$X" || fail "file of $X extents"
$B sparse $W/m 64 || fail "sparse file of 64 GiB"
must umount $W/m
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $W/m
$B dirgc $W/m "$N" || fail "directory after remount"
$B verify $W/m "$X" 64 || fail "after remount"
must umount $W/m
exit 0
