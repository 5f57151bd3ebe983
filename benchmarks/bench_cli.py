"""Benchmark: wall time of `dlgrade --help` (goal: at most 0.3 s; it must not import TensorFlow or nbgrader).

    .venv/bin/python benchmarks/bench_cli.py [RUNS]

Prints each run, the median of RUNS runs (default 5) and the machine's load average; asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_SECONDS = 0.3
DLGRADE = Path(sys.prefix) / "bin" / "dlgrade"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    subprocess.run([str(DLGRADE), "--help"], capture_output=True, check=True)  # warm the file cache once
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(DLGRADE), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"dlgrade --help: {', '.join(f'{t:.3f}' for t in times)} s")
    verdict = "met" if median <= GOAL_SECONDS else "missed"
    print(f"median of {runs}: {median:.3f} s (goal <= {GOAL_SECONDS} s: {verdict}); "
          f"load average {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
