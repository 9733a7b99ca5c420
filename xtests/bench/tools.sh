#!/usr/bin/env bash
# Benchmarks of the user-space tools (issue 3), on the host, no VM:
#   mkfs.novars time for 1 GiB and 16 GiB images (sparse files);
#   mkfs.novars -d of a generated 100k-file tree into a 1 GiB image;
#   fsck.novars -fn time and peak RSS on that image.
# Usage: xtests/bench/tools.sh [RUNS]   (default 5; prints medians)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
cargo build -q --release -p mkfs -p fsck
MKFS=target/release/mkfs_novars
FSCK=target/release/fsck_novars
W=target/bench/tools
rm -rf "$W" && mkdir -p "$W"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # prints "seconds maxrss_kib" of one run of "$@"
  /usr/bin/time -f "%e %M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; return 1; }
  cat "$W/t"
}

for size in 1G 16G; do
  for i in $(seq "$RUNS"); do rm -f "$W/img"; timeit "$MKFS" -q "$W/img" "$size"; done > "$W/r"
  echo "mkfs.novars $size image: median $(cut -d' ' -f1 "$W/r" | median) s over $RUNS runs"
done

echo "generating a tree of 100000 files (100 dirs x 1000 files, 0-4 KiB each)..."
python3 - "$W/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    p = os.path.join(root, f"dir{d:03}")
    os.makedirs(p)
    for f in range(1000):
        with open(os.path.join(p, f"file-{f:05}"), "wb") as fh:
            fh.write(b"x" * ((d * 1000 + f) * 37 % 4097))
PY
rm -f "$W/img"
echo "mkfs.novars -d (100k files, 1 GiB): $(timeit "$MKFS" -q -f -N 120000 -d "$W/tree" "$W/img" 1G | awk '{print $1" s, peak RSS "$2" KiB"}')"
for i in $(seq "$RUNS"); do timeit "$FSCK" -fn "$W/img"; done > "$W/r"
echo "fsck.novars -fn (100k files, 1 GiB): median $(cut -d' ' -f1 "$W/r" | median) s, peak RSS $(cut -d' ' -f2 "$W/r" | median) KiB over $RUNS runs"
