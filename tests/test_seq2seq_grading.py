"""End to end on real notebooks, real kernels, real training: generate -> grade -> gradebook -> export.

One batch grades the example submissions and every kind of bad input together (the batch must go on past
each of them); the assertions then read what a student and an instructor would read.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from autograder.cli import main
from tests.batches import BATCHES, in_batch

pytestmark = [pytest.mark.slow, in_batch("seq2seq")]


def _tampered(course) -> bytes:
    """The reference, with a public check cell deleted and a locked check cell rewritten to always pass."""
    notebook = nbformat.read(course.solutions / "seq2seq" / "seq2seq.ipynb", as_version=4)
    notebook = copy.deepcopy(notebook)
    notebook.cells = [c for c in notebook.cells
                      if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "check_output_shape"]
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "check_architecture":
            cell.source = "assert True  # nothing to see here"
    return nbformat.writes(notebook).encode()


def _snooping(course) -> bytes:
    """The blank release plus a cell that hunts for the hidden graders, the solution and the network."""
    notebook = nbformat.read(course.releases / "seq2seq" / "seq2seq.ipynb", as_version=4)
    targets = [str(course.graders("seq2seq") / "test_seq2seq.py"), str(course.solutions / "seq2seq" / "seq2seq.ipynb"),
               str(course.root / "gradebook.db")]
    notebook.cells.insert(1, nbformat.v4.new_code_cell(
        "import os, socket\n"
        f"for path in {targets!r}:\n"
        "    print('SNOOP', path, 'visible' if os.path.exists(path) else 'invisible')\n"
        "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=2); print('SNOOP network reachable')\n"
        "except OSError:\n    print('SNOOP network unreachable')\n"
        "open('/home/student/seq2seq_model.keras', 'w').write('not a model')"))
    return nbformat.writes(notebook).encode()


BATCHES.add_examples("seq2seq")  # endless_loop under its own time limit
BATCHES.add("seq2seq", "nbformat3",
            lambda course: json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}).encode())
BATCHES.add("seq2seq", "missing", lambda course: None)
BATCHES.add("seq2seq", "tampered", _tampered)
BATCHES.add("seq2seq", "snoop", _snooping)


@pytest.fixture(scope="module")
def graded(shared_batch):
    """The session's seq2seq batch: these submissions with test_idioms.py's, graded once."""
    batch = shared_batch("seq2seq")
    return batch.course, batch.results


def test_reference_earns_full_marks(graded):
    _, results = graded
    reference = results["reference"]
    assert reference.status == "graded", reference.reason
    assert reference.score == reference.max_score == 10, [(t.name, t.output) for t in reference.tests]


def test_blank_release_earns_zero_and_says_why(graded):
    blank = graded[1]["blank"]
    assert blank.score == 0 and blank.status == "graded"
    assert "NotImplementedError" in blank.reason and "seq2seq_model.keras" in blank.reason
    assert all(t.status == "failed" and "did not save seq2seq_model.keras" in t.output for t in blank.tests)


def test_extra_layer_loses_exactly_the_layer_order_points(graded):
    result = graded[1]["extra_layer"]
    lost = {t.name.split(":")[0]: t.max_score - t.score for t in result.tests if t.score < t.max_score}
    assert result.score == 8, lost
    failed = [t for t in result.tests if t.score < t.max_score]
    assert len(failed) == 1 and "the layers differ" in failed[0].output
    rows = failed[0].details["rows"]  # the table travels as structure (credit.layer_table), not in the message
    assert [(row["expected"], row["found"]) for row in rows if not row["ok"]] == [("", "Dropout(rate=0.1)")]


def test_crash_scores_zero_with_the_error(graded):
    crash = graded[1]["crash"]
    assert crash.score == 0 and "AttributeError" in crash.reason and "LTSM" in crash.reason


@pytest.mark.parametrize(("student", "says"), [("not_json", "not valid JSON"), ("nbformat3", "format 3"),
                                               ("missing", "no notebook found")])
def test_unreadable_submissions_are_rejected(graded, student, says):
    result = graded[1][student]
    assert (result.status, result.score, result.max_score) == ("rejected", 0, 10)
    assert says in result.reason


def test_timeout_is_stopped_and_reported(graded):
    result = graded[1]["endless_loop"]
    assert result.status == "timeout" and result.score == 0
    assert "stopped after 30 s" in result.reason  # the example's own time limit (solutions/seq2seq/examples.py)
    assert result.execution_seconds < 60


def test_tampered_cells_are_restored_and_graded_honestly(graded):
    result = graded[1]["tampered"]
    assert result.score == 10, result.reason
    notes = " ".join(result.notes)
    assert "check_output_shape was deleted" in notes and "check_architecture was edited" in notes


def test_snooping_submission_sees_nothing_and_its_fake_model_earns_nothing(graded):
    course, results = graded
    executed = nbformat.read(course.autograded / "snoop" / "seq2seq" / "seq2seq.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    snooped = [line for line in printed.splitlines() if line.startswith("SNOOP")]
    assert len(snooped) == 4, printed
    assert all(line.endswith(" invisible") for line in snooped[:3]) and snooped[3] == "SNOOP network unreachable"
    snoop = results["snoop"]
    assert snoop.score == 0 and all("not a model saved by model.save" in t.output for t in snoop.tests)


def test_results_json_and_logs_are_written(graded):
    course, results = graded
    for student in results:
        data = json.loads((course.autograded / student / "seq2seq" / "results.json").read_text())
        assert data["status"] in {"graded", "error", "timeout", "rejected"}
        assert {"score", "max_score", "reason", "tests"} <= set(data)
    executed = course.autograded / "reference" / "seq2seq" / "seq2seq.ipynb"
    assert "exact-sequence accuracy" in executed.read_text()


def test_nbgrader_export_sees_dlgrade_scores(graded):
    course, results = graded
    out = course.root / "nbgrader-export.csv"
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "nbgrader"), "export", f"--to={out}"],
                          cwd=course.root, capture_output=True, text=True,
                          env={"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["student_id"]: row for row in csv.DictReader(out.open()) if row["assignment"] == "seq2seq"}
    for student, result in results.items():
        if result.status != "rejected":
            assert float(rows[student]["raw_score"]) == result.score, student


def test_dlgrade_export_has_one_row_per_submission(graded):
    course, results = graded
    run = CliRunner().invoke(main, ["export", "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    rows = list(csv.DictReader(io.StringIO(run.output)))
    assert {r["student"] for r in rows} == set(results)
    by_student = {r["student"]: r for r in rows}
    assert by_student["reference"]["status"] == "graded" and float(by_student["reference"]["score"]) == 10
    assert by_student["endless_loop"]["status"] == "timeout"


def test_second_run_skips_graded_and_force_regrades(graded):
    course, _ = graded
    run = CliRunner().invoke(main, ["grade", "seq2seq", "--course-dir", str(course.root), "--json",
                                    "--student", "not_json", "--student", "reference"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.output[run.output.index("{"):])
    assert sorted(report["skipped"]) == ["not_json", "reference"] and report["results"] == []
    run = CliRunner().invoke(main, ["grade", "seq2seq", "--course-dir", str(course.root), "--student", "not_json",
                                    "--force"])
    assert run.exit_code == 0 and "rejected" in run.output


def test_feedback_pages_show_scores_and_hide_the_graders(graded):
    course, results = graded
    run = CliRunner().invoke(main, ["feedback", "seq2seq", "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    hidden = (course.graders("seq2seq") / "test_seq2seq.py").read_text()
    secret_lines = [line.strip() for line in hidden.splitlines() if "SEED" in line or line.startswith("def test_")]
    for student, result in results.items():
        page = (course.feedback / student / "seq2seq" / "seq2seq.html").read_text()
        assert f"{result.score:g} / {result.max_score:g}" in page and f"Status: {result.status}" in page
        assert not any(line in page for line in secret_lines), student
        assert "Traceback" not in page
    extra = (course.feedback / "extra_layer" / "seq2seq" / "seq2seq.html").read_text()
    assert "Dropout" in extra and "&lt;-- extra layer" in extra and "<mark>" not in extra
