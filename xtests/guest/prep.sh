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

i=0
while [ "$i" -lt "$want" ]; do
    ns=namespace$i.0
    mode=$(ndctl list -n "$ns" 2>/dev/null | tr '{},' '\n\n\n' | field mode)
    if [ "$mode" != fsdax ]; then
        echo "prep: $ns is in mode '${mode:-none}': creating an fsdax namespace (-M mem)"
        ndctl create-namespace -f -e "$ns" -m fsdax -M mem || {
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
