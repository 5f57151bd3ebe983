"""Benchmark: one reference submission graded cold and warm, against a bare nbclient run of the notebook.

    .venv/bin/python benchmarks/bench_grade.py [ASSIGNMENT]      # default seq2seq

Prints three wall times and their ratios to the bare run (issue 14's goals: warm <= 1.0, cold <= 1.2):
- bare: the reference notebook run by nbclient in a copy of the release, on TensorFlow's defaults (all cores, no
  sandbox, no grading): what a student's own machine does;
- cold: the whole `dlgrade grade` command on a fresh course copy, as a regrade or a Slurm task runs it;
- warm: the same submission graded in a batch whose sandbox and grader process were started ahead (what every
  submission after a batch's first one gets), from the hand-over of the notebook to its recorded result.
Then where the cold command's fixed cost goes, each of the pipeline's steps timed on its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def timed(figures: list[tuple[str, float]], what: str):
    start = time.perf_counter()
    yield
    figures.append((what, time.perf_counter() - start))


def fresh_course(tmp: Path, assignment: str, student: str = "reference"):
    from autograder.course import Course, copy_course
    from autograder.notebooks import generate_release

    course = copy_course(Course(REPO), tmp, (assignment,))
    generate_release(course, assignment)
    name = course.config(assignment).notebook_name
    target = course.submitted / student / assignment
    target.mkdir(parents=True)
    shutil.copy2(course.solutions / assignment / name, target / name)
    return course


def bare_run(course, assignment: str, where: Path) -> float:
    shutil.copytree(course.releases / assignment, where)
    notebook = nbformat.read(course.solutions / assignment / course.config(assignment).notebook_name, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(where)}}).execute()
    return time.perf_counter() - start


def warm_grade(course, assignment: str) -> float:
    """The submission graded with the pool's sandbox and grader process already up, as a batch's later ones."""
    from autograder.pipeline import grade_submission
    from autograder.plan import plan_batch
    from autograder.warm import WarmPool

    plan = plan_batch(course, assignment)
    pool = WarmPool(plan=plan, total=2)
    try:
        pool.prestart(0)
        pool.wait_until_ready(0)
        pool.begin()
        start = time.perf_counter()
        result = grade_submission(plan, "reference", slot=0, pool=pool)
        seconds = time.perf_counter() - start
    finally:
        pool.close()
    assert result.score == result.max_score, (result.status, result.reason)
    return seconds


def cold_steps(course, assignment: str) -> list[tuple[str, float]]:
    """The pipeline's steps for one submission, cold, each timed: where a cold grade's seconds go."""
    from autograder import gradebook, notebooks
    from autograder.graders import GraderProcess
    from autograder.pipeline import (
        RESULTS_FILE,
        execute_in_sandbox,
        probe_definitions,
        read_notebook,
        restore_locked_cells,
        summarize,
    )
    from autograder.plan import plan_batch, sandbox_settings
    from autograder.sandbox import check_sandbox

    figures: list[tuple[str, float]] = []
    bin_dir = Path(sys.prefix) / "bin"
    with timed(figures, "CLI: interpreter start, click, `dlgrade --help`"):
        subprocess.run([str(bin_dir / "dlgrade"), "--help"], check=True, stdout=subprocess.DEVNULL)
    with timed(figures, "library imports (autograder.pipeline, nbformat, nbgrader's API)"):
        subprocess.run([str(bin_dir / "python"), "-c", "import autograder.pipeline, nbgrader.api"], check=True)
    with timed(figures, "plan: config, points, resources"):
        plan = plan_batch(course, assignment)
    with timed(figures, "sandbox check (bubblewrap, cgroups)"):
        check_sandbox()
    with timed(figures, "gradebook: assignment and notebook rows"):
        notebooks.ensure_in_gradebook(course, assignment)
    with timed(figures, "read and restore the locked cells"):
        restored = restore_locked_cells(plan, "reference", read_notebook(plan, "reference"))
    output_dir, log = plan.output_dir("reference"), []
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    start = time.perf_counter()
    execution = execute_in_sandbox(plan, restored.notebook, output_dir=output_dir, slot=0, pool=None, log=log)
    sandboxed = time.perf_counter() - start
    figures.append(("sandbox and kernel start, preload (cold)", sandboxed - execution.run.wall_seconds))
    figures.append(("the notebook itself, in the sandbox", execution.run.wall_seconds))
    with timed(figures, "probe sandbox (where the assignment has one)"):
        probe_definitions(plan, "reference", restored.notebook, execution, output_dir=output_dir, slot=0, pool=None,
                          log=log)
    settings = sandbox_settings(plan)
    process = GraderProcess(preload=plan.config.preload_modules, backend=plan.config.backend,
                            memory_bytes=plan.config.grader_memory_bytes, graders_dir=plan.course.graders(assignment),
                            read_only=settings.grader_read_only, artifact_bytes=plan.config.limits.max_file_bytes)
    try:
        with timed(figures, "grader process start (sandbox, pytest, preload)"):
            process.wait_until_ready()
        with timed(figures, "hidden graders on the artifacts"):
            checks, _ = process.run(graders_dir=plan.course.graders(assignment), artifacts_dir=output_dir / "artifacts",
                                    timeout=plan.config.grader_seconds, env=settings.grader_env)
    finally:
        process.close()
    with timed(figures, "summary, gradebook and results.json"):
        result = summarize(plan, "reference", restored, execution, tuple(checks))
        gradebook.record(course, result)
        result.write(output_dir / RESULTS_FILE)
    assert result.score == result.max_score, (result.status, result.reason)
    return figures


def main() -> None:
    assignment = sys.argv[1] if len(sys.argv) > 1 else "seq2seq"
    sys.path.insert(0, str(REPO))
    dlgrade = str(Path(sys.prefix) / "bin" / "dlgrade")
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
        course = fresh_course(Path(tmp) / "bare-course", assignment)
        bare = bare_run(course, assignment, Path(tmp) / "bare")
        print(f"bare nbclient run:                  {bare:7.1f} s", flush=True)

        course = fresh_course(Path(tmp) / "cold", assignment)
        start = time.perf_counter()
        subprocess.run([dlgrade, "grade", assignment, "--course-dir", str(course.root)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold = time.perf_counter() - start
        print(f"dlgrade grade, cold (whole command): {cold:7.1f} s", flush=True)

        warm = warm_grade(fresh_course(Path(tmp) / "warm", assignment), assignment)
        print(f"graded in a warm sandbox:           {warm:7.1f} s", flush=True)

        steps = cold_steps(fresh_course(Path(tmp) / "steps", assignment), assignment)
    print(f"\n{assignment}: warm / bare {warm / bare:.2f} (goal <= 1.0), cold / bare {cold / bare:.2f} (goal <= 1.2)")
    print("\nwhere a cold grade's seconds go (each step timed on its own):")
    for what, seconds in steps:
        print(f"  {seconds:7.1f} s  {what}")
    print(f"  {sum(s for _, s in steps):7.1f} s  in all (the CLI's figure above is one run of the same steps)")


if __name__ == "__main__":
    main()
