#!/usr/bin/env python3
"""One decode step's host API calls and GPU operations on one time line, from the CSVs of
`nsys stats --report cuda_gpu_trace --report cuda_api_trace`: where the device waits, and on what call.

usage: nsys_step.py GPU_TRACE_CSV API_TRACE_CSV [FIRST_OP]
Prints the operations from FIRST_OP (default 250) for one step, host calls marked "host", GPU ones "gpu".
"""
import csv
import sys


def load(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    start = next(k for k in rows[0] if k.startswith("Start"))
    duration = next(k for k in rows[0] if k.startswith("Duration"))
    return [(int(r[start]), int(r[duration]), r["Name"][:60]) for r in rows]


def main() -> None:
    gpu, api = load(sys.argv[1]), load(sys.argv[2])
    # Traced per node, a step has ~300 operations; traced per graph (GRAPH_TRACE=graph), a handful.
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 250
    first = min(first, max(len(gpu) // 4, 0))
    events = sorted([(s, d, "gpu ", n) for s, d, n in gpu] + [(s, d, "host", n) for s, d, n in api])
    gpu_sorted = sorted(gpu)
    begin = gpu_sorted[first][0]
    end = gpu_sorted[min(first + 300, len(gpu_sorted) - 1)][0]
    for s, d, kind, name in events:
        if begin - 2_000_000 <= s <= end and (kind == "host" or "paged_decode" not in name):
            print(f"{(s - begin) / 1000:10.1f} us  {kind}  {d / 1000:8.1f} us  {name}")


if __name__ == "__main__":
    main()
