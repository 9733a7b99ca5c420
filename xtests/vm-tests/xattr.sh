#!/bin/sh
# Extended attributes, POSIX ACLs and inode flags: setfattr/getfattr in every namespace, setfacl/getfacl with masks, chmod, default ACL inheritance and umask, chattr/lsattr/xfs_io flags (immutable, append-only, nodump, noatime, sync, dirsync, project id), what they forbid and what new inodes inherit give ext4-DAX's results and errnos on novars (xtests/guest/xattrs.sh, iflags.sh); they survive a remount and log compaction; rsync -aAX and a tar --xattrs --acls round trip copy them exactly, and so does mkfs -d (project ids too); fsck -fn clean.
# flavours: normal
# nvdimms: 1
# timeout: 600
# cost: 170
. "$NOVARS_GUEST_LIB"
load_novars
X="sh $NOVARS_ROOT/xtests/guest/xattrs.sh"
FL="sh $NOVARS_ROOT/xtests/guest/iflags.sh"
W=/tmp/xattr
mkdir -p $W/m
for t in setfattr getfattr setfacl getfacl rsync tar setpriv; do
    command -v $t > /dev/null || fail "$t is missing (cargo xt setup installs attr, acl, rsync)"
done

must mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 $W/m
$X $W/m > $W/ext4.out || fail "xattrs.sh failed on ext4"
mkdir $W/m/fl && $FL $W/m/fl > $W/ext4.fl || fail "iflags.sh failed on ext4"
must umount $W/m

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
$X $W/m > $W/novars.out || fail "xattrs.sh failed on novars"
cat $W/novars.out
diff -u $W/ext4.out $W/novars.out || fail "novars differs from ext4 (- ext4, + novars)"
ok "$(wc -l < $W/ext4.out) attribute and ACL cases give ext4's results"
mkdir $W/m/fl && $FL $W/m/fl > $W/novars.fl || fail "iflags.sh failed on novars"
cat $W/novars.fl
diff -u $W/ext4.fl $W/novars.fl || fail "inode flags: novars differs from ext4 (- ext4, + novars)"
ok "$(wc -l < $W/ext4.fl) inode-flag cases give ext4's results"
# Project ids (ext4 keeps them only with its project feature, which
# needs quota support this guest kernel lacks: novars alone).
xfs_io -r -c "chproj 42" $W/m/fl/d || fail "xfs_io chproj on novars"
xfs_io -r -c lsproj $W/m/fl/d | grep -q "projid = 42" || fail "project id not set: $(xfs_io -r -c lsproj $W/m/fl/d)"
# Project inheritance: with projinherit (P) a new inode takes the
# directory's project id, in the same commit as its creation; without it 0.
must mkdir $W/m/fl/proj
must xfs_io -r -c "chproj 7" -c "chattr +P" $W/m/fl/proj
must mkdir $W/m/fl/proj/sub
must touch $W/m/fl/proj/sub/f $W/m/fl/d/noinherit
xfs_io -r -c lsproj $W/m/fl/proj/sub/f | grep -q "projid = 7" || fail "project id not inherited: $(xfs_io -r -c lsproj $W/m/fl/proj/sub/f)"
lsattr -d $W/m/fl/proj/sub | grep -q '^.*P' || fail "projinherit not inherited by a subdirectory: $(lsattr -d $W/m/fl/proj/sub)"
xfs_io -r -c lsproj $W/m/fl/d/noinherit | grep -q "projid = 0" || fail "project id inherited without projinherit: $(xfs_io -r -c lsproj $W/m/fl/d/noinherit)"
ok "project ids: inherited with projinherit, not without"
# Flags survive a remount and keep forbidding.
must touch $W/m/fl/keep
must chattr +i $W/m/fl/keep
must chattr +a $W/m/fl/d

# Everything set above, as the tools dump it, survives a remount.
dump() {
    (cd $W/m && getfattr -R -h -d -m - -e hex . 2>&1; getfacl -n -R -p . 2>&1) > "$1"
}
dump $W/before
must umount $W/m
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $W/m
dump $W/after
diff -u $W/before $W/after || fail "attributes changed across the remount"
lsattr -d $W/m/fl/keep | grep -q '^----i' || fail "immutable lost across the remount: $(lsattr -d $W/m/fl/keep)"
lsattr -d $W/m/fl/d | grep -q '^.....a' || fail "append-only lost across the remount: $(lsattr -d $W/m/fl/d)"
xfs_io -r -c lsproj $W/m/fl/d | grep -q "projid = 42" || fail "project id lost across the remount"
xfs_io -r -c lsproj $W/m/fl/proj/sub/f | grep -q "projid = 7" || fail "inherited project id lost across the remount"
echo x > $W/m/fl/keep 2>/dev/null && fail "wrote to an immutable file after the remount"
rm $W/m/fl/d/new 2>/dev/null && fail "unlinked in an append-only directory after the remount"
must chattr -i $W/m/fl/keep
must chattr -a $W/m/fl/d
xfs_io -c "lsattr -v" $W/m/fl/f | grep -q dax || fail "xfs_io does not report the DAX flag on a novars file: $(xfs_io -c 'lsattr -v' $W/m/fl/f)"
xfs_io -c "chattr -x" $W/m/fl/f 2>/dev/null && fail "cleared DAX on a novars file"
ok "attributes, ACLs and inode flags identical after a remount; fsck -fn clean"

