#!/bin/sh
# Inode flags with the standard tools (e2fsprogs chattr/lsattr, xfs_io),
# one line a case: `iflags.sh DIR` on an empty file system at DIR.
# vm-tests/xattr.sh runs it on ext4-DAX and on novars and wants the same
# lines. Flags are printed masked to the ones both keep (FS_IOC_GETFLAGS:
# S i a d A D), since ext4 adds its own (extents) and novars DAX.
D=$1
cd "$D" || exit 1

case_() {
    name=$1
    shift
    out=$("$@" 2>&1)
    rc=$?
    printf '%s: rc=%s %s\n' "$name" "$rc" "$(printf '%s' "$out" | sed "s|$D|D|g" | tr '\n' '|')"
}
flags() {
    python3 -c '
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
b = fcntl.ioctl(fd, 0x80086601, struct.pack("l", 0))  # FS_IOC_GETFLAGS
f = struct.unpack("l", b)[0]
print(" ".join(n for n, bit in (("S", 0x8), ("i", 0x10), ("a", 0x20), ("d", 0x40), ("A", 0x80), ("D", 0x10000)) if f & bit) or "-")
' "$1"
}
statx_attrs() {
    xfs_io -r -c "statx -r" "$1" | grep -E '^stat\.attributes ' | sed 's/.*= //'
}
nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups "$@"; }

echo data > f
case_ immutable_set chattr +i f
case_ immutable_flags flags f
case_ immutable_write sh -c 'echo x >> f'
case_ immutable_truncate truncate -s 0 f
case_ immutable_unlink rm -f f
case_ immutable_rename mv f g
case_ immutable_link ln f h
case_ immutable_chmod chmod 600 f
case_ immutable_touch touch f
case_ immutable_xattr setfattr -n user.x -v 1 f
case_ immutable_read cat f
case_ immutable_clear chattr -i f
case_ immutable_cleared flags f
case_ append_set chattr +a f
case_ append_flags flags f
case_ append_append sh -c 'echo more >> f; cat f'
case_ append_overwrite sh -c 'echo x > f'
case_ append_truncate truncate -s 0 f
case_ append_unlink rm -f f
case_ append_falloc_punch fallocate -p -o 0 -l 1 f
case_ append_clear chattr -a f
case_ nodump_noatime chattr +dA f
case_ nodump_noatime_flags flags f
case_ sync_set chattr +S f
case_ sync_flags flags f
case_ clear_all chattr -dAS f
case_ cleared flags f
mkdir d
case_ dir_immutable chattr +i d
case_ dir_create touch d/new
case_ dir_clear chattr -i d
case_ dir_append chattr +a d
case_ dir_append_create touch d/new
case_ dir_append_unlink rm d/new
case_ dir_append_clear chattr -a d
case_ dirsync chattr +D d
case_ dirsync_flags flags d
case_ nobody_chattr nobody chattr +d f
case_ nobody_immutable sh -c 'chown 65534 f; setpriv --reuid 65534 --regid 65534 --clear-groups chattr +i f'
case_ xfs_io_chattr xfs_io -c "chattr +i" f
case_ xfs_io_flags flags f
case_ statx_immutable statx_attrs f
case_ xfs_io_open_immutable xfs_io -c "chattr -i" f
case_ immutable_other_flag chattr +d f
case_ xfs_io_clear xfs_io -r -c "chattr -i" f
case_ noatime_read sh -c 'chattr +A f; touch -a -d @1000000000 f; cat f > /dev/null; stat -c %X f'
# What a new inode inherits from its directory (sync, nodump, noatime to
# everything; dirsync to directories; never immutable or append-only).
mkdir inh
case_ inherit_set chattr +SdAD inh
mkdir inh/sub
touch inh/file inh/sub/nested
ln -s file inh/link
case_ inherit_dir flags inh/sub
case_ inherit_file flags inh/file
case_ inherit_nested flags inh/sub/nested
case_ inherit_link_lsattr sh -c 'lsattr -d inh/link; echo'
case_ inherit_clear chattr -SdAD inh
touch inh/later
case_ inherit_after_clear flags inh/later
mkdir ia
case_ inherit_ia_set chattr +a ia
touch ia/f
case_ inherit_not_append flags ia/f
chattr -a ia
