"""Shared fixtures: a throw-away copy of the course, generated with nbgrader, with submissions written in code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autograder.course import Course

REPO = Path(__file__).resolve().parents[1]


def make_course(root: Path, assignments: tuple[str, ...] = ("seq2seq",)) -> Course:
    """A course at `root` with the repository's config and the given assignments' sources, releases generated."""
    from autograder.notebooks import generate_release

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for assignment in assignments:
        shutil.copytree(REPO / "solutions" / assignment, root / "solutions" / assignment)
    course = Course(root)
    for assignment in assignments:
        generate_release(course, assignment)
    return course


def submit(course: Course, student: str, assignment: str, content: bytes | None, name: str | None = None) -> Path:
    """Place `content` as a student's submission (None: an empty submission folder)."""
    folder = course.submitted / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or f"{assignment}.ipynb")
    if content is not None:
        target.write_bytes(content)
    return target


@pytest.fixture(scope="session")
def seq2seq_course(tmp_path_factory) -> Course:
    return make_course(tmp_path_factory.mktemp("course"))
