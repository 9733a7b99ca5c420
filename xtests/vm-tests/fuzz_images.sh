#!/bin/sh
# Hostile images: a small worked-on novars image (grown inode tables, every log entry kind, an allocator record) mutated by the Rust engine the host fuzz shares (novars-imgfuzz: superblocks, journals, segment headers, inodes, log pages, entries, allocator record field by field with boundary values, loops, shared blocks, checksums mostly recomputed; random bytes, words, blocks), after issue 14's named regressions; each image mounted (or refused with EINVAL/EUCLEAN/EROFS), walked, read, written and unmounted within 20 s, with the kernel log clean; every 8th image repaired by fsck -fy first: if fsck says clean or corrected, the mount must work and fsck -fn must be clean after the work.
# flavours: normal
# nvdimms: 1
# fresh: yes
# timeout: 1800
# cost: 700 190
#
# On the debug kernel (KASAN, lockdep) on request, outside the default run
# for its time (183 s of the CI's debug boot for 6 images):
#   cargo xt test --vm-only --flavour debug --filter fuzz_images
# Environment:
#   NOVARS_FUZZ_IMAGES  mutated images (default 1000 on normal, 6 on debug;
#                       with fsck -fy and -fn on every 4th, on a loaded
#                       host: 1006 images in 647 s on normal, 26 in 517 s
#                       on debug; now every 8th)
#   NOVARS_FUZZ_REPAIR_EVERY  repair every Nth image with fsck -fy first
#                       (default 8; 1 repairs every image)
#   NOVARS_FUZZ_SEED    seed (default: the time; printed, with each image's
#                       mutations, so a failure can be rerun)
#
# A fresh (zeroed) NVDIMM: a mutated blocks_count, lane count or segment
# size can make the file system reach past the 8 MiB image, and what an
# earlier test left there would make such a case depend on it (one took
# 200 s walking a stale full_fs tree). Zeroing 1 GiB in the guest took
# 50 s on normal and over 10 minutes on debug; a fresh image costs a boot.
. "$NOVARS_GUEST_LIB"
load_novars
W=/tmp/fz
mkdir -p $W/src/d/e $W/m
default=1000
[ "$NOVARS_FLAVOUR" != debug ] || default=6
COUNT=${NOVARS_FUZZ_IMAGES:-$default}
SEED=${NOVARS_FUZZ_SEED:-$(date +%s)}
python3 -I - $W/src <<'PY' || fail "tree"
import os, sys
s = sys.argv[1]
for i in range(140):
    with open(f"{s}/f{i:02d}", "wb") as f:
        f.write(bytes([i]) * (i * 700 % 9000))
with open(f"{s}/d/sparse", "wb") as f:
    f.seek(300000); f.write(b"end")
os.link(f"{s}/f03", f"{s}/d/e/hard")
os.symlink("f01", f"{s}/short")
os.symlink("y" * 200, f"{s}/d/long")
os.mkfifo(f"{s}/d/fifo")
PY
must "$MKFS" -q -f -l 2 -N 64 -d $W/src /dev/pmem0 8M
must novars_mount /dev/pmem0 $W/m
# Every entry kind: writes over several pages, punch, truncate, attributes,
# extended attributes, ACLs, inode flags, links, renames (a directory across directories: PARENT), unlink.
python3 -I - $W/m <<'PY' || fail "work on the base"
import os, sys
m = sys.argv[1]
fd = os.open(f"{m}/f10", os.O_RDWR)
for i in range(40):
    os.pwrite(fd, b"w" * 100, i * 5000)
os.ftruncate(fd, 150000)
os.close(fd)
fd = os.open(f"{m}/f20", os.O_RDWR)
os.posix_fallocate(fd, 0, 40000)
os.close(fd)
os.chmod(f"{m}/f11", 0o600)
os.utime(f"{m}/f12", (1, 2))
os.link(f"{m}/f13", f"{m}/d/f13-link")
os.rename(f"{m}/d/e", f"{m}/e-moved")
os.rename(f"{m}/f14", f"{m}/d/f14-renamed")
os.unlink(f"{m}/f15")
os.mkdir(f"{m}/newdir")
for i in range(30):
    with open(f"{m}/newdir/n{i}", "wb") as f:
        f.write(b"n" * (i * 100))
# Attributes (inline and in blocks, replaced, removed), an ACL and a
# default ACL, inode flags and a project id: XATTR and FLAGS entries.
os.setxattr(f"{m}/f16", "user.small", b"s" * 40)
os.setxattr(f"{m}/f16", "user.big", b"B" * 6000)
os.setxattr(f"{m}/f16", "user.small", b"replaced")
os.setxattr(f"{m}/f17", "trusted.t", b"t" * 700)
os.removexattr(f"{m}/f17", "trusted.t")
acl = bytes.fromhex("02000000" "01000600ffffffff" "02000400e8030000" "04000400ffffffff"
                    "10000600ffffffff" "20000400ffffffff")
os.setxattr(f"{m}/f18", "system.posix_acl_access", acl)
os.setxattr(f"{m}/newdir", "system.posix_acl_default", acl)
open(f"{m}/newdir/inherits", "wb").close()
import subprocess
subprocess.run(["chattr", "+d", f"{m}/f19"], check=True)
subprocess.run(["xfs_io", "-c", "chproj 9", "-c", "chattr +P", f"{m}/newdir"], check=True)
PY
must umount $W/m
must dd if=/dev/pmem0 of=$W/base.img bs=1M count=8 status=none
echo "fuzz: $COUNT images, seed $SEED ($NOVARS_FLAVOUR kernel)"
python3 "$NOVARS_ROOT/xtests/guest/fuzzimg.py" run $W/base.img /dev/pmem0 $W/m "$COUNT" "$SEED" > $W/out 2>&1
rc=$?
tail -3 $W/out
cp $W/out "$NOVARS_OUT/fuzz_images.out" 2>/dev/null || true
[ $rc = 0 ] || fail "fuzzimg.py exited $rc (seed $SEED; the last images are above, all in fuzz_images.out)"
ok "$COUNT hostile images and the named regressions, seed $SEED"
exit 0
