#!/bin/sh
# The benchmark suite cannot rot: every case of xtests/bench/cases.txt runs briefly and gives a number (mmap cases: a number or n/a) on every file system.
# flavours: normal
# nvdimms: 1
# size: 1G
# timeout: 240
# cost: 95
exec sh "$NOVARS_ROOT/xtests/bench/suite.sh" quick 1 "$NOVARS_OUT/bench.txt"
