#!/bin/sh
# novars.ko loads, registers fs type novars, unloads and unregisters it, with a clean kernel log.
# flavours: normal debug
# nvdimms: 1
# timeout: 300
# cost: 6 55
. "$NOVARS_GUEST_LIB"

[ -n "${NOVARS_KO:-}" ] || fail "novars.ko was not built for this kernel"
grep -qw novars /proc/filesystems && fail "novars is registered before insmod"

kmsg "module_load: insmod"
must insmod "$NOVARS_KO"
grep -qw novars /proc/filesystems || fail "novars missing from /proc/filesystems after insmod"
grep -q '^novars ' /proc/modules || fail "novars missing from /proc/modules"
ok "fs type novars registered"

# A mount must fail cleanly (not implemented yet) or succeed; never crash.
mkdir -p /tmp/mnt
if novars_mount /dev/pmem0 /tmp/mnt 2>/dev/null; then
    grep -q '^/dev/pmem0 /tmp/mnt novars ' /proc/mounts || fail "mounted, but not as novars: $(grep pmem0 /proc/mounts)"
    must umount /tmp/mnt
    ok "mount -t novars works"
elif mount_not_implemented; then
    ok "mount fails cleanly: not implemented yet"
else
    ok "mount -t novars refused an unformatted device"
fi

kmsg "module_load: rmmod"
must rmmod novars
grep -qw novars /proc/filesystems && fail "novars still in /proc/filesystems after rmmod"
grep -q '^novars ' /proc/modules && fail "novars still in /proc/modules after rmmod"
ok "fs type novars unregistered"

# Load and unload once more: exit must leave nothing behind.
must insmod "$NOVARS_KO"
must rmmod novars

# Debug kernels: ask kmemleak for leaks now (its report lands in the kernel
# log, which the harness scans).
if [ -w /sys/kernel/debug/kmemleak ]; then
    sleep 6   # kmemleak ignores objects younger than 5 s
    echo scan > /sys/kernel/debug/kmemleak
    cat /sys/kernel/debug/kmemleak
fi
exit 0
