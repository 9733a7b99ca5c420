#!/bin/sh
# errors=panic: damage found while mounted (a file's log entry fails its checksum when the file is first read) panics the kernel with novars's message, after the one log line naming the inode, as ext4's errors=panic does.
# flavours: normal
# panics: novars: panic forced after an error
# nvdimms: 1
# timeout: 120
# cost: 15
#
# The harness passes this test only if the kernel panics with the text
# above and its log before the panic is clean (tests.rs, `# panics:`).
# errors=continue and errors=remount-ro are in bad_images.sh.
. "$NOVARS_GUEST_LIB"
load_novars
IMG="python3 $NOVARS_ROOT/xtests/guest/novars_img.py"
mkdir -p /tmp/src /tmp/m && echo data > /tmp/src/file
must "$MKFS" -q -f -l 1 -d /tmp/src /dev/pmem0
must $IMG damage /dev/pmem0 log-entry 3
novars_mount -o errors=panic /dev/pmem0 /tmp/m || fail "mount with errors=panic"
grep -q '^/dev/pmem0 /tmp/m novars rw,.*errors=panic' /proc/mounts || fail "errors=panic not in /proc/mounts: $(grep pmem0 /proc/mounts)"
echo "reading the damaged file: the kernel must panic now"
cat /tmp/m/file
fail "errors=panic: the kernel did not panic (cat exited $?)"
