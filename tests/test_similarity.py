"""`dlgrade similarity`: a copy under renamed variables is flagged; two independent correct solutions are not, and
neither are two blank releases (the release's own code never counts). Notebooks built in code; no grading."""

from __future__ import annotations

import json
import shutil

import nbformat
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.cli import main
from autograder.course import Course
from autograder.similarity import compare, write_similarity
from tests.conftest import REPO

GIVEN = "import math\n\ndef check(values):\n    assert all(isinstance(v, (int, float)) for v in values)\n"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"

ORIGINAL = ('''def moving_average(values, window):
    if window <= 0:
        raise ValueError("window must be positive")
    result = []
    total = 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        if index >= window - 1:
            result.append(total / window)
    return result
''', '''def normalise(values):
    low = min(values)
    high = max(values)
    if high == low:
        return [0.0 for _ in values]
    return [(value - low) / (high - low) for value in values]
''')

RENAMED = ('''def moving_average(values, window):
    # running sum over the window
    if window <= 0:
        raise ValueError("the window has to be at least one")
    averages = []
    running = 0.0
    for i, x in enumerate(values):
        running += x
        if i >= window:
            running -= values[i - window]
        if i >= window - 1:
            averages.append(running / window)
    return averages
''', '''def normalise(values):
    smallest = min(values)
    largest = max(values)
    if largest == smallest:
        return [0.0 for _ in values]
    return [(v - smallest) / (largest - smallest) for v in values]
''')

INDEPENDENT = ('''def moving_average(values, window):
    import numpy as np

    kernel = np.ones(window) / window
    return np.convolve(np.asarray(values, dtype=float), kernel, mode="valid").tolist()
''', '''def normalise(values):
    import numpy as np

    array = np.asarray(values, dtype=float)
    span = array.max() - array.min()
    return ((array - array.min()) / span).tolist() if span else np.zeros_like(array).tolist()
''')

ANOTHER = ('''def moving_average(values, window):
    out = []
    start = 0
    while start + window <= len(values):
        out.append(sum(values[start:start + window]) / window)
        start += 1
    return out
''', '''def normalise(values):
    lo, hi = sorted(values)[0], sorted(values)[-1]
    spread = hi - lo or 1
    return list(map(lambda v: (v - lo) / spread if hi != lo else 0.0, values))
''')


def _cell(source: str, grade_id: str, **nbgrader):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "schema_version": 3, "solution": False, "grade": False,
                                 "locked": False, "task": False, **nbgrader}
    return cell


def _notebook(answers: tuple[str, str] | None) -> nbformat.NotebookNode:
    """The exercise with `answers` in its two solution cells (None: as released)."""
    first, second = answers or (f"def moving_average(values, window):\n    {STUB}\n",
                                f"def normalise(values):\n    {STUB}\n")
    return new_notebook(cells=[
        new_markdown_cell("Write `moving_average` and `normalise`."),
        _cell(GIVEN, "given", locked=True),
        _cell(first, "moving_average", solution=True),
        _cell(second, "normalise", solution=True),
        _cell("check([1, 2, 3])\nassert moving_average([1, 2, 3], 2) == [1.5, 2.5]", "test_it", grade=True,
              locked=True, points=1),
    ])


def _course(tmp_path, submissions: dict[str, tuple[str, str] | None]) -> Course:
    shutil.copy2(REPO / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    (tmp_path / "solutions" / "stats").mkdir(parents=True)
    (tmp_path / "solutions" / "stats" / "assignment.toml").write_text("")
    (tmp_path / "assignments" / "stats").mkdir(parents=True)
    nbformat.write(_notebook(None), tmp_path / "assignments" / "stats" / "stats.ipynb")
    for student, answers in submissions.items():
        folder = tmp_path / "submitted" / student / "stats"
        folder.mkdir(parents=True)
        nbformat.write(_notebook(answers), folder / "stats.ipynb")
    return Course(tmp_path)


def test_a_copy_under_renamed_variables_is_flagged_and_independent_work_is_not(tmp_path):
    course = _course(tmp_path, {"ann": ORIGINAL, "bob": RENAMED, "cleo": INDEPENDENT, "dan": ANOTHER})
    report = compare(course=course, assignment="stats")
    assert [(p.first, p.second) for p in report.pairs] == [("ann", "bob")]
    assert report.pairs[0].share > 0.9
    assert report.students == ("ann", "bob", "cleo", "dan")


def test_blank_releases_are_not_similar(tmp_path):
    """Two students who handed in the release untouched share only the release's code: boilerplate."""
    course = _course(tmp_path, {"eve": None, "finn": None, "ann": ORIGINAL})
    report = compare(course=course, assignment="stats", threshold=0.01, min_tokens=1)
    assert report.pairs == ()


def test_the_report_shows_the_pair_side_by_side_escaped_and_the_course_report_links_it(tmp_path):
    hostile = (ORIGINAL[0].replace('"window must be positive"', '"</pre><script>alert(1)</script>"'), ORIGINAL[1])
    course = _course(tmp_path, {"ann": hostile, "bob": RENAMED})
    run = CliRunner().invoke(main, ["similarity", "stats", "--course-dir", str(course.root), "--json"])
    assert run.exit_code == 0, run.output
    data = json.loads(run.output)
    assert [(p["first"], p["second"]) for p in data["pairs"]] == [("ann", "bob")]
    page = (course.root / "similarity" / "stats.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<mark>") >= 2 and 'class="sides"' in page
    from autograder.report import write_report

    write_report(course, course.root / "course_report.html")
    assert 'href="similarity/stats.html"' in (course.root / "course_report.html").read_text()


def test_similarity_changes_no_grade(tmp_path):
    course = _course(tmp_path, {"ann": ORIGINAL, "bob": RENAMED})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    report = write_similarity(course=course, assignment="stats")
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert set(after) - set(before) == {report.report.relative_to(tmp_path), report.report.parent.relative_to(
        tmp_path)}, "only the report is written: no gradebook, no results"
