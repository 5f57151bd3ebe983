"""The course roster: an LMS's participant export (CSV or XLSX, as the LMS writes it) read into nbgrader's
gradebook students (id, first and last name, e-mail, `lms_user_id`), idempotently.

Which column is which is decided by its heading (`lms.ROSTER_COLUMNS`: Moodle's, Canvas's and ILIAS's own
headings, English and German). A student's nbgrader id, the folder name of their submissions, is the first of:
student number (Moodle "ID number", Canvas "SIS User ID", ILIAS matriculation number), login (Moodle "Username",
Canvas "SIS Login ID", ILIAS "Login"), the local part of the e-mail address, the LMS user id. A row whose LMS user
id is already in the gradebook updates that student, whatever id the rule gives now, so re-importing a later
export never splits one student in two.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from autograder.course import Course
from autograder.errors import DlgradeError
from autograder.lms import lms_format, roster_columns

MAX_ROSTER_BYTES = 20 * 2**20
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
_NOT_STUDENTS = {"points possible", "student, test", "test student"}  # Canvas's header row and test student


class RosterError(DlgradeError):
    """A participant export that cannot be read as a roster."""


@dataclass(frozen=True)
class RosterRow:
    """One row of the export and what the import did with it."""

    line: int  # row number in the file (the heading is 1)
    student: str  # the nbgrader id ("" when skipped)
    action: str  # "added", "updated", "unchanged" or "skipped"
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""
    reason: str = ""  # why skipped, or what changed


@dataclass(frozen=True)
class RosterReport:
    """What `import_roster` did, row by row."""

    lms: str
    rows: tuple[RosterRow, ...]

    def count(self, action: str) -> int:
        return sum(row.action == action for row in self.rows)


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV (any of , ; tab as separator, UTF-8 with or without BOM, else Latin-1) or XLSX file as
    dicts by heading; every cell as text."""
    if not path.is_file():
        raise RosterError(f"{path}: no such file")
    if path.stat().st_size > MAX_ROSTER_BYTES:
        raise RosterError(f"{path}: larger than {MAX_ROSTER_BYTES // 2**20} MiB; is it really a participant export?")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # Excel's "CSV" on Western Windows
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    return [{str(k): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _read_xlsx(path: Path) -> list[dict[str, str]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise RosterError(f"{path}: not a readable XLSX file ({exc})") from None
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    if not rows:
        return []
    headers = [str(cell or "").strip() for cell in rows[0]]

    def text(value) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))  # an id typed as a number
        return "" if value is None else str(value).strip()

    return [{h: text(v) for h, v in zip(headers, row, strict=False) if h} for row in rows[1:]]


def _split_full_name(full: str) -> tuple[str, str]:
    """(first, last) of "Last, First" (Canvas) or "First Last" (Moodle's worksheet)."""
    if "," in full:
        last, _, first = full.partition(",")
        return first.strip(), last.strip()
    first, _, last = full.strip().rpartition(" ")
    return (first, last) if first else ("", last)


def safe_id(text: str) -> str:
    """`text` as a folder name nbgrader and dlgrade accept: letters, digits, '.', '_' and '-' only."""
    return _UNSAFE_ID.sub("_", text.strip()).lstrip(".")


@dataclass(frozen=True)
class _Person:
    line: int
    student: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str


def parse_roster(rows: list[dict[str, str]], *, lms: str) -> tuple[list[_Person], list[RosterRow]]:
    """(the people of an export, the rows skipped with their reason)."""
    lms_format(lms)  # an unknown LMS fails here, naming the known ones
    people, skipped = [], []
    if not rows:
        return people, skipped
    columns = roster_columns(list(rows[0]))
    if not ({"email", "lms_user_id", "student_number", "login"} & set(columns)):
        raise RosterError(f"no column names a student (found: {', '.join(rows[0]) or 'none'}); expected one of "
                          "'Email address', 'ID', 'ID number', 'Username', 'Login', 'SIS User ID'")
    for line, row in enumerate(rows, start=2):
        value = {name: row.get(header, "").strip() for name, header in columns.items()}
        first, last = value.get("first_name", ""), value.get("last_name", "")
        if not (first or last) and value.get("full_name"):
            first, last = _split_full_name(value["full_name"])
        if value.get("full_name", "").lower() in _NOT_STUDENTS or f"{last}, {first}".lower() in _NOT_STUDENTS:
            skipped.append(RosterRow(line=line, student="", action="skipped", reason="not a student (LMS row)"))
            continue
        email = value.get("email", "")
        candidates = (value.get("student_number"), value.get("login"), email.partition("@")[0],
                      value.get("lms_user_id"))
        student = next((safe_id(c) for c in candidates if c and safe_id(c)), "")
        if not student:
            skipped.append(RosterRow(line=line, student="", action="skipped", first_name=first, last_name=last,
                                     reason="no student number, login, e-mail or user id"))
            continue
        people.append(_Person(line=line, student=student, first_name=first, last_name=last, email=email,
                              lms_user_id=value.get("lms_user_id", "")))
    return people, skipped


def import_roster(*, course: Course, path: Path, lms: str) -> RosterReport:
    """Read the participant export at `path` (from LMS `lms`) into the gradebook's students.

    Idempotent: importing the same export again reports every row "unchanged". A student already in the
    gradebook (by LMS user id, else by id) is updated where a field changed; blanks in the export never erase
    what the gradebook knows."""
    from nbgrader.api import Gradebook

    from autograder.notebooks import prepare_gradebook_tools

    people, skipped = parse_roster(read_table(path), lms=lms)
    prepare_gradebook_tools()  # a new gradebook is made by nbgrader running `alembic` by name
    seen: dict[str, int] = {}
    done = list(skipped)
    with Gradebook(course.db_url) as gradebook, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy autoflush warnings from nbgrader's models
        by_lms = {s.lms_user_id: s for s in gradebook.students if s.lms_user_id}
        by_id = {s.id: s for s in gradebook.students}
        for person in people:
            existing = by_lms.get(person.lms_user_id) if person.lms_user_id else None
            existing = existing or by_id.get(person.student)
            student = existing.id if existing else person.student
            if student in seen:
                done.append(RosterRow(line=person.line, student=student, action="skipped",
                                      reason=f"the same student as line {seen[student]}"))
                continue
            seen[student] = person.line
            fields = {"first_name": person.first_name, "last_name": person.last_name, "email": person.email,
                      "lms_user_id": person.lms_user_id}
            fields = {name: value for name, value in fields.items() if value}
            changed = [name for name, value in fields.items() if existing is None or getattr(existing, name) != value]
            if existing is None:
                action, reason = "added", ""
            elif changed:
                action, reason = "updated", "changed: " + ", ".join(changed)
            else:
                action, reason = "unchanged", ""
            if changed:
                record = gradebook.update_or_create_student(student, **fields)
                by_id[student] = record
                if record.lms_user_id:
                    by_lms[record.lms_user_id] = record
            done.append(RosterRow(line=person.line, student=student, action=action, first_name=person.first_name,
                                  last_name=person.last_name, email=person.email, lms_user_id=person.lms_user_id,
                                  reason=reason))
    return RosterReport(lms=lms, rows=tuple(sorted(done, key=lambda row: row.line)))


@dataclass(frozen=True)
class RosterStudent:
    """A gradebook student as collect and the bundles need them."""

    id: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


def roster(course: Course) -> tuple[RosterStudent, ...]:
    """The gradebook's students (none when there is no gradebook yet)."""
    from nbgrader.api import Gradebook

    from autograder.late import has_gradebook

    if not has_gradebook(course):
        return ()
    with Gradebook(course.db_url) as gradebook:
        return tuple(RosterStudent(id=s.id, first_name=s.first_name or "", last_name=s.last_name or "",
                                   email=s.email or "", lms_user_id=s.lms_user_id or "")
                     for s in gradebook.students)
