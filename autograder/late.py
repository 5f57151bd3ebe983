"""Late submissions: when each submission was handed in, when it was due, and what the course's policy takes off.

When: nbgrader's `submitted/<student>/<assignment>/timestamp.txt` (what `nbgrader collect` and the exchange
write), else the submission's timestamp in the gradebook. Due: the assignment's due date in the gradebook, plus
the student's extension, both as nbgrader keeps them (`nbgrader db assignment add NAME --duedate=...` or
`Gradebook.update_or_create_assignment(NAME, duedate=...)`). The policy is the `[late]` section of the course's
`dlgrade.toml`:

    [late]
    method = "percent_per_day"  # "none" (default), "zero", or "percent_per_day"
    percent_per_day = 10        # percent of the earned score lost per started day late
    max_percent = 50            # never more than this (percent of the score)
    grace_minutes = 15          # up to this late is on time

Penalties are written into the gradebook too (`late_submission_penalty`, nbgrader's own field), so
`nbgrader export` reports the same final score as `dlgrade export`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from autograder.course import Course, course_section

SECTION = "late"
METHODS = ("none", "zero", "percent_per_day")
TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's name, beside the submitted notebook
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class LatePolicy:
    """What a late submission loses; `[late]` in the course's dlgrade.toml."""

    # "none": nothing; "zero": a late submission scores 0; "percent_per_day": see below
    method: str = field(default="none", metadata={"choices": METHODS})
    # percent of the earned score lost per started day late (percent_per_day)
    percent_per_day: float = 10.0
    # the most a late submission loses, in percent of its score (percent_per_day)
    max_percent: float = field(default=100.0, metadata={"max": 100})
    # a submission at most this late counts as on time (slow uploads, clock skew)
    grace_minutes: float = 0.0

    def describe(self) -> str:
        """The policy in one sentence, for feedback pages."""
        grace = f" after a grace period of {self.grace_minutes:g} minutes" if self.grace_minutes else ""
        if self.method == "zero":
            return f"a late submission scores 0{grace}"
        if self.method == "percent_per_day":
            return (f"{self.percent_per_day:g}% of the score per started day late, at most {self.max_percent:g}%"
                    f"{grace}")
        return "no penalty for late submissions"


def load_policy(course_root: Path) -> LatePolicy:
    """The `[late]` section of `<course_root>/dlgrade.toml`, every value checked; no file or no section means no
    penalty."""
    return course_section(course_root, SECTION, LatePolicy)


@dataclass(frozen=True)
class Lateness:
    """When a submission came in and when it was due (UTC, naive, as nbgrader stores them)."""

    submitted: datetime | None = None
    due: datetime | None = None  # the assignment's due date plus the student's extension

    @property
    def seconds_late(self) -> float:
        if self.submitted is None or self.due is None:
            return 0.0
        return max(0.0, (self.submitted - self.due).total_seconds())


@dataclass(frozen=True)
class LatePenalty:
    """What the policy takes off one submission's score."""

    lateness: Lateness
    late: bool  # later than the due date plus the grace period
    days_late: int  # started days after the due date (0 when on time)
    percent: float  # of the score
    points: float
    policy: str  # the policy in words

    @property
    def note(self) -> str:
        """One sentence for the student, e.g. 'submitted 2 day(s) late: -20% of the score (-1.6 points); ...'."""
        if not self.late:
            return ""
        lost = f": -{self.percent:g}% of the score (-{self.points:g} points)" if self.percent else ""
        return f"submitted {self.days_late} day(s) late{lost}; policy: {self.policy}"


def penalty(policy: LatePolicy, lateness: Lateness, score: float) -> LatePenalty:
    """The penalty in points for `score` earned by a submission as late as `lateness` says."""
    seconds = lateness.seconds_late
    late = seconds > policy.grace_minutes * 60
    days = math.ceil(seconds / DAY_SECONDS) if late else 0
    if not late or policy.method == "none":
        percent = 0.0
    elif policy.method == "zero":
        percent = 100.0
    else:
        percent = min(policy.max_percent, days * policy.percent_per_day)
    points = round(max(score, 0.0) * percent / 100, 3)
    return LatePenalty(lateness=lateness, late=late, days_late=days, percent=percent, points=points,
                       policy=policy.describe())


def read_timestamp(course: Course, assignment: str, student: str) -> datetime | None:
    """nbgrader's timestamp.txt of a submission as naive UTC, or None when absent or unreadable."""
    from nbgrader.utils import parse_utc

    path = course.submitted / student / assignment / TIMESTAMP_FILE
    if not path.is_file():
        return None
    try:
        return parse_utc(path.read_text().strip()) or None
    except (ValueError, OverflowError):  # dateutil's ParserError is a ValueError
        return None


def has_gradebook(course: Course) -> bool:
    """Whether the course's gradebook exists (opening a missing one would create it)."""
    url = course.db_url
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file()


def lateness_by_student(course: Course, assignment: str) -> dict[str, Lateness]:
    """Lateness of every submission of `assignment` that is in the gradebook or has a timestamp file."""
    from nbgrader.api import Gradebook, MissingEntry

    found: dict[str, Lateness] = {}
    students = set(course.students(assignment))
    if not has_gradebook(course):  # nothing graded yet: only timestamp files, and no due date to compare with
        return {student: Lateness(submitted=read_timestamp(course, assignment, student)) for student in students}
    with Gradebook(course.db_url) as gradebook:
        try:
            due = gradebook.find_assignment(assignment).duedate
        except MissingEntry:
            due = None
        recorded = {s.student.id: s for s in gradebook.assignment_submissions(assignment)}
        for student in sorted(students | set(recorded)):
            submission = recorded.get(student)
            submitted = read_timestamp(course, assignment, student) or (submission.timestamp if submission else None)
            found[student] = Lateness(submitted=submitted, due=submission.duedate if submission else due)
    return found


def record_penalties(course: Course, assignment: str, policy: LatePolicy) -> dict[str, LatePenalty]:
    """Apply `policy` to every submission of `assignment` in the gradebook, in nbgrader's own fields: the
    submission's timestamp (from timestamp.txt, as nbgrader's autograde does) and each notebook's
    `late_submission_penalty`, so `nbgrader export` and formgrader show the same final score as dlgrade.

    Idempotent; call it again after grades change (a regrade, hand grading in formgrader)."""
    from nbgrader.api import Gradebook

    penalties = {}
    with Gradebook(course.db_url) as gradebook, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy autoflush warnings from nbgrader's models
        for submission in gradebook.assignment_submissions(assignment):
            student = submission.student.id
            stamped = read_timestamp(course, assignment, student)
            if stamped is not None:
                submission.timestamp = stamped
            score = float(submission.score)
            found = penalty(policy, Lateness(submitted=submission.timestamp, due=submission.duedate), score)
            for notebook in submission.notebooks:
                share = float(notebook.score) / score if score else 0.0
                notebook.late_submission_penalty = round(found.points * share, 3) if found.points else None
            penalties[student] = found
        gradebook.db.commit()
    return penalties
