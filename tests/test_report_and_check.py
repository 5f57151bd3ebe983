"""The course report (statistics and plots from results.json files) and the student's side: `dlgrade check`
runs a notebook with its public checks only, sandboxed where bubblewrap works and unsandboxed (saying so) where it
does not; the released notebooks open in JupyterLab 4."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from autograder.check import public_checks
from autograder.cli import main
from autograder.course import Course
from autograder.notebooks import generate_release
from autograder.report import checks_frame, course_report, render_report, status_counts
from autograder.results import CheckResult, SubmissionResult
from tests.conftest import REPO, tiny_course

# --------------------------------------------------------------------------------------------------- the report


def _result(student: str, assignment: str, checks: dict[str, tuple[float, float]], status: str = "graded",
            seconds: float = 30.0) -> SubmissionResult:
    tests = tuple(CheckResult(name=name, cell=f"check_{index}", score=score, max_score=top,
                              status="passed" if score > 0 else "failed")
                  for index, (name, (score, top)) in enumerate(checks.items()))
    return SubmissionResult(student=student, assignment=assignment, score=sum(s for s, _ in checks.values()),
                            max_score=sum(t for _, t in checks.values()), status=status, tests=tests,
                            grading_seconds=seconds)


RESULTS = [
    _result("ana", "seq2seq", {"layers": (2, 2), "accuracy": (5, 5)}, seconds=41),
    _result("ben", "seq2seq", {"layers": (0, 2), "accuracy": (5, 5)}, seconds=44),
    _result("cem", "seq2seq", {"layers": (0, 2), "accuracy": (2.5, 5)}, seconds=39),
    _result("dan", "seq2seq", {}, status="timeout", seconds=610),
    _result("ana", "attention", {"heatmap": (2, 2)}, seconds=70),
    _result("ben", "attention", {"heatmap": (0, 2)}, status="error", seconds=12),
    SubmissionResult(student="cem", assignment="attention", score=0, max_score=2, status="rejected",
                     reason="not a notebook"),
]


def test_check_pass_rates_find_the_common_mistakes():
    checks = checks_frame(RESULTS)
    seq2seq = checks[checks["assignment"] == "seq2seq"]
    rates = dict(zip(seq2seq["check"], seq2seq["pass_rate"], strict=True))
    assert rates == pytest.approx({"layers": 1 / 3, "accuracy": 2 / 3})
    assert list(seq2seq["check"])[0] == "layers"  # the most common mistake first
    credit = dict(zip(seq2seq["check"], seq2seq["mean_credit"], strict=True))
    assert credit["accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_status_counts_include_every_status():
    counts = status_counts(RESULTS)
    assert counts.loc["seq2seq"].to_dict() == {"graded": 3, "error": 0, "timeout": 1, "rejected": 0}
    assert counts.loc["attention"].to_dict() == {"graded": 1, "error": 1, "timeout": 0, "rejected": 1}


def test_report_page_has_tables_and_four_plots():
    page = render_report(course_report(RESULTS), title="Course report: test")
    assert page.count('<img src="data:image/png;base64,') == 4
    for title in ("Score distribution per assignment", "Pass rate of each check", "Status counts",
                  "Grading time per submission"):
        assert title in page
    assert re.search(r"<td>seq2seq</td><td class=\"num\">4</td>", page)
    assert "<script" not in page


def test_report_command_on_a_course(tmp_path):
    course = tiny_course(tmp_path)
    for result in RESULTS:
        result.write(course.autograded / result.student / result.assignment / "results.json")
    run = CliRunner().invoke(main, ["report", "--course-dir", str(course.root), "--json"])
    assert run.exit_code == 0, run.output
    stats = json.loads(run.output)
    assert {row["assignment"]: row["submissions"] for row in stats["assignments"]} == {"seq2seq": 4, "attention": 3}
    assert (course.root / "course_report.html").read_text().count("<img ") == 4
    run = CliRunner().invoke(main, ["report", "seq2seq", "-o", str(tmp_path / "r.html"), "--course-dir",
                                    str(course.root)])
    assert run.exit_code == 0 and "4 submissions" in run.output


def test_report_of_a_course_without_grades(tmp_path):
    course = tiny_course(tmp_path)
    run = CliRunner().invoke(main, ["report", "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    assert "No graded submissions yet" in (course.root / "course_report.html").read_text()


# ---------------------------------------------------------------------------------------------- dlgrade check

WRONG_ADD = "def add(a, b):\n    return a - b"
RIGHT_ADD = "def add(a, b):\n    return a + b"


def _answered(release: Path, source: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(release, as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "add":
            cell.source = source
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    course = tiny_course(tmp_path_factory.mktemp("course"))
    generate_release(course, "tiny")
    return course


@pytest.mark.sandbox
def test_check_in_the_sandbox_reports_public_checks_only(course, tmp_path, monkeypatch):
    """One real sandboxed run: a wrong add() fails the public check; the hidden graders are never touched."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("dlgrade check must never read or run the hidden graders")

    monkeypatch.setattr(Course, "graders", refuse)
    monkeypatch.setattr("autograder.graders.run_graders", refuse)
    work = course.root / "work"
    work.mkdir()
    notebook = work / "tiny.ipynb"
    nbformat.write(_answered(course.releases / "tiny" / "tiny.ipynb", WRONG_ADD), notebook)
    run = CliRunner().invoke(main, ["check", str(notebook), "--json"])
    assert run.exit_code == 3, run.output
    report = json.loads(run.output[run.output.index("{"):])
    assert report["sandboxed"] and not report["passed"] and report["notes"] == []
    assert report["checks"] == [{"cell": "check_add", "points": 2.0, "status": "failed", "message": "AssertionError"}]
    assert report["missing_files"] == []  # answer.json, the declared artifact, was written
    hidden = (course.solutions / "tiny" / "graders" / "test_tiny.py").read_text()
    assert "add(2, 3) is 5" in hidden and "add(2, 3) is 5" not in run.output


