"""Benchmark: what the kernel-enforced limits cost per sandbox (needs root; prints figures, asserts nothing).

    .venv/bin/python benchmarks/bench_limits.py [RUNS]

Medians of RUNS runs (default 10) of: creating and removing a cgroup; mounting and unmounting a size-limited
tmpfs scratch (empty, and with a 2 MiB release copied in and back out); making, loop-mounting, unmounting and
deleting an ext4 image of the same size (the alternative scratch); and a trivial sandbox (`true`) started and
watched to its end with the kernel limits and with the watchdog alone.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autograder import cgroups, sandbox

SCRATCH_BYTES = 2 * 2**30  # the default disk limit


def median_ms(action: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def cgroup_cycle() -> None:
    cgroups.Cgroup.create(memory_bytes=4 * 2**30, max_tasks=1024).remove()


def tmpfs_cycle(release: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
        if release is not None:
            for item in release.iterdir():
                os.link(item, Path(tmp) / item.name)
        scratch = sandbox.ScratchFs.mount(Path(tmp), size=SCRATCH_BYTES, inodes=65_536, identity=None)
        scratch.release(copy_back=release is not None)


def loop_image_cycle() -> None:
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
        image, target = Path(tmp) / "scratch.img", Path(tmp) / "scratch"
        target.mkdir()
        with open(image, "wb") as handle:
            handle.truncate(SCRATCH_BYTES)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-N", "65536", "-m", "0", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop,nosuid,nodev", str(image), str(target)], check=True)
        subprocess.run(["umount", "-d", str(target)], check=True)  # -d frees the loop device too


def sandbox_cycle(kernel_limits: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
        result = sandbox.run(["/usr/bin/true"], scratch=Path(tmp), limits=sandbox.Limits(wall_seconds=30), mounts=(),
                             kernel_limits=kernel_limits)
        assert result.returncode == 0, result.stderr


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if os.geteuid() != 0:
        sys.exit("bench_limits needs root: cgroups and mounts are what it measures")
    hierarchy = cgroups.detect()
    logging.getLogger("dlgrade.sandbox").setLevel(logging.ERROR)  # the watchdog runs warn that they fall back
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-release-") as release_dir:
        release = Path(release_dir)
        for index in range(8):
            (release / f"data{index}.bin").write_bytes(os.urandom(256 * 1024))
        figures = [
            (f"cgroup v{hierarchy.version} create + remove", median_ms(cgroup_cycle, runs)),
            ("tmpfs scratch (2 GiB) mount + unmount", median_ms(tmpfs_cycle, runs)),
            ("tmpfs scratch with a 2 MiB release copied in and back", median_ms(lambda: tmpfs_cycle(release), runs)),
            ("ext4 loop image (2 GiB) mkfs + mount + unmount", median_ms(loop_image_cycle, runs)),
        ]
    sandbox_cycle(True)  # warm the file cache once
    kernel = median_ms(lambda: sandbox_cycle(True), runs)
    watchdog = median_ms(lambda: sandbox_cycle(False), runs)
    figures += [("sandbox `true`, kernel limits (cgroup + tmpfs)", kernel),
                ("sandbox `true`, watchdog only", watchdog)]
    width = max(len(label) for label, _ in figures)
    for label, ms in figures:
        print(f"{label:<{width}}  {ms:8.1f} ms")
    print(f"added by the kernel limits per sandbox: {kernel - watchdog:+.1f} ms (median of {runs}); "
          f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
