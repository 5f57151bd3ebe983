"""Feedback pages: what each check compared (layer tables, measured values against targets), the late penalty,
the student's training curves and images; checked in a real headless browser (Debian's chromium), and never
showing hidden test code, hidden data or tracebacks.

The checks come from a real run of hidden pytest graders over artifacts written in code (no notebook runs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from autograder import gradebook
from autograder.cli import main
from autograder.course import Course
from autograder.feedback import (
    artifact_images,
    check_view,
    read_history,
    render_feedback,
    student_safe,
)
from autograder.graders import run_graders
from autograder.notebooks import generate_release
from autograder.results import CheckResult, SubmissionResult
from tests.conftest import tiny_course

HIDDEN_GRADER = '''
import json

import pytest

HIDDEN_PAIRS = [(40213, 77), (-9031, 5)]  # hidden data: never on a page
ROWS = [(1, "Dense(units=4)", "Dense(units=4)", True), (2, "Dense(units=1, activation=sigmoid)", "Dropout", False)]


def _answer(artifacts_dir):
    return json.loads((artifacts_dir / "answer.json").read_text())


@pytest.mark.points(1, cell="check_add")
def test_layers(artifacts_dir, credit):
    """Layers: Dense -> Dense"""
    credit.layer_table(ROWS if _answer(artifacts_dir)["sum"] != 5 else [r[:3] + (True,) for r in ROWS])
    assert _answer(artifacts_dir)["sum"] == 5, "the layers differ from Dense -> Dense"


@pytest.mark.points(0.5, cell="check_add")
def test_hidden_sums(artifacts_dir, credit):
    """Sums of hidden pairs"""
    right = sum(_answer(artifacts_dir)["sum"] == 5 for _ in HIDDEN_PAIRS) / len(HIDDEN_PAIRS)
    credit.threshold(metric="share of hidden sums right", measured=right, target=0.9, floor=0.5)
    credit.fraction = 1.0 if right >= 0.9 else 0.0
    credit.message = f"{right:.2f} of the hidden sums right (target 0.9)"
    assert credit.fraction > 0, credit.message


@pytest.mark.points(0.5, cell="check_add")
def test_crashes_on_bad_answers(artifacts_dir):
    """The answer file has a sum"""
    secret_total = sum(a + b for a, b in HIDDEN_PAIRS)
    assert 1 / (_answer(artifacts_dir)["sum"] - 4) + secret_total
'''
DUE = datetime(2026, 3, 1, 12, 0)


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.arange(12).reshape(3, 4))
    figure.savefig(path)
    plt.close(figure)


def _grade_in_code(course: Course, student: str, answer: int) -> SubmissionResult:
    """Run the real hidden graders over artifacts written here, and record the result as the pipeline does."""
    artifacts = course.autograded / student / "tiny" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "answer.json").write_text(json.dumps({"sum": answer}))
    checks, _log = run_graders(graders_dir=course.graders("tiny"), artifacts_dir=artifacts, timeout=120)
    result = SubmissionResult(student=student, assignment="tiny", score=sum(c.score for c in checks), max_score=2.0,
                              status="graded", tests=tuple(checks))
    gradebook.record(course, result)
    result.write(course.autograded / student / "tiny" / "results.json")
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    """alice: right, on time, with training history and a heatmap; bob: wrong, two days late, with a file that
    claims to be a PNG and is HTML; a late policy of 10% per started day."""
    from nbgrader.api import Gradebook

    course = tiny_course(tmp_path_factory.mktemp("course"), grader=HIDDEN_GRADER)
    generate_release(course, "tiny")
    (course.root / "dlgrade.toml").write_text('[late]\nmethod = "percent_per_day"\npercent_per_day = 10\n')
    with Gradebook(course.db_url) as book:
        book.update_or_create_assignment("tiny", duedate=DUE)
    for student, stamp in (("alice", "2026-03-01 10:00:00 UTC"), ("bob", "2026-03-02 13:00:00 UTC")):
        folder = course.submitted / student / "tiny"
        folder.mkdir(parents=True)
        shutil.copy2(course.releases / "tiny" / "tiny.ipynb", folder)
        (folder / "timestamp.txt").write_text(stamp)
    _grade_in_code(course, "alice", 5)
    _grade_in_code(course, "bob", 4)
    alice = course.autograded / "alice" / "tiny" / "artifacts"
    (alice / "history.json").write_text(json.dumps({"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
                                                    "accuracy": [0.5, 0.7, 0.8]}))
    _png(alice / "attention_heatmap.png")
    (course.autograded / "bob" / "tiny" / "artifacts" / "heatmap.png").write_text("<script>alert(1)</script>")
    run = CliRunner().invoke(main, ["feedback", "tiny", "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    return course


def _secret_lines(course: Course) -> list[str]:
    """Code lines of the hidden grader (not its docstrings or messages, which are shown by design)."""
    source = (course.graders("tiny") / "test_tiny.py").read_text()
    return [line.strip() for line in source.splitlines()
            if len(line.strip()) > 12 and not line.strip().startswith(('"""', '"', "credit.message", "assert"))]


