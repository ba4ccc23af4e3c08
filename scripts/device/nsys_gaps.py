#!/usr/bin/env python3
"""Kernel time and the gaps between kernels of an `nsys stats --report cuda_gpu_trace --format csv` trace.

usage: nsys_gaps.py TRACE_CSV STEPS
Prints, per step: the span from the first to the last GPU operation, the sum of kernel durations, and the
idle time between consecutive operations, grouped by the (previous, next) kernel pair, largest first.
"""
import collections
import csv
import sys


def short(name: str) -> str:
    return name.split("(")[0][:40]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: nsys_gaps.py TRACE_CSV STEPS")
    path, steps = sys.argv[1], int(sys.argv[2])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        sys.exit(f"{path}: no operations")
    start_key = next(k for k in rows[0] if k.startswith("Start"))
    duration_key = next(k for k in rows[0] if k.startswith("Duration"))
    ops = sorted((int(r[start_key]), int(r[duration_key]), r["Name"]) for r in rows)
    span = ops[-1][0] + ops[-1][1] - ops[0][0]
    busy = sum(d for _, d, _ in ops)
    kernels = collections.defaultdict(lambda: [0, 0])
    gaps = collections.defaultdict(lambda: [0, 0])
    overlap = 0
    for (s0, d0, n0), (s1, d1, n1) in zip(ops, ops[1:]):
        gap = s1 - (s0 + d0)
        if gap < 0:
            overlap += -gap
        else:
            key = f"{short(n0)} -> {short(n1)}"
            gaps[key][0] += 1
            gaps[key][1] += gap
    for _, d, n in ops:
        kernels[short(n)][0] += 1
        kernels[short(n)][1] += d
    idle = sum(g for _, g in gaps.values())
    print(f"{len(ops)} operations; per step: span {span / steps / 1000:.1f} us, busy {busy / steps / 1000:.1f} us, "
          f"idle {idle / steps / 1000:.1f} us, overlapped {overlap / steps / 1000:.1f} us")
    print("by kernel (us per step, calls per step, us per call):")
    for name, (calls, total) in sorted(kernels.items(), key=lambda item: -item[1][1]):
        print(f"  {total / steps / 1000:9.1f} {calls / steps:6.1f} {total / calls / 1000:8.2f}  {name}")
    print("gaps by kernel pair (us per step, gaps per step, us per gap):")
    for name, (count, total) in sorted(gaps.items(), key=lambda item: -item[1][1])[:25]:
        print(f"  {total / steps / 1000:9.1f} {count / steps:6.1f} {total / count / 1000:8.2f}  {name}")


if __name__ == "__main__":
    main()
