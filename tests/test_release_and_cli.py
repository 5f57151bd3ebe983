"""The committed releases match solutions/ and hide what they must; every command is documented and answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from autograder.cli import main
from autograder.course import Course
from tests.conftest import REPO, make_course

COMMITTED = Course(REPO)


def _cells(path: Path) -> list[tuple[str, str, dict]]:
    notebook = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, c.get("metadata", {}).get("nbgrader", {})) for c in notebook.cells]


@pytest.mark.slow  # nbgrader or a Jupyter server for each case: seconds apiece
@pytest.mark.parametrize("assignment", COMMITTED.assignments())
def test_committed_release_is_up_to_date(tmp_path, assignment):
    fresh = make_course(tmp_path / "course", (assignment,))
    config = COMMITTED.config(assignment)
    committed = COMMITTED.releases / assignment / config.notebook_name
    assert committed.exists(), f"run `dlgrade generate {assignment}` and commit assignments/{assignment}"
    assert _cells(committed) == _cells(fresh.releases / assignment / config.notebook_name), (
        f"assignments/{assignment} is out of date with solutions/: run `dlgrade generate {assignment}`")
    assert sorted(p.name for p in (fresh.releases / assignment).iterdir()) == sorted(
        p.name for p in (COMMITTED.releases / assignment).iterdir())


@pytest.mark.parametrize("assignment", COMMITTED.assignments())
def test_release_holds_no_solution_and_no_grader(assignment):
    release = COMMITTED.releases / assignment
    names = {p.name for p in release.rglob("*")}
    assert "graders" not in names and "assignment.toml" not in names and not any(n.startswith("test_") for n in names)
    text = "".join(source for _, source, _ in _cells(release / COMMITTED.config(assignment).notebook_name))
    assert "BEGIN SOLUTION" not in text and "HIDDEN_SAMPLE_SEED" not in text
    for grader in COMMITTED.graders(assignment).glob("*.py"):
        for line in grader.read_text().splitlines():
            if "SEED" in line and "=" in line:
                assert line.strip() not in text


def _commands():
    return sorted(main.commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_example_and_readme_entry(command):
    run = CliRunner().invoke(main, [command, "--help"])
    assert run.exit_code == 0 and "Example" in run.output and "--course-dir" in run.output
    assert f"dlgrade {command}" in (REPO / "README.md").read_text(), f"README has no example of dlgrade {command}"


def test_help_does_not_import_tensorflow():
    code = "import sys\nfrom autograder.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit: pass\n" \
           "print('tensorflow' in sys.modules, 'nbgrader' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().endswith("False False"), done.stdout + done.stderr


def test_errors_are_sentences_not_tracebacks(tmp_path):
    run = CliRunner().invoke(main, ["grade", "nope", "--course-dir", str(REPO)])
    assert run.exit_code == 1 and "no assignment 'nope'" in run.output and "Traceback" not in run.output
    run = CliRunner().invoke(main, ["export", "--course-dir", str(tmp_path)])
    assert run.exit_code != 0
