"""Forging the probe, as a determined student would: every attack here earned points when the probe ran as a last
cell in the student's own kernel, and must earn nothing now that it runs in a fresh sandbox of its own.

Kernel-side attacks (an IPython post-run hook, monkeypatches of numpy and keras, a cell disguised with the probe's
metadata, files planted in scratch) are graded in one real batch beside an honest submission; probe-side attacks
(definitions that look for the course's helpers, secrets or the graders, outputs that are not plain arrays) run
the real probe sandbox or the host's validation directly.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import probe
from autograder.course import ProbeConfig
from autograder.errors import ConfigError
from autograder.notebooks import generate_release
from autograder.pipeline import grade
from tests.conftest import REPO, submit, tiny_probe_course

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras

HOOK = """
import numpy as np

def _forge(result):
    # the old probe ran in this namespace: its inputs were right here after its cell
    for name in ("_inputs", "inputs"):
        found = globals().get(name)
        if found is not None:
            np.savez("probe.npz", sums=np.asarray(found).sum(axis=0))
            np.savez("outputs.npz", sums=np.asarray(found).sum(axis=0))
    for path in (".dlgrade/inputs.npz", "inputs.npz", "/tmp/inputs.npz"):
        try:
            with np.load(path) as npz:
                np.savez("outputs.npz", sums=npz["a"] + npz["b"])
        except OSError:
            pass

get_ipython().events.register("post_run_cell", _forge)
"""

PATCHES = """
import builtins, json, os, sys
import numpy as np
np.array_equal = lambda *a, **k: True
np.savez = lambda *a, **k: None
np.load = lambda *a, **k: {"sums": np.arange(8)}
os.makedirs(".dlgrade", exist_ok=True)
for name in ("sitecustomize.py", "usercustomize.py", ".dlgrade/probe_runner.py", ".dlgrade/probe.py", "numpy.py"):
    open(name, "w").write("import os\\nos._exit(0)\\n")
