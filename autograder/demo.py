"""`make demo`: release every assignment, grade each one's example submissions (`solutions/<a>/examples.py`),
export the gradebook, summarise.

Runs on the course in the current directory (the repository), writing only git-ignored student data.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from autograder.course import find_course

DEMO_TIME_LIMIT = 150  # seconds per notebook: references train in about a minute (an example may have its own)


def main() -> int:
    from autograder.cli import results_table
    from autograder.examples import load_examples, write_examples
    from autograder.export import export_frame
    from autograder.feedback import write_feedback
    from autograder.notebooks import generate_release
    from autograder.pipeline import grade

    start = time.monotonic()
    course = find_course(Path.cwd())
    for folder in (course.submitted, course.autograded, course.feedback):
        shutil.rmtree(folder, ignore_errors=True)
    (course.root / "gradebook.db").unlink(missing_ok=True)
    assignments = [a for a in course.assignments() if load_examples(course, a)]  # each exercise's examples.py
    for assignment in course.assignments():
        print(f"==> generating release assignments/{assignment}", flush=True)
        generate_release(course, assignment)
    reports = []
    for number, assignment in enumerate(assignments, 1):
        examples = write_examples(course, assignment)
        print(f"==> [{number}/{len(assignments)}] grading {len(examples)} example submissions of {assignment} in the "
              f"sandbox (2 at a time, time limit {DEMO_TIME_LIMIT} s per notebook unless an example says otherwise)",
              flush=True)
        for example in examples:
            print(f"    {example.student}: {example.shows}", flush=True)
        results = []
        for limit in dict.fromkeys(example.time_limit or DEMO_TIME_LIMIT for example in examples):
            students = tuple(e.student for e in examples if (e.time_limit or DEMO_TIME_LIMIT) == limit)
            report = grade(course=course, assignment=assignment, students=students, jobs=2, time_limit=limit,
                           on_result=lambda r: print(f"    {r.student}: {r.score:g}/{r.max_score:g} {r.status} "
                                                     f"({r.grading_seconds:.0f} s)", flush=True))
            results += report.results
        reports.append(replace(report, results=tuple(sorted(results, key=lambda r: r.student))))
    for report in reports:
        write_feedback(course, list(report.results), course.config(report.assignment).notebook_name)
    export_path = course.root / "dlgrade-grades.csv"
    export_frame(course).to_csv(export_path, index=False)
    print()
    for report in reports:
        print(f"{report.assignment}:")
        print(results_table(report.results))
        print()
    print(f"results:   {course.autograded}/<student>/<assignment>/results.json")
    print(f"feedback:  {course.feedback}/<student>/<assignment>/<notebook>.html")
    print(f"gradebook: {course.root / 'gradebook.db'} (nbgrader's; try `.venv/bin/nbgrader export`)")
    print(f"export:    {export_path}")
    print(f"demo finished in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
