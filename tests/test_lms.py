"""The course's round trip through an LMS, on the tiny assignment graded for real in the sandbox: each LMS's
participant export and "download all submissions" zip, built in code in that LMS's documented naming scheme
(autograder/lms.py cites it), with the awkward cases: several files per student, a resubmission, a notebook under
another name, a student not on the roster, two entries for one student, two notebooks that tie. Then roster
import, collect, grade, the feedback bundle and the grade file: every grade and page under the right identity.
And hostile zips, refused whole with nothing written."""

from __future__ import annotations

import copy
import json
import stat
import zipfile
from datetime import datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner

from autograder.cli import main
from autograder.collect import ArchiveLimits, CollectFailed, UnsafeArchive, collect, load_records
from autograder.course import Course
from autograder.errors import ConfigError
from autograder.notebooks import generate_release
from autograder.roster import import_roster, roster
from tests.conftest import tiny_course

# ------------------------------------------------------------------------------------------------ the course


def _notebooks(course: Course) -> tuple[bytes, bytes]:
    """(a right answer, a wrong answer) of the tiny assignment, as a student would upload them."""
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    wrong = copy.deepcopy(reference)
    wrong.cells[0].source = wrong.cells[0].source.replace("return a + b", "return a - b")
    return nbformat.writes(reference).encode(), nbformat.writes(wrong).encode()


def _course(root: Path, *, release: bool = True) -> Course:
    root.mkdir(parents=True)
    course = tiny_course(root)
    if release:  # nbgrader's generate_assignment takes seconds; collecting alone needs no release
        generate_release(course, "tiny")
    return course


