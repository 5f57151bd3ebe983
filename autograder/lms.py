"""What each learning management system writes and reads: the names in its "download all submissions" zip, the
columns of its participant exports, and the structure its bulk feedback upload accepts.

Each format is taken from the LMS's own documentation or source, cited where it is declared:

Moodle (mod/assign)
    Download all submissions: one folder per submission plugin and participant, named
    `<Full Name>_<participant id>_assignsubmission_<plugin>_/<file>` (underscores in the name become spaces), or,
    with "Download submissions in folders" off, flat files `<Full Name>_<participant id>_assignsubmission_file_<file>`.
    The participant id is Moodle's per-assignment `assign_user_mapping` id (also the worksheet's "Participant N"),
    not the user id. https://docs.moodle.org/en/Assignment_settings#Submission_settings and
    mod/assign/locallib.php `download_submissions()`.
    Upload multiple feedback files in a zip: files in folders named as in that download; Moodle takes the
    participant id from the second `_` field of a path part (assignfeedback_file `is_valid_filename_for_import`).
    https://docs.moodle.org/en/Using_Assignment#Offline_marking
    Grading worksheet (upload): Identifier ("Participant N"), Full name, Email address, Status, Grade, Maximum
    Grade, Grade can be changed, Last modified (submission), Last modified (grade), Feedback comments.
Canvas
    Download submissions: `submissions.zip` with flat files `<lastnamefirstname>_<user id>_<file id>_<file name>`,
    `<lastnamefirstname>_late_<user id>_<file id>_<file name>` when late; only the latest attempt, a re-uploaded
    file of the same name gets Canvas's `-1`, `-2` suffix.
    https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-download-all-student-submissions-for-an-assignment-in/ta-p/1030
    Re-upload submissions (feedback files as submission comments): files named as downloaded; Canvas takes the
    first two numeric `_` fields as user id and file id (Assignment#infer_comment_context_from_filename).
    https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-upload-a-file-as-a-comment-to-student-submissions-in/ta-p/1019
    Gradebook import CSV: Student, ID (the Canvas user id), SIS User ID, SIS Login ID, Section, then a column per
    assignment headed "Name (assignment id)", with a "Points Possible" row first.
    https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807
ILIAS (exercise)
    Download all submissions: a folder per member `<Lastname>_<Firstname>_<login>_<user id>` (ASCII-fied), the
    member's files inside, prefixed "Late Submission - " when late, each with its submission time as file time
    (ilExSubmission::downloadAllAssignmentFiles, getDirectoryNameFromUserData).
    https://docu.ilias.de/goto_docu_lm_5765.html (Exercise: Submissions and Grades)
    Multi-feedback: a zip with one folder `multi_feedback_<...>` holding a folder per member named as above; ILIAS
    takes the user id from the last `_` field (ilExAssignment::getMultiFeedbackFiles).
    Status file (grades): `status.xlsx` / `status.csv` with update, usr_id, login, lastname, firstname, status,
    mark, notice, comment, plagiarism, plag_comment (ilExAssignmentStatusFile; ILIAS 8/9 with the
    ExerciseStatusFile plugin, https://github.com/ilifau/ExerciseStatusFile).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from autograder.errors import ConfigError

LMS_NAMES = ("moodle", "canvas", "ilias")

# Moodle and Canvas write no submission time into their download (Canvas's zip entries carry the time the zip
# was made); ILIAS sets each file's time to its submission time.
_ILIAS_LATE_PREFIXES = ("Late Submission - ", "Verspaetete Abgabe - ", "Verspätete Abgabe - ")


@dataclass(frozen=True)
class LmsEntry:
    """What the LMS's naming scheme says about one file of its download."""

    member: str  # the file's name in the zip
    key: str  # the identifier the LMS wrote: Moodle participant id, Canvas user id, ILIAS user id
    name: str  # the student's name as the LMS wrote it ("Ann Lee", "leeann", "Lee_Ann")
    filename: str  # the student's own file name, without the LMS's decorations
    folder: str  # what the LMS's feedback upload keys on: Moodle folder, Canvas name prefix, ILIAS member folder
    late: bool = False  # the LMS marked the file late (Canvas, ILIAS)
    login: str = ""  # ILIAS login
    file_id: str = ""  # Canvas's file (attachment) id, which its re-upload needs


@dataclass(frozen=True)
class LmsFormat:
    """One LMS's naming scheme: nbgrader `FileNameCollectorPlugin` regular expressions (each with the plugin's
    `student_id` and `file_id` groups) tried in order, and how its identifiers meet the roster."""

    name: str
    title: str
    patterns: tuple[str, ...]
    match_by: str  # "lms_user_id": the key is the roster's LMS user id; "name": Moodle's per-assignment id is not
    entry_time_is_submission: bool  # the zip entry's time is the submission time
    duplicate_suffix: str  # how the LMS renames a second file of the same name


MOODLE = LmsFormat(
    name="moodle", title="Moodle",
    patterns=(
        # folders (the default since Moodle 3.1): "Ann Lee_1234_assignsubmission_file_/sub/dir/lab1.ipynb"
        r"^(?:.*/)?(?P<folder>(?P<name>[^/_]*)_(?P<student_id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_)/"
        r"(?P<file_id>.+)$",
        # flat: "Ann Lee_1234_assignsubmission_file_lab1.ipynb"
        r"^(?:.*/)?(?P<folder>(?P<name>[^/_]*)_(?P<student_id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_)"
        r"(?P<file_id>[^/]+)$",
    ),
    match_by="name", entry_time_is_submission=False, duplicate_suffix="")
