#!/bin/sh
# pjdfstest (POSIX metadata semantics) on ext4-DAX and on novars in the same boot: every test case that passes on ext4 passes on novars; both counts are printed.
# flavours: normal
# nvdimms: 1
# timeout: 900
# cost: 80
#
# pjdfstest is the crates.io crate (`cargo xt setup` installs the pinned
# version into cargo's bin directory, which the guest has on PATH).
# The same configuration runs on both file systems. Features: utimensat,
# UTIME_NOW, rename_ctime and posix_fallocate (ext4 has them all), remounts
# allowed (the EROFS cases remount the fs read-only and back), a tmpfs as
# the second file system of the EXDEV cases.
# The dummy users are ones every Debian system has (nobody/nogroup,
# daemon/daemon): the guest sees the host's /etc read-only, so no user
# can be created for the test.
. "$NOVARS_GUEST_LIB"
command -v pjdfstest >/dev/null || fail "pjdfstest not found on PATH ($PATH): run \`cargo xt setup\`"
load_novars
W=/tmp/pjd
mkdir -p $W/m $W/second
# A second, distinct file system for the EXDEV cases.
mountpoint -q $W/second || must mount -t tmpfs tmpfs $W/second
cat > $W/pjdfstest.toml <<EOF
[features]
utimensat = {}
utime_now = {}
rename_ctime = {}
posix_fallocate = {}
secondary_fs = "$W/second"

[settings]
# Inode times come from the coarse clock, advanced by the guest's 250 Hz
# tick; a TCG vCPU starved by the host can see it stand still across a
# 10 ms nap (mkdir/link ctime cases failed that way, once each in about
# ten runs). 50 ms leaves room for a late tick.
naptime = 0.05
allow_remount = true

[dummy_auth]
entries = [
  ["nobody", "nogroup"],
  ["daemon", "daemon"],
]
EOF

# pjd_cases LOG: the "NAME RESULT" lines of a pjdfstest log. Case lines are
# "NAME<spaces>ok|FAILED|skipped|..."; colour codes are stripped in case the
# terminal detection differs (ESC written with printf: `\x1b` in a sed
# program is a GNU extension).
ESC=$(printf '\033')
pjd_cases() {
    sed "s/$ESC\[[0-9;]*m//g" "$1" |
        awk '/^[a-z_0-9]+::[A-Za-z_0-9:]+ +(ok|FAILED|skipped|PASSED UNEXPECTEDLY|failed as expected)$/ {
                 name = $1; $1 = ""; sub(/^ +/, ""); print name, $0 }'
}

# run_pjd FS: run the suite in $W/m, keep "NAME RESULT" lines in $W/FS.res.
# The EROFS cases run first, on their own: a remount read-only fails with
# EBUSY (on ext4 too) once the full run has left a file open for writing.
run_pjd() {
    kmsg "pjdfstest: $1"
    start=$(date +%s)
    # Exit status is 1 when a case fails; the per-case lines are what count.
    NO_COLOR=1 pjdfstest -c $W/pjdfstest.toml -p $W/m erofs > $W/$1-erofs.log 2>&1
    NO_COLOR=1 pjdfstest -c $W/pjdfstest.toml -p $W/m > $W/$1.log 2>&1
    echo "pjdfstest on $1: exit $?, $(( $(date +%s) - start )) s"
    pjd_cases $W/$1-erofs.log > $W/$1-erofs.res
    [ -s $W/$1-erofs.res ] || { cat $W/$1-erofs.log; fail "no EROFS case results from pjdfstest on $1"; }
    pjd_cases $W/$1.log | awk 'NR == FNR { first[$1] = $0; next }
                               { print ($1 in first) ? first[$1] : $0 }' $W/$1-erofs.res - > $W/$1.res
    [ -s $W/$1.res ] || { cat $W/$1.log; fail "no test case results from pjdfstest on $1"; }
}

must mkfs.ext4 -q -F /dev/pmem0
must mount -t ext4 -o dax /dev/pmem0 $W/m
run_pjd ext4
must umount $W/m

must mkfs.novars -q -f /dev/pmem0
must novars_mount /dev/pmem0 $W/m
run_pjd novars
must umount $W/m

count() { grep -c " $2\$" $W/$1.res; }
e_pass=$(count ext4 ok); n_pass=$(count novars ok)
e_all=$(wc -l < $W/ext4.res); n_all=$(wc -l < $W/novars.res)
echo "ext4-DAX: $e_pass of $e_all cases pass ($(count ext4 FAILED) fail, $(count ext4 skipped) skipped)"
echo "novars:   $n_pass of $n_all cases pass ($(count novars FAILED) fail, $(count novars skipped) skipped)"
cp $W/*.log $W/*.res "$NOVARS_OUT/" 2>/dev/null || true

[ "$e_all" -eq "$n_all" ] || fail "ext4 ran $e_all cases, novars $n_all: the runs are not comparable"
# Every case that passes on ext4 must pass on novars, except where
# pjdfstest itself skips the case on novars for a reason outside novars:
#   link::link_count_max - its guard asks glibc's pathconf(_PC_LINK_MAX),
#     which knows the limit only of file systems whose magic glibc knows
#     (else 127, "unknown"); vm:findings checks EMLINK at 65000 links
#     against ext4 instead.
NOT_COMPARABLE="link::link_count_max"
bad=$(awk -v nc="$NOT_COMPARABLE" '
        BEGIN { n = split(nc, l, " "); for (i = 1; i <= n; i++) skip[l[i]] = 1 }
        NR == FNR { if ($2 == "ok") want[$1] = 1; next }
        ($1 in want) && $2 != "ok" && !($1 in skip && $2 == "skipped") { print }' $W/ext4.res $W/novars.res)
if [ -n "$bad" ]; then
    echo "cases that pass on ext4 but not on novars:"
    echo "$bad"
    # The failure messages, for the log.
    for c in $(echo "$bad" | awk '{ print $1 }'); do
        sed "s/$ESC\[[0-9;]*m//g" $W/novars-erofs.log $W/novars.log | grep -A3 "^$c " | head -4
    done
    fail "$(echo "$bad" | wc -l) pjdfstest cases pass on ext4 but not on novars"
fi
ok "every case that passes on ext4 ($e_pass) passes on novars ($n_pass; not comparable: $NOT_COMPARABLE)"
# Cases novars passes but ext4 does not (informational).
awk 'NR == FNR { if ($2 != "ok") notok[$1] = 1; next }
     ($1 in notok) && $2 == "ok" { print "novars only: " $1 }' $W/ext4.res $W/novars.res

must "$FSCK" -fn /dev/pmem0
ok "fsck clean after pjdfstest"
umount $W/second
exit 0
