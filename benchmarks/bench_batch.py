"""Benchmark: a batch of seq2seq submissions graded by `dlgrade grade --jobs 2` and by `nbgrader autograde`.

    .venv/bin/python benchmarks/bench_batch.py [N]      # N submissions (default 20; each trains ~1 minute)

The batch cycles through the example submissions (reference, blank, extra layer, crash: honest work and
mistakes, no endless loop). nbgrader autograde runs the same notebooks unsandboxed, one after the other, as
nbgrader ships; its grade is the notebooks' public checks. Prints both wall times and their ratio, and the
per-submission overhead: dlgrade's execution time in a (warm) sandbox against the same notebook run bare with
nbclient (which starts its kernel and imports TensorFlow itself), alone on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "seq2seq"
MIX = ("reference", "extra_layer", "blank", "crash")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    sys.path.insert(0, str(REPO))
    from autograder.course import Course, copy_course
    from autograder.examples import load_examples
    from autograder.notebooks import generate_release

    examples = {example.student: example for example in load_examples(Course(REPO), ASSIGNMENT)}
    bin_dir = Path(sys.prefix) / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-") as tmp:
        course = copy_course(Course(REPO), Path(tmp), (ASSIGNMENT,))
        generate_release(course, ASSIGNMENT)
        name = course.config(ASSIGNMENT).notebook_name
        reference = nbformat.read(course.solutions / ASSIGNMENT / name, as_version=4)
        release = nbformat.read(course.releases / ASSIGNMENT / name, as_version=4)
        for index in range(count):
            kind = MIX[index % len(MIX)]
            target = course.submitted / f"{kind}-{index:02d}" / ASSIGNMENT / name
            target.parent.mkdir(parents=True)
            nbformat.write(examples[kind].build(reference, release), target)
        print(f"{count} submissions: {', '.join(sorted({MIX[i % len(MIX)] for i in range(count)}))}", flush=True)

        start = time.perf_counter()
        subprocess.run([str(bin_dir / "dlgrade"), "grade", ASSIGNMENT, "--jobs", "2", "--course-dir", tmp],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        dlgrade_seconds = time.perf_counter() - start
        print(f"dlgrade grade --jobs 2:  {dlgrade_seconds:7.1f} s", flush=True)

        from autograder.pipeline import load_results

        results = load_results(course, ASSIGNMENT)
        shutil.rmtree(course.root / "autograded")  # the gradebook stays: nbgrader restores cells from it too
        start = time.perf_counter()
        done = subprocess.run([str(bin_dir / "nbgrader"), "autograde", ASSIGNMENT, "--force", "--create"], cwd=tmp,
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"nbgrader autograde failed:\n{done.stderr[-3000:]}")
        nbgrader_seconds = time.perf_counter() - start
        print(f"nbgrader autograde:      {nbgrader_seconds:7.1f} s", flush=True)

        bare_dir = Path(tmp) / "bare"
        shutil.copytree(course.releases / ASSIGNMENT, bare_dir)
        start = time.perf_counter()
        NotebookClient(reference, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(bare_dir)}}).execute()
        bare = time.perf_counter() - start
        # The same notebook alone on the machine, like the bare run: two copies one after the other with --jobs 1,
        # so the second starts in a warm sandbox as every submission but a worker's first does in a batch.
        for solo in ("solo-a", "solo-b"):
            target = course.submitted / solo / ASSIGNMENT / name
            target.parent.mkdir(parents=True)
            nbformat.write(examples["reference"].build(reference, release), target)
        subprocess.run([str(bin_dir / "dlgrade"), "grade", ASSIGNMENT, "--student", "solo-a", "--student", "solo-b",
                        "--jobs", "1", "--course-dir", tmp], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        alone = {r.student: r for r in load_results(course, ASSIGNMENT)}
        cold, warm = alone["solo-a"], alone["solo-b"]
        print(f"batch ratio dlgrade / nbgrader:             {dlgrade_seconds / nbgrader_seconds:6.2f}  (goal <= 0.5)")
        print(f"reference, bare nbclient:                   {bare:6.1f} s")
        print(f"reference, alone in a warm sandbox:         {warm.execution_seconds:6.1f} s "
              f"(whole grading with graders {warm.grading_seconds:.1f} s)")
        print(f"reference, alone in a cold sandbox:         {cold.execution_seconds:6.1f} s "
              f"(whole grading with graders {cold.grading_seconds:.1f} s)")
        print(f"overhead ratio sandboxed / bare execution:  {warm.execution_seconds / bare:6.2f}  (goal <= 1.05; "
              f"cold {cold.execution_seconds / bare:.2f})")
        print(f"whole grading / bare execution:             {warm.grading_seconds / bare:6.2f}  "
              f"(cold {cold.grading_seconds / bare:.2f})")
        print(f"(in the batch, two at a time: {sum(r.execution_seconds for r in results) / len(results):.1f} s "
              "mean execution per submission)")


if __name__ == "__main__":
    main()
