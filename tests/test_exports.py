"""Gradebook and exports: every `dlgrade export --format`, the late policy in them and in nbgrader's own export,
and formgrader's view of dlgrade's grades (hand-graded answers waiting for an instructor).

The course is small and built in code: the tiny assignment plus a written answer graded by hand, released with
nbgrader, its results recorded as the pipeline records them (no notebook runs here).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner

from autograder import export as export_module
from autograder import gradebook
from autograder.cli import EXPORT_FORMATS, main
from autograder.course import Course
from autograder.errors import ConfigError
from autograder.late import Lateness, LatePolicy, load_policy, penalty
from autograder.notebooks import generate_release
from autograder.results import CheckResult, SubmissionResult
from tests.conftest import tiny_course

DUE = datetime(2026, 3, 1, 12, 0)
LATE_POLICY = '[late]\nmethod = "percent_per_day"\npercent_per_day = 10\nmax_percent = 25\ngrace_minutes = 5\n'


def add_written_answer(course: Course) -> None:
    """Give the tiny assignment a written answer graded by hand (1 point), as hub_exploration has."""
    path = course.solutions / "tiny" / "tiny.ipynb"
    notebook = nbformat.read(path, as_version=4)
    answer = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nIt adds.\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"grade_id": "q1_answer", "schema_version": 3, "task": False, "grade": True,
                                   "solution": True, "locked": False, "points": 1}
    notebook.cells.append(answer)
    nbformat.write(notebook, path)


def result(student: str, score: float, *, status: str = "graded", unanswered: tuple[str, ...] = ()) -> SubmissionResult:
    check = CheckResult(name="add(2, 3) is 5", cell="check_add", score=score, max_score=2.0,
                        status="passed" if score else "failed", output="" if score else "add(2, 3) should be 5")
    return SubmissionResult(student=student, assignment="tiny", score=score, max_score=2.0, status=status,
                            reason="" if status == "graded" else "the notebook was stopped after 60 s",
                            tests=(check,), grading_seconds=3.0, unanswered=unanswered,
                            needs_manual_grade="q1_answer" not in unanswered)


def submitted_at(course: Course, student: str, when: str) -> None:
    folder = course.submitted / student / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(course.releases / "tiny" / "tiny.ipynb", folder / "tiny.ipynb")
    (folder / "timestamp.txt").write_text(when)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    """alice on time (2/2, answer waiting for formgrader), bob 1.5 days late (2/2), carol timed out (0/2, blank
    answer), dave 3 minutes late (inside the grace period)."""
    from nbgrader.api import Gradebook

    course = tiny_course(tmp_path_factory.mktemp("course"))
    add_written_answer(course)
    generate_release(course, "tiny")
    (course.root / "dlgrade.toml").write_text(LATE_POLICY)
    with Gradebook(course.db_url) as book:
        book.update_or_create_assignment("tiny", duedate=DUE)
        book.update_or_create_student("bob", first_name="Bob", last_name="Builder", email="bob@example.org",
                                      lms_user_id="4711")
    submitted_at(course, "alice", "2026-03-01 11:00:00.000000 UTC")
    submitted_at(course, "bob", "2026-03-03 00:00:00.000000 UTC")
    submitted_at(course, "carol", "2026-03-01 10:00:00 UTC")
    submitted_at(course, "dave", "2026-03-01 12:03:00 UTC")
    for item in (result("alice", 2.0), result("bob", 2.0), result("carol", 0.0, status="timeout",
                                                                    unanswered=("q1_answer",)),
                 result("dave", 2.0)):
        gradebook.record(course, item)
        item.write(course.autograded / item.student / "tiny" / "results.json")
    return course


def run_cli(*args: str) -> str:
    run = CliRunner().invoke(main, list(args))
    assert run.exit_code == 0, run.output
    return run.output


# ------------------------------------------------------------------------------------------------- late policy

def test_late_policies():
    lateness = Lateness(submitted=datetime(2026, 3, 3, 0, 0), due=DUE)  # 36 hours: two started days
    assert penalty(LatePolicy(), lateness, 8.0).points == 0 and penalty(LatePolicy(), lateness, 8.0).late
    assert penalty(LatePolicy(method="zero"), lateness, 8.0).points == 8.0
    per_day = penalty(LatePolicy(method="percent_per_day", percent_per_day=10), lateness, 8.0)
    assert (per_day.days_late, per_day.percent, per_day.points) == (2, 20, 1.6)
    assert "2 day(s) late" in per_day.note and "-20%" in per_day.note
    capped = penalty(LatePolicy(method="percent_per_day", percent_per_day=30, max_percent=50), lateness, 8.0)
    assert capped.points == 4.0
    grace = penalty(LatePolicy(method="zero", grace_minutes=5), Lateness(datetime(2026, 3, 1, 12, 4), DUE), 8.0)
    assert not grace.late and grace.points == 0 and grace.note == ""
    assert penalty(LatePolicy(method="zero"), Lateness(submitted=None, due=DUE), 8.0).points == 0  # unknown: on time


@pytest.mark.parametrize(("text", "problem"), [("[late]\nmethod = 'half'\n", "method"),
                                               ("[late]\npercent = 10\n", "unknown setting"),
                                               ("[late]\npercent_per_day = -1\n", "percent_per_day"),
                                               ("[late]\nmax_percent = 150\n", "max_percent"),
                                               ("[late\n", "dlgrade.toml")])
def test_late_policy_config_errors(tmp_path, text, problem):
    (tmp_path / "dlgrade.toml").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_policy(tmp_path)


def test_late_policy_ignores_other_sections(tmp_path):
    assert load_policy(tmp_path) == LatePolicy()
    (tmp_path / "dlgrade.toml").write_text('[resources.bert]\npath = "models/bert"\n[slurm]\npartition = "gpu"\n'
                                           + LATE_POLICY)
    assert load_policy(tmp_path) == LatePolicy(method="percent_per_day", percent_per_day=10, max_percent=25,
                                               grace_minutes=5)


# ------------------------------------------------------------------------------------------------------ formats

def test_cli_formats_are_the_library_formats():
    assert EXPORT_FORMATS == export_module.FORMATS


def test_long_csv_applies_the_late_policy(course):
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(run_cli("export", "--course-dir", str(course.root))))}
    assert set(rows) == {"alice", "bob", "carol", "dave"}
    assert list(rows["alice"]) == export_module.LONG_COLUMNS
    assert float(rows["alice"]["score"]) == 2 and float(rows["alice"]["late_penalty"]) == 0
    # bob: 36 h late -> 2 started days x 10% of 2 points
    assert (float(rows["bob"]["raw_score"]), float(rows["bob"]["late_penalty"]), float(rows["bob"]["score"]),
            rows["bob"]["days_late"]) == (2, 0.4, 1.6, "2")
    assert rows["bob"]["submitted"] == "2026-03-03 00:00:00" and rows["bob"]["due"] == "2026-03-01 12:00:00"
    assert float(rows["dave"]["late_penalty"]) == 0  # within the grace period
    assert rows["carol"]["status"] == "timeout" and "stopped" in rows["carol"]["reason"]
    assert rows["alice"]["needs_manual_grade"] == "True" and rows["carol"]["needs_manual_grade"] == "False"


def test_nbgrader_export_sees_the_same_scores_and_penalties(course):
    run_cli("export", "--course-dir", str(course.root))  # records the penalties in the gradebook
    out = course.root / "nbgrader-grades.csv"
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "nbgrader"), "export", f"--to={out}"], cwd=course.root,
                          capture_output=True, text=True, env={"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert float(rows["bob"]["raw_score"]) == 2 and float(rows["bob"]["late_submission_penalty"]) == 0.4
    assert float(rows["bob"]["score"]) == 1.6 and rows["bob"]["timestamp"].startswith("2026-03-03 00:00:00")
    assert float(rows["alice"]["score"]) == 2 and float(rows["carol"]["score"]) == 0
    assert rows["alice"]["duedate"].startswith("2026-03-01 12:00:00")


def test_wide_csv_and_xlsx(course, tmp_path):
    wide = pd.read_csv(io.StringIO(run_cli("export", "--format", "wide-csv", "--course-dir", str(course.root))))
    assert list(wide.columns) == ["student", "tiny", "total", "max_total"]
    assert dict(zip(wide["student"], wide["tiny"], strict=True)) == {"alice": 2, "bob": 1.6, "carol": 0, "dave": 2}
    assert set(wide["max_total"]) == {3.0}  # 2 autograded + 1 written point
    target = tmp_path / "grades.xlsx"
    run_cli("export", "--format", "xlsx", "-o", str(target), "--course-dir", str(course.root))
    sheet = pd.read_excel(target, sheet_name="grades", engine="openpyxl")
    pd.testing.assert_frame_equal(sheet, wide, check_dtype=False)


def test_xlsx_and_gradescope_need_an_output(course):
    for fmt in ("xlsx", "gradescope"):
        run = CliRunner().invoke(main, ["export", "--format", fmt, "--course-dir", str(course.root)])
        assert run.exit_code == 1 and "-o" in run.output and "Traceback" not in run.output


def test_canvas_import_csv(course):
    rows = list(csv.reader(io.StringIO(run_cli("export", "--format", "canvas", "--course-dir", str(course.root)))))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "tiny"]
    assert rows[1][0] == "Points Possible" and float(rows[1][5]) == 3
    by_login = {row[3]: row for row in rows[2:]}
    assert by_login["bob"][0] == "Builder, Bob" and float(by_login["bob"][5]) == 1.6
    assert by_login["bob"][1] == "4711", "Canvas matches on its user id, which the roster import stored"
    assert by_login["alice"][0] == "alice" and by_login["alice"][2] == "alice" and by_login["alice"][1] == ""


def test_moodle_import_csv(course):
    rows = list(csv.DictReader(io.StringIO(run_cli("export", "--format", "moodle", "--course-dir",
                                                   str(course.root)))))
    assert list(rows[0]) == ["Username", "Email address", "tiny"]
    by_user = {row["Username"]: row for row in rows}
    assert by_user["bob"]["Email address"] == "bob@example.org" and float(by_user["bob"]["tiny"]) == 1.6


def test_gradescope_results_per_submission(course, tmp_path):
    target = tmp_path / "gradescope"
    run_cli("export", "--format", "gradescope", "-o", str(target), "--course-dir", str(course.root))
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("results.json"))
    assert files == [f"{s}/tiny/results.json" for s in ("alice", "bob", "carol", "dave")]
    bob = json.loads((target / "bob" / "tiny" / "results.json").read_text())
    assert bob["score"] == 1.6 and "late" in bob["output"] and bob["extra_data"]["late_penalty"] == 0.4
    carol = json.loads((target / "carol" / "tiny" / "results.json").read_text())
    assert carol["score"] == 0 and "Status: timeout" in carol["output"]
    for data in (bob, carol):
        assert {"score", "output", "visibility", "tests"} <= set(data)
        for test in data["tests"]:
            assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
            assert test["status"] in {"passed", "failed"}


# ------------------------------------------------------------------------------------------------- formgrader

def test_gradebook_api_of_formgrader_shows_answers_to_grade(course):
    """formgrader's pages call these: alice's written answer waits for hand grading, carol's blank one does not."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as book:
        submissions = {s["student"]: s for s in book.submission_dicts("tiny")}
        notebooks = {s["student"]: s for s in book.notebook_submission_dicts("tiny", "tiny")}
    assert submissions["alice"]["needs_manual_grade"] and not submissions["carol"]["needs_manual_grade"]
    assert notebooks["alice"]["needs_manual_grade"] and notebooks["alice"]["code_score"] == 2
    assert submissions["bob"]["score"] == 2 and submissions["bob"]["max_score"] == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # nbgrader or a Jupyter server for each case: seconds apiece
