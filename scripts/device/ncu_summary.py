#!/usr/bin/env python3
"""Per-kernel GPU time of the engine steps an `ncu --csv --metrics gpu__time_duration.sum` run recorded.

usage: ncu_summary.py NCU_CSV STEPS
Prints microseconds per step by kernel (name, grid and block), largest first, and the total.
"""
import collections
import csv
import sys


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: ncu_summary.py NCU_CSV STEPS")
    path, steps = sys.argv[1], int(sys.argv[2])
    header, rows = None, []
    with open(path, newline="") as handle:
        for row in csv.reader(handle):
            if row and row[0] == "ID":
                header = row
            elif header and len(row) == len(header):
                rows.append(dict(zip(header, row)))
    if not rows:
        sys.exit(f"{path}: no kernel rows (expected ncu --csv output with an 'ID' header)")
    totals = collections.defaultdict(lambda: [0, 0.0])
    for row in rows:
        key = f"{row['Kernel Name'][:60]} grid {row['Grid Size']} block {row['Block Size']}"
        totals[key][0] += 1
        totals[key][1] += float(row["Metric Value"].replace(",", ""))
    print(f"total {sum(t for _, t in totals.values()) / steps / 1000:.1f} us per step over {steps} steps")
    for key, (calls, nanoseconds) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(f"{nanoseconds / steps / 1000:9.1f} us/step {calls / steps:6.1f} calls/step {nanoseconds / calls / 1000:8.2f} us/call  {key}")


if __name__ == "__main__":
    main()