# Log compaction keeps them: 3000 replacements of one attribute grow the
# log past the compaction bound (16 pages) many times over.
must touch $W/m/gc
must setfattr -n user.keep -v kept $W/m/gc
must setfacl -m u:1000:r $W/m/gc
python3 -I - $W/m/gc <<'PY' || fail "replacing an attribute 3000 times"
import os, sys
p = sys.argv[1]
for i in range(3000):
    os.setxattr(p, "user.n", str(i).encode() * 40)
PY
blocks=$(stat -c %b $W/m/gc)
[ "$blocks" -le 128 ] || fail "log of gc not compacted: $blocks sectors"
[ "$(getfattr --only-values -n user.n $W/m/gc)" = "$(python3 -c 'print("2999"*40, end="")')" ] || fail "last value lost"
[ "$(getfattr --only-values -n user.keep $W/m/gc)" = kept ] || fail "user.keep lost in compaction"
getfacl -n -p $W/m/gc | grep -q '^user:1000:r--' || fail "ACL lost in compaction"
must umount $W/m
must novars_mount /dev/pmem0 $W/m
[ "$(getfattr --only-values -n user.n $W/m/gc)" = "$(python3 -c 'print("2999"*40, end="")')" ] || fail "last value lost after remount"
ok "3000 replacements: log compacted ($blocks sectors), values and ACL kept, also after remount"

# rsync -aAX and tar --xattrs --acls copy a tree with attributes and ACLs
# exactly (within novars: the source is novars too).
S=$W/m/src
mkdir -p $S/sub
echo one > $S/one; echo two > $S/sub/two
setfattr -n user.u -v uval $S/one
setfattr -n trusted.t -v tval $S/one
setfattr -n security.s -v sval $S/sub/two
setfattr -n user.dir -v dval $S/sub
setfacl -m u:1000:rw,g:100:r $S/one
setfacl -d -m u:1000:rx $S/sub
must rsync -aAX $S/ $W/m/rsynced/
must tar --xattrs --xattrs-include='*' --acls -cf $W/t.tar -C $S .
mkdir -p $W/m/untarred
must tar --xattrs --xattrs-include='*' --acls -xpf $W/t.tar -C $W/m/untarred
tree() { (cd "$1" && getfattr -R -d -m - -e hex . 2>&1; getfacl -n -R -p . 2>&1; find . | sort) }
tree $S > $W/src.attrs
grep -q user.u $W/src.attrs && grep -q 'user:1000:rw-' $W/src.attrs || fail "the source tree has no attributes: $(cat $W/src.attrs)"
tree $W/m/rsynced > $W/rsync.attrs
tree $W/m/untarred > $W/tar.attrs
diff -u $W/src.attrs $W/rsync.attrs || fail "rsync -aAX lost or changed attributes"
diff -u $W/src.attrs $W/tar.attrs || fail "tar --xattrs --acls lost or changed attributes"
ok "rsync -aAX and tar --xattrs --acls round trips identical ($(grep -c . $W/src.attrs) lines of attributes)"
must umount $W/m
must "$FSCK" -fn /dev/pmem0
ok "fsck -fn clean"

# mkfs -d copies attributes, ACLs, flags and project ids (from a novars
# source: the guest's other file systems have no project ids here).
must novars_mount /dev/pmem0 $W/m
# fldump DIR: per path (sorted; not lost+found, which mkfs makes), its
# attributes, ACLs, flags and project id.
fldump() {
    (cd "$1" && find . -path ./lost+found -prune -o -print | sort | while read -r p; do
        echo "== $p"
        getfattr -h -d -m - -e hex "$p" 2>&1 | grep -v '^# file'
        getfacl -n -p "$p" 2>&1 | grep -v '^# file'
        if [ -f "$p" ] || [ -d "$p" ]; then
            lsattr -d "$p" 2>&1
            xfs_io -r -c lsproj "$p" 2>&1
        fi
    done)
}
fldump $W/m/fl > $W/fl.src
grep -q "projid = 7" $W/fl.src && grep -q "projid = 42" $W/fl.src || fail "the source has no project ids: $(grep projid $W/fl.src)"
must mkfs.novars -q -f -d $W/m/fl $W/copy.img 64M
must umount $W/m
must dd if=$W/copy.img of=/dev/pmem0 bs=1M conv=notrunc status=none
rm -f $W/copy.img
must "$FSCK" -fn /dev/pmem0
must novars_mount /dev/pmem0 $W/m
fldump $W/m > $W/fl.copy
diff -u $W/fl.src $W/fl.copy || fail "mkfs -d changed attributes, flags or project ids"
must umount $W/m
ok "mkfs -d copies attributes, ACLs, flags and project ids ($(grep -c . $W/fl.src) lines)"