def _page(course: Course, student: str) -> Path:
    return course.feedback / student / "tiny" / "tiny.html"


# --------------------------------------------------------------------------------------------- what the page says

@pytest.mark.sandbox
def test_checks_carry_structured_details_from_the_credit_fixture(course):
    bob = SubmissionResult.from_json((course.autograded / "bob" / "tiny" / "results.json").read_text())
    details = {check.name: check.details for check in bob.tests}
    assert details["Layers: Dense -> Dense"]["kind"] == "layers"
    assert details["Layers: Dense -> Dense"]["rows"][1] == {"expected": "Dense(units=1, activation=sigmoid)",
                                                            "found": "Dropout", "ok": False}
    assert details["Sums of hidden pairs"] == {"kind": "threshold", "metric": "share of hidden sums right",
                                               "measured": 0.0, "target": 0.9, "floor": 0.5}
    assert details["The answer file has a sum"] is None


@pytest.mark.sandbox
def test_page_shows_tables_late_penalty_and_figures(course):
    alice, bob = _page(course, "alice").read_text(), _page(course, "bob").read_text()
    assert 'id="score">2 / 2<' in alice and 'id="late"' not in alice
    assert alice.count("<img ") == 2 and "Training curves" in alice and "attention_heatmap.png" in alice
    assert 'id="score">0 / 2<' in bob and "submitted 2 day(s) late" in bob and "-20%" in bob
    assert '<tr class="differs class">' in bob and "<mark>Dropout</mark>" in bob  # a Dropout for a Dense
    assert "share of hidden sums right" in bob and "0.000" in bob
    assert "<img " not in bob and "alert(1)" not in bob  # the fake PNG never reaches the page
    assert "ZeroDivisionError" in bob  # the error's own message, the student's to act on


def test_late_penalty_reduces_the_final_score(tmp_path):
    from autograder.late import Lateness, LatePolicy, penalty

    result = SubmissionResult(student="eve", assignment="tiny", score=8.0, max_score=10.0, status="graded")
    late = penalty(LatePolicy(method="percent_per_day", percent_per_day=25),
                   Lateness(submitted=datetime(2026, 3, 2, 13, 0), due=DUE), result.score)
    page = render_feedback(result, late=late)
    assert 'id="final-score">4 / 10<' in page and "policy: 25% of the score per started day late" in page


@pytest.mark.sandbox
def test_pages_never_show_hidden_code_data_or_tracebacks(course):
    secrets = _secret_lines(course)
    assert any("HIDDEN_PAIRS = [(40213, 77)" in line for line in secrets)  # the check below has teeth
    for student in ("alice", "bob"):
        page = _page(course, student).read_text()
        assert not [line for line in secrets if line in page], student
        assert "40213" not in page and "Traceback" not in page and "test_tiny.py" not in page


# ------------------------------------------------------------------------------------------------ the browser

def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "the browser tests need Debian's chromium: `make install` installs it (apt-get install chromium)"
    return path


