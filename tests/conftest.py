"""Shared fixtures: a throw-away copy of the course, generated with nbgrader, with submissions written in code."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import socket
import sys
import threading
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.course import Course, copy_course

REPO = Path(__file__).resolve().parents[1]
FAST_TIER = os.environ.get("DLGRADE_TEST_TIER") == "fast"  # make test-fast: pure tests only, and proven so
HEAVY_MODULES = ("tensorflow", "keras", "keras_hub", "jax", "torch")


class _NoHeavyImports:
    """In the fast tier, importing a deep-learning framework fails the test that does it, saying how to fix it."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY_MODULES:
            raise ImportError(f"make test-fast imports no {name}: mark this test @pytest.mark.sandbox or slow")
        return None


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise RuntimeError(f"make test-fast starts no {what}: mark this test @pytest.mark.sandbox or slow")
    return refused


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite tests/golden/ from this run instead of comparing with it")


def pytest_configure(config):
    if not FAST_TIER:
        return
    sys.meta_path.insert(0, _NoHeavyImports())
    import jupyter_client

    from autograder import sandbox

    sandbox.start = _refuse("sandbox")
    sandbox.check_sandbox = _refuse("sandbox")
    jupyter_client.KernelManager.start_kernel = _refuse("Jupyter kernel")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (`pytest -n N --dist loadgroup`)
def pytest_collection_modifyitems(config, items):
    """Tests that share an expensive fixture run in one worker, so that it is built once per run: a test that reads
    a shared batch names its group (`xdist_group("batch-<assignment>")`, the batch's tests in every module); any
    other test that uses a module-scoped fixture of its own module goes in its module's group; the rest run
    wherever a worker is free."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        if "shared_batch" in item.fixturenames:
            raise pytest.UsageError(f"{item.nodeid} reads a shared batch: mark it xdist_group('batch-<assignment>')")
        module = item.nodeid.split("::")[0]
        if any(definition.scope == "module" and definition.baseid == module
               for definitions in item._fixtureinfo.name2fixturedefs.values() for definition in definitions):
            item.add_marker(pytest.mark.xdist_group(module))


@functools.cache
def exercise_module(assignment: str, name: str) -> types.ModuleType:
    """`solutions/<assignment>/<name>.py` (`name` may be "graders/probe_inputs"), imported by path under a name of
    its own; the exercise's folder (and the file's) is on sys.path while it loads, as in the sandbox, where the
    notebook's folder is the working directory, and in the grader process."""
    folder = REPO / "solutions" / assignment
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"exercise_{assignment}_{name.replace('/', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    added = [str(folder), str(path.parent)]
    sys.path[:0] = added
    try:
        spec.loader.exec_module(module)
    finally:
        for entry in added:
            sys.path.remove(entry)
    return module


def make_course(root: Path, assignments: tuple[str, ...] = ("seq2seq",)) -> Course:
    """A course at `root` with the repository's config and the given assignments' sources, releases generated."""
    from autograder.notebooks import generate_release

    course = copy_course(Course(REPO), root, assignments)
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
def shared_batch(tmp_path_factory):
    """`shared_batch(assignment)`: the session's graded batch of every submission the modules added for it
    (tests/batches.py; one module, imported by that one name everywhere, so every module adds to the same batch)."""
    from tests.batches import BATCHES

    return lambda assignment: BATCHES.graded(assignment, tmp_path_factory.mktemp(f"shared-{assignment}"))


def _cell(source: str, grade_id: str, **nbgrader) -> dict:
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "schema_version": 3, "task": False, "grade": False,
                                 "solution": False, "locked": False, **nbgrader}
    return cell


GRADER = '''
import json
from pathlib import Path

import pytest


@pytest.mark.points(2, cell="check_add")
def test_add(artifacts_dir):
    """add(2, 3) is 5"""
    path = artifacts_dir / "answer.json"
    assert path.exists(), "the notebook did not save answer.json"
    assert json.loads(path.read_text())["sum"] == 5, "add(2, 3) should be 5"
'''


# `tiny` needs no Keras: its warm kernels and grader processes preload numpy only (the default, TensorFlow and
# Keras, costs each sandbox start seconds of CPU; the real exercises' batches prove that preload).
TINY_PRELOAD = 'preload = ["numpy"]'


def tiny_course(root, grader: str = GRADER) -> Course:
    """A course with one assignment `tiny`: write add(a, b); a locked cell saves add(2, 3) as the artifact."""
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    folder = root / "solutions" / "tiny"
    (folder / "graders").mkdir(parents=True)
    notebook = new_notebook(cells=[
        _cell("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION", "add", solution=True),
        _cell("import json\njson.dump({'sum': add(2, 3)}, open('answer.json', 'w'))", "save", locked=True),
        _cell("assert add(1, 1) == 2", "check_add", grade=True, locked=True, points=2),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, folder / "tiny.ipynb")
    (folder / "assignment.toml").write_text(
        f'artifacts = ["answer.json"]\n{TINY_PRELOAD}\n[limits]\nwall_seconds = 60\n')
    (folder / "graders" / "test_tiny.py").write_text(grader)
    return Course(root)


# A probe for `tiny`: add() is called in a fresh sandbox on integers drawn for each submission.
PROBE_INPUTS = '''
import numpy as np


def make_inputs(seed):
    a, b = np.random.default_rng(seed).integers(0, 1000, size=(2, 8))
    return {"a": a, "b": b}
'''

PROBE = '''
import numpy as np


def run(namespace, inputs, artifacts):
    add = namespace["add"]
    return {"sums": np.array([add(int(a), int(b)) for a, b in zip(inputs["a"], inputs["b"], strict=True)])}
'''

PROBE_GRADER = '''
import json

import numpy as np
import probe_inputs
import pytest


@pytest.mark.points(2, cell="check_add")
def test_add_on_hidden_inputs(artifacts_dir):
    """add() on inputs drawn for this submission"""
    about = json.loads((artifacts_dir / "probe.json").read_text())
    path = artifacts_dir / "probe.npz"
    assert path.exists(), f"add() could not be called: {about['problems']}"
    found = np.load(path, allow_pickle=False)
    assert "sums" in found, f"add() gave no sums: {dict(found).get('error_probe', about['problems'])}"
    inputs = probe_inputs.make_inputs(about["seed"])
    sums = found["sums"]
    assert sums.dtype.kind in "iu" and sums.shape == inputs["a"].shape, f"add() should return ints, found {sums.dtype}"
    assert np.array_equal(sums, inputs["a"] + inputs["b"]), "add() gives wrong sums"
'''

PROBE_CONFIG = '''[probe]
script = "probe.py"
inputs = "probe_inputs.py"
cells = ["add"]
wall_seconds = 60
'''


def tiny_probe_course(root, *, settings: str = "", limits: str = "wall_seconds = 60\n") -> Course:
    """`tiny` graded through a probe: add() called in a fresh sandbox on inputs the host draws per submission.

    `settings` are more top-level lines of assignment.toml, `limits` the lines of its [limits] table."""
    course = tiny_course(root, PROBE_GRADER)
    graders = course.graders("tiny")
    (graders / "probe.py").write_text(PROBE)
    (graders / "probe_inputs.py").write_text(PROBE_INPUTS)
    (course.solutions / "tiny" / "assignment.toml").write_text(
        f'artifacts = ["answer.json"]\n{TINY_PRELOAD}\n{settings}\n{PROBE_CONFIG}\n[limits]\n{limits}')
    return course


@pytest.fixture(scope="module")
def listener():
    """A TCP listener on the host's loopback, (port, connections accepted): no sandbox may reach it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()