@pytest.mark.sandbox
def test_check_from_a_students_folder_without_bubblewrap(course, tmp_path, monkeypatch):
    """A student's laptop: a release folder (no course around) and no bubblewrap. It runs unsandboxed and says so."""
    from autograder.errors import SandboxUnavailable

    def missing():
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`")

    monkeypatch.setattr("autograder.sandbox.check_sandbox", missing)
    folder = tmp_path / "Downloads" / "tiny"
    folder.mkdir(parents=True)
    notebook = folder / "tiny.ipynb"
    nbformat.write(_answered(course.releases / "tiny" / "tiny.ipynb", RIGHT_ADD), notebook)
    run = CliRunner().invoke(main, ["check", str(notebook)])
    assert run.exit_code == 0, run.output
    assert "UNSANDBOXED" in run.output and "bubblewrap is not available here" in run.output
    assert "passed   check_add (2 points)" in run.output and "1 of 1 public checks pass" in run.output
    assert "no assignment.toml for tiny here" in run.output


def test_public_checks_of_an_unfinished_run():
    source = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y")])
    for cell, grade_id in zip(source.cells, ("answer", "check_y"), strict=True):
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": grade_id.startswith("check"), "points": 1,
                                     "solution": grade_id == "answer"}
    executed = nbformat.from_dict(json.loads(json.dumps(source)))  # nothing ran: the kernel died first
    assert [(c.cell, c.status) for c in public_checks(source, executed)] == [("check_y", "not run")]


def test_check_refuses_a_home_directory_sized_folder(tmp_path, monkeypatch):
    from autograder import check

    monkeypatch.setattr(check, "MAX_FOLDER_BYTES", 10)
    (tmp_path / "big.bin").write_bytes(b"x" * 100)
    shutil.copy2(REPO / "assignments" / "seq2seq" / "seq2seq.ipynb", tmp_path / "seq2seq.ipynb")
    run = CliRunner().invoke(main, ["check", str(tmp_path / "seq2seq.ipynb"), "--no-sandbox"])
    assert run.exit_code == 1 and "folder of their own" in run.output


# ------------------------------------------------------------------------------------------------ JupyterLab 4

@pytest.mark.parametrize("release", sorted((REPO / "assignments").glob("*/*.ipynb")), ids=lambda p: p.parent.name)
def test_released_notebooks_validate_for_jupyterlab_4(release):
    notebook = nbformat.read(release, as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) >= (4, 4) and notebook.nbformat == 4
    kernelspec = notebook.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3" and kernelspec.get("language") == "python"


@pytest.mark.slow  # nbgrader or a Jupyter server for each case: seconds apiece
def test_jupyterlab_is_version_4():
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "jupyter"), "lab", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().split(".")[0]) >= 4, done.stdout
