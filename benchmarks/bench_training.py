"""Benchmark: each reference solution's notebook time and hidden-check outcome over 3 seeds, graded for real.

    .venv/bin/python benchmarks/bench_training.py [ASSIGNMENT ...]

For each seed the reference notebook is submitted with a cell `keras.utils.set_random_seed(SEED)` after the
locked set-up cell and graded in the sandbox; the script prints the notebook's execution time, the score and
each threshold check's message. Use it to calibrate thresholds: the reference must clear them with margin on
every seed.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def main() -> None:
    sys.path.insert(0, str(REPO))
    from autograder.course import Course, copy_course
    from autograder.notebooks import generate_release
    from autograder.pipeline import grade

    assignments = sys.argv[1:] or ["seq2seq"]
    for assignment in assignments:
        with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
            course = copy_course(Course(REPO), Path(tmp), (assignment,))
            generate_release(course, assignment)
            name = course.config(assignment).notebook_name
            reference = nbformat.read(course.solutions / assignment / name, as_version=4)
            for seed in SEEDS:
                notebook = copy.deepcopy(reference)
                # the seeding cell is locked (grading restores it), so seed again in a cell of the student's
                where = next(i for i, c in enumerate(notebook.cells) if "keras.utils.set_random_seed(0)" in c.source)
                notebook.cells.insert(where + 1, nbformat.v4.new_code_cell(f"keras.utils.set_random_seed({seed})"))
                target = course.submitted / f"seed{seed}" / assignment / name
                target.parent.mkdir(parents=True)
                nbformat.write(notebook, target)
            report = grade(course=course, assignment=assignment, jobs=1)
            print(f"{assignment}:")
            for result in report.results:
                messages = "; ".join(t.output for t in result.tests if t.output)
                print(f"  {result.student}: notebook {result.execution_seconds:6.1f} s, score "
                      f"{result.score:g}/{result.max_score:g} {result.status} {result.reason} | {messages}",
                      flush=True)


if __name__ == "__main__":
    main()
