"""Golden files: what a tiny course's graded submission looks like to its users, byte for byte after
normalisation: results.json (what exports, the LMS and scripts read) and the feedback page (what the student
sees). A change to either shows as a diff here; `pytest tests/test_golden.py --update-goldens` accepts it.

The grader hands the page its structure through the `credit` API (a layer table and a threshold), so the golden
page also proves that tables come from `details`, not from the message's wording.
"""

from __future__ import annotations

import json
import re

import pytest

from autograder.feedback import write_feedback
from autograder.notebooks import generate_release
from autograder.pipeline import grade
from tests.conftest import REPO, submit, tiny_course

GOLDEN = REPO / "tests" / "golden"
GRADER = '''
import json

import pytest


@pytest.mark.points(1, cell="check_add")
def test_add(artifacts_dir, credit):
    """add(2, 3) is 5"""
    found = json.loads((artifacts_dir / "answer.json").read_text())["sum"]
    credit.layer_table([(1, "Input", "Input", True), (2, "add(a, b)", f"add -> {found}", found == 5)])
    assert found == 5, f"add(2, 3) should be 5, found {found}"


@pytest.mark.points(1, cell="check_add")
def test_closeness(artifacts_dir, credit):
    """How close add(2, 3) comes to 5"""
    found = json.loads((artifacts_dir / "answer.json").read_text())["sum"]
    credit.threshold(metric="closeness", measured=max(0.0, 1 - abs(found - 5) / 5), target=1.0, floor=0.5,
                     about="to add(2, 3) = 5")
'''
VOLATILE = ("execution_seconds", "grading_seconds")


def normalised_result(text: str) -> str:
    result = json.loads(text)
    for key in VOLATILE:
        result[key] = 0.0
    return json.dumps(result, indent=2, sort_keys=True) + "\n"


def normalised_page(html: str) -> str:
    return re.sub(r"\d+(\.\d+)? s\b", "N s", html)  # grading and run times


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tiny_course(tmp_path_factory.mktemp("golden"), grader=GRADER)
    generate_release(course, "tiny")
    source = (course.solutions / "tiny" / "tiny.ipynb").read_text()
    submit(course, "exact", "tiny", source.encode())
    submit(course, "off_by_one", "tiny", source.replace("return a + b", "return a + b + 1").encode())
    report = grade(course=course, assignment="tiny", jobs=2)
    write_feedback(course, list(report.results), "tiny.ipynb")
    return course


@pytest.mark.sandbox
@pytest.mark.parametrize("student", ["exact", "off_by_one"])
def test_results_and_feedback_match_the_goldens(graded, student, request):
    found = {f"{student}.results.json": normalised_result(
                 (graded.autograded / student / "tiny" / "results.json").read_text()),
             f"{student}.feedback.html": normalised_page(
                 (graded.feedback / student / "tiny" / "tiny.html").read_text())}
    for name, text in found.items():
        golden = GOLDEN / name
        if request.config.getoption("--update-goldens"):
            golden.write_text(text)
            continue
        assert golden.is_file(), f"no {golden}: run pytest {__file__} --update-goldens and review the files"
        assert text == golden.read_text(), f"{name} differs from {golden} (accept with --update-goldens)"
