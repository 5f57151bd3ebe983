"""`dlgrade validate` both ways, on a tiny assignment built in code (a real kernel and sandbox, no training),
and on the real seq2seq assignment of the repository."""

from __future__ import annotations

import nbformat
import pytest
from click.testing import CliRunner

from autograder.cli import main
from autograder.errors import ValidationFailed
from autograder.pipeline import validate
from tests.conftest import GRADER, tiny_course, tiny_probe_course

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras


def test_validate_passes_for_a_sound_grader(tmp_path):
    reference, blank = validate(course=tiny_course(tmp_path), assignment="tiny")
    assert (reference.score, blank.score, reference.max_score) == (2, 0, 2)


def test_validate_without_sandbox_runs_the_same_pipeline(tmp_path):
    reference, blank = validate(course=tiny_course(tmp_path), assignment="tiny", isolated=False)
    assert (reference.score, blank.score) == (2, 0)


def test_validate_fails_when_the_blank_release_earns_points(tmp_path):
    lenient = GRADER.replace('assert path.exists(), "the notebook did not save answer.json"', "return")
    with pytest.raises(ValidationFailed, match="blank release earned 2"):
        validate(course=tiny_course(tmp_path, lenient), assignment="tiny")


def test_validate_fails_when_points_do_not_match_the_notebook(tmp_path):
    with pytest.raises(ValidationFailed, match="points per cell"):
        validate(course=tiny_course(tmp_path, GRADER.replace("points(2", "points(3")), assignment="tiny")


def test_validate_from_the_command_line(tmp_path):
    """The CLI forwards to the same library function: ok with whole points, exit code 0; a failure exits 1."""
    course = tiny_course(tmp_path)
    run = CliRunner().invoke(main, ["validate", "tiny", "--course-dir", str(course.root)])
    assert run.exit_code == 0, run.output
    assert "tiny: ok (reference 2/2, blank 0/2)" in run.output
    (course.graders("tiny") / "test_tiny.py").write_text(GRADER.replace("points(2", "points(3"))
    failed = CliRunner().invoke(main, ["validate", "tiny", "--course-dir", str(course.root)])
    assert failed.exit_code == 1 and "points per cell" in failed.output


def test_probe_calls_student_code_in_a_fresh_sandbox_and_leaves_the_notebook_alone(tmp_path):
    course = tiny_probe_course(tmp_path)
    reference, blank = validate(course=course, assignment="tiny")
    assert (reference.score, blank.score) == (2, 0)
    assert "NotImplementedError" in blank.tests[0].output

    from autograder.notebooks import generate_release
    from autograder.pipeline import grade
    from tests.conftest import submit

    generate_release(course, "tiny")
    submit(course, "ann", "tiny", (course.solutions / "tiny" / "tiny.ipynb").read_bytes())
    (result,) = grade(course=course, assignment="tiny").results
    executed = nbformat.read(course.autograded / "ann" / "tiny" / "tiny.ipynb", as_version=4)
    source = nbformat.read(course.submitted / "ann" / "tiny" / "tiny.ipynb", as_version=4)
    assert result.score == 2
    assert [c.source for c in executed.cells] == [c.source for c in source.cells], "no cell added for grading"


def test_the_gradebook_url_comes_from_nbgrader_config(tmp_path):
    """Any SQLAlchemy URL set as nbgrader's CourseDirectory.db_url is where grades go (and where nbgrader looks)."""
    import subprocess
    import sys
    from pathlib import Path

    from autograder.notebooks import generate_release
    from autograder.pipeline import grade
    from tests.conftest import submit

    course = tiny_course(tmp_path)
    (tmp_path / "grades").mkdir()
    with open(tmp_path / "nbgrader_config.py", "a") as config:
        config.write('\nc.CourseDirectory.db_url = "sqlite:///grades/course.db"\n')
    assert course.db_url == f"sqlite:///{tmp_path / 'grades' / 'course.db'}"
    generate_release(course, "tiny")
    submit(course, "ann", "tiny", (course.solutions / "tiny" / "tiny.ipynb").read_bytes())
    grade(course=course, assignment="tiny")
    assert (tmp_path / "grades" / "course.db").exists() and not (tmp_path / "gradebook.db").exists()
    nbgrader = Path(sys.prefix) / "bin" / "nbgrader"
    done = subprocess.run([str(nbgrader), "export", "--to", str(tmp_path / "out.csv")], cwd=tmp_path,
                          capture_output=True, text=True, env={"PATH": f"{nbgrader.parent}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ann" in (tmp_path / "out.csv").read_text()
