"""Exports: pure functions from the gradebook and results to pandas DataFrames, and the files each format writes.

    long        one row per student and assignment (score after the late penalty, raw score, penalty, status)
    wide        one row per student, one column per assignment, and the total (CSV or XLSX)
    canvas      Canvas gradebook import CSV (Student, ID, SIS User ID, SIS Login ID, Section, a column per
                assignment, and the "Points Possible" row)
    moodle      Moodle grade import CSV (Username, Email address, a column per assignment; map them on import)
    gradescope  a Gradescope-style results.json per submission: <dir>/<student>/<assignment>/results.json

Reasons, messages and names come from submissions (and the LMS): every text cell of a CSV or XLSX goes through
`text.spreadsheet_cell` on the way out, and the Gradescope files through `text.plain_text`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autograder.course import Course
from autograder.gradebook import scores_frame
from autograder.late import LatePolicy
from autograder.results import SubmissionResult, load_results
from autograder.text import plain_text, spreadsheet_cell

FORMATS = ("csv", "wide-csv", "xlsx", "canvas", "moodle", "gradescope")
LONG_COLUMNS = ["student", "assignment", "score", "max_score", "raw_score", "late_penalty", "days_late",
                "submitted", "due", "status", "reason", "needs_manual_grade"]


@dataclass(frozen=True)
class Student:
    """What the gradebook knows of a student (names and e-mail are optional in nbgrader)."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""  # the LMS's own user id (Canvas's "ID"), set by `dlgrade roster import`

    @property
    def display_name(self) -> str:
        """'Last, First' as gradebooks sort them, else the id."""
        if self.last_name or self.first_name:
            return ", ".join(part for part in (self.last_name, self.first_name) if part)
        return self.id


def students(course: Course) -> dict[str, Student]:
    """The gradebook's students by id."""
    from nbgrader.api import Gradebook

    from autograder.late import has_gradebook

    if not has_gradebook(course):
        return {}
    with Gradebook(course.db_url) as gradebook:
        return {s.id: Student(id=s.id, first_name=s.first_name or "", last_name=s.last_name or "",
                              email=s.email or "", lms_user_id=s.lms_user_id or "") for s in gradebook.students}


def _iso(value) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else ""


def export_frame(course: Course, *, policy: LatePolicy | None = None, record: bool = True) -> pd.DataFrame:
    """The long table: one row per student and assignment with a submission in the gradebook.

    `score` is the gradebook's score (autograded and hand-graded points) less the late penalty of `policy`
    (default: the course's `[late]` in dlgrade.toml); `raw_score` is before it. With `record`, the penalties are
    written into the gradebook first (nbgrader's `late_submission_penalty`), so `nbgrader export` agrees.
    """
    from autograder.late import has_gradebook, lateness_by_student, load_policy, penalty, record_penalties

    policy = policy or load_policy(course.settings_dir)
    if not has_gradebook(course):  # nothing graded yet; opening the gradebook would create it
        return pd.DataFrame(columns=LONG_COLUMNS)
    frame = scores_frame(course)
    rows = []
    for assignment in in_course_order(course, frame["assignment"].unique()):
        if record:
            record_penalties(course, assignment, policy)
        results = {r.student: r for r in load_results(course, assignment)}
        lateness = lateness_by_student(course, assignment)
        for row in frame[frame["assignment"] == assignment].itertuples(index=False):
            found = penalty(policy, lateness[row.student], row.score) if row.student in lateness else None
            result = results.get(row.student)
            rows.append({"student": row.student, "assignment": assignment,
                         "score": round(row.score - (found.points if found else 0.0), 3),
                         "max_score": row.max_score, "raw_score": row.score,
                         "late_penalty": found.points if found else 0.0,
                         "days_late": found.days_late if found else 0,
                         "submitted": _iso(found.lateness.submitted) if found else "",
                         "due": _iso(found.lateness.due) if found else "",
                         "status": result.status if result else "", "reason": result.reason if result else "",
                         "needs_manual_grade": row.needs_manual_grade})
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def wide_frame(long: pd.DataFrame) -> pd.DataFrame:
    """One row per student: each assignment's score (after the late penalty; blank: no submission), the total
    and the maximum total over all assignments."""
    if long.empty:
        return pd.DataFrame(columns=["student", "total", "max_total"])
    table = long.pivot(index="student", columns="assignment", values="score")
    order = _assignment_order(long)
    table = table[order]
    table["total"] = table[order].sum(axis=1, min_count=0)
    table["max_total"] = float(long.groupby("assignment")["max_score"].max()[order].sum())
    table.columns.name = None
    return table.reset_index()


def course_order(names) -> list[str]:
    """Assignment names in the order they come, each once: frames and results are built in the course's order
    (`in_course_order`), and every table keeps it."""
    return list(dict.fromkeys(names))


def in_course_order(course: Course, names) -> list[str]:
    """`names` in the course's order (`Course.assignments()`: each one's position), unknown ones after them."""
    known = course.assignments()
    return sorted(set(names), key=lambda name: (known.index(name) if name in known else len(known), name))


def _assignment_order(long: pd.DataFrame) -> list[str]:
    return course_order(long["assignment"])


