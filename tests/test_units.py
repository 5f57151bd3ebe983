"""Fast checks of pure functions and small parts."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder.course import Course
from autograder.errors import ConfigError, SubmissionRejected
from autograder.execution import collect_artifacts
from autograder.keras_checks import partial_credit
from autograder.notebooks import read_submission
from autograder.results import CheckResult, SubmissionResult
from tests.conftest import exercise_module

_data = exercise_module("seq2seq", "seq2seq_data")
binary_string, binary_to_decimal, decimal_string, encode_numbers = (
    _data.binary_string, _data.binary_to_decimal, _data.decimal_string, _data.encode_numbers)


def test_lecture_example_encodes():
    data = encode_numbers(np.array([int("111101001010", 2), 42]))
    assert binary_string(data.x[0]) == "111101001010" and decimal_string(data.y[0]) == "3914"
    assert decimal_string(data.y[1]) == "0042"


def test_training_data_is_the_whole_domain_shuffled():
    data = binary_to_decimal(seed=3)
    assert sorted(data.numbers) == list(range(4096))
    assert not np.array_equal(data.numbers, binary_to_decimal(seed=4).numbers)
    assert np.array_equal(data.numbers, binary_to_decimal(seed=3).numbers)


@pytest.mark.parametrize(("value", "expected"), [(0.2, 0.0), (0.3, 0.0), (0.6, 0.5), (0.9, 1.0), (1.0, 1.0)])
def test_partial_credit(value, expected):
    assert partial_credit(value, floor=0.3, target=0.9) == pytest.approx(expected)


def test_results_round_trip(tmp_path):
    result = SubmissionResult(student="s", assignment="a", score=1.5, max_score=2, status="graded",
                              tests=(CheckResult("c", "cell", 1.5, 2, "passed", "msg"),))
    result.write(tmp_path / "r.json")
    assert SubmissionResult.from_json((tmp_path / "r.json").read_text()) == result
    assert set(json.loads(result.to_json())) >= {"score", "max_score", "status", "reason", "tests"}


@pytest.mark.parametrize(("content", "says"), [
    (None, "no notebook found"),
    (b"not json at all", "not valid JSON"),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}).encode(), "format 3"),
    (json.dumps({"nbformat": 4, "cells": "nope"}).encode(), "not a valid notebook"),
])
def test_bad_notebooks_are_rejected_with_a_reason(tmp_path, content, says):
    path = tmp_path / "nb.ipynb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SubmissionRejected, match=says):
        read_submission(path)


def test_good_notebook_reads(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    assert read_submission(path).cells[0].source == "1"


def test_config_rejects_unknown_settings(tmp_path):
    (tmp_path / "solutions" / "x").mkdir(parents=True)
    (tmp_path / "solutions" / "x" / "assignment.toml").write_text("artifacts = ['m.keras']\ntypo = 1\n")
    with pytest.raises(ConfigError, match="typo"):
        Course(tmp_path).config("x")
    with pytest.raises(ConfigError, match="no assignment"):
        Course(tmp_path).config("missing")


def test_repository_assignment_configs_load():
    course = Course(Path(__file__).resolve().parents[1])
    config = course.config("seq2seq")
    assert config.artifacts == ("seq2seq_model.keras",) and config.limits.wall_seconds > 0


def test_artifacts_never_follow_symlinks(tmp_path):
    scratch, dest = tmp_path / "scratch", tmp_path / "dest"
    scratch.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("hidden")
    (scratch / "model.keras").symlink_to(secret)
    (scratch / "ok.npz").write_bytes(b"data")
    os.mkfifo(scratch / "fifo")  # opening it must not block, and it is not a regular file
    found, missing = collect_artifacts(scratch, ("model.keras", "ok.npz", "fifo", "absent"), dest)
    assert set(found) == {"ok.npz"} and set(missing) == {"model.keras", "fifo", "absent"}
    assert (dest / "ok.npz").read_bytes() == b"data"


def test_autograded_notebook_keeps_only_safe_outputs_of_unchanged_cells():
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from autograder.notebooks import with_outputs

    restored = new_notebook(cells=[new_markdown_cell("# Task"), new_code_cell("print('hi')"),
                                   new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "a", "locked": True}}),
                                   new_code_cell("display(df)")])
    executed = copy.deepcopy(restored)
    executed.cells[1].outputs = [new_output("stream", name="stdout", text="hi\n" * 20000),
                                 new_output("display_data", data={"application/javascript": "steal()",
                                                                  "text/html": "<script>steal()</script>"})]
    executed.cells[1].execution_count = 1
    executed.cells[2].source = "x = 2"  # the sandbox rewrote a locked cell in its copy
    executed.cells[2].metadata["nbgrader"]["points"] = 100
    executed.cells[2].outputs = [new_output("stream", name="stdout", text="forged")]
    executed.cells[3].outputs = [new_output("execute_result", execution_count=3,
                                            data={"text/html": "<b>table</b>", "text/plain": "table"})]
    kept = with_outputs(restored, executed)
    nbformat.validate(kept)
    printed = kept.cells[1].outputs
    assert len(printed) == 1 and printed[0].text.endswith("characters cut by dlgrade]") and len(printed[0].text) < 21000
    locked = kept.cells[2]
    assert locked.source == "x = 1" and locked.outputs == [] and "points" not in locked.metadata.nbgrader
    assert kept.cells[3].outputs[0].data == {"text/plain": "table"}
    assert with_outputs(restored, None).cells[1].outputs == []
    assert "javascript" not in json.dumps(kept) and "<script" not in json.dumps(kept)


def test_a_damaged_results_file_is_named_not_skipped(tmp_path):
    from autograder.errors import GradingFailed
    from autograder.pipeline import load_results

    course = Course(tmp_path)
    damaged = course.autograded / "ann" / "seq2seq" / "results.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"student": "ann"')
    with pytest.raises(GradingFailed, match="ann/seq2seq/results.json is not a dlgrade result.*--student ann --force"):
        load_results(course, "seq2seq")


# --------------------------------------------------------------------------------- the typed configuration loader

@pytest.mark.parametrize("text, says", [
    ('artifacts = "model.keras"\n', "artifacts must be a list"),
    ('device = "GPU"\n', "device = 'GPU'; choose one of 'cpu', 'gpu'"),
    ('backend = "theano"\n', "backend = 'theano'; choose one of 'tensorflow', 'jax', 'torch'"),
    ("grader_seconds = -5\n", "grader_seconds = -5 must be at least 1"),
    ("cpu_threads = 1.5\n", "cpu_threads must be a whole number"),
    ("[limits]\nwall_seconds = \"10 min\"\n", "limits.wall_seconds must be a number"),
    ("[limits]\nmemory = 1\n", "unknown setting(s) in [limits]: memory"),
    ("artefacts = []\n", "unknown setting(s): artefacts"),
    ('[probe]\nscript = "p.py"\ninputs = "i.py"\ncells = "build"\n', "probe.cells must be a list"),
    ('[[resources]]\nname = "Model Dir"\nenv = "X"\n', "resources: name must be lower-case"),
    ('artifacts = ["../model.keras"]\n', "plain file names, not paths"),
    ("position = true\n", "position must be a whole number"),
])
def test_assignment_toml_is_checked_where_it_is_read(tmp_path, text, says):
    """Every value of assignment.toml is type- and range-checked, the error naming the file and the key."""
    from autograder.course import load_assignment

    path = tmp_path / "assignment.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_assignment(path, "lab1")
    assert str(path) in str(error.value) and says in str(error.value), str(error.value)


def test_a_valid_assignment_toml_becomes_typed_values(tmp_path):
    from autograder.course import load_assignment
    from autograder.execution import kernel_env
    from autograder.graders import server_env

    (tmp_path / "other.toml").write_text('artifacts = ["m.keras"]\n')
    path = tmp_path / "assignment.toml"
    path.write_text('position = 3\nartifacts = ["m.keras"]\nbackend = "jax"\ncpu_threads = 2\n'
                    '[limits]\nwall_seconds = 90\n[[resources]]\nname = "data"\nenv = "DATA_DIR"\n')
    config = load_assignment(path, "lab1")
    assert (config.position, config.artifacts, config.limits.wall_seconds) == (3, ("m.keras",), 90.0)
    assert config.resources[0].name == "data" and config.resources[0].build == ""
    env = kernel_env(config)
    assert env["KERAS_BACKEND"] == "jax" and "intra_op_parallelism_threads=2" in env["XLA_FLAGS"]
    assert config.preload_modules == ("numpy", "jax", "keras")  # the warm pool preloads the backend's framework
    graders = server_env(config.backend)  # and the graders load the artifacts on the backend that wrote them
    assert graders["KERAS_BACKEND"] == "jax" and "intra_op_parallelism_threads=1" in graders["XLA_FLAGS"]
    assert load_assignment(path.with_name("other.toml"), "lab2").preload_modules == ("numpy", "tensorflow", "keras")


def test_a_plan_travels_as_json_unchanged(tmp_path):
    """What a Slurm task reads back is the batch's plan, checked by the same loader."""
    from autograder.course import load_assignment
    from autograder.plan import BatchPlan
    from autograder.resources import Resource, ResourceSet

    path = tmp_path / "assignment.toml"
    path.write_text('artifacts = ["m.keras"]\n[probe]\nscript = "p.py"\ninputs = "i.py"\ncells = ["a"]\n')
    plan = BatchPlan(course_root=tmp_path, config=load_assignment(path, "lab1"), points={"check": 2.0},
                     resources=ResourceSet((Resource("data", "DATA_DIR", tmp_path / "d", "built by b.py"),)))
    again = BatchPlan.from_json(plan.to_json(), origin=tmp_path / "plan.json")
    assert (again.config, again.points, again.resources, again.max_score) == (
        plan.config, plan.points, plan.resources, 2.0)


def test_the_command_lines_defaults_are_the_librarys():
    """`dlgrade grade --jobs` has no default of its own: it reads grade()'s, so the two cannot drift apart."""
    import inspect

    from autograder.cli import grade as grade_command
    from autograder.pipeline import grade

    jobs = next(option for option in grade_command.params if option.name == "jobs")
    assert callable(jobs.default) and jobs.default() == inspect.signature(grade).parameters["jobs"].default == 0
