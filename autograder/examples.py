"""Example submissions built from an assignment's notebooks: honest, mistaken, broken and hostile.

Each exercise lists its own in `solutions/<a>/examples.py` (`EXAMPLES`, a tuple of `Example`); `make demo` grades
them and the tests use them, so a grader is always proven on the same notebooks a newcomer sees. Each example's
`build` takes the reference (solution) and release notebooks and returns a submission (a notebook, or raw bytes
for a file that is not one). This module offers the building blocks: `Example`, `HONEST`, `replace_in`, `cell`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import EXAMPLES_FILE, Course
from autograder.errors import ConfigError


def cell(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    """The cell of `notebook` with nbgrader grade_id `grade_id` (KeyError if none)."""
    for each in notebook.cells:
        if each.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return each
    raise KeyError(grade_id)


def replace_in(notebook: nbformat.NotebookNode, grade_id: str, old: str, new: str) -> nbformat.NotebookNode:
    """A copy of `notebook` with `old` replaced by `new` in cell `grade_id` (ValueError unless `old` is there)."""
    changed = copy.deepcopy(notebook)
    found = cell(changed, grade_id)
    if old not in found.source:
        raise ValueError(f"{old!r} not in cell {grade_id}")
    found.source = found.source.replace(old, new)
    return changed


def first_unlocked_code(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The first code cell that nbgrader does not manage (the release's setup cell)."""
    return next(c for c in notebook.cells if c.cell_type == "code" and "nbgrader" not in c.get("metadata", {}))


@dataclass(frozen=True)
class Example:
    """An example submission: who it is, what it shows, and how to build it from (reference, release)."""

    student: str
    shows: str
    build: Callable[[nbformat.NotebookNode, nbformat.NotebookNode], nbformat.NotebookNode | bytes]
    time_limit: float | None = None  # seconds: graded apart under this wall-time limit (a notebook that never
    #                                   ends need not hold a slot for the whole limit the others need)


HONEST = (  # every assignment's first two examples
    Example("reference", "the instructor's solution: full marks", lambda reference, release: reference),
    Example("blank", "the release as handed out: zero", lambda reference, release: release),
)


def load_examples(course: Course, assignment: str) -> tuple[Example, ...]:
    """`EXAMPLES` of `solutions/<assignment>/examples.py`; () when the exercise has no such file."""
    path = course.exercise_dir(assignment) / EXAMPLES_FILE
    if not path.is_file():
        return ()
    name = "dlgrade_examples_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    examples = getattr(module, "EXAMPLES", None)
    if not isinstance(examples, tuple | list) or not all(isinstance(e, Example) for e in examples):
        raise ConfigError(f"{path}: EXAMPLES must be a tuple of autograder.examples.Example")
    return tuple(examples)


def write_examples(course: Course, assignment: str) -> tuple[Example, ...]:
    """Write every example submission of `assignment` into submitted/<student>/<assignment>/."""
    config = course.config(assignment)
    reference = nbformat.read(course.solutions / assignment / config.notebook_name, as_version=4)
    release = nbformat.read(course.releases / assignment / config.notebook_name, as_version=4)
    examples = load_examples(course, assignment)
    for example in examples:
        target: Path = course.submitted / example.student / assignment / config.notebook_name
        target.parent.mkdir(parents=True, exist_ok=True)
        built = example.build(reference, release)
        if isinstance(built, bytes):
            target.write_bytes(built)
        else:
            nbformat.write(built, target)
    return examples