def canvas_frame(long: pd.DataFrame, roster: dict[str, Student]) -> pd.DataFrame:
    """Canvas's gradebook import layout: the student columns Canvas matches on, a column per assignment, and a
    first row "Points Possible". Canvas creates an assignment for a column it does not know; a blank cell
    leaves that grade as it is."""
    wide = wide_frame(long)
    order = _assignment_order(long) if not long.empty else []
    maxima = long.groupby("assignment")["max_score"].max() if not long.empty else {}
    header = {"Student": "Points Possible", "ID": "", "SIS User ID": "", "SIS Login ID": "", "Section": ""}
    rows = [{**header, **{name: maxima[name] for name in order}}]
    for record in wide.to_dict("records"):
        student = roster.get(record["student"], Student(id=record["student"]))
        rows.append({"Student": student.display_name, "ID": student.lms_user_id, "SIS User ID": student.id,
                     "SIS Login ID": student.id, "Section": "", **{name: record[name] for name in order}})
    return pd.DataFrame(rows, columns=[*header, *order])


def moodle_frame(long: pd.DataFrame, roster: dict[str, Student]) -> pd.DataFrame:
    """Moodle's "Import grades from CSV": a user column to map ("Username" or "Email address") and a column per
    assignment to map onto a grade item."""
    wide = wide_frame(long)
    order = _assignment_order(long) if not long.empty else []
    rows = [{"Username": r["student"], "Email address": roster.get(r["student"], Student(id=r["student"])).email,
             **{name: r[name] for name in order}} for r in wide.to_dict("records")]
    return pd.DataFrame(rows, columns=["Username", "Email address", *order])


def spreadsheet_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell safe for a spreadsheet (no control characters, no formula); numbers stay
    numbers and the header row stays as it is, so that LMS imports still find their columns."""
    return frame.map(spreadsheet_cell)


def gradescope_results(result: SubmissionResult, *, late_penalty: float = 0.0, late_note: str = "") -> dict:
    """One submission in Gradescope's autograder results format (`results.json`): the score after the late
    penalty, and each check as a test with its points and message (Gradescope knows passed and failed only)."""
    summary = [f"Status: {result.status}"] + ([result.reason] if result.reason else []) + (
        [late_note] if late_note else [])
    return {
        "score": round(max(result.score - late_penalty, 0.0), 3),
        "execution_time": round(result.grading_seconds, 2),
        "output": plain_text("\n".join(summary)),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{"name": plain_text(check.name), "number": str(index + 1), "score": check.score,
                   "max_score": check.max_score, "status": "passed" if check.status == "passed" else "failed",
                   "output": plain_text(check.output), "tags": [check.cell], "visibility": check.visibility}
                  for index, check in enumerate(result.tests)],
        "extra_data": {"student": plain_text(result.student), "assignment": result.assignment,
                       "dlgrade_status": result.status, "raw_score": result.score, "late_penalty": late_penalty},
    }


def graded_assignments(course: Course) -> list[str]:
    """Assignments with at least one results.json, in course order."""
    return in_course_order(course, (path.parent.name for path in course.autograded.glob("*/*/results.json")))


def write_gradescope(course: Course, target: Path, *, policy: LatePolicy | None = None) -> list[Path]:
    """`<target>/<student>/<assignment>/results.json` for every graded submission."""
    from autograder.late import lateness_by_student, load_policy, penalty

    policy = policy or load_policy(course.settings_dir)
    written = []
    for assignment in graded_assignments(course):
        lateness = lateness_by_student(course, assignment)
        for result in load_results(course, assignment):
            found = penalty(policy, lateness[result.student], result.score) if result.student in lateness else None
            path = target / result.student / assignment / "results.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(gradescope_results(result, late_penalty=found.points if found else 0.0,
                                                          late_note=found.note if found else ""), indent=2))
            written.append(path)
    return written


def export(course: Course, *, fmt: str, output: Path | None) -> tuple[str | None, int]:
    """Write the export `fmt` to `output` (a file; a folder for gradescope). Returns (the text, when there is no
    `output` and the format is text, else None; the number of rows or files written)."""
    from autograder.errors import ConfigError

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "gradescope":
        if output is None:
            raise ConfigError("--format gradescope writes a folder of results.json files: pass -o FOLDER")
        return None, len(write_gradescope(course, output))
    long = export_frame(course)
    if fmt == "csv":
        frame = long
    elif fmt in ("wide-csv", "xlsx"):
        frame = wide_frame(long)
    elif fmt == "canvas":
        frame = canvas_frame(long, students(course))
    else:
        frame = moodle_frame(long, students(course))
    frame = spreadsheet_frame(frame)  # the one way out for CSV and XLSX: reasons and names are untrusted
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "xlsx":
        if output is None:
            raise ConfigError("--format xlsx writes a binary file: pass -o FILE.xlsx")
        frame.to_excel(output, index=False, sheet_name="grades", engine="openpyxl")
        return None, len(frame)
    text = frame.to_csv(index=False)
    if output is None:
        return text, len(frame)
    output.write_text(text)
    return None, len(frame)
