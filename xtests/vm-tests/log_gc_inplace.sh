#!/bin/sh
# Log GC after the in-place paths: 2000 write()s into a mapped page, 2000 fallocates and 4000 first-touch write faults each keep their file's log under the compaction bound; the files read back after remount and fsck is clean.
# flavours: normal
# nvdimms: 1
# timeout: 600
# cost: 10 150
#
# Without the GC after in-place writes, fallocate and faults these logs
# would grow to about 44, 44 and 64 pages (88-byte SETATTR and 64-byte
# WRITE entries, 4032 bytes a page; xtests/guest/gc_inplace.py).
# NOVARS_GC_INPLACE sets the count (faults: twice it).
. "$NOVARS_GUEST_LIB"
N=${NOVARS_GC_INPLACE:-2000}
M=/tmp/gcip
mkdir -p $M
load_novars
must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M
must python3 "$NOVARS_ROOT/xtests/guest/gc_inplace.py" run $M "$N"
ok "in-place writes, fallocates and write faults ran in bounded log space"
must umount $M
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $M
must python3 "$NOVARS_ROOT/xtests/guest/gc_inplace.py" check $M "$N"
must umount $M
if dmesg | grep -E "novars.*(compaction failed|does not replay)"; then
    fail "log compaction reported a problem"
fi
ok "files intact after remount, fsck clean"
exit 0