CANVAS = LmsFormat(
    name="canvas", title="Canvas",
    patterns=(
        r"^(?:.*/)?(?P<folder>(?P<name>[^/_]*?)(?P<late>_late)?_(?P<student_id>\d+)_(?P<attachment>\d+)_)"
        r"(?P<file_id>[^/]+)$",
    ),
    match_by="lms_user_id", entry_time_is_submission=False, duplicate_suffix=r"-\d+")
ILIAS = LmsFormat(
    name="ilias", title="ILIAS",
    patterns=(
        r"^(?:.*/)?(?P<folder>(?P<name>[^/_]+_[^/_]+)_(?P<login>[^/]+)_(?P<student_id>\d+))/(?P<file_id>[^/]+)$",
    ),
    match_by="lms_user_id", entry_time_is_submission=True, duplicate_suffix=r" \(\d+\)")
FORMATS = {fmt.name: fmt for fmt in (MOODLE, CANVAS, ILIAS)}


def lms_format(name: str) -> LmsFormat:
    """The format of LMS `name` (moodle, canvas, ilias)."""
    try:
        return FORMATS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown LMS {name!r}; choose one of {', '.join(LMS_NAMES)}") from None


_QUIET = logging.getLogger("dlgrade.lms.collector")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False  # the plugin warns about every name a pattern does not fit; the report says it once


def _collector(pattern: str):
    """nbgrader's own file-name collector (what `nbgrader zip_collect` uses), set to one of our patterns and to
    notebooks; its warnings about names that do not match go to a logger of ours, not to the terminal."""
    from nbgrader.plugins import FileNameCollectorPlugin

    return FileNameCollectorPlugin(named_regexp=pattern, valid_ext=[".ipynb"],
                                   log=_QUIET)


def parse_member(fmt: LmsFormat, member: str) -> LmsEntry | None:
    """What `fmt`'s naming scheme says about the zip member `member`; None when the name does not follow it.

    Notebooks are parsed by nbgrader's `FileNameCollectorPlugin.collect`, as `nbgrader zip_collect` parses
    them; other files by the same expressions, so that they can be reported under their owner."""
    groups = None
    for pattern in fmt.patterns:
        if member.endswith(".ipynb"):  # the plugin's own test (valid_ext)
            groups = _collector(pattern).collect(member)
        else:
            match = re.match(pattern, member)
            groups = match.groupdict() if match else None
        if groups:
            break
    if not groups:
        return None
    filename = PurePosixPath(groups["file_id"]).name
    late = bool(groups.get("late"))
    if fmt is ILIAS:
        for prefix in _ILIAS_LATE_PREFIXES:
            if filename.startswith(prefix):
                filename, late = filename[len(prefix):], True
    return LmsEntry(member=member, key=groups["student_id"], name=groups.get("name") or "", filename=filename,
                    folder=groups["folder"], late=late, login=groups.get("login") or "",
                    file_id=groups.get("attachment") or "")


def undecorated(fmt: LmsFormat, filename: str) -> str:
    """`filename` without the suffix the LMS adds to a second file of the same name ("lab1-1.ipynb" on Canvas,
    "lab1 (2).ipynb" on ILIAS)."""
    if not fmt.duplicate_suffix:
        return filename
    path = PurePosixPath(filename)
    return re.sub(f"{fmt.duplicate_suffix}$", "", path.stem) + path.suffix


def name_key(text: str) -> str:
    """A name as LMSs mangle it, for comparing: accents dropped (ILIAS writes ASCII), case folded, and only
    letters and digits kept (Canvas drops spaces and punctuation, Moodle turns underscores into spaces)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]", "", ascii_text.casefold())


# ------------------------------------------------------------------------------------- participant exports

# Column headings of each LMS's participant export (and of a plain CSV/XLSX a course keeps), by the field they
# fill; compared after `header_key`. Moodle: participants page and grade export ("First name", "Last name" or
# "Surname", "ID number", "Email address", "Username"); Canvas: the gradebook export ("Student" as "Last, First",
# "ID", "SIS User ID", "SIS Login ID", "Section"); ILIAS: the course member export and the exercise status file
# ("Login", "Firstname", "Lastname", "Email", "Matriculation number", "usr_id"), in English and German.
ROSTER_COLUMNS: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first name", "given name", "vorname"),
    "last_name": ("lastname", "last name", "surname", "family name", "nachname"),
    "full_name": ("full name", "student", "vollständiger name"),
    "email": ("email", "email address", "e-mail", "e-mail address", "e-mail-adresse", "emailadresse", "mail"),
    "lms_user_id": ("id", "user id", "usr_id", "userid", "benutzer-id", "canvas user id", "moodle user id"),
    "student_number": ("id number", "sis user id", "matriculation", "matriculation number", "matrikelnummer",
                       "student number", "student id", "idnumber"),
    "login": ("username", "login", "sis login id", "benutzername", "user name"),
}


def header_key(text: str) -> str:
    """A column heading for comparing: lower case, single spaces, no surrounding space or BOM."""
    return " ".join(str(text).replace("\ufeff", "").strip().lower().split())


def roster_columns(headers: list[str]) -> dict[str, str]:
    """Which heading of `headers` fills which roster field (the first that fits each field)."""
    found: dict[str, str] = {}
    for field_name, aliases in ROSTER_COLUMNS.items():
        for header in headers:
            if header_key(header) in aliases and header not in found.values():
                found[field_name] = header
                break
    return found
