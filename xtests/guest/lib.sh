# Shell helpers for guest-side scripts (VM tests and the demo).
# Source it: . "$NOVARS_GUEST_LIB"
#
# Environment set by `cargo xt vm` (see xtests/src/vm.rs):
#   NOVARS_ROOT     the repository (read-only in the guest)
#   NOVARS_BIN      target/release (mkfs.novars, fsck.novars), also on PATH
#   NOVARS_KO       novars.ko built for the running kernel (unset if it did not build)
#   NOVARS_FLAVOUR  normal | debug
#   NOVARS_NVDIMMS  number of /dev/pmemN devices, already fsdax with DAX on
#   NOVARS_OUT      a read-write directory shared with the host (the run's log dir)

SKIP=77

# The userspace tools: their installed names on PATH, else cargo's names.
MKFS=$(command -v mkfs.novars || echo "$NOVARS_BIN/mkfs_novars")
FSCK=$(command -v fsck.novars || echo "$NOVARS_BIN/fsck_novars")

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit "$SKIP"; }
ok() { echo "ok: $*"; }

# Leave a marker in the kernel log, so the saved log shows where a test was.
kmsg() { echo "novars-test: $*" > /dev/kmsg; }

# Run a command, print it first, fail the test if it fails.
must() { echo "+ $*"; "$@" || fail "'$*' exited $?"; }

# Is a novars userspace tool built and runnable?
have_tool() { command -v "$1" >/dev/null 2>&1 && "$1" --help >/dev/null 2>&1; }

# Load novars.ko unless it is loaded already.
load_novars() {
    [ -n "${NOVARS_KO:-}" ] || fail "novars.ko was not built for this kernel (see the host log)"
    grep -qw novars /proc/filesystems && return 0
    must insmod "$NOVARS_KO"
}

# Mount novars: `novars_mount DEV DIR [-o OPTS]`.
# Do not use util-linux `mount -t novars`: mount(8) reads any type starting
# with "no" as a negated list ("every type except vars"), probes the device
# and tries every other file system on it first (an ext4 left on the device
# gets mounted as ext4). busybox mount passes the type to mount(2) as is.
novars_mount() { busybox mount -t novars "$@"; }

# Did the module report that mount is not implemented yet?
mount_not_implemented() { dmesg | grep -q "novars: mount not implemented yet"; }
