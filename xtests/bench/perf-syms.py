#!/usr/bin/env python3
"""Flat and inclusive profiles from `perf script` output, with the
addresses perf left unresolved (a module it found no .ko for) named from a
kallsyms dump.

    perf-syms.py PERF_SCRIPT_TXT KALLSYMS_TXT [TOP]

PERF_SCRIPT_TXT: `perf script -F ip,sym` of a `perf record -g` run (one
sample = a blank-line separated block of "ADDR SYM" lines, leaf first).
KALLSYMS_TXT: `grep '\\[MODULE\\]' /proc/kallsyms` (kptr_restrict 0).
Names are demangled with c++filt when it is installed. Prints the TOP
(default 40) functions by self and by inclusive samples.
"""
import bisect
import collections
import re
import shutil
import subprocess
import sys


def load_kallsyms(path):
    syms = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[1].lower() not in ("t", "w"):
                continue
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def demangle(names):
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool, "-s", "rust"], input="\n".join(names),
                         capture_output=True, text=True).stdout.splitlines()
    if len(out) != len(names):
        return {n: n for n in names}
    # Drop crate hashes: kernel[134d93dd8c9d4f00]::x -> kernel::x
    return {n: re.sub(r"\[[0-9a-f]{16}\]", "", d) for n, d in zip(names, out)}


def samples(path):
    block = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                if block:
                    yield block
                block = []
                continue
            m = re.match(r"^([0-9a-f]+)\s+(.*)$", line)
            if m:
                block.append((int(m.group(1), 16), m.group(2)))
    if block:
        yield block


def main():
    script, kallsyms = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    addrs, names = load_kallsyms(kallsyms)

    def name(addr, sym):
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym.split(" (")[0])
        if sym and not sym.startswith("[unknown]"):
            return sym
        i = bisect.bisect_right(addrs, addr) - 1
        if i >= 0 and addr - addrs[i] < 1 << 20:
            return names[i]
        return hex(addr)

    flat, incl, n = collections.Counter(), collections.Counter(), 0
    for block in samples(script):
        n += 1
        chain = [name(a, s) for a, s in block]
        flat[chain[0]] += 1
        for fn in set(chain):
            incl[fn] += 1
    if not n:
        print("no samples")
        return
    dm = demangle(sorted(set(flat) | set(incl)))
    print(f"{n} samples")
    print("== self")
    for fn, c in flat.most_common(top):
        print(f"{100.0 * c / n:6.2f}%  {dm[fn]}")
    print("== inclusive")
    for fn, c in incl.most_common(top * 2):
        print(f"{100.0 * c / n:6.2f}%  {dm[fn]}")


if __name__ == "__main__":
    main()
