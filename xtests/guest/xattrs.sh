#!/bin/sh
# Extended attributes and POSIX ACLs with the standard tools (attr, acl,
# util-linux setpriv), one line a case: `xattrs.sh DIR` on an empty file
# system at DIR. vm-tests/xattr.sh runs it on ext4-DAX and on novars and
# wants the same lines. Paths are printed as D/..., errors as the tools
# print them (their strerror), so two file systems compare line by line.
D=$1
cd "$D" || exit 1
umask 022

# `case NAME CMD...`: NAME, the exit status and the output on one line.
case_() {
    name=$1
    shift
    out=$("$@" 2>&1)
    rc=$?
    printf '%s: rc=%s %s\n' "$name" "$rc" "$(printf '%s' "$out" | sed "s|$D|D|g" | tr '\n' '|')"
}
nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups "$@"; }
py() { python3 -c "$1" "$D"; }

touch f
case_ set_get setfattr -n user.a -v hello f
case_ get getfattr -n user.a f
case_ replace setfattr -n user.a -v world f
case_ get_replaced getfattr --only-values -n user.a f
case_ empty_value setfattr -n user.empty f
case_ get_empty getfattr -e hex -n user.empty f
case_ binary setfattr -n user.bin -v 0x00ff1000 f
case_ get_binary getfattr -e hex -n user.bin f
case_ dump getfattr -d f
case_ remove setfattr -x user.a f
case_ get_removed getfattr -n user.a f
case_ remove_absent setfattr -x user.nope f
case_ absent getfattr -n user.nope f
case_ create_flag py 'import os,sys; p=sys.argv[1]+"/f"; os.setxattr(p,"user.bin",b"x",os.XATTR_CREATE)'
case_ replace_flag py 'import os,sys; p=sys.argv[1]+"/f"; os.setxattr(p,"user.new",b"x",os.XATTR_REPLACE)'
case_ create_new py 'import os,sys; p=sys.argv[1]+"/f"; os.setxattr(p,"user.new",b"x",os.XATTR_CREATE); print(os.getxattr(p,"user.new"))'
case_ name_255 py 'import os,sys; p=sys.argv[1]+"/f"; n="user."+"n"*250; os.setxattr(p,n,b"v"); print(len(os.getxattr(p,n)))'
case_ name_256 py 'import os,sys; p=sys.argv[1]+"/f"; os.setxattr(p,"user."+"n"*251,b"v")'
case_ value_512 py 'import os,sys; p=sys.argv[1]+"/f"; os.setxattr(p,"user.v512",b"x"*512); print(len(os.getxattr(p,"user.v512")))'
case_ size_query py 'import os,sys,ctypes; l=ctypes.CDLL(None,use_errno=True); print(l.getxattr((sys.argv[1]+"/f").encode(),b"user.v512",None,0))'
case_ erange py 'import os,sys,ctypes; l=ctypes.CDLL(None,use_errno=True); b=ctypes.create_string_buffer(10); r=l.getxattr((sys.argv[1]+"/f").encode(),b"user.v512",b,10); print(r, os.strerror(ctypes.get_errno()))'
case_ list py 'import os,sys; print(sorted(os.listxattr(sys.argv[1]+"/f")))'
case_ trusted setfattr -n trusted.t -v tv f
case_ security setfattr -n security.s -v sv f
case_ dump_all getfattr -d -m - f
case_ unknown_ns setfattr -n other.x -v 1 f
mkdir d
case_ dir_xattr setfattr -n user.d -v dv d
case_ dir_get getfattr -d d
ln -s f sym
case_ symlink_user setfattr -h -n user.s -v 1 sym
case_ symlink_trusted setfattr -h -n trusted.s -v 1 sym
case_ symlink_get getfattr -h -d -m - sym
mkfifo fifo
case_ fifo_user setfattr -n user.f -v 1 fifo
chmod 644 f
case_ nobody_set nobody setfattr -n user.x -v 1 f
case_ nobody_get nobody getfattr -n user.bin f
case_ nobody_trusted nobody getfattr -n trusted.t f
case_ nobody_list nobody getfattr -d -m - f

# ACLs
touch a
case_ acl_set setfacl -m u:1000:rwx,g:100:r a
case_ acl_get getfacl a
case_ acl_mode stat -c %A a
case_ acl_mask setfacl -m m::r a
case_ acl_get_mask getfacl a
case_ acl_chmod chmod 640 a
case_ acl_after_chmod getfacl a
case_ acl_xattr_name getfattr -m - -d a
case_ acl_equiv setfacl -m u::rw,g::r,o::- a
case_ acl_remove setfacl -b a
case_ acl_removed getfacl a
case_ acl_removed_xattr getfattr -m - -d a
case_ acl_default_file setfacl -d -m u:1000:r a
mkdir dd
case_ default_set setfacl -d -m u:1000:rx,g::rwx,m::rwx dd
case_ default_get getfacl dd
touch dd/new
mkdir dd/sub
case_ inherit_file getfacl dd/new
case_ inherit_dir getfacl dd/sub
case_ inherit_modes stat -c '%n %A' dd/new dd/sub
case_ umask_no_default sh -c 'umask 077; touch u; stat -c %a u'
case_ umask_with_default sh -c 'umask 077; touch dd/u; stat -c %a dd/u'
touch secret
chmod 600 secret
echo data > secret
case_ acl_denied nobody cat secret
case_ acl_grant setfacl -m u:65534:r secret
case_ acl_allowed nobody cat secret
case_ acl_mask_none setfacl -m m::- secret
case_ acl_masked nobody cat secret
case_ acl_remove_default setfacl -k dd
case_ acl_after_k getfacl dd
