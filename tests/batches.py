"""Graded batches built once per test run and shared by every test module that reads them (see SharedBatches).

Test modules import this module as `tests.batches` (never by another name), so there is one BATCHES: pytest
imports conftest.py and the test modules under names of its own, and a module-level registry there would exist
twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from tests.conftest import REPO, make_course, submit

Build = Callable[[Course], bytes | None]  # a submission's file from the course it goes to (None: an empty folder)


@dataclass(frozen=True)
class Submission:
    build: Build
    key: object  # the same student added twice must be the same submission: equal keys (see _stable_key)
    time_limit: float | None  # graded apart, under this wall-time limit (seconds); None: the assignment's


@dataclass(frozen=True)
class SharedBatch:
    course: Course
    results: dict  # student -> SubmissionResult


class SharedBatches:
    """Graded batches built once per test run and shared by every test module that reads them.

    A module adds its submissions when it is imported (at collection, before any test runs); the first test that
    asks for an assignment's batch grades everything added for it in one sandboxed batch (submissions with a time
    limit of their own in a second one), in a course of its own; later tests read the same results. A module run
    alone adds, and so trains, only what it reads.
    """

    def __init__(self):
        self._added: dict[str, dict[str, Submission]] = {}
        self._graded: dict[str, SharedBatch] = {}

    def add(self, assignment: str, student: str, build: Build, *, key: object = None,
            time_limit: float | None = None) -> None:
        submission = Submission(build, _stable_key(build) if key is None else key, time_limit)
        known = self._added.setdefault(assignment, {}).get(student)
        if known is not None and known.key != submission.key:
            raise ValueError(f"{assignment}: two different submissions for {student!r}")
        self._added[assignment].setdefault(student, submission)

    def add_examples(self, assignment: str) -> None:
        """Every example of solutions/<assignment>/examples.py (the demo's), keyed by its Example, under its own
        time limit where it has one."""
        from autograder.examples import load_examples

        for example in load_examples(Course(REPO), assignment):
            self.add(assignment, example.student, functools.partial(_example_file, assignment, example),
                     key=_example_key(assignment, example), time_limit=example.time_limit)

    def add_honest(self, assignment: str) -> None:
        """The reference and the blank release (the first two examples of every exercise)."""
        from autograder.examples import HONEST

        for example in HONEST:
            self.add(assignment, example.student, functools.partial(_example_file, assignment, example),
                     key=_example_key(assignment, example))

    def graded(self, assignment: str, root: Path) -> SharedBatch:
        if assignment not in self._graded:
            from autograder.pipeline import grade

            course = make_course(root, (assignment,))
            added = self._added.get(assignment, {})
            for student, submission in added.items():
                submit(course, student, assignment, submission.build(course))
            results = {}
            for limit in dict.fromkeys(s.time_limit for s in added.values()):
                students = tuple(student for student, s in added.items() if s.time_limit == limit)
                batch = grade(course=course, assignment=assignment, students=students, jobs=2, time_limit=limit)
                results.update({result.student: result for result in batch.results})
            self._graded[assignment] = SharedBatch(course, results)
        return self._graded[assignment]


def in_batch(assignment: str) -> pytest.MarkDecorator:
    """Mark a test that reads `assignment`'s shared batch: under pytest-xdist every such test, in whichever module,
    runs in the one worker that grades it (conftest.py refuses a test that reads a batch without this mark)."""
    return pytest.mark.xdist_group(f"batch-{assignment}")


def _stable_key(build: Build) -> tuple:
    """What a builder is, by name and arguments: the same when its module is imported twice (pytest imports a test
    module under its own name, and `from tests.test_x import ...` in another module imports it again)."""
    if isinstance(build, functools.partial):
        return (_stable_key(build.func), build.args, sorted(build.keywords.items()))
    code = getattr(build, "__code__", None)
    return (build.__module__.rsplit(".", 1)[-1], build.__qualname__, code.co_firstlineno if code else None)


def _example_key(assignment: str, example) -> tuple:
    return assignment, "example", example.student, example.shows


def _example_file(assignment: str, example, course: Course) -> bytes:
    name = course.config(assignment).notebook_name
    built = example.build(nbformat.read(course.solutions / assignment / name, as_version=4),
                          nbformat.read(course.releases / assignment / name, as_version=4))
    return built if isinstance(built, bytes) else nbformat.writes(built).encode()


BATCHES = SharedBatches()  # test modules add to it at import; conftest's `shared_batch` fixture grades
