#!/bin/sh
# Changes while the free space is rebuilt after a crash (clean pools, FORMAT.md): 100,000 files (most empty) and 5 orphans, FS_IOC_SHUTDOWN (a crash that leaves the device as it was), then the mount starts from the pools and creates, overwrites, truncates, renames and deletes at once, the first change finishing before the rebuild does; a second crash after 20 changes made during a rebuild, a third after changes made during one; fsck -fn clean after each (the pools hold nothing in use) and after the clean unmount (the allocator record equals the free space: nothing leaked or given twice, no orphan left); every file as last written.
# flavours: normal
# nvdimms: 1
# timeout: 900
# cost: 70
. "$NOVARS_GUEST_LIB"
load_novars
mkdir -p /tmp/pools
python3 "$NOVARS_ROOT/xtests/guest/pools.py" /dev/pmem0 /tmp/pools "${NOVARS_POOLS_FILES:-100000}" "$FSCK" || fail "pools.py"
ok "changes during the rebuild after a crash: all checks passed"
