"""Batches that survive: a real SIGKILL in the middle and a second run that finishes the job, and grading that
gives the same scores every time (seeded training, deterministic TensorFlow ops)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.notebooks import generate_release
from autograder.pipeline import grade
from tests.conftest import REPO, _cell, submit, tiny_course

pytestmark = pytest.mark.slow


def test_sigkill_in_the_middle_then_rerun_finishes_the_batch(tmp_path):
    course = tiny_course(tmp_path)
    generate_release(course, "tiny")
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    reference.cells.insert(1, nbformat.v4.new_code_cell("import time\ntime.sleep(2)"))
    students = [f"s{i}" for i in range(6)]
    for student in students:
        submit(course, student, "tiny", nbformat.writes(reference).encode())
    command = [str(Path(sys.prefix) / "bin" / "dlgrade"), "grade", "tiny", "--jobs", "2",
               "--course-dir", str(course.root)]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(course.autograded.glob("*/tiny/results.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    descendants = psutil.Process(first.pid).children(recursive=True)  # sandboxes, kernels, graders
    assert descendants, "the batch should be running sandboxes when it is killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = {p.parts[-3] for p in course.autograded.glob("*/tiny/results.json")}
    assert 2 <= len(done_before) < len(students), "the kill should land in the middle of the batch"
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert alive == [], f"a killed batch left processes behind: {alive}"

    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "skipped" in second.stdout and all(s in second.stdout for s in done_before)
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        scores = sorted((s.student.id, s.score) for s in gradebook.assignment_submissions("tiny"))
    assert scores == [(student, 2.0) for student in students], "each submission once, with its grade"


TRAINING = """
import numpy as np
import keras
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype("float32")
y = (x[:, :4].sum(axis=1) > x[:, 4:].sum(axis=1)).astype("int32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dropout(0.3), keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
model.save("model.keras")
print("trained on", keras.backend.backend())
"""

ACCURACY_GRADER = '''
import numpy as np
import pytest

from autograder.keras_checks import load_model


@pytest.mark.points(2, cell="check_add")
def test_accuracy(artifacts_dir, credit):
    """Accuracy after two epochs, with partial credit"""
    model = load_model(artifacts_dir / "model.keras")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype("float32")
    y = (x[:, :4].sum(axis=1) > x[:, 4:].sum(axis=1)).astype("int32")
    accuracy = float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())
    credit.fraction = accuracy
    credit.message = f"accuracy {accuracy:.6f}"
'''


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])  # the backends the course's assignments use
def test_the_same_submission_graded_three_times_gets_identical_results(tmp_path, backend):
    course = tiny_course(tmp_path, ACCURACY_GRADER)
    source = course.solutions / "tiny" / "tiny.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.insert(2, _cell(TRAINING, "train", locked=True))
    nbformat.write(notebook, source)
    (course.solutions / "tiny" / "assignment.toml").write_text(f'artifacts = ["model.keras"]\nbackend = "{backend}"\n')
    generate_release(course, "tiny")
    submit(course, "ann", "tiny", source.read_bytes())
    runs = [grade(course=course, assignment="tiny", force=True).results[0] for _ in range(3)]  # cold, alone
    outcomes = {(r.score, r.tests) for r in runs}
    assert len(outcomes) == 1, outcomes
    assert f"trained on {backend}" in (course.autograded / "ann" / "tiny" / "tiny.ipynb").read_text()
    assert 0 < runs[0].score < 2, runs[0].tests

    for copy in ("bob", "cat", "dan"):  # in one batch: after the first, warm sandboxes and one grader process
        submit(course, copy, "tiny", source.read_bytes())
    batch = grade(course=course, assignment="tiny", students=("bob", "cat", "dan"), jobs=1).results
    assert {(r.score, r.tests) for r in batch} == outcomes
    starts = [(course.autograded / r.student / "tiny" / "dlgrade.log").read_text().split(":")[0] for r in batch]
    assert starts == ["sandbox (cold start)", "sandbox (warm start)", "sandbox (warm start)"]


MEMORY_HOG = '''
import numpy as np
import pytest


@pytest.mark.points(2, cell="check_add")
def test_hog(artifacts_dir):
    """allocates far more than the graders may use"""
    hog = np.ones((64, 2**20), dtype=np.float64)  # 512 MiB
    assert hog.sum() > 0
'''


def test_graders_that_use_too_much_memory_are_stopped(tmp_path):
    course = tiny_course(tmp_path, MEMORY_HOG)
    config = course.solutions / "tiny" / "assignment.toml"
    config.write_text(config.read_text().replace("[limits]", "grader_memory_bytes = 268435456\n[limits]"))
    generate_release(course, "tiny")
    submit(course, "ann", "tiny", (course.solutions / "tiny" / "tiny.ipynb").read_bytes())
    result = grade(course=course, assignment="tiny").results[0]
    assert (result.score, result.status) == (0, "error")
    assert "hidden checks could not run" in result.reason
    log = (course.autograded / "ann" / "tiny" / "dlgrade.log").read_text()
    assert "the hidden graders used more than 0.2 GiB" in log


def test_a_failure_on_our_side_is_named_and_the_command_exits_1(tmp_path):
    course = tiny_course(tmp_path)
    generate_release(course, "tiny")
    for student in ("ann", "bob"):
        submit(course, student, "tiny", (course.solutions / "tiny" / "tiny.ipynb").read_bytes())
    (course.releases / "tiny" / "tiny.ipynb").rename(tmp_path / "moved.ipynb")  # the release vanished meanwhile
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "dlgrade"), "grade", "tiny", "--course-dir",
                           str(course.root)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "grading failed on our side for 2 submission(s)" in done.stderr
    assert "dlgrade grade tiny --student ann --student bob --force" in done.stderr
    assert "Traceback" not in done.stderr
    assert "--- internal error" in (course.autograded / "ann" / "tiny" / "dlgrade.log").read_text()
