"""Result records of grading, and their JSON form (`results.json`, close to Gradescope's)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from autograder.errors import GradingFailed

if TYPE_CHECKING:
    from autograder.course import Course

SubmissionStatus = Literal["graded", "error", "timeout", "rejected"]
CheckStatus = Literal["passed", "failed", "error"]


RESULTS_FILE = "results.json"  # autograded/<student>/<assignment>/results.json


@dataclass(frozen=True)
class CheckResult:
    """One hidden check: its points, and a message the student can act on (never hidden code or data)."""

    name: str
    cell: str  # the nbgrader grade cell whose points this check carries
    score: float
    max_score: float
    status: CheckStatus
    output: str = ""
    visibility: str = "visible"
    # Optional structure behind `output`, for feedback pages (set by graders through the `credit` fixture):
    # {"kind": "layers", "rows": [{"expected": str, "found": str, "ok": bool}, ...]} or
    # {"kind": "threshold", "metric": str, "measured": float, "target": float, "floor": float | None}.
    details: dict | None = None


@dataclass(frozen=True)
class SubmissionResult:
    """The grade of one submission; `reason` says why it is not "graded" or what was noticed on the way."""

    student: str
    assignment: str
    score: float
    max_score: float
    status: SubmissionStatus
    reason: str = ""
    tests: tuple[CheckResult, ...] = ()
    execution_seconds: float = 0.0
    grading_seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    unanswered: tuple[str, ...] = ()  # hand-graded answer cells left as released (nbgrader's "No response")
    needs_manual_grade: bool = False  # written answers wait for an instructor (formgrader)
    failed_on_our_side: bool = False  # grading itself failed (not the submission): recorded as 0, `--force` regrades

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SubmissionResult:
        data = json.loads(text)
        data["tests"] = tuple(CheckResult(**test) for test in data.get("tests", ()))
        data["notes"] = tuple(data.get("notes", ()))
        data["unanswered"] = tuple(data.get("unanswered", ()))
        return cls(**data)

    def write(self, path: Path) -> None:
        """Write atomically, so an interrupted run never leaves half a results.json behind."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)


@dataclass(frozen=True)
class BatchReport:
    """What one `dlgrade grade` run did: the results it produced and the submissions it skipped."""

    assignment: str
    results: tuple[SubmissionResult, ...]
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def failed_on_our_side(self) -> tuple[SubmissionResult, ...]:
        """Results where grading itself failed: the command exits 1 and names them."""
        return tuple(result for result in self.results if result.failed_on_our_side)


def load_results(course: Course, assignment: str) -> list[SubmissionResult]:
    """Every results.json written for `assignment`, sorted by student."""
    found = []
    for path in sorted(course.autograded.glob(f"*/{assignment}/{RESULTS_FILE}")):
        try:
            found.append(SubmissionResult.from_json(path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:  # never an export that silently lacks a student
            raise GradingFailed(f"{path} is not a dlgrade result ({type(exc).__name__}: {exc}); grade it again with "
                                f"`dlgrade grade {assignment} --student {path.parts[-3]} --force`") from exc
    return found
