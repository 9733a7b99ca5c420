#!/bin/sh
# Export operations: name_to_handle_at/open_by_handle_at handles of a file, a deep directory and a symlink open the right inode after the caches are dropped and after a remount (a directory reconnected to its full path: get_parent); an unlinked file, a wrong generation, a reused slot and a forged number beyond the tables give ESTALE with a clean kernel log and the mount still read-write, as on ext4-DAX (xtests/guest/fhandle.c); knfsd exports a novars mount over NFSv4.0 on loopback: create, write, read, rename, mkdir, unlink, ls through NFS with the server's caches dropped in between; fsck -fn clean.
# flavours: normal
# nvdimms: 1
# timeout: 600
# cost: 70
. "$NOVARS_GUEST_LIB"
load_novars
FH=$NOVARS_ROOT/target/guest-bin/fhandle
[ -x "$FH" ] || fail "$FH is missing (cargo xt builds xtests/guest/fhandle.c)"
W=/tmp/export
M=$W/m
mkdir -p $M

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# The handle cases on the file system mounted at $M by `$MOUNT`: one
# line per case, identical on ext4 and novars.
handles() {
    mkdir -p $M/a/b/c
    echo "deep file" > $M/a/b/c/f
    ln -s a/b/c/f $M/sl
    echo victim > $M/victim
    hf=$($FH get $M/a/b/c/f) && hd=$($FH get $M/a/b/c) && hl=$($FH get $M/sl) &&
        hv=$($FH get $M/victim) || fail "name_to_handle_at"
    [ "$($FH ino "$hf" | cut -d' ' -f1)" = "$(stat -c %i $M/a/b/c/f)" ] || fail "handle of a/b/c/f does not hold its inode number"
    drop
    echo "file: $($FH read $M "$hf")"
    echo "dir: $($FH path $M "$hd")"
    echo "symlink: $($FH link $M "$hl")"
    umount $M || fail "umount"
    $MOUNT || fail "mount again"
    echo "after remount: file: $($FH read $M "$hf")"
    echo "after remount: dir: $($FH path $M "$hd")"
    echo "after remount: symlink: $($FH link $M "$hl")"
    drop
    echo "after remount, caches dropped: dir: $($FH path $M "$hd")"
    # Renamed across directories: the handle follows the inode, and the
    # directory's new parent is found.
    mkdir $M/x && mv $M/a/b/c $M/x/c2 || fail "rename"
    drop
    echo "moved: dir: $($FH path $M "$hd")"
    echo "moved: file: $($FH read $M "$hf")"
    set -- $($FH ino "$hf")
    echo "wrong generation: $($FH read $M "$($FH forge "$hf" - $(($2 + 1)))")"
    vino=$(stat -c %i $M/victim)
    rm $M/victim
    drop
    echo "unlinked: $($FH read $M "$hv")"
    # Numbers no inode has: far beyond the tables, and a little beyond the
    # last inode made (a free slot, or beyond a table).
    case $hf in
    1:*) big=4000000000 ;;
    *) big=1099511627776 ;;
    esac
    echo "beyond the tables: $($FH read $M "$($FH forge "$hf" $big 0)")"
    echo "no such inode: $($FH read $M "$($FH forge "$hf" $(($1 + 1000)) 1)")"
    # A new file in the victim's slot (the lowest free one of its lane):
    # the old handle names another generation.
    i=0
    while [ $i -lt 64 ]; do
        echo reused > $M/r$i
        [ "$(stat -c %i $M/r$i)" = "$vino" ] && break
        i=$((i + 1))
    done
    [ $i -lt 64 ] || fail "no new file took the unlinked file's inode number $vino"
    drop
    echo "reused slot, old handle: $($FH read $M "$hv")"
    echo "reused slot, new handle: $($FH read $M "$($FH get $M/r$i)")"
    touch $M/still-rw || fail "the mount is no longer writable"
    umount $M || fail "umount"
}

kmsg "export: ext4-DAX"
must mkfs.ext4 -q -F /dev/pmem0
MOUNT="mount -t ext4 -o dax /dev/pmem0 $M"
must $MOUNT
handles > $W/ext4.out
kmsg "export: novars"
must mkfs.novars -q -f /dev/pmem0
MOUNT="novars_mount /dev/pmem0 $M"
must $MOUNT
mark="novars-test: export mark $(date +%s%N)"; echo "$mark" > /dev/kmsg
handles > $W/novars.out
cat $W/novars.out
diff -u $W/ext4.out $W/novars.out || fail "file handles: novars differs from ext4 (- ext4, + novars)"
grep -q "^dir: $M/a/b/c$" $W/novars.out || fail "directory handle not reconnected to its path"
grep -q "^reused slot, old handle: error ESTALE$" $W/novars.out || fail "reused slot: old handle not ESTALE"
# novars handles hold 64-bit inode numbers: one 2^32 past a live file's
# (ext4's 32-bit handles cannot say it) names nothing, not that file.
must novars_mount /dev/pmem0 $M
h=$($FH get $M/x/c2/f) || fail "name_to_handle_at"
set -- $($FH ino "$h")
r=$($FH read $M "$($FH forge "$h" $(($1 + 4294967296)) -)")
[ "$r" = "error ESTALE" ] || fail "a handle with inode number $1 + 2^32 gave: $r"
[ "$($FH read $M "$h")" = "deep file" ] || fail "handle of x/c2/f"
must umount $M
dmesg | sed -n "\|$mark|,\$p" | grep -v "$mark" | grep -i "novars" | grep -iE "fsck|read-only|error|corrupt" &&
    fail "file handles left novars errors in the kernel log"
