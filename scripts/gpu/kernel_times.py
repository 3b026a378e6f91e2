#!/usr/bin/env python3
"""Sums the kernel times of one profiled decode step per kernel: reads the CSV that
  ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
      build-gpu/rotor-bench-cuda ...   (with ROTOR_BENCH_PROFILE=1)
writes on stdin or in a file, and prints a markdown table, largest total first.
  kernel_times.py --categories TABLES.md   sums such tables into coarse groups (bench/RESULTS.md). ncu runs the kernels
one at a time with the L2 flushed between them, so the sum is an upper bound of the step's kernel
time (no overlap from programmatic dependent launch, no weights left in L2)."""
import csv
import re
import sys
from collections import defaultdict


def short(name):
    name = re.sub(r"\(.*$", "", name)  # drop the parameter list
    name = re.sub(r"^void ", "", name)
    return name if len(name) <= 90 else name[:87] + "..."


def category(name):
    """The coarse groups of bench/RESULTS.md's profile table, by kernel name."""
    if "mmvq" in name or "mmq" in name or "matvec_bulk" in name:
        return "int8 mat-vec"
    if "gdn_" in name:
        return "Gated DeltaNet"
    if "norm" in name or "quantize" in name or "sandwich" in name:
        return "norms + quantize"
    if "expert" in name or "route" in name or "weighted_sum" in name or "matvec_kernel<0," in name:
        return "router + experts"  # matvec_kernel<0, ...>: f32 weights, the routers
    return "rest"


def categories(md):
    """Sums a table this script printed (one section per `## ` heading) into category()'s groups."""
    for sec in md.split("## ")[1:]:
        rows = re.findall(r"^\| `([^`]+)` \| (\d+) \| ([\d.]+) \|", sec, re.M)
        total = sum(float(r[2]) for r in rows)
        sums = defaultdict(float)
        for n, _, t in rows:
            sums[category(n)] += float(t)
        print(sec.splitlines()[0] + f": {total:.0f} us; " +
              ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in sorted(sums.items(), key=lambda kv: -kv[1])))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--categories":
        categories(open(sys.argv[2]).read())
        return 0
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    rows = list(csv.reader(line for line in text.splitlines() if line.startswith('"')))
    head = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if head is None:
        print("no ncu CSV found (did ncu run? its output follows)\n" + text[-3000:])
        return 1
    cols = rows[head]
    k_name, k_time, k_grid = cols.index("Kernel Name"), cols.index("gpu__time_duration.sum"), cols.index("Grid Size")
    unit = rows[head + 1][k_time] if head + 1 < len(rows) else "nsecond"
    scales = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
    if unit in scales:
        data, scale = rows[head + 2:], scales[unit]
    else:  # no unit row: ncu's default, nanoseconds
        data, scale = rows[head + 1:], 1e-3
    total = defaultdict(float)
    count = defaultdict(int)
    grids = defaultdict(set)
    for r in data:
        if len(r) <= k_time or not r[k_time]:
            continue
        n = short(r[k_name])
        try:
            t = float(r[k_time].replace(",", "")) * scale
        except ValueError:
            continue
        total[n] += t
        count[n] += 1
        grids[n].add(r[k_grid])
    step = sum(total.values())
    print(f"{sum(count.values())} kernels, {step:.1f} us in all (one at a time, L2 flushed between them)\n")
    print("| kernel | launches | total us | % of step | mean us | grids |\n|---|---:|---:|---:|---:|---|")
    for n in sorted(total, key=lambda k: -total[k]):
        g = sorted(grids[n])
        print(f"| `{n}` | {count[n]} | {total[n]:.1f} | {100 * total[n] / step:.1f}% | {total[n] / count[n]:.2f} | "
              f"{', '.join(g[:3])}{' ...' if len(g) > 3 else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
