# Shared by crash-scale.sh, fsck-scale.sh, fsck-ab.sh and fsck-image.sh,
# sourced after the guest lib with M (the mount point) set: loads novars, sets DEV and FSBENCH.
FSBENCH=$NOVARS_ROOT/target/bench/bin/fsbench
[ -x "$FSBENCH" ] || FSBENCH=$NOVARS_ROOT/target/guest-bin/fsbench
DEV=/dev/pmem0
mkdir -p $M
load_novars
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# make_files FS FILES: formats $DEV with FS (ext4: inodes for FILES), makes
# FILES files of 1 KiB in 1000 directories, prints the time, unmounts.
make_files() {
    case $1 in
    novars) must mkfs.novars -q -f $DEV >/dev/null; must novars_mount $DEV $M ;;
    ext4) must mkfs.ext4 -q -F -N $(($2 + 20000)) $DEV; must mount -t ext4 -o dax $DEV $M ;;
    esac
    t0=$(now_ms)
    must "$FSBENCH" populate $M 0 $2 1024
    echo "$1: $2 files in $(( $(now_ms) - t0 )) ms"
    must umount $M
}

# populate_novars FILES: formats $DEV with novars (inodes for FILES and
# 20,000 more), makes FILES files of 1 KiB in 1000 directories, unmounts.
populate_novars() {
    must mkfs.novars -q -f -N $(($1 + 20000)) $DEV >/dev/null
    must novars_mount $DEV $M
    must "$FSBENCH" populate $M 0 $1 1024
    must umount $M
}