def _rendered_dom(page: Path) -> str:
    """The page's DOM after a real headless browser loaded it (root needs --no-sandbox)."""
    done = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={page.parent / '.chromium'}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


@pytest.mark.sandbox
def test_feedback_pages_load_in_headless_chromium(course):
    secrets = _secret_lines(course)
    for student, score in (("alice", "2 / 2"), ("bob", "0 / 2")):
        dom = _rendered_dom(_page(course, student))
        shown = re.search(r'id="score">([^<]*)<', dom)
        assert shown and shown.group(1) == score, student
        assert "Checks" in dom and "Traceback" not in dom
        assert not [line for line in secrets if line in dom], student
    dom = _rendered_dom(_page(course, "bob"))
    assert 'id="final-score">0 / 2<' not in dom  # no penalty line when there is nothing to take
    assert "Late submission" in dom


# ----------------------------------------------------------------------------------------------- small pieces

def _diff_rows():
    """An aligned architecture: a matched layer, a setting that differs, an extra layer, a missing one."""
    from autograder.keras_checks import LayerDiffRow

    return [LayerDiffRow("same", ("Embedding", ()), ("Embedding", ())),
            LayerDiffRow("settings", ("LSTM", (("return_sequences", "False"),)),
                         ("LSTM", (("return_sequences", "True"),)), ("return_sequences",)),
            LayerDiffRow("extra", None, ("Dropout", (("rate", "0.1"),))),
            LayerDiffRow("missing", ("RepeatVector", (("n", "4"),)), None),
            LayerDiffRow("class", ("LSTM", (("return_sequences", "True"),)), ("GRU", (("return_sequences", "True"),)),
                         ("class",))]


def test_a_table_in_a_message_stays_prose_structure_comes_only_from_details():
    """The page never parses a grader's wording: a text table in the message shows as text, no layer table and no
    threshold is made of it; only `credit.layer_table` / `credit.threshold` (CheckResult.details) make them."""
    table = ("   expected                      found\n=  Embedding                     Embedding\n"
             "~  LSTM(return_sequences=False)  LSTM(return_sequences=True)  <-- return_sequences differs")
    check = CheckResult(name="Layers", cell="check_architecture", score=0, max_score=2, status="failed",
                        output="exact-sequence accuracy 0.120 (target 0.15, partial credit from 0.05)\n" + table)
    view = check_view(check)
    assert view.layers == () and view.threshold is None and "expected" in view.message


def test_threshold_comes_from_credit_threshold_with_its_fraction_and_message():
    from autograder.pytest_plugin import Credit

    credit = Credit()
    credit.threshold(metric="exact-sequence accuracy", measured=0.12, target=0.15, floor=0.05,
                     about="on 1024 hidden numbers")
    assert credit.message == ("exact-sequence accuracy 0.120 on 1024 hidden numbers (target 0.15, partial credit "
                              "from 0.05)")
    assert abs(credit.fraction - 0.7) < 1e-9
    check = CheckResult(name="Accuracy", cell="c", score=3.5, max_score=5, status="passed", output=credit.message,
                        details=json.loads(json.dumps(credit.details)))
    found = check_view(check).threshold
    assert (found.metric, found.measured, found.target, found.floor, found.met) == (
        "exact-sequence accuracy", 0.12, 0.15, 0.05, False)
    without_floor = Credit()
    without_floor.threshold(metric="accuracy", measured=0.5, target=0.6)
    assert without_floor.fraction == 0.0