np.savez_compressed("probe.npz", sums=np.arange(8))
open("probe.json", "w").write(json.dumps({"seed": 0, "problems": []}))
"""


def _wrong(reference) -> nbformat.NotebookNode:
    notebook = copy.deepcopy(reference)
    notebook.cells[0].source = notebook.cells[0].source.replace("return a + b", "return a - b")
    return notebook


def _with_cell(reference, code: str, metadata: dict | None = None) -> nbformat.NotebookNode:
    notebook = _wrong(reference)
    notebook.cells.insert(1, nbformat.v4.new_code_cell(code, metadata=metadata or {}))
    return notebook


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    course = tiny_probe_course(tmp_path_factory.mktemp("course"))
    generate_release(course, "tiny")
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    disguise = {"dlgrade_probe": True}  # the key that once kept the probe's own cell out of the instructor's view
    notebooks = {
        "honest": reference,
        "hook": _with_cell(reference, HOOK),
        "patches": _with_cell(reference, PATCHES),
        "disguised": _with_cell(reference, "print('DISGUISED CELL RAN')\n" + HOOK, metadata=disguise),
    }
    for student, notebook in notebooks.items():
        submit(course, student, "tiny", nbformat.writes(notebook).encode())
    results = {r.student: r for r in grade(course=course, assignment="tiny", jobs=2).results}
    return course, results


def test_kernel_side_forgery_earns_nothing_and_the_honest_submission_keeps_its_grade(forged):
    _, results = forged
    assert results["honest"].score == 2, results["honest"]
    for student in ("hook", "patches", "disguised"):
        result = results[student]
        assert (result.status, result.score) == ("graded", 0), (student, result.reason, result.tests)
        assert "add() gives wrong sums" in result.tests[0].output, (student, result.tests)


def test_the_notebook_is_not_changed_for_grading_and_hides_no_cell(forged):
    course, _ = forged
    kept = nbformat.read(course.autograded / "disguised" / "tiny" / "tiny.ipynb", as_version=4)
    submitted = nbformat.read(course.submitted / "disguised" / "tiny" / "tiny.ipynb", as_version=4)
    assert len(kept.cells) == len(submitted.cells), "no cell was appended, none removed"
    printed = "".join(o.get("text", "") for c in kept.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "DISGUISED CELL RAN" in printed, "a cell with the probe's old metadata key is shown to the instructor"


def test_regrading_draws_the_same_inputs_and_students_draw_different_ones(forged):
    course, _ = forged
    seeds = {s: json.loads((course.autograded / s / "tiny" / "artifacts" / "probe.json").read_text())["seed"]
             for s in ("honest", "hook")}
    assert seeds["honest"] == probe.probe_seed(course.settings_dir, "tiny", "honest")
    assert seeds["honest"] != seeds["hook"]
    secret = course.settings_dir / probe.SECRET_FILE
    assert secret.stat().st_mode & 0o077 == 0, "the course secret is readable by others"


SNOOP = '''
import os, socket, sys

FACTS = {}
for name, test in {
    "engine": lambda: __import__("autograder"),
    "course_data": lambda: __import__("tiny_labels"),  # released beside the notebook: the kernel imports it
    "ipython": lambda: sys.modules["IPython"],
    "graders": lambda: open(GRADERS).read(),
    "secret": lambda: open(SECRET).read(),
    "gradebook": lambda: open(GRADEBOOK).read(),
    "network": lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2),
    "host_files": lambda: open("/etc/shadow").read(),
}.items():
    try:
        test()
        FACTS[name] = 1
    except BaseException:
        FACTS[name] = 0
FACTS["uid0"] = int(os.getuid() == 0)
'''

SNOOP_PROBE = '''
import numpy as np


def run(namespace, inputs, artifacts):
    return {name: np.array(value) for name, value in namespace["FACTS"].items()}
'''


def test_the_probe_sandbox_holds_no_engine_no_course_helper_no_secret_and_no_network(tmp_path):
    """Definitions look for what would let them forge: every one of these was within reach in the kernel."""
    course = tiny_probe_course(tmp_path)
    (course.solutions / "tiny" / "tiny_labels.py").write_text("LABELS = [5]\n")  # a course helper, as dates.py
    generate_release(course, "tiny")
    assert (course.releases / "tiny" / "tiny_labels.py").is_file()
    probe.probe_seed(course.settings_dir, "tiny", "snoop")  # the secret exists
    graders = course.graders("tiny")
    (graders / "probe.py").write_text(SNOOP_PROBE)
    listener = socket.create_server(("127.0.0.1", 0))  # the host's loopback, reachable from an unsandboxed process
    source = (f"GRADERS = {str(graders / 'probe_inputs.py')!r}\nSECRET = {str(course.root / probe.SECRET_FILE)!r}\n"
              f"GRADEBOOK = {str(course.root / 'gradebook.db')!r}\nPORT = {listener.getsockname()[1]}\n" + SNOOP)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.cells[0].metadata["nbgrader"] = {"grade_id": "add"}
    config = course.config("tiny")
    from autograder.execution import kernel_env, sandbox_mounts

    with listener:
        outcome = probe.run_probe(config=config, graders_dir=graders, notebook=notebook, artifacts={}, seed=1,
                                  mounts=sandbox_mounts(config), env=kernel_env(config))
    assert outcome.arrays is not None, (outcome.problems, outcome.run.stderr)
    facts = {name: int(value) for name, value in outcome.arrays.items()}
    assert facts == dict.fromkeys(facts, 0) and len(facts) == 9, facts


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_probe_outputs_are_plain_arrays_or_refused(tmp_path):
    good = _npz(tmp_path / "good.npz", sums=np.arange(3), error_part=np.array("ValueError: no"))
    arrays, problems = probe.validate_outputs(good)
    assert set(arrays) == {"sums", "error_part"} and problems == []

    objects = _npz(tmp_path / "objects.npz", sums=np.array([object(), 1], dtype=object), kept=np.ones(2))
    arrays, problems = probe.validate_outputs(objects)
    assert set(arrays) == {"kept"} and problems == ["sums: object arrays are refused"]

    strings = _npz(tmp_path / "strings.npz", sums=np.array(["1", "2"]), error_x=np.array("x" * 5000))
    arrays, problems = probe.validate_outputs(strings)
    assert arrays == {} and len(problems) == 2

    many = _npz(tmp_path / "many.npz", **{f"a{i}": np.zeros(1) for i in range(probe.MAX_ARRAYS + 1)})
    assert probe.validate_outputs(many) == ({}, [f"outputs.npz holds {probe.MAX_ARRAYS + 1} arrays (at most 256)"])

    bomb = tmp_path / "bomb.npz"  # a few hundred KiB that would expand to 300 MiB
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("sums.npy", "w") as member:
        for _ in range(300):
            member.write(bytes(2**20))
    assert bomb.stat().st_size < 2**20
    assert probe.validate_outputs(bomb)[0] == {}

    link = tmp_path / "link.npz"
    link.symlink_to(good)
    assert probe.validate_outputs(link) == ({}, ["the probe left no outputs.npz"])
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    assert probe.validate_outputs(fifo) == ({}, ["outputs.npz is not a regular file"])
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    assert probe.validate_outputs(tmp_path / "junk.npz")[0] == {}


def test_probe_settings_are_checked_where_they_are_read(tmp_path):
    course = tiny_probe_course(tmp_path)
    path = course.solutions / "tiny" / "assignment.toml"
    config = course.config("tiny")
    assert config.probe == ProbeConfig(script="probe.py", inputs="probe_inputs.py", cells=("add",), wall_seconds=60)
    for text, says in (('probe = "probe.py"\n', "probe must be a table"),
                       ('artifacts = ["probe.npz"]\n[probe]\nscript = "p.py"\ninputs = "i.py"\ncells = ["add"]\n',
                        "names the probe writes"),
                       ('[probe]\nscript = "p.py"\ninputs = "i.py"\ncells = "add"\n', "probe.cells must be a list"),
                       ('[probe]\nscript = "p.py"\ninputs = "i.py"\ncells = ["add"]\nartifacts = ["w.h5"]\n',
                        "not among the assignment's artifacts")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=says) as caught:
            course.config("tiny")
        assert str(path) in str(caught.value)


def test_definitions_that_replace_keras_cannot_feed_the_attention_model_checks(tmp_path):
    """In the probe sandbox the definitions run before the probe calls them: a definition that swaps
    keras.Model.predict for a hand-written answer is caught, and the model parts earn nothing."""
    import importlib.util

    import keras

    spec = importlib.util.spec_from_file_location("attention_probe_sandbox_side",
                                                  REPO / "solutions" / "attention" / "graders" / "probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    original = keras.Model.predict
    inputs = {"query": np.zeros((1, 2, 4), "float32"), "key": np.zeros((1, 3, 4), "float32"),
              "value": np.zeros((1, 3, 2), "float32"), "mask": np.ones((1, 2, 3), "float32"),
              "dates_x": np.zeros((4, 32), "int32"), "attention_dates_x": np.zeros((2, 32), "int32"),
              "INPUT_LENGTH": np.array(32), "OUTPUT_LENGTH": np.array(10), "N_INPUT_SYMBOLS": np.array(71),
              "N_OUTPUT_SYMBOLS": np.array(11), "PAD": np.array(0)}
    namespace = module.namespace(inputs)
    try:
        exec("import keras\nkeras.Model.predict = lambda self, x, **k: 'forged'\n"  # noqa: S102
             "def build_models():\n    raise AssertionError('never called')\n", namespace)
        found = module.run(namespace, inputs, tmp_path)
    finally:
        keras.Model.predict = original
    assert "replaced parts of Keras" in str(found["error_model"])
    assert "date_outputs" not in found and "date_attention" not in found
