#!/bin/sh
# Slot logs (FORMAT.md "Slot logs") as the kernel writes them: a file written once keeps its log in its inode record (no log page: st_blocks counts the data only); the next entry that does not fit moves it to a page; long symlinks too, directories never; -O ^slot_log keeps every log in pages; fsck finds each state clean and the data survives every remount.
# flavours: normal
# nvdimms: 1
# timeout: 300
# cost: 30
. "$NOVARS_GUEST_LIB"
set -e
load_novars
IMG="python3 $NOVARS_ROOT/xtests/guest/novars_img.py"
M=/tmp/slot
mkdir -p $M
logof() { $IMG log /dev/pmem0 "$1"; }
clean() { # clean WHAT: fsck -fn finds nothing
    rc=0; "$FSCK" -fn /dev/pmem0 > /tmp/fsck.out 2>&1 || rc=$?
    [ $rc = 0 ] || fail "$1: fsck -fn exited $rc: $(cat /tmp/fsck.out)"
}
long=$(printf 'x%.0s' $(seq 1 200))

"$MKFS" -q -f /dev/pmem0
must novars_mount /dev/pmem0 $M
printf 'small data' > $M/f
mkdir $M/d && touch $M/d/x  # a name: the directory has a log
ln -s "$long" $M/longlink
ln -s short $M/shortlink
f=$(stat -c %i $M/f); d=$(stat -c %i $M/d); l=$(stat -c %i $M/longlink)
[ "$(stat -c %b $M/f)" = 8 ] || fail "a file written once: st_blocks $(stat -c %b $M/f), want 8 (its data block only)"
# A rename's ctime change is a 40-byte LINK entry with the same count and
# a hard link another: both fit in the record.
: > $M/e   # creat alone (touch would add a SETATTR of the times)
sleep 1.1
mv $M/e $M/e2
ln $M/e2 $M/e3
e=$(stat -c %i $M/e2); ectime=$(stat -c %Z $M/e2)
[ "$ectime" -gt "$(stat -c %Y $M/e2)" ] || fail "rename did not change ctime ($ectime, mtime $(stat -c %Y $M/e2))"
umount $M
[ "$(logof $e)" = "slot 80" ] || fail "renamed and linked empty file: log $(logof $e), want slot 80"
must novars_mount /dev/pmem0 $M
[ "$(stat -c %h:%Z $M/e3)" = "2:$ectime" ] || fail "after a remount: links:ctime $(stat -c %h:%Z $M/e3), want 2:$ectime"
umount $M
[ "$(logof $f)" = "slot 64" ] || fail "file written once: log $(logof $f), want slot 64"
[ "$(logof $l)" = "slot 64" ] || fail "long symlink: log $(logof $l), want slot 64"
case $(logof $d) in pages*) ;; *) fail "directory: log $(logof $d), want pages" ;; esac
clean "slot logs"
ok "a file and a long symlink written once: one WRITE in the record, no log page; a rename and a link of an empty file: two LINK entries there; a directory in pages; fsck clean"

must novars_mount /dev/pmem0 $M
[ "$(cat $M/f)" = "small data" ] || fail "after a remount: $(cat $M/f)"
[ "$(readlink $M/longlink)" = "$long" ] || fail "long symlink after a remount"
[ "$(readlink $M/shortlink)" = short ] || fail "short symlink after a remount"
chmod 600 $M/f   # SETATTR (88 bytes) does not fit after the WRITE: the log moves
[ "$(stat -c %b $M/f)" = 16 ] || fail "after the move: st_blocks $(stat -c %b $M/f), want 16 (data and log page)"
umount $M
case $(logof $f) in pages*) ;; *) fail "after chmod: log $(logof $f), want pages" ;; esac
clean "a moved log"
must novars_mount /dev/pmem0 $M
[ "$(cat $M/f)" = "small data" ] || fail "after the move: $(cat $M/f)"
[ "$(stat -c %a $M/f)" = 600 ] || fail "after the move: mode $(stat -c %a $M/f)"
printf ' more' >> $M/f
[ "$(cat $M/f)" = "small data more" ] || fail "append after the move: $(cat $M/f)"
umount $M
clean "appends after the move"
ok "the next entry moves the log to a page: data, mode and appends kept; fsck clean"

"$MKFS" -q -f -O ^slot_log /dev/pmem0
must novars_mount /dev/pmem0 $M
printf 'small data' > $M/f
f=$(stat -c %i $M/f)
[ "$(stat -c %b $M/f)" = 16 ] || fail "-O ^slot_log: st_blocks $(stat -c %b $M/f), want 16"
umount $M
case $(logof $f) in pages*) ;; *) fail "-O ^slot_log: log $(logof $f), want pages" ;; esac
clean "-O ^slot_log"
ok "-O ^slot_log: every log in pages"
must rmmod novars
