"""Grade one submission and write its result as JSON: what a Slurm task (or any remote executor) runs.

    python -m autograder.worker --course-dir COURSE --assignment A --student S --output FILE [--no-sandbox]

It runs the same steps as a local slot (`pipeline.grade_one`), sandbox included; it does not touch the gradebook
or results.json: the process that started the batch records the result it finds in FILE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.executors import Task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--course-dir", type=Path, required=True)
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--output", type=Path, required=True, help="where to write the result (JSON)")
    parser.add_argument("--no-sandbox", action="store_true")
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--slot", type=int, default=0, help="sandbox slot (host uid) on this node")
    parser.add_argument("--settings-dir", type=Path, default=None, help="folder of the course's dlgrade.toml")
    args = parser.parse_args(argv)
    from autograder.pipeline import grade_one

    task = Task(course_root=args.course_dir.resolve(), assignment=args.assignment, student=args.student,
                isolated=not args.no_sandbox, time_limit=args.time_limit, settings_root=args.settings_dir)
    result = grade_one(task, args.slot)
    result.write(args.output)
    print(f"{result.student}: {result.score:g}/{result.max_score:g} {result.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
