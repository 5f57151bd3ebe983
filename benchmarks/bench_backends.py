"""Benchmark: every assignment's reference graded under each installed Keras backend, over three seeds.

    .venv/bin/python benchmarks/bench_backends.py [--assignment A ...] [--backend B ...] [--seeds 0,1,2]

Each run is a whole grading in the sandbox, as `dlgrade grade` runs it: one submission at a time (no other
grading beside it), the reference notebook with a cell `keras.utils.set_random_seed(<seed>)` added after its
(locked) seed cell, on a fresh copy of the course whose assignment.toml says `backend = "<B>"`. Printed per
assignment and backend: the seconds of the notebook run (mean and worst over the seeds; each seed's backends run
back to back, so that they share the machine's load), of the whole grading, the hidden score of each seed, each
accuracy check's measured value against its full-marks target (the margin), and the kernel sandbox's peak
memory. The figures choose each assignment's `backend` (README, "Keras backends").
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
SEED_LINE = "keras.utils.set_random_seed(0)"
PEAK = re.compile(r"sandbox \((?:warm|cold) start\): exit -?\d+, [\d.]+ s, peak (\d+) MiB")


@dataclass(frozen=True)
class Run:
    assignment: str
    backend: str
    seed: int
    score: float
    max_score: float
    execution_seconds: float
    grading_seconds: float
    peak_mib: int
    margins: tuple[str, ...]  # each threshold check's measured value against its full-marks target


def installed_backends() -> list[str]:
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def with_backend(toml: str, backend: str) -> str:
    """assignment.toml with its top-level `backend` set (before the first table, where top-level keys live)."""
    lines = [line for line in toml.splitlines() if not line.startswith("backend")]
    first_table = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
    lines.insert(first_table, f'backend = "{backend}"')
    return "\n".join(lines) + "\n"


def grade_reference(assignment: str, backend: str, seed: int) -> Run:
    import nbformat

    from autograder.course import Course, copy_course
    from autograder.notebooks import generate_release
    from autograder.pipeline import grade

    with tempfile.TemporaryDirectory(prefix="dlgrade-backends-") as tmp:
        course = copy_course(Course(REPO), Path(tmp), (assignment,))
        toml = course.solutions / assignment / "assignment.toml"
        toml.write_text(with_backend(toml.read_text(), backend))
        generate_release(course, assignment)
        name = course.config(assignment).notebook_name
        source = (course.solutions / assignment / name).read_text()
        notebook = nbformat.reads(source, as_version=4)
        if seed:  # the seed cell is locked (grading restores it), so a cell of the student's own follows it
            at = next(i for i, cell in enumerate(notebook.cells) if SEED_LINE in cell.source)
            notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(f"keras.utils.set_random_seed({seed})"))
        folder = course.submitted / "reference" / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / name)
        result = grade(course=course, assignment=assignment, jobs=1).results[0]
        log = (course.autograded / "reference" / assignment / "dlgrade.log").read_text()
        peaks = [int(found) for found in PEAK.findall(log)]
        margins = tuple(f"{test.details['measured']:.2f}/{test.details['target']:g}" for test in result.tests
                        if (test.details or {}).get("kind") == "threshold")
        return Run(assignment, backend, seed, result.score, result.max_score, result.execution_seconds,
                   result.grading_seconds, max(peaks, default=0), margins)


def table(runs: list[Run]) -> str:
    rows = ["| assignment | backend | notebook s (mean / worst) | grading s (mean) | hidden score per seed "
            "| measured / target per seed | peak MiB |",
            "|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((run.assignment, run.backend) for run in runs)
    for assignment, backend in keys:
        group = [run for run in runs if (run.assignment, run.backend) == (assignment, backend)]
        execution = [run.execution_seconds for run in group]
        scores = " / ".join(f"{run.score:g}" for run in group)
        rows.append(f"| {assignment} | {backend} | {statistics.mean(execution):.1f} / {max(execution):.1f} | "
                    f"{statistics.mean(run.grading_seconds for run in group):.1f} | {scores} (of "
                    f"{group[0].max_score:g}) | {' / '.join(', '.join(run.margins) or '-' for run in group)} | "
                    f"{max(run.peak_mib for run in group)} |")
    return "\n".join(rows)


def main() -> None:
    sys.path.insert(0, str(REPO))
    from autograder.course import Course

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", action="append", help="default: every assignment that trains")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="default: every installed one")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    course = Course(REPO)
    assignments = args.assignment or [a for a in course.assignments() if course.config(a).artifacts]
    backends = args.backend or installed_backends()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print(f"backends: {', '.join(backends)}; seeds: {seeds}; assignments: {', '.join(assignments)}", flush=True)
    runs = []
    for assignment in assignments:  # the backends of one seed back to back: both see the same machine load
        seeded = SEED_LINE in (course.solutions / assignment / course.config(assignment).notebook_name).read_text()
        if not seeded:
            print(f"  {assignment}: its reference draws nothing at random (no {SEED_LINE}): seed {seeds[0]} only")
        for seed in seeds if seeded else seeds[:1]:
            for backend in backends:
                start = time.perf_counter()
                run = grade_reference(assignment, backend, seed)
                runs.append(run)
                print(f"  {assignment:<18} {backend:<10} seed {seed}: {run.score:g}/{run.max_score:g} "
                      f"({', '.join(run.margins) or 'no threshold'}), notebook "
                      f"{run.execution_seconds:.1f} s, grading {run.grading_seconds:.1f} s, peak {run.peak_mib} MiB "
                      f"({time.perf_counter() - start:.0f} s in all)", flush=True)
    print()
    print(table(sorted(runs, key=lambda run: (assignments.index(run.assignment), backends.index(run.backend),
                                              run.seed))))


if __name__ == "__main__":
    main()
