"""The engine apart from the course (issue 11): `autograder/` names no exercise, a release needs nothing of the
instructor's tools, and a new exercise is one folder: `solutions/<new>/` (notebook, assignment.toml, helpers
released beside the notebook, examples.py, graders/) graded end to end without touching an engine file.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys

import nbformat
import pytest

from autograder.course import Course
from tests.conftest import REPO, _cell

ENGINE = REPO / "autograder"
# What a student's machine has: Keras and its backend (tensorflow: only the instructor's recipe of the transfer
# base names it, under a backend check), keras-hub, safetensors and transformers for the BERT exercises, the
# scientific stack a Keras course assumes, and the standard library.
STUDENT_PACKAGES = {"keras", "tensorflow", "keras_hub", "numpy", "matplotlib", "safetensors", "transformers"}
INSTRUCTOR_ONLY = {"autograder", "nbgrader", "psutil", "nbclient", "jupyter_client", "pytest"}


def test_the_engine_names_no_exercise_and_holds_no_course_content():
    """No exercise id, no BERT, no checkpoint, no data file anywhere in autograder/: all of that lives in
    solutions/<a>/. (The words would come back with a constant that lists exercises or a step for one.)"""
    names = [path.name for path in (REPO / "solutions").iterdir() if (path / "assignment.toml").is_file()]
    assert len(names) >= 5
    words = re.compile(r"\b(" + "|".join(map(re.escape, [*names, "bert", "checkpoint"])) + r")", re.IGNORECASE)
    found = {f"{path.name}:{number}: {line.strip()}"
             for path in ENGINE.rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1) if words.search(line)}
    assert not found, "the engine names course content:\n" + "\n".join(sorted(found))
    assert sorted(p.name for p in ENGINE.iterdir() if not p.name.endswith(".py") and p.name != "__pycache__") == []


def _imports(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("release", sorted(p.name for p in (REPO / "assignments").iterdir() if p.is_dir()))
def test_a_release_imports_only_what_a_student_has(release):
    """Every import of a released notebook and of the helpers beside it is the standard library, a student's
    package (Keras, keras-hub, ...) or a file of the release itself; never dlgrade, nbgrader or psutil."""
    folder = REPO / "assignments" / release
    own = {path.stem for path in folder.glob("*.py")}
    sources = [path.read_text() for path in folder.glob("*.py")]
    for path in folder.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        sources += ["\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
                    for cell in notebook.cells if cell.cell_type == "code"]
    imported = set().union(*map(_imports, sources))
    foreign = imported - own - STUDENT_PACKAGES - set(sys.stdlib_module_names)
    assert not foreign, f"{release} imports {sorted(foreign)}, which a student's machine lacks"
    assert not imported & INSTRUCTOR_ONLY


# --------------------------------------------------------------------------------- a sixth exercise, one folder

NEW = "lab6"
NOTEBOOK_CELLS = [
    ("from lab6_data import SEQUENCE, scaled  # a helper released beside the notebook\nimport json", None, {}),
    ("try:\n    import autograder  # noqa: F401\n    ENGINE = True\nexcept ImportError:\n    ENGINE = False", None, {}),
    ("def double(values):\n    ### BEGIN SOLUTION\n    return [2 * v for v in values]\n    ### END SOLUTION",
     "double", {"solution": True}),
    ("json.dump({'doubled': double(SEQUENCE), 'scaled': scaled(SEQUENCE), 'engine_importable': ENGINE},\n"
     "          open('lab6.json', 'w'))", "save", {"locked": True}),
    ("assert double([1]) == [2]", "check_double", {"grade": True, "locked": True, "points": 3}),
]
HELPER = '"""Data of lab6, released with the notebook."""\n\nSEQUENCE = [1, 2, 3]\n\n\ndef scaled(values):\n' \
         '    return [v / 10 for v in values]\n'
CONFIG = 'position = 0  # first in the course\nartifacts = ["lab6.json"]\npreload = []\n\n[limits]\nwall_seconds = 60\n'
GRADERS = '''
import json

import pytest
from lab6_data import SEQUENCE  # the exercise's own helper, on the graders' path


@pytest.mark.points(2, cell="check_double")
def test_doubles(artifacts_dir):
    """double() doubles every value"""
    found = json.loads((artifacts_dir / "lab6.json").read_text())
    assert found["doubled"] == [2 * v for v in SEQUENCE], f"expected doubles of {SEQUENCE}, found {found['doubled']}"


@pytest.mark.points(1, cell="check_double")
def test_no_engine_in_the_sandbox(artifacts_dir):
    """The notebook ran where dlgrade cannot be imported"""
    assert json.loads((artifacts_dir / "lab6.json").read_text())["engine_importable"] is False
'''
EXAMPLES = '''
from autograder.examples import HONEST, Example, replace_in

EXAMPLES = (
    *HONEST,
    Example("triples", "triples instead of doubling: loses the 2 points of the doubling check",
            lambda reference, release: replace_in(reference, "double", "2 * v", "3 * v")),
)
'''


def write_new_exercise(course_root) -> None:
    """solutions/lab6/ as an instructor writes it: nothing else of the course or the engine is touched."""
    folder = course_root / "solutions" / NEW
    (folder / "graders").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})
    for number, (source, grade_id, meta) in enumerate(NOTEBOOK_CELLS):
        notebook.cells.append(_cell(source, grade_id, **meta) if grade_id else nbformat.v4.new_code_cell(source))
        notebook.cells[-1].id = f"cell-{number}"
    nbformat.write(notebook, folder / f"{NEW}.ipynb")
    (folder / "lab6_data.py").write_text(HELPER)
    (folder / "assignment.toml").write_text(CONFIG)
    (folder / "graders" / "test_lab6.py").write_text(GRADERS)
    (folder / "examples.py").write_text(EXAMPLES)


@pytest.mark.sandbox
def test_a_sixth_exercise_is_one_folder_graded_end_to_end(tmp_path):
    """A throwaway exercise added the way the README says (solutions/<new>/ only) is released with its helper,
    comes first by its position, has its examples written and graded in the sandbox (where dlgrade cannot be
    imported), and each example earns what it should."""
    from autograder.examples import write_examples
    from autograder.notebooks import generate_release
    from autograder.pipeline import grade

    shutil.copy2(REPO / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    shutil.copytree(REPO / "solutions" / "seq2seq", tmp_path / "solutions" / "seq2seq")
    write_new_exercise(tmp_path)
    course = Course(tmp_path)
    assert course.assignments() == [NEW, "seq2seq"], "the course's order comes from each assignment's position"
    generate_release(course, NEW)
    released = sorted(p.name for p in (course.releases / NEW).iterdir())
    assert released == ["lab6.ipynb", "lab6_data.py"], "the helper is released, examples.py and graders are not"
    examples = write_examples(course, NEW)
    assert [e.student for e in examples] == ["reference", "blank", "triples"]
    report = grade(course=course, assignment=NEW, jobs=2)
    scores = {r.student: (r.score, r.max_score, r.status) for r in report.results}
    assert scores == {"reference": (3.0, 3.0, "graded"), "blank": (0.0, 3.0, "graded"),
                      "triples": (1.0, 3.0, "graded")}, [(r.student, r.reason, r.tests) for r in report.results]
    saved = json.loads((course.autograded / "reference" / NEW / "artifacts" / "lab6.json").read_text())
    assert saved == {"doubled": [2, 4, 6], "scaled": [0.1, 0.2, 0.3], "engine_importable": False}


def test_a_built_wheel_carries_the_templates_and_renders_a_page(tmp_path):
    """The templates stay in the course layout's templates/ and ship in the wheel as autograder.templates: an
    installed wheel (not this checkout) renders a feedback page from them."""
    import subprocess

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("dlgrade-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    code = ("import autograder, sys\n"
            "from autograder.feedback import render_feedback\n"
            "from autograder.results import SubmissionResult\n"
            "page = render_feedback(SubmissionResult(student='ann', assignment='lab1', score=1, max_score=2,"
            " status='graded'))\n"
            "print(autograder.__file__)\nprint('ann' in page and '<html' in page.lower())\n")
    rendered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                              env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert rendered.returncode == 0, rendered.stderr
    where, ok = rendered.stdout.split()
    assert where.startswith(str(site)) and ok == "True", rendered.stdout


def test_the_fast_tier_refuses_tensorflow_and_sandboxes(tmp_path):
    """Under make test-fast (DLGRADE_TEST_TIER=fast) a test that imports Keras or starts a sandbox fails, naming
    the marker to add, so the tier stays pure without anyone remembering to check."""
    import os
    import subprocess

    probe = REPO / "tests" / f"test_zz_tier_probe_{os.getpid()}.py"  # inside tests/, so conftest.py applies
    probe.write_text("def test_imports_keras():\n    import keras  # noqa: F401\n\n\n"
                     "def test_starts_a_sandbox(tmp_path):\n    from autograder import sandbox\n"
                     "    sandbox.start(['true'], scratch=tmp_path, limits=sandbox.Limits(), mounts=())\n")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
                              capture_output=True, text=True, cwd=REPO, env={**os.environ, "DLGRADE_TEST_TIER": "fast"})
    finally:
        probe.unlink()
    assert "2 failed" in done.stdout, done.stdout[-2000:]
    assert "make test-fast imports no keras" in done.stdout and "make test-fast starts no sandbox" in done.stdout
