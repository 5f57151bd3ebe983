"""Benchmark: wall time of `dlgrade grade` on one reference submission vs a bare nbclient run of the notebook.

    .venv/bin/python benchmarks/bench_grade.py [ASSIGNMENT]

Prints both wall times and their ratio (the cost of sanitising, the sandbox and the hidden graders).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    assignment = sys.argv[1] if len(sys.argv) > 1 else "seq2seq"
    sys.path.insert(0, str(REPO))
    from autograder.course import Course, copy_course
    from autograder.notebooks import generate_release

    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
        course = copy_course(Course(REPO), Path(tmp), (assignment,))
        generate_release(course, assignment)
        notebook_name = course.config(assignment).notebook_name
        reference = course.solutions / assignment / notebook_name

        bare_dir = Path(tmp) / "bare"
        shutil.copytree(course.releases / assignment, bare_dir)
        notebook = nbformat.read(reference, as_version=4)
        start = time.perf_counter()
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(bare_dir)}}).execute()
        bare = time.perf_counter() - start
        print(f"bare nbclient execution:        {bare:7.1f} s", flush=True)

        target = course.submitted / "reference" / assignment
        target.mkdir(parents=True)
        shutil.copy2(reference, target / notebook_name)
        start = time.perf_counter()
        subprocess.run([str(Path(sys.prefix) / "bin" / "dlgrade"), "grade", assignment, "--course-dir", tmp],
                       check=True)
        graded = time.perf_counter() - start
        print(f"bare nbclient execution:        {bare:7.1f} s")
        print(f"dlgrade grade (one submission): {graded:7.1f} s")
        print(f"ratio grade / bare:             {graded / bare:7.2f}")


if __name__ == "__main__":
    main()
