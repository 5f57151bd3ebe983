"""Returning work to an LMS: every student's feedback page in the structure the LMS's bulk feedback upload accepts,
and the LMS's grade import file, both with the late penalty of the course's policy applied.

    moodle  feedback.zip: `<download folder>/<notebook>.html`, each folder named exactly as in Moodle's download
            (assignment > View all submissions > "Upload multiple feedback files in a zip");
            grades: the grading worksheet CSV ("Upload grading worksheet"), keyed by "Participant N".
    canvas  feedback.zip: `<name>_<user id>_<file id>_<notebook>.html`, as downloaded (Gradebook > assignment >
            "Re-upload submissions"; each file becomes a comment on that submission);
            grades: the gradebook import CSV ("Import"), the Canvas user id in "ID".
    ilias   feedback.zip: `multi_feedback_<assignment>/<Lastname_Firstname_login_userid>/<notebook>.html`
            (exercise > Submissions and Grades > "Multi-Feedback"), with the status file beside the member folders;
            grades: the status file `status.xlsx` / `status.csv`.

Formats and their documentation: `autograder.lms`. Only students collected from that LMS (`dlgrade collect`) can
be addressed: the LMS's identifiers come from its own download. Everyone else is reported, never dropped quietly.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from autograder.collect import LmsRecord, load_records
from autograder.course import Course
from autograder.errors import ConfigError
from autograder.lms import lms_format
from autograder.roster import RosterStudent, roster
from autograder.text import spreadsheet_cell

ILIAS_STATUS_COLUMNS = ["update", "usr_id", "login", "lastname", "firstname", "status", "mark", "notice", "comment",
                        "plagiarism", "plag_comment"]
MOODLE_WORKSHEET_COLUMNS = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                            "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
                            "Feedback comments"]
CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
PASS_FRACTION = 0.5  # ILIAS wants passed / failed per member: passed from half the points


@dataclass(frozen=True)
class BundleRow:
    """One graded student and what the bundle holds for them."""

    student: str
    action: str  # "packed" or "skipped"
    entry: str = ""  # the page's path inside the zip
    score: float = 0.0  # after the late penalty
    max_score: float = 0.0
    late_penalty: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class BundleReport:
    """What `write_bundle` wrote."""

    lms: str
    assignment: str
    archive: Path
    grades: tuple[Path, ...]
    rows: tuple[BundleRow, ...]

    def count(self, action: str) -> int:
        return sum(row.action == action for row in self.rows)


def feedback_entry(lms: str, assignment: str, record: LmsRecord, page_name: str) -> str:
    """Where a student's feedback page goes inside the LMS's bulk upload zip."""
    if lms == "moodle":
        return f"{record.folder}/{page_name}"
    if lms == "canvas":
        return f"{record.folder}{page_name}"
    # ILIAS looks for a folder whose name starts with "multi_feedback" and takes the user id from the last field
    return f"multi_feedback_{assignment}/{record.folder}/{page_name}"


def grades_frame(lms: str, rows: list[tuple[LmsRecord, RosterStudent | None, dict]], *,
                 column: str) -> pd.DataFrame:
    """The LMS's grade import table for (record, roster student, export row) triples; strings neutralised for
    spreadsheets."""
    table = []
    for record, student, grade in rows:
        note = f"dlgrade: {grade['raw_score']:g}/{grade['max_score']:g}"
        if grade["late_penalty"]:
            note += f", {grade['days_late']} day(s) late: -{grade['late_penalty']:g}"
        first = student.first_name if student else ""
        last = student.last_name if student else ""
        if lms == "moodle":
            table.append({"Identifier": f"Participant {record.key}", "Full name": record.name,
                          "Email address": student.email if student else "", "Status": "",
                          "Grade": grade["score"], "Maximum Grade": grade["max_score"], "Grade can be changed": "Yes",
                          "Last modified (submission)": "", "Last modified (grade)": "", "Feedback comments": note})
        elif lms == "canvas":
            table.append({"Student": ", ".join(p for p in (last, first) if p) or record.name, "ID": record.key,
                          "SIS User ID": "", "SIS Login ID": "", "Section": "", column: grade["score"]})
        else:
            passed = grade["max_score"] and grade["score"] >= PASS_FRACTION * grade["max_score"]
            table.append({"update": 1, "usr_id": int(record.key), "login": record.login, "lastname": last,
                          "firstname": first, "status": "passed" if passed else "failed", "mark": grade["score"],
                          "notice": "", "comment": note, "plagiarism": "", "plag_comment": ""})
    if lms == "moodle":
        columns = MOODLE_WORKSHEET_COLUMNS
    elif lms == "canvas":
        columns = [*CANVAS_STUDENT_COLUMNS, column]
        maximum = max((grade["max_score"] for _, _, grade in rows), default="")
        table.insert(0, {"Student": "Points Possible", "ID": "", "SIS User ID": "", "SIS Login ID": "",
                         "Section": "", column: maximum})
    else:
        columns = ILIAS_STATUS_COLUMNS
    frame = pd.DataFrame(table, columns=columns)
    return frame.map(spreadsheet_cell)


def grades_paths(output: Path, lms: str) -> tuple[Path, ...]:
    """The grade file(s) written beside the feedback zip `output`."""
    if lms == "ilias":
        return output.with_name("status.xlsx"), output.with_name("status.csv")
    return (output.with_name(f"{output.stem}-grades.csv"),)


def write_bundle(*, course: Course, assignment: str, lms: str, output: Path,
                 grade_column: str | None = None) -> BundleReport:
    """Pack the feedback pages of `assignment` for `lms` into the zip `output` and write its grade file beside it.

    `grade_column`: the heading of the assignment's grade column in the Canvas import (Canvas matches
    "Name (assignment id)"); default: the assignment's name."""
    from autograder.export import export_frame

    fmt = lms_format(lms)
    if output.suffix.lower() != ".zip":
        raise ConfigError(f"{output}: the feedback bundle is a zip; name it *.zip")
    page_name = f"{Path(course.config(assignment).notebook_name).stem}.html"
    records = load_records(course, assignment)
    people = {student.id: student for student in roster(course)}
    long = export_frame(course)
    grades = {row["student"]: row for row in long[long["assignment"] == assignment].to_dict("records")}
    rows, packed, graded = [], [], []
    for student in sorted(set(grades) | set(records)):
        record, grade = records.get(student), grades.get(student)
        page = course.feedback / student / assignment / page_name
        if grade is None:
            rows.append(BundleRow(student=student, action="skipped", reason="collected but not graded"))
        elif record is None or record.lms != fmt.name:
            rows.append(BundleRow(student=student, action="skipped",
                                  reason=f"not collected from {fmt.title} (dlgrade collect {assignment} ZIP "
                                         f"--lms {fmt.name}): its identifiers are unknown"))
        elif not page.is_file():
            rows.append(BundleRow(student=student, action="skipped", reason=f"no feedback page ({page})"))
        else:
            entry = feedback_entry(fmt.name, assignment, record, page_name)
            packed.append((entry, page))
            graded.append((record, people.get(student), grade))
            rows.append(BundleRow(student=student, action="packed", entry=entry, score=grade["score"],
                                  max_score=grade["max_score"], late_penalty=grade["late_penalty"]))
    frame = grades_frame(fmt.name, graded, column=grade_column or assignment)
    extra = []
    if fmt.name == "ilias":  # the status-file plugin reads it from the multi-feedback folder
        extra = [(f"multi_feedback_{assignment}/status.csv", frame.to_csv(index=False).encode())]
    _write_zip(output, packed, extra)
    written = grades_paths(output, fmt.name)
    for path in written:
        if path.suffix == ".xlsx":
            frame.to_excel(path, index=False, sheet_name="members", engine="openpyxl")
        else:
            path.write_text(frame.to_csv(index=False))
    return BundleReport(lms=fmt.name, assignment=assignment, archive=output, grades=written, rows=tuple(rows))


def _write_zip(output: Path, pages: list[tuple[str, Path]], extra: list[tuple[str, bytes]]) -> None:
    """The zip, written beside its target and renamed into place, so a reader never sees half of it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    stamp = datetime.now().timetuple()[:6]
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [(name, page.read_bytes()) for name, page in pages] + extra:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.flag_bits |= 0x800  # UTF-8 names: Moodle folders carry the student's full name
            archive.writestr(info, data)
    tmp.replace(output)