def _zip(path: Path, members: list[tuple[str, bytes, datetime | None]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, when in members:
            info = zipfile.ZipInfo(name, date_time=(when or datetime(2026, 11, 30, 9, 0)).timetuple()[:6])
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def _late_policy(course: Course, due: datetime) -> None:
    from nbgrader.api import Gradebook

    (course.root / "dlgrade.toml").write_text('[late]\nmethod = "percent_per_day"\npercent_per_day = 10\n')
    with Gradebook(course.db_url) as gradebook:
        gradebook.update_or_create_assignment("tiny", duedate=due)


def _grade(course: Course) -> dict:
    from autograder.pipeline import grade

    report = grade(course=course, assignment="tiny", jobs=2)
    return {result.student: result.score for result in report.results}


def _feedback(course: Course):
    from autograder.feedback import write_feedback
    from autograder.pipeline import load_results

    return write_feedback(course, load_results(course, "tiny"), "tiny.ipynb")


def _page_student(data: bytes) -> str:
    text = data.decode()
    return text.split('<strong id="student">', 1)[1].split("</strong>", 1)[0]


# --------------------------------------------------------------------------------------------------- Moodle

MOODLE_ROSTER = """First name,Last name,ID number,Email address
Ann,Lee,s1001,ann@uni.example
Bob,Stone,s1002,bob@uni.example
Chloé,Martin,s1003,chloe@uni.example
Dan,Oak,s1004,dan@uni.example
Finn,Ash,s1006,finn@uni.example
"""


@pytest.mark.sandbox
def test_moodle_round_trip(tmp_path):
    course = _course(tmp_path / "course")
    right, wrong = _notebooks(course)
    (tmp_path / "participants.csv").write_text(MOODLE_ROSTER)
    first = import_roster(course=course, path=tmp_path / "participants.csv", lms="moodle")
    assert first.count("added") == 5
    again = import_roster(course=course, path=tmp_path / "participants.csv", lms="moodle")
    assert again.count("unchanged") == 5 and again.count("added") == 0, "importing twice changes nothing"
    (tmp_path / "participants.csv").write_text(MOODLE_ROSTER.replace("dan@uni", "dan.oak@uni"))
    changed = import_roster(course=course, path=tmp_path / "participants.csv", lms="moodle")
    assert [(r.student, r.action) for r in changed.rows if r.action != "unchanged"] == [("s1004", "updated")]

    # Moodle's download: a folder per participant and plugin (mod/assign download_submissions)
    folder = "{}_{}_assignsubmission_{}_/"
    download = _zip(tmp_path / "moodle.zip", [
        (folder.format("Ann Lee", 1001, "file") + "tiny.ipynb", right, None),
        (folder.format("Bob Stone", 1002, "file") + "tiny.ipynb", wrong, None),
        (folder.format("Bob Stone", 1002, "file") + "plot.png", b"\x89PNG not really", None),  # several files
        (folder.format("Chloé Martin", 1003, "file") + "my solution.ipynb", right, None),  # another name
        (folder.format("Dan Oak", 1004, "file") + "tiny.ipynb", right, None),
        (folder.format("Dan Oak", 1004, "onlinetext") + "onlinetext.html", b"<p>see file</p>", None),  # 2 entries
        (folder.format("Dan Oak", 1004, "file") + "tiny_old.ipynb", wrong, None),  # an old copy beside
        (folder.format("Eve Unknown", 1005, "file") + "tiny.ipynb", right, None),  # not on the roster
        (folder.format("Finn Ash", 1006, "file") + "a.ipynb", right, None),  # two notebooks, neither the release's
        (folder.format("Finn Ash", 1006, "file") + "b.ipynb", wrong, None),
    ])
    report = collect(course=course, assignment="tiny", archive=download, lms="moodle")
    actions = {row.member: (row.student, row.action) for row in report.rows}
    assert actions[folder.format("Ann Lee", 1001, "file") + "tiny.ipynb"] == ("s1001", "collected")
    assert actions[folder.format("Bob Stone", 1002, "file") + "plot.png"] == ("s1002", "ignored")
    assert actions[folder.format("Chloé Martin", 1003, "file") + "my solution.ipynb"] == ("s1003", "renamed")
    assert actions[folder.format("Dan Oak", 1004, "onlinetext") + "onlinetext.html"] == ("s1004", "ignored")
    assert actions[folder.format("Dan Oak", 1004, "file") + "tiny_old.ipynb"] == ("s1004", "superseded")
    assert actions[folder.format("Eve Unknown", 1005, "file") + "tiny.ipynb"] == ("", "not on roster")
    assert actions[folder.format("Finn Ash", 1006, "file") + "a.ipynb"] == ("s1006", "ambiguous")
    assert len(report.rows) == 10, "every member is reported"
    assert report.collected == ("s1001", "s1002", "s1003", "s1004")
    assert (course.submitted / "s1003" / "tiny" / "tiny.ipynb").read_bytes() == right
    assert not (course.submitted / "s1001" / "tiny" / "timestamp.txt").exists(), "Moodle writes no submission time"
    again = collect(course=course, assignment="tiny", archive=download, lms="moodle")
    assert again.collected == () and again.count("kept") == 5, "collected before: kept unless --force"

    assert _grade(course) == {"s1001": 2, "s1002": 0, "s1003": 2, "s1004": 2}
    _feedback(course)
    runner = CliRunner().invoke(main, ["feedback", "tiny", "--bundle", "moodle", "-o", str(tmp_path / "fb.zip"),
                                       "--course-dir", str(course.root)])
    assert runner.exit_code == 0, runner.output
    with zipfile.ZipFile(tmp_path / "fb.zip") as bundle:
        pages = {name: bundle.read(name) for name in bundle.namelist()}
    # Moodle's feedback upload takes the participant id from the folder name of its own download
    assert {name: _page_student(data) for name, data in pages.items()} == {
        "Ann Lee_1001_assignsubmission_file_/tiny.html": "s1001",
        "Bob Stone_1002_assignsubmission_file_/tiny.html": "s1002",
        "Chloé Martin_1003_assignsubmission_file_/tiny.html": "s1003",
        "Dan Oak_1004_assignsubmission_file_/tiny.html": "s1004"}
    assert pages["Ann Lee_1001_assignsubmission_file_/tiny.html"] == (
        course.feedback / "s1001" / "tiny" / "tiny.html").read_bytes()
    worksheet = pd.read_csv(tmp_path / "fb-grades.csv")
    assert list(worksheet.columns[:6]) == ["Identifier", "Full name", "Email address", "Status", "Grade",
                                           "Maximum Grade"]
    grades = dict(zip(worksheet["Identifier"], worksheet["Grade"], strict=True))
    assert grades == {"Participant 1001": 2, "Participant 1002": 0, "Participant 1003": 2, "Participant 1004": 2}


# --------------------------------------------------------------------------------------------------- Canvas

CANVAS_GRADEBOOK = """Student,ID,SIS User ID,SIS Login ID,Section,Tiny (777)
    Points Possible,,,,,2
"Lee, Ann",501,s1001,alee,Section A,
"Stone, Bob",502,s1002,bstone,Section A,
"Martin, Chloé",503,s1003,cmartin,Section A,
"Oak, Dan",504,s1004,doak,Section A,
"Student, Test",599,,,Section A,
"""


@pytest.mark.sandbox
def test_canvas_round_trip(tmp_path):
    course = _course(tmp_path / "course")
    right, wrong = _notebooks(course)
    (tmp_path / "gradebook.csv").write_text(CANVAS_GRADEBOOK)
    imported = import_roster(course=course, path=tmp_path / "gradebook.csv", lms="canvas")
    assert imported.count("added") == 4 and imported.count("skipped") == 2  # Points Possible, the test student
    assert {s.id: s.lms_user_id for s in roster(course)} == {"s1001": "501", "s1002": "502", "s1003": "503",
                                                             "s1004": "504"}
    # Canvas's submissions.zip: lastnamefirstname[_late]_<user id>_<file id>_<file name>
    download = _zip(tmp_path / "submissions.zip", [
        ("leeann_501_9001_tiny.ipynb", right, None),
        ("stonebob_502_9002_tiny.ipynb", wrong, None),
        ("stonebob_502_9003_loss.png", b"png", None),
        ("martinchloe_late_503_9004_homework.ipynb", right, None),  # late, under another name
        ("oakdan_504_9005_tiny.ipynb", wrong, None),  # resubmitted: Canvas renames the second upload tiny-1
        ("oakdan_504_9006_tiny-1.ipynb", right, None),
        ("unknownerin_505_9007_tiny.ipynb", right, None),
        ("README.txt", b"not a submission", None),
    ])
    report = collect(course=course, assignment="tiny", archive=download, lms="canvas")
    actions = {row.member: (row.student, row.action, row.late) for row in report.rows}
    assert actions["martinchloe_late_503_9004_homework.ipynb"] == ("s1003", "renamed", True)
    assert actions["oakdan_504_9005_tiny.ipynb"][1] == "superseded"
    assert actions["oakdan_504_9006_tiny-1.ipynb"][1] == "collected"
    assert actions["unknownerin_505_9007_tiny.ipynb"][1] == "not on roster"
    assert actions["README.txt"][1] == "unmatched"
    assert actions["stonebob_502_9003_loss.png"][1] == "ignored"
    assert _grade(course) == {"s1001": 2, "s1002": 0, "s1003": 2, "s1004": 2}
    _feedback(course)
    from autograder.bundle import write_bundle

    bundle = write_bundle(course=course, assignment="tiny", lms="canvas", output=tmp_path / "canvas.zip",
                          grade_column="Tiny (777)")
    assert bundle.count("packed") == 4
    with zipfile.ZipFile(tmp_path / "canvas.zip") as archive:
        pages = {name: _page_student(archive.read(name)) for name in archive.namelist()}
    # Canvas's re-upload reads the user id and the submission's file id from the name
    assert pages == {"leeann_501_9001_tiny.html": "s1001", "stonebob_502_9002_tiny.html": "s1002",
                     "martinchloe_late_503_9004_tiny.html": "s1003", "oakdan_504_9006_tiny.html": "s1004"}
    grades = pd.read_csv(tmp_path / "canvas-grades.csv", dtype=str)
    assert list(grades.columns) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Tiny (777)"]
    assert grades.iloc[0]["Student"] == "Points Possible"
    assert dict(zip(grades["ID"][1:], grades["Tiny (777)"][1:].astype(float), strict=True)) == {
        "501": 2, "502": 0, "503": 2, "504": 2}


# ---------------------------------------------------------------------------------------------------- ILIAS

def _ilias_roster(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Login", "Lastname", "Firstname", "E-Mail", "Matriculation number", "usr_id"])
    for row in (["alee", "Lee", "Ann", "ann@uni.example", "s1001", 312],
                ["bstone", "Stone", "Bob", "bob@uni.example", "s1002", 313],
                ["cmartin", "Martin", "Chloé", "=HYPERLINK(\"http://evil\")", "s1003", 314],
                ["doak", "Oak", "Dan", "dan@uni.example", "s1004", 315]):
        sheet.append(row)
    book.save(path)
    return path


@pytest.mark.sandbox
def test_ilias_round_trip_with_submission_times_and_late_penalty(tmp_path):
    course = _course(tmp_path / "course")
    right, wrong = _notebooks(course)
    imported = import_roster(course=course, path=_ilias_roster(tmp_path / "members.xlsx"), lms="ilias")
    assert imported.count("added") == 4
    due = datetime(2026, 11, 30, 12, 0)
    _late_policy(course, due)
    # ILIAS: Lastname_Firstname_login_userid/ per member, file times = submission times, "Late Submission - "
    root = "Tiny_Exercise/Tiny/Submissions/"
    download = _zip(tmp_path / "ilias.zip", [
        (root + "Lee_Ann_alee_312/tiny.ipynb", right, datetime(2026, 11, 29, 10, 0)),
        (root + "Stone_Bob_bstone_313/tiny.ipynb", wrong, datetime(2026, 11, 29, 11, 0)),
        (root + "Martin_Chloe_cmartin_314/tiny.ipynb", wrong, datetime(2026, 11, 29, 8, 0)),  # resubmission:
        (root + "Martin_Chloe_cmartin_314/Late Submission - tiny (2).ipynb", right,  # newer, 2 days late
         datetime(2026, 12, 2, 10, 0)),
        (root + "Oak_Dan_doak_315/notes.ipynb", right, datetime(2026, 11, 29, 9, 0)),
        (root + "Unknown_Eve_eunk_399/tiny.ipynb", right, datetime(2026, 11, 29, 9, 0)),
    ])
    report = collect(course=course, assignment="tiny", archive=download, lms="ilias", timezone="Europe/Berlin")
    actions = {row.member.rsplit("/", 2)[-2] + "/" + row.member.rsplit("/", 1)[-1]: (row.student, row.action)
               for row in report.rows}
    assert actions["Martin_Chloe_cmartin_314/Late Submission - tiny (2).ipynb"] == ("s1003", "collected")
    assert actions["Martin_Chloe_cmartin_314/tiny.ipynb"] == ("s1003", "superseded")
    assert actions["Oak_Dan_doak_315/notes.ipynb"] == ("s1004", "renamed")
    assert actions["Unknown_Eve_eunk_399/tiny.ipynb"] == ("", "not on roster")
    # 10:00 in Berlin is 09:00 UTC, as nbgrader writes timestamp.txt
    assert (course.submitted / "s1003" / "tiny" / "timestamp.txt").read_text() == "2026-12-02 09:00:00.000000 UTC"
    assert _grade(course) == {"s1001": 2, "s1002": 0, "s1003": 2, "s1004": 2}
    _feedback(course)
    run = CliRunner().invoke(main, ["feedback", "tiny", "--bundle", "ilias", "-o", str(tmp_path / "out" / "mf.zip"),
                                    "--course-dir", str(course.root), "--json"])
    assert run.exit_code == 0, run.output
    with zipfile.ZipFile(tmp_path / "out" / "mf.zip") as archive:
        names = archive.namelist()
        pages = {name: _page_student(archive.read(name)) for name in names if name.endswith(".html")}
        late_page = archive.read("multi_feedback_tiny/Martin_Chloe_cmartin_314/tiny.html").decode()
    assert pages == {"multi_feedback_tiny/Lee_Ann_alee_312/tiny.html": "s1001",
                     "multi_feedback_tiny/Stone_Bob_bstone_313/tiny.html": "s1002",
                     "multi_feedback_tiny/Martin_Chloe_cmartin_314/tiny.html": "s1003",
                     "multi_feedback_tiny/Oak_Dan_doak_315/tiny.html": "s1004"}
    assert "multi_feedback_tiny/status.csv" in names
    assert "late" in late_page
    status = pd.read_excel(tmp_path / "out" / "status.xlsx", dtype={"usr_id": str})
    assert list(status.columns) == ["update", "usr_id", "login", "lastname", "firstname", "status", "mark", "notice",
                                    "comment", "plagiarism", "plag_comment"]
    marks = dict(zip(status["usr_id"], status["mark"], strict=True))
    assert marks == {"312": 2, "313": 0, "314": pytest.approx(1.6), "315": 2}, "2 started days late: -20%"
    assert dict(zip(status["usr_id"], status["status"], strict=True))["313"] == "failed"


def test_spreadsheet_cells_are_neutralised_and_terminal_text_is_plain(tmp_path):
    course = _course(tmp_path / "course", release=False)
    (tmp_path / "roster.csv").write_text("First name,Last name,ID number,Email address\n"
                                         "Mal\x1b[2Jlory,=cmd|' /C calc'!A0,s2001,mal@uni.example\n")
    run = CliRunner().invoke(main, ["roster", "import", str(tmp_path / "roster.csv"), "--lms", "moodle",
                                    "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    assert "\x1b" not in run.output and "1 added" in run.output
    from autograder.bundle import grades_frame
    from autograder.collect import LmsRecord

    record = LmsRecord(student="s2001", lms="canvas", key="9", name="x", folder="x_9_1_", member="m", filename="f")
    frame = grades_frame("canvas", [(record, roster(course)[0], {"score": 1.0, "max_score": 2.0, "raw_score": 1.0,
                                                                  "late_penalty": 0.0, "days_late": 0})],
                         column="Tiny")
    assert frame.iloc[1]["Student"].startswith("'="), "a formula in a name is shown as text"


# ---------------------------------------------------------------------------------------------- hostile zips

def _raw_name_zip(path: Path, placeholder: str, raw: bytes) -> Path:
    """A zip whose member name is the bytes `raw`, without the UTF-8 flag (zipfile would set it)."""
    _zip(path, [(placeholder, b"{}", None)])
    data = path.read_bytes()
    assert len(placeholder.encode()) == len(raw)
    path.write_bytes(data.replace(placeholder.encode(), raw))
    return path


def _special(path: Path, name: str, mode: int, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        archive.writestr(info, data)
    return path


HOSTILE = {
    "traversal": (lambda p: _zip(p, [("Ann Lee_1001_assignsubmission_file_/../../evil.ipynb", b"{}", None)]), "'..'"),
    "absolute": (lambda p: _zip(p, [("/tmp/evil.ipynb", b"{}", None)]), "absolute"),
    "drive": (lambda p: _zip(p, [("C:/evil.ipynb", b"{}", None)]), "absolute"),
    "symlink": (lambda p: _special(p, "Ann Lee_1001_assignsubmission_file_/tiny.ipynb", stat.S_IFLNK | 0o777,
                                   b"/etc/passwd"), "symbolic link"),
    "device": (lambda p: _special(p, "dev.ipynb", stat.S_IFCHR | 0o644, b""), "not a regular file"),
    "bomb": (lambda p: _zip(p, [("Ann Lee_1001_assignsubmission_file_/tiny.ipynb", b"\0" * (40 * 2**20), None)]),
             "decompression bomb"),
    "non_utf8": (lambda p: _raw_name_zip(p, "Ann L?e_1001_assignsubmission_file_/tiny.ipynb",
                                         "Ann L\xe9e_1001_assignsubmission_file_/tiny.ipynb".encode("latin-1")),
                 "not UTF-8"),
    "control": (lambda p: _zip(p, [("Ann\x1b[2J_1001_assignsubmission_file_/tiny.ipynb", b"{}", None)]), "control"),
    "twice": (lambda p: _zip(p, [("a.ipynb", b"{}", None), ("a.ipynb", b"[]", None)]), "twice"),
}


@pytest.fixture(scope="module")
def roster_course(tmp_path_factory) -> Course:
    """A course with the Moodle roster and no release: what collect needs before it refuses a zip."""
    root = tmp_path_factory.mktemp("refusing")
    course = _course(root / "course", release=False)
    (root / "participants.csv").write_text(MOODLE_ROSTER)
    import_roster(course=course, path=root / "participants.csv", lms="moodle")
    return course


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_zips_are_refused_whole_and_write_nothing(roster_course, tmp_path, case):
    course = roster_course
    build, reason = HOSTILE[case]
    archive = build(tmp_path / f"{case}.zip")
    places = [course.root, tmp_path]

    def tree():
        return sorted(str(p) for place in places for p in place.rglob("*"))

    before = tree()
    with pytest.raises(UnsafeArchive, match=reason):
        collect(course=course, assignment="tiny", archive=archive, lms="moodle")
    assert tree() == before, "nothing written anywhere"
    assert not Path("/tmp/evil.ipynb").exists()
    run = CliRunner().invoke(main, ["collect", "tiny", str(archive), "--lms", "moodle", "--course-dir",
                                    str(course.root)])
    assert run.exit_code == 1 and "error:" in run.output and "\x1b" not in run.output
    assert tree() == before


def test_a_huge_member_is_refused(tmp_path):
    course = _course(tmp_path / "course", release=False)
    archive = _zip(tmp_path / "huge.zip", [("Ann Lee_1001_assignsubmission_file_/tiny.ipynb", bytes(range(256)) * 64,
                                            None)])
    with pytest.raises(UnsafeArchive, match="more than the limit"):
        collect(course=course, assignment="tiny", archive=archive, lms="moodle",
                limits=ArchiveLimits(max_member_bytes=4096))


def test_not_a_zip_is_refused(tmp_path):
    course = _course(tmp_path / "course", release=False)
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        collect(course=course, assignment="tiny", archive=tmp_path / "fake.zip", lms="moodle")


def test_a_failed_collect_leaves_submitted_as_it_was(tmp_path, monkeypatch):
    import autograder.collect as collect_module

    course = _course(tmp_path / "course")
    right, wrong = _notebooks(course)
    (tmp_path / "participants.csv").write_text(MOODLE_ROSTER)
    import_roster(course=course, path=tmp_path / "participants.csv", lms="moodle")
    folder = "{}_{}_assignsubmission_file_/tiny.ipynb"
    first = _zip(tmp_path / "first.zip", [(folder.format("Bob Stone", 1002), wrong, None)])
    collect(course=course, assignment="tiny", archive=first, lms="moodle")
    before = {p.relative_to(course.root): p.read_bytes() for p in course.submitted.rglob("*") if p.is_file()}
    records_before = load_records(course, "tiny")
    second = _zip(tmp_path / "second.zip", [(folder.format(name, pid), right, None) for name, pid in
                                            (("Ann Lee", 1001), ("Bob Stone", 1002), ("Dan Oak", 1004))])
    real, calls = collect_module._install, []

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(collect_module, "_install", failing)
    with pytest.raises(CollectFailed, match="as it was"):
        collect(course=course, assignment="tiny", archive=second, lms="moodle", force=True)
    after = {p.relative_to(course.root): p.read_bytes() for p in course.submitted.rglob("*") if p.is_file()}
    assert after == before, "no half-collected assignment"
    assert sorted(p.name for p in course.submitted.iterdir()) == ["s1002"], "no staging folder, no new student"
    assert load_records(course, "tiny") == records_before


def test_collect_needs_a_roster_and_a_known_lms(tmp_path):
    course = _course(tmp_path / "course", release=False)
    archive = _zip(tmp_path / "a.zip", [("x.ipynb", b"{}", None)])
    with pytest.raises(ConfigError, match="roster import"):
        collect(course=course, assignment="tiny", archive=archive, lms="moodle")
    with pytest.raises(ConfigError, match="unknown LMS"):
        collect(course=course, assignment="tiny", archive=archive, lms="blackboard")


def test_collect_from_the_command_line_reports_every_member(tmp_path):
    course = _course(tmp_path / "course")
    right, _ = _notebooks(course)
    (tmp_path / "participants.csv").write_text(MOODLE_ROSTER)
    CliRunner().invoke(main, ["roster", "import", str(tmp_path / "participants.csv"), "--lms", "moodle",
                              "--course-dir", str(course.root)])
    archive = _zip(tmp_path / "m.zip", [("Ann Lee_1001_assignsubmission_file_/tiny.ipynb", right, None),
                                        ("stray.txt", b"", None)])
    run = CliRunner().invoke(main, ["collect", "tiny", str(archive), "--lms", "moodle", "--course-dir",
                                    str(course.root), "--json"])
    assert run.exit_code == 0, run.output
    data = json.loads(run.output)
    assert data["collected"] == ["s1001"] and [r["action"] for r in data["rows"]] == ["collected", "unmatched"]
    run = CliRunner().invoke(main, ["collect", "tiny", str(archive), "--lms", "moodle", "--force",
                                    "--course-dir", str(course.root)])
    assert run.exit_code == 0 and "1 submission(s) collected" in run.output, run.output


def test_records_survive_as_json(tmp_path):
    """The LMS identities are plain JSON beside the course (git-ignored .dlgrade/), one file per assignment."""
    course = _course(tmp_path / "course")
    right, _ = _notebooks(course)
    (tmp_path / "gradebook.csv").write_text(CANVAS_GRADEBOOK)
    import_roster(course=course, path=tmp_path / "gradebook.csv", lms="canvas")
    collect(course=course, assignment="tiny", archive=_zip(tmp_path / "c.zip", [
        ("leeann_501_9001_tiny.ipynb", right, None)]), lms="canvas")
    data = json.loads((course.root / ".dlgrade" / "lms" / "tiny.json").read_text())
    assert data["s1001"]["key"] == "501" and data["s1001"]["file_id"] == "9001"


def test_a_later_export_never_splits_a_student(tmp_path):
    """Recognised by the LMS user id: a changed student number or login in a later export updates, never adds."""
    course = _course(tmp_path / "course", release=False)
    (tmp_path / "gradebook.csv").write_text(CANVAS_GRADEBOOK)
    import_roster(course=course, path=tmp_path / "gradebook.csv", lms="canvas")
    later = CANVAS_GRADEBOOK.replace('"Lee, Ann",501,s1001,alee', '"Lee-Park, Ann",501,s9001,apark')
    (tmp_path / "later.csv").write_text(later)
    report = import_roster(course=course, path=tmp_path / "later.csv", lms="canvas")
    assert [(r.student, r.action, r.reason) for r in report.rows if r.action == "updated"] == [
        ("s1001", "updated", "changed: last_name")]
    assert len(roster(course)) == 4


def test_a_roster_without_lms_ids_is_matched_by_login_or_name(tmp_path):
    """An ILIAS member list without user ids: the download's login (or, failing that, the name) finds the owner;
    a student who has a user id is never taken for a namesake."""
    course = _course(tmp_path / "course", release=False)
    right, _ = _notebooks(course)
    (tmp_path / "members.csv").write_text("Login;Firstname;Lastname;E-Mail\nalee;Ann;Lee;ann@uni.example\n"
                                          "bstone;Bob;Stone;bob@uni.example\n")
    import_roster(course=course, path=tmp_path / "members.csv", lms="ilias")
    (tmp_path / "keyed.csv").write_text("Login,Firstname,Lastname,usr_id\ncoak,Cleo,Oak,700\n")
    import_roster(course=course, path=tmp_path / "keyed.csv", lms="ilias")
    report = collect(course=course, assignment="tiny", lms="ilias", archive=_zip(tmp_path / "i.zip", [
        ("Lee_Ann_alee_312/tiny.ipynb", right, None), ("Stone_Bob_bob.s_313/tiny.ipynb", right, None),
        ("Oak_Cleo_coak2_701/tiny.ipynb", right, None)]))
    rows = {row.member.split("/")[0]: (row.student, row.action, row.reason) for row in report.rows}
    assert rows["Lee_Ann_alee_312"] == ("alee", "collected", "matched by login")
    assert rows["Stone_Bob_bob.s_313"] == ("bstone", "collected", "matched by name")
    assert rows["Oak_Cleo_coak2_701"][:2] == ("", "not on roster"), "Cleo has user id 700, not 701"