def test_aligned_layer_table_marks_only_what_differs(tmp_path):
    """Structured rows (what credit.layer_table writes to results.json): one inserted row for the extra layer, one
    deleted row for the missing one, the same settings on both sides, and only the differing one marked."""
    from autograder.pytest_plugin import Credit

    credit = Credit()
    credit.layer_table(_diff_rows())
    details = json.loads(json.dumps(credit.details))  # as results.json holds it
    from autograder.graders import validated_checks

    reply = [{"name": "Layers", "cell": "c", "score": 0, "max_score": 2, "status": "failed", "output": "",
              "details": details}]
    assert validated_checks(json.dumps(reply))[0].details == details  # the grader process's reply schema
    check = CheckResult(name="Layers", cell="check_architecture", score=0, max_score=2, status="failed",
                        output="the layers differ", details=details)
    rows = check_view(check).layers
    assert [(r.expected, r.found) for r in rows] == [
        ("Embedding", "Embedding"), ("LSTM(return_sequences=False)", "LSTM(return_sequences=True)"),
        ("", "Dropout(rate=0.1)"), ("RepeatVector(n=4)", ""),
        ("LSTM(return_sequences=True)", "GRU(return_sequences=True)")]
    assert [[p.text for p in r.found_parts if p.differs] for r in rows] == [[], ["return_sequences=True"], [], [],
                                                                            ["GRU"]]
    page = render_feedback(SubmissionResult(student="s", assignment="seq2seq", score=0, max_score=2,
                                            status="graded", tests=(check,)))
    assert page.count("<mark>") == 4  # return_sequences on both sides, GRU and the LSTM it replaced
    assert "<mark>return_sequences=True</mark>" in page and "<mark>GRU</mark>" in page
    assert "&lt;-- extra layer" in page and "&lt;-- missing layer" in page


@pytest.mark.sandbox
def test_aligned_layer_table_in_headless_chromium(tmp_path):
    """The aligned table as a browser shows it: one row per expected or found layer, the marks where they differ."""
    from autograder.pytest_plugin import Credit

    credit = Credit()
    credit.layer_table(_diff_rows())
    check = CheckResult(name="Layers", cell="check_architecture", score=0, max_score=2, status="failed",
                        output="the layers differ", details=json.loads(json.dumps(credit.details)))
    page = tmp_path / "page.html"
    page.write_text(render_feedback(SubmissionResult(student="s", assignment="seq2seq", score=0, max_score=2,
                                                     status="graded", tests=(check,))))
    dom = _rendered_dom(page)
    table = dom[dom.index('class="compare layers"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 1 + len(_diff_rows())  # the header, then one row per aligned pair
    assert re.findall(r"<mark>([^<]*)</mark>", table) == ["return_sequences=False", "return_sequences=True", "LSTM",
                                                          "GRU"]
    assert 'class="differs extra"' in table and 'class="differs missing"' in table


def test_student_safe_cuts_tracebacks():
    text = 'expected 3\nTraceback (most recent call last):\n  File "/srv/graders/test_x.py", line 4\n    SECRET = 1'
    assert student_safe(text) == "expected 3"
    assert student_safe('  File "/srv/graders/test_x.py", line 9, in test\nfound 2') == "found 2"


@pytest.mark.parametrize("content", ['{"loss": [1, "2"]}', '{"loss": [true, false]}', '[1, 2]', '{"loss": []}',
                                     '{"loss": [NaN]}', "not json", '{"loss": {"a": 1}}'])
def test_history_that_is_not_a_keras_history_is_ignored(tmp_path, content):
    (tmp_path / "history.json").write_text(content)
    assert read_history(tmp_path / "history.json") is None


def test_history_forms(tmp_path):
    path = tmp_path / "history.json"
    path.write_text('{"history": {"loss": [1, 0.5], "val_loss": [1.2, 0.9], "note": "x"}}')
    assert read_history(path) == {"loss": [1.0, 0.5], "val_loss": [1.2, 0.9]}
    assert read_history(tmp_path / "missing.json") is None


def test_only_real_pngs_are_embedded(tmp_path):
    _png(tmp_path / "real.png")
    (tmp_path / "svg.png").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (10**6).to_bytes(4, "big") * 2)
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert [figure.title for figure in artifact_images(tmp_path)] == ["real.png"]


def test_results_written_before_details_existed_still_load():
    old = {"student": "s", "assignment": "a", "score": 1, "max_score": 1, "status": "graded",
           "tests": [{"name": "n", "cell": "c", "score": 1, "max_score": 1, "status": "passed", "output": "",
                      "visibility": "visible"}]}
    assert SubmissionResult.from_json(json.dumps(old)).tests[0].details is None
