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


def test_the_same_submission_graded_three_times_gets_identical_results(tmp_path):
    course = tiny_course(tmp_path, ACCURACY_GRADER)
    source = course.solutions / "tiny" / "tiny.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.insert(2, _cell(TRAINING, "train", locked=True))
    nbformat.write(notebook, source)
    (course.solutions / "tiny" / "assignment.toml").write_text('artifacts = ["model.keras"]\n')
    generate_release(course, "tiny")
    submit(course, "ann", "tiny", source.read_bytes())
    runs = [grade(course=course, assignment="tiny", force=True).results[0] for _ in range(3)]
    outcomes = {(r.score, r.tests) for r in runs}
    assert len(outcomes) == 1, outcomes
    assert 0 < runs[0].score < 2, runs[0].tests
