#!/bin/sh
# Guest side of a shared boot (`cargo xt test`): runs several VM tests one
# after the other in one boot. Each test gets its own directory
# $NOVARS_OUT/tests/NAME (as its $NOVARS_OUT) with `out`, `status` and
# `seconds`, and its own section of the kernel log between the markers
# "novars-xt: begin NAME" and "novars-xt: end NAME", which the host uses to
# pin a kernel warning on the test that caused it.
# Between tests everything mounted under /tmp is unmounted and novars.ko is
# unloaded, so each test starts as it would in a boot of its own (the
# NVDIMM contents are not reset: they are not between boots either).
# Usage: batch.sh NAME=SCRIPT...
top=$NOVARS_OUT
for spec in "$@"; do
    name=${spec%%=*}
    script=${spec#*=}
    dir=$top/tests/$name
    mkdir -p "$dir"
    echo "novars-xt: begin $name" > /dev/kmsg
    echo "==== $name"
    start=$(date +%s)
    { NOVARS_OUT=$dir sh "$script"; echo $? > "$dir/status"; } < /dev/null 2>&1 | tee "$dir/out"
    echo $(( $(date +%s) - start )) > "$dir/seconds"
    cd /tmp
    # Clean slate for the next test; a test that leaves a busy mount or a
    # module in use is reported.
    for m in $(awk '$2 ~ "^/tmp/." { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || echo "umount $m failed" >> "$dir/cleanup"
    done
    if grep -q '^novars ' /proc/modules; then
        rmmod novars 2>/dev/null || echo "rmmod novars failed" >> "$dir/cleanup"
    fi
    echo "novars-xt: end $name" > /dev/kmsg
done
exit 0