def test_formgrader_api_of_a_real_jupyter_server(course):
    """A real Jupyter server with nbgrader's formgrader, on localhost: its API lists dlgrade's grades."""
    port, token = _free_port(), "dlgrade-test-token"
    env = {**os.environ, "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", "JUPYTER_PLATFORM_DIRS": "1",
           "HOME": str(course.root), "JUPYTER_RUNTIME_DIR": str(course.root / ".runtime")}
    server = subprocess.Popen([str(Path(sys.prefix) / "bin" / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1",
                               f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
                               f"--ServerApp.root_dir={course.root}"],
                              cwd=course.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        data = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/formgrader/api/submissions/tiny",
                                             headers={"Authorization": f"token {token}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    data = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert data is not None, "formgrader did not answer: " + (server.stderr.read().decode()[-3000:]
                                                                  if server.poll() is not None else "timed out")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    by_student = {s["student"]: s for s in data}
    assert by_student["alice"]["needs_manual_grade"] and by_student["alice"]["autograded"]
    assert by_student["bob"]["score"] == 2 and not by_student["carol"]["needs_manual_grade"]


def test_export_of_a_course_without_grades(tmp_path):
    course = tiny_course(tmp_path)
    out = run_cli("export", "--course-dir", str(course.root))
    assert out.strip() == ",".join(export_module.LONG_COLUMNS)

