#!/bin/sh
# Guest side, run by every `cargo xt vm` boot before the command:
# make each emulated NVDIMM an fsdax namespace (only needed once per fresh
# image: the info block is stored in the image) and check that its block
# device supports DAX.
# Usage: prep.sh NUMBER_OF_NVDIMMS
set -u
want=${1:-1}
[ "$want" -gt 0 ] || exit 0

# dax_ready: how many pmem block devices support DAX.
dax_ready() {
    n=0
    for q in /sys/block/pmem*/queue/dax; do
        [ -e "$q" ] && [ "$(cat "$q")" = 1 ] && n=$((n + 1))
    done
    echo $n
}
# The usual boot: the images already hold their fsdax namespaces (ndctl
# costs about a second per namespace under TCG, and every boot pays it).
if [ "$(dax_ready)" -ge "$want" ]; then
    echo "prep: $want DAX-capable pmem device(s) ready"
    exit 0
fi

# `ndctl list -N` prints one JSON object per namespace; pick out fields with
# sed (no jq in the guest).
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p"; }

# Where the namespace's memmap (64 bytes of struct page per 4 KiB page)
# goes: in RAM (-M mem) while it takes at most an eighth of the guest's
# RAM, else on the device itself (-M dev: 1/64 of it is reserved, e.g.
# 4 GiB of a 256 GiB NVDIMM, and the data starts after it). A 256 GiB
# namespace's memmap would not even fit in the guest's 1 GiB.
ram_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
i=0
while [ "$i" -lt "$want" ]; do
    ns=namespace$i.0
    mode=$(ndctl list -n "$ns" 2>/dev/null | tr '{},' '\n\n\n' | field mode)
    if [ "$mode" != fsdax ]; then
        size=$(ndctl list -n "$ns" 2>/dev/null | tr '{},' '\n\n\n' | field size)
        map=mem
        if [ -n "$size" ] && [ $((size / 64 / 1024)) -gt $((${ram_kib:-0} / 8)) ]; then
            map=dev
        fi
        echo "prep: $ns (${size:-?} bytes) is in mode '${mode:-none}': creating an fsdax namespace (-M $map)"
        ndctl create-namespace -f -e "$ns" -m fsdax -M "$map" || {
            echo "prep: ndctl create-namespace failed for $ns"; exit 1; }
    fi
    i=$((i + 1))
done

n=0
for q in /sys/block/pmem*/queue/dax; do
    [ -e "$q" ] || continue
    dev=${q#/sys/block/}; dev=${dev%%/*}
    if [ "$(cat "$q")" != 1 ]; then
        echo "prep: /dev/$dev does not support DAX ($q = $(cat "$q"))"; exit 1
    fi
    n=$((n + 1))
done
if [ "$n" -lt "$want" ]; then
    echo "prep: expected $want pmem devices, found $n:"; ls /dev/pmem* 2>&1; ndctl list -N 2>&1; exit 1
fi
echo "prep: $n DAX-capable pmem device(s) ready"
