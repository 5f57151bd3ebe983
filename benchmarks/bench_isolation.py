"""What the trust boundary costs per submission: the probe's fresh sandbox and the sandboxed hidden graders.

    .venv/bin/python benchmarks/bench_isolation.py            # ~4 min on 2 cores

Grades the seq2seq and attention references once each (cold, as a regrade or a Slurm task runs them) in a
throw-away copy of the course, then runs seq2seq's hidden graders over the same artifacts in a grader process
with and without its sandbox, a cold start and three warm requests each. Prints the figures and each cost as a
share of a seq2seq submission's whole grading time (goal: under 10 %).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.course import Course, copy_course  # noqa: E402
from autograder.graders import GraderProcess  # noqa: E402
from autograder.notebooks import generate_release  # noqa: E402
from autograder.pipeline import LOG_FILE, grade  # noqa: E402


def _grade_reference(course: Course, assignment: str):
    config = course.config(assignment)
    folder = course.submitted / "reference" / assignment
    folder.mkdir(parents=True)
    shutil.copy2(course.solutions / assignment / config.notebook_name, folder / config.notebook_name)
    (result,) = grade(course=course, assignment=assignment, jobs=1).results
    log = (course.autograded / "reference" / assignment / LOG_FILE).read_text()
    return result, log


def _graders(course: Course, assignment: str, *, isolated: bool) -> tuple[float, list[float]]:
    """Seconds to a ready grader process, and seconds of three requests over the reference's artifacts."""
    config = course.config(assignment)
    begin = time.monotonic()
    process = GraderProcess(preload=config.preload, memory_bytes=config.grader_memory_bytes, isolated=isolated,
                            graders_dir=course.graders(assignment), artifact_bytes=config.limits.max_file_bytes)
    requests = []
    try:
        for _ in range(3):
            start = time.monotonic()
            checks, log = process.run(graders_dir=course.graders(assignment), timeout=config.grader_seconds,
                                      artifacts_dir=course.autograded / "reference" / assignment / "artifacts")
            assert sum(c.score for c in checks) == sum(c.max_score for c in checks) > 0, log
            requests.append(time.monotonic() - start)
    finally:
        process.close()
    first = requests[0]
    return (time.monotonic() - begin) - sum(requests) + first, requests[1:]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dlgrade-bench-isolation-") as tmp:
        course = copy_course(Course(REPO), Path(tmp), ("seq2seq", "attention"))
        for assignment in ("seq2seq", "attention"):
            generate_release(course, assignment)
        seq2seq, _ = _grade_reference(course, "seq2seq")
        attention, attention_log = _grade_reference(course, "attention")
        probe = float(re.search(r"probe sandbox: exit \S+ ([\d.]+) s", attention_log).group(1))
        cold = {isolated: _graders(course, "seq2seq", isolated=isolated) for isolated in (False, True)}
    whole = seq2seq.grading_seconds
    print(f"seq2seq reference graded cold, whole submission: {whole:.1f} s ({seq2seq.score}/{seq2seq.max_score})")
    print(f"attention reference graded cold: {attention.grading_seconds:.1f} s ({attention.score}/"
          f"{attention.max_score}); its probe sandbox: {probe:.1f} s = {100 * probe / whole:.1f} % of seq2seq's "
          "grading time")
    for isolated, label in ((False, "unsandboxed"), (True, "sandboxed")):
        start, warm = cold[isolated]
        print(f"seq2seq graders {label:>11}: first request (start + grade) {start:.1f} s, warm requests "
              + ", ".join(f"{s:.2f} s" for s in warm))
    extra_cold = cold[True][0] - cold[False][0]
    extra_warm = sum(cold[True][1]) / len(cold[True][1]) - sum(cold[False][1]) / len(cold[False][1])
    print(f"added by the grader sandbox: cold {extra_cold:+.2f} s ({100 * extra_cold / whole:+.1f} %), "
          f"warm {extra_warm:+.2f} s ({100 * extra_warm / whole:+.1f} %) of a seq2seq submission's grading time")


if __name__ == "__main__":
    main()
