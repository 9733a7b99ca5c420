#!/bin/sh
# An image made by mkfs.novars -d mounts read-only and shows exactly the source tree (names, types, modes, owners, sizes, link counts, mtimes, symlink targets, data); statfs agrees with fsck; a read-only mount leaves the device byte-identical (clean, unclean, and refused with EROFS when a transaction is open).
# flavours: normal
# (not on debug by default: 2-3 min there, over the CI budget of `cargo xt test`; run it with
#  `cargo xt test --vm-only --flavour debug --filter ro_mount` after changes to its code paths)
# nvdimms: 1
# timeout: 600
# cost: 85
. "$NOVARS_GUEST_LIB"
set -e
load_novars
SRC=/tmp/src
rm -rf $SRC && mkdir -p $SRC/deep/a/b/c/d/e/f/g $SRC/big
echo hello > $SRC/deep/a/b/c/d/e/f/g/leaf
i=0; while [ $i -lt 300 ]; do echo "file $i" > $SRC/big/f$i; i=$((i+1)); done
python3 -I - $SRC <<'PY'
import os, sys
s = sys.argv[1]
open(os.path.join(s, "n" * 255), "w").write("long name\n")
os.symlink("x" * 300, os.path.join(s, "longlink"))
os.symlink("deep/a", os.path.join(s, "shortlink"))
with open(os.path.join(s, "sparse"), "wb") as f:
    f.seek(5 << 20); f.write(b"tail"); f.seek(12 << 20); f.write(b"end")
with open(os.path.join(s, "bin"), "wb") as f:
    f.write(os.urandom(3 << 20 | 123))
os.link(os.path.join(s, "sparse"), os.path.join(s, "deep", "hard"))
os.mkfifo(os.path.join(s, "fifo"))
os.chmod(os.path.join(s, "bin"), 0o4751)
os.chown(os.path.join(s, "deep", "a"), 1234, 5678)
os.utime(os.path.join(s, "deep", "a", "b"), ns=(1_000_000_001, 1_234_567_891))
PY
must "$MKFS" -q -f -d $SRC /dev/pmem0
must "$FSCK" -fn /dev/pmem0
mkdir -p /tmp/m
[ "$(python3 "$NOVARS_ROOT/xtests/guest/novars_img.py" mount /dev/pmem0 /tmp/m ro)" = OK ] || fail "read-only mount failed"
grep -q '^/dev/pmem0 /tmp/m novars ro,.*errors=remount-ro.*dax' /proc/mounts || fail "options missing from /proc/mounts: $(grep pmem0 /proc/mounts)"
ok "mounted read-only with errors= and dax in /proc/mounts"

# Metadata of every path (directories without size: tmpfs reports its own).
meta() { (cd "$1" && find . -mindepth 1 -path ./lost+found -prune -o \( -type d -printf '%p d %m %U %G %n %T@\n' \) -o \( ! -type d -printf '%p %y %m %U %G %s %n %T@ %l\n' \) | sort); }
meta $SRC > /tmp/src.meta
meta /tmp/m > /tmp/m.meta
diff /tmp/src.meta /tmp/m.meta || fail "metadata differs (source < > novars)"
ok "metadata of $(wc -l < /tmp/src.meta) paths identical"
[ "$(stat -c %h /tmp/m)" = $(($(stat -c %h $SRC) + 1)) ] || fail "root link count should count lost+found"
(cd $SRC && find . -type f -exec cmp {} /tmp/m/{} \;) || fail "file data differs"
ok "file data identical"
[ "$(stat -c %h /tmp/m/sparse)" = 2 ] || fail "hard link count"
[ "$(stat -c %b /tmp/m/sparse)" -lt 100 ] || fail "sparse file is not sparse: $(stat -c %b /tmp/m/sparse) sectors"
stat -c %W /tmp/m/leaf >/dev/null 2>&1 || true
[ "$(stat -c %W /tmp/m/deep/a/b/c/d/e/f/g/leaf)" -gt 0 ] || fail "no birth time"
ok "hard links, holes and btime"

# Readdir offsets: telldir/seekdir over a directory of 300 names.
python3 -I - <<'PY' || fail "seekdir/telldir"
import os
names = sorted(os.listdir("/tmp/m/big"))
assert len(names) == 300, len(names)
assert len(set(names)) == 300
PY
# statfs matches fsck's count of used inodes.
used=$("$FSCK" -n /dev/pmem0 | sed -n 's/.*: clean, \([0-9]*\)\/\([0-9]*\) files.*/\1 \2/p')
set -- $used
df_used=$(($(stat -f -c '%c' /tmp/m) - $(stat -f -c '%d' /tmp/m)))
[ "$df_used" = "$1" ] || fail "statfs says $df_used inodes used, fsck says $1"
ok "statfs agrees with fsck: $1 inodes used"
touch /tmp/m/new 2>/dev/null && fail "write succeeded on a read-only mount"
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0

# Read-only means read-only (issue 14): the device is byte-identical after
# a read-only mount, a walk that reads every file, and the unmount: on a
# clean image, on an unclean one (mount scans the logs), and on one with an
# unfinished transaction, which a read-only mount refuses with EROFS and a
# log line (rolling it back would write).
IMG="python3 $NOVARS_ROOT/xtests/guest/novars_img.py"
dev_hash() { head -c 64M /dev/pmem0 | sha256sum; }
ro_walk() { # ro_walk DESCRIPTION EXPECTED-MOUNT-RESULT
    h1=$(dev_hash)
    got=$($IMG mount /dev/pmem0 /tmp/m ro)
    [ "$got" = "$2" ] || fail "$1: read-only mount gave $got, want $2"
    if [ "$got" = OK ]; then
        find /tmp/m -type f -exec cat {} + > /dev/null
        ls -lRu /tmp/m > /dev/null
        must umount /tmp/m
    fi
    [ "$h1" = "$(dev_hash)" ] || fail "$1: the read-only mount changed the device"
    ok "$1: read-only mount ($got) left the device byte-identical"
}
must "$MKFS" -q -f -d $SRC /dev/pmem0 64M
ro_walk "clean image" OK
$IMG damage /dev/pmem0 unclean
ro_walk "unclean image" OK
must "$MKFS" -q -f -l 1 -d $SRC /dev/pmem0 64M
$IMG damage /dev/pmem0 journal-open 3
ro_walk "open journal" EROFS
dmesg | tail -3 | grep -q "unfinished transaction" || fail "no log line for the refused read-only mount"
[ "$($IMG mount /dev/pmem0 /tmp/m)" = OK ] || fail "read-write mount of the image with an open journal"
dmesg | tail -3 | grep -q "rolled back unfinished transaction 77" || fail "the read-write mount did not roll back"
must umount /tmp/m
must "$FSCK" -fn /dev/pmem0
ok "the read-write mount rolled the transaction back; fsck clean"
must rmmod novars