must "$FSCK" -fn /dev/pmem0
ok "$(wc -l < $W/novars.out) file-handle cases give ext4's results; kernel log clean; fsck -fn clean"

# ---- NFSv4.0 over loopback: knfsd decodes novars file handles.
for t in exportfs rpc.mountd rpc.nfsd mount.nfs; do
    command -v $t > /dev/null || fail "$t is missing (cargo xt setup installs nfs-kernel-server)"
done
kmsg "export: nfs"
must novars_mount /dev/pmem0 $M
mkdir -p $M/srv
echo "from novars" > $M/srv/pre
# The guest sees the host's root read-only: nfs-utils' state in tmpfs.
must mount -t tmpfs tmpfs /var/lib/nfs
mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs /var/lib/nfs/sm /var/lib/nfs/sm.bak
: > /var/lib/nfs/etab
: > /var/lib/nfs/rmtab
ip link set lo up 2> /dev/null
must mount -t nfsd nfsd /proc/fs/nfsd
# Shortest grace period and lease the kernel takes: new opens wait for the
# grace period to end.
echo 10 > /proc/fs/nfsd/nfsv4leasetime
echo 10 > /proc/fs/nfsd/nfsv4gracetime
RPCBIND=
if command -v rpcbind > /dev/null; then
    mkdir -p /run/rpcbind
    rpcbind -w 2> $W/rpcbind.err && RPCBIND=$(pidof rpcbind)
fi
# fsid=0: the export is NFSv4's pseudo root. With any other fsid mountd
# builds the pseudo root from "/" down, and the guest's "/" (the host's
# root over 9p) cannot be exported ("Cannot export /").
# subtree_check: file handles of files carry their directory's
# (FILEID_INO64_GEN_PARENT), and nfsd decodes a file whose dentry was
# dropped through fh_to_parent and a search of the directory.
must exportfs -o rw,no_root_squash,fsid=0,sync,subtree_check 127.0.0.1:$M/srv
exportfs -v
rpc.mountd -F -N 3 > $W/mountd.log 2>&1 &
MOUNTD=$!
must rpc.nfsd -N 3 2
stop_nfs() {
    umount $N 2> /dev/null
    rpc.nfsd 0
    kill $MOUNTD 2> /dev/null
    [ -n "$RPCBIND" ] && kill $RPCBIND
    wait $MOUNTD 2> /dev/null
    exportfs -ua
    umount /proc/fs/nfsd
}
N=$W/nfs
mkdir -p $N
start=$(date +%s)
mount -t nfs -o vers=4.0 127.0.0.1:/ $N || {
    cat $W/mountd.log
    stop_nfs
    fail "mount -t nfs -o vers=4.0 127.0.0.1:/ (export $M/srv)"
}
echo "nfs mounted in $(($(date +%s) - start)) s"
nfs_check() {
    [ "$(cat $N/pre)" = "from novars" ] || fail "reading a novars file through NFS"
    echo "through nfs" > $N/new || fail "creating a file through NFS"
    drop
    [ "$(cat $M/srv/new)" = "through nfs" ] || fail "a file written through NFS reads back differently on novars"
    mkdir -p $N/d1/d2 || fail "mkdir through NFS"
    dd if=/dev/urandom of=$W/big bs=64k count=16 2> /dev/null
    cp $W/big $N/d1/d2/big || fail "writing 1 MiB through NFS"
    drop
    cmp $W/big $M/srv/d1/d2/big || fail "1 MiB written through NFS differs on novars"
    cmp $W/big $N/d1/d2/big || fail "1 MiB read back through NFS differs"
    mv $N/new $N/d1/renamed || fail "rename through NFS"
    drop
    [ -f $M/srv/d1/renamed ] && [ ! -e $M/srv/new ] || fail "rename through NFS not seen on novars"
    echo "made on novars" > $M/srv/d1/d2/local
    [ "$(cat $N/d1/d2/local)" = "made on novars" ] || fail "a file made on novars not seen through NFS"
    rm $N/d1/renamed $N/pre || fail "unlink through NFS"
    drop
    [ ! -e $M/srv/d1/renamed ] && [ ! -e $M/srv/pre ] || fail "unlink through NFS not seen on novars"
    [ "$(ls $N/d1/d2 | tr '\n' ' ')" = "big local " ] || fail "ls through NFS: $(ls $N/d1/d2)"
    [ "$(ls $M/srv/d1/d2 | tr '\n' ' ')" = "big local " ] || fail "ls on novars: $(ls $M/srv/d1/d2)"
    ln -s d1/d2/big $N/sl && [ "$(readlink $M/srv/sl)" = d1/d2/big ] || fail "symlink through NFS"
    rm -r $N/d1 $N/sl || fail "rm -r through NFS"
    drop
    [ -z "$(ls $M/srv)" ] || fail "novars directory not empty after rm -r through NFS: $(ls $M/srv)"
}
mark="novars-test: export mark $(date +%s%N)"; echo "$mark" > /dev/kmsg
nfs_check
stop_nfs
umount /var/lib/nfs
must umount $M
dmesg | sed -n "\|$mark|,\$p" | grep -v "$mark" | grep -i "novars" | grep -iE "fsck|read-only|error|corrupt" &&
    fail "NFS left novars errors in the kernel log"
must "$FSCK" -fn /dev/pmem0
ok "novars exported over NFSv4.0: create, write, read, rename, mkdir, symlink, unlink, ls with the server's caches dropped; fsck -fn clean"
