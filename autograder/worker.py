"""Grade one submission and write its result as JSON: what a Slurm task (or any remote executor) runs.

    python -m autograder.worker --plan PLAN.json --student S --output FILE [--slot N]

PLAN.json is the batch's plan (`autograder.plan.BatchPlan`), written once by the process that started the batch:
the assignment's settings, points and resolved resources, so no task derives them again. The worker runs the same
steps as a local slot (`pipeline.grade_one`), sandbox included; it does not touch the gradebook or results.json:
the process that started the batch records the result it finds in FILE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True, help="the batch's plan (JSON)")
    parser.add_argument("--student", required=True)
    parser.add_argument("--output", type=Path, required=True, help="where to write the result (JSON)")
    parser.add_argument("--slot", type=int, default=0, help="sandbox slot (host uid) on this node")
    args = parser.parse_args(argv)
    from autograder.executors import Task
    from autograder.pipeline import grade_one
    from autograder.plan import BatchPlan

    plan = BatchPlan.from_json(args.plan.read_text(), origin=args.plan)
    result = grade_one(Task(plan=plan, student=args.student), args.slot)
    result.write(args.output)
    print(f"{result.student}: {result.score:g}/{result.max_score:g} {result.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
