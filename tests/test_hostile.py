"""A hostile corpus, generated in code, graded in one batch with honest submissions.

Every hostile notebook starts from a *wrong* answer (add returns a - b) and then tries to cheat, escape or break
the grader. Contained means: it scores 0 (only what the hidden graders measured counts), the batch goes on, the
honest submissions get the grades they get alone, the gradebook is intact and nothing outside scratch changed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from autograder.notebooks import generate_release
from autograder.pipeline import grade
from tests.conftest import submit, tiny_course, tiny_probe_course

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras

LIMITS = """wall_seconds = 30
memory_bytes = 1073741824
max_file_bytes = 10485760
disk_bytes = 104857600
"""


def _hostile_cells(course, listener_port: int) -> dict[str, str]:
    secrets = [str(course.graders("tiny") / "test_tiny.py"), str(course.graders("tiny") / "probe.py"),
               str(course.solutions / "tiny" / "tiny.ipynb"), str(course.submitted / "honest" / "tiny" / "tiny.ipynb"),
               str(course.root / "gradebook.db")]
    targets = [str(course.root / "pwned"), str(course.graders("tiny") / "test_tiny.py"), "/usr/pwned",
               "/var/tmp/dlgrade-pwned", str(course.submitted / "honest" / "tiny" / "tiny.ipynb")]
    return {
        "read_secrets": f"import os\nfor p in {secrets!r}:\n    print('SECRET', p, os.path.exists(p))",
        "write_outside": f"for p in {targets!r}:\n    try:\n        open(p, 'w').write('pwned')\n"
                         "        print('WROTE', p)\n"
                         "    except OSError as exc:\n        print('DENIED', p, type(exc).__name__)",
        "network": f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {listener_port}), timeout=3)\n"
                   "    print('NET connected')\nexcept OSError as exc:\n    print('NET', exc)\n"
                   "try:\n    socket.getaddrinfo('pypi.org', 443)\n    print('DNS resolved')\nexcept OSError as exc:\n"
                   "    print('DNS', exc)",
        "fork_bomb": "import os\nwhile True:\n    os.fork()",
        "memory_bomb": "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 2**20))",
        "endless_loop": "while True:\n    pass",
        "output_flood": "for _ in range(200):\n    print('x' * 100_000)",
        "os_exit": "import os\nos._exit(0)",
        "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "sys_exit": "import sys\nsys.exit(0)",
        "patch_everything": "import builtins, numpy\nnumpy.array_equal = lambda *a, **k: True\n"
                            "builtins.AssertionError = type('Never', (Exception,), {})\n"
                            "import sys\nsys.modules['pytest'] = None",
        "fake_pytest": "for name in ('conftest.py', 'pytest.py', 'sitecustomize.py'):\n"
                       "    open(name, 'w').write('import os\\nos._exit(0)\\n')\n"
                       "open('pytest.ini', 'w').write('[pytest]\\naddopts = -p no:dlgrade\\n')",
        "always_equal": "class Always(int):\n    def __eq__(self, other):\n        return True\n"
                        "    __hash__ = int.__hash__\n"
                        "class Anything:\n    def __eq__(self, other):\n        return True\n"
                        "def add(a, b):\n    return Anything()",
        "symlink_artifact": "import os\nos.symlink('/', 'escape')\nos.symlink('/etc/passwd', 'answer.json')",
        "huge_file": "with open('huge.bin', 'wb') as handle:\n    for _ in range(200):\n"
                     "        handle.write(b'x' * 2**20)",
        "script_output": "from IPython.display import HTML, Javascript, display\n"
                         "display(Javascript('fetch(\"/formgrader/api/submissions\")'))\n"
                         "display(HTML('<script>document.title = 1</script><b>hi</b>'))",
    }


def _with_cell(reference, code: str) -> nbformat.NotebookNode:
    """The reference with add() made wrong, plus an unlocked hostile cell after it."""
    notebook = copy.deepcopy(reference)
    notebook.cells[0].source = notebook.cells[0].source.replace("return a + b", "return a - b")
    notebook.cells.insert(1, nbformat.v4.new_code_cell(code))
    return notebook


def _tampered(reference) -> nbformat.NotebookNode:
    notebook = _with_cell(reference, "pass")
    check = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "check_add")
    check.source = "print('all good')"
    check.metadata["nbgrader"].update(points=100, locked=False)
    return notebook


def _deleted(reference) -> nbformat.NotebookNode:
    notebook = _with_cell(reference, "pass")
    notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "check_add"]
    return notebook


def _snapshot(course) -> dict[str, str]:
    """Hash of every file of the course the graded notebooks must not change (all but grading's own output)."""
    files = {}
    for path in sorted(course.root.rglob("*")):
        relative = path.relative_to(course.root)
        if relative.parts[0] in ("autograded", "gradebook.db") or not path.is_file() or "__pycache__" in path.parts:
            continue
        files[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


@pytest.fixture(scope="module")
def graded(tmp_path_factory, listener):
    port, _ = listener
    course = tiny_probe_course(tmp_path_factory.mktemp("course"), settings="grader_seconds = 60", limits=LIMITS)
    generate_release(course, "tiny")
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    honest = {"honest": reference, "honest_wrong": _with_cell(reference, "pass")}
    for student, notebook in honest.items():
        submit(course, student, "tiny", nbformat.writes(notebook).encode())
    alone = {r.student: r for r in grade(course=course, assignment="tiny", students=tuple(honest)).results}
    hostile = {name: _with_cell(reference, code) for name, code in _hostile_cells(course, port).items()}
    hostile.update(tampered=_tampered(reference), deleted_check=_deleted(reference))
    for student, notebook in hostile.items():
        submit(course, student, "tiny", nbformat.writes(notebook).encode())
    before = _snapshot(course)
    batch = grade(course=course, assignment="tiny", jobs=2, force=True)
    results = {r.student: r for r in batch.results}
    return course, alone, results, before, set(hostile)


def test_honest_submissions_get_the_grades_they_get_alone(graded):
    _, alone, results, _, _ = graded
    assert alone["honest"].score == 2 and alone["honest_wrong"].score == 0
    for student, result in alone.items():
        assert (results[student].score, results[student].tests) == (result.score, result.tests)


def test_every_hostile_submission_scores_zero_and_the_batch_goes_on(graded):
    _, _, results, _, hostile = graded
    assert hostile <= set(results)
    scores = {student: results[student].score for student in hostile}
    assert scores == dict.fromkeys(hostile, 0.0)


@pytest.mark.parametrize(("student", "status", "says"), [
    ("endless_loop", "timeout", "stopped after 30 s"),
    ("memory_bomb", "error", "used more than 1.0 GiB"),
    ("os_exit", "error", "kernel died"),
    ("kill_parent", "error", "stopped the process that runs it"),
    ("always_equal", "graded", "add() gives wrong sums"),  # only the graded cell defines add() for the probe
    ("symlink_artifact", "graded", "missing output file(s): answer.json"),  # links never leave the scratch
    ("huge_file", "graded", "File too large"),
])
def test_limits_and_tricks_are_reported(graded, student, status, says):
    result = graded[2][student]
    assert result.status == status, result.reason
    assert says in result.reason + " ".join(t.output for t in result.tests), (result.reason, result.tests)


def test_nothing_was_visible_writable_or_reachable(graded, listener):
    course, _, results, before, _ = graded
    executed = {student: nbformat.read(course.autograded / student / "tiny" / "tiny.ipynb", as_version=4)
                for student in ("read_secrets", "write_outside", "network")}

    def printed(student):
        return "".join(o.get("text", "") for c in executed[student].cells for o in c.get("outputs", []))

    assert "SECRET" in printed("read_secrets") and " True" not in printed("read_secrets")
    assert "DENIED" in printed("write_outside") and "WROTE" not in printed("write_outside")
    assert "NET" in printed("network") and "NET connected" not in printed("network")
    assert "DNS resolved" not in printed("network")
    assert listener[1] == [], "a sandboxed notebook reached the host's loopback"
    assert _snapshot(course) == before, "a graded notebook changed files outside its scratch folder"
    assert not Path("/var/tmp/dlgrade-pwned").exists() and not Path("/usr/pwned").exists()


def test_tampered_and_deleted_check_cells_are_restored(graded):
    _, _, results, _, _ = graded
    for student in ("tampered", "deleted_check"):
        result = results[student]
        assert (result.score, result.max_score) == (0, 2), result
        assert result.notes, "the student is told their cells were restored"


def test_gradebook_is_intact(graded):
    from nbgrader.api import Gradebook

    course, _, results, _, _ = graded
    with Gradebook(course.db_url) as gradebook:
        submissions = gradebook.assignment_submissions("tiny")
        scores = {s.student.id: s.score for s in submissions}
    assert scores == {student: result.score for student, result in results.items()}


def test_saved_models_that_would_run_code_when_loaded_are_refused(tmp_path):
    """A Lambda layer (marshalled Python bytecode) and a custom layer class are refused before Keras loads them."""
    import keras

    from autograder.keras_checks import load_model

    marker = tmp_path / "ran"

    @keras.saving.register_keras_serializable(package="evil")
    class Evil(keras.layers.Layer):
        def call(self, x):
            return x

    inputs = keras.Input((3,))
    touch = eval(f"lambda x: x + len(open({str(marker)!r}, 'w').name) * 0")  # the path as a constant, no closure
    lambda_model = keras.Model(inputs, keras.layers.Lambda(touch)(inputs))
    custom_model = keras.Model(inputs, Evil()(keras.layers.Dense(2)(inputs)))
    for name, model in (("lambda.keras", lambda_model), ("custom.keras", custom_model)):
        model.save(tmp_path / name)
    marker.unlink(missing_ok=True)  # building the Lambda model called it once, here, in the test
    with pytest.raises(AssertionError, match="Lambda"):
        load_model(tmp_path / "lambda.keras")
    with pytest.raises(AssertionError, match="Evil"):
        load_model(tmp_path / "custom.keras")
    assert not marker.exists(), "loading a refused model ran its code"


def test_autograded_notebooks_hold_no_script_and_no_forged_metadata(graded):
    course, _alone, results, _before, _hostile = graded
    release = nbformat.read(course.releases / "tiny" / "tiny.ipynb", as_version=4)
    locked = {c.metadata.nbgrader["grade_id"]: c.source for c in release.cells if c.metadata.get("nbgrader", {}).get(
        "locked") and not c.metadata.nbgrader.get("solution")}
    for student in results:
        kept = nbformat.read(course.autograded / student / "tiny" / "tiny.ipynb", as_version=4)
        outputs = json.dumps([c.get("outputs", []) for c in kept.cells])
        assert "javascript" not in outputs and "<script" not in outputs and "text/html" not in outputs, student
        cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in kept.cells}
        assert all(cells[grade_id].source == source for grade_id, source in locked.items()), student
        assert cells["check_add"].metadata.nbgrader["points"] == 2, student
    shown = nbformat.read(course.autograded / "script_output" / "tiny" / "tiny.ipynb", as_version=4)
    assert any("<IPython.core.display.HTML object>" in str(o.get("data", {})) for c in shown.cells
               if c.cell_type == "code" for o in c.outputs), "the plain-text form of the output stays"


LEAVER = """import subprocess
loop = "while true; do echo left > /tmp/left-behind; echo left > left-behind; sleep 0.2; done"
subprocess.Popen(["/bin/sh", "-c", loop], start_new_session=True)  # detached: tries to outlive its sandbox
open("/tmp/marker-from-a", "w").write("a")
import time
time.sleep(1)
print("LOOP", open("left-behind").read().strip())  # the loop does run while a's notebook runs"""

LOOKER = """import json, os
procs = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        procs.append(open(f"/proc/{pid}/cmdline").read().replace("\\0", " "))
    except OSError:
        pass
print("SEEN", json.dumps({"tmp": sorted(os.listdir("/tmp")), "home": sorted(os.listdir(".")), "procs": procs}))"""


def test_nothing_of_a_submission_survives_into_the_next_warm_sandbox(tmp_path):
    """One worker: b's sandbox is warmed while a's graders run, right after a's sandbox ended in the same slot."""
    import psutil

    course = tiny_course(tmp_path)
    generate_release(course, "tiny")
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    for student, code in (("a_leaver", LEAVER), ("b_looker", LOOKER)):
        notebook = copy.deepcopy(reference)
        notebook.cells.insert(1, nbformat.v4.new_code_cell(code))
        submit(course, student, "tiny", nbformat.writes(notebook).encode())
    results = {r.student: r for r in grade(course=course, assignment="tiny", jobs=1).results}
    assert [r.score for r in results.values()] == [2, 2], results
    leaver = (course.autograded / "a_leaver" / "tiny" / "tiny.ipynb").read_text()
    assert "LOOP left" in leaver
    log = (course.autograded / "b_looker" / "tiny" / "dlgrade.log").read_text()
    assert log.startswith("sandbox (warm start)"), log[:200]
    kept = nbformat.read(course.autograded / "b_looker" / "tiny" / "tiny.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in kept.cells if c.cell_type == "code" for o in c.outputs)
    seen = json.loads(printed.split("SEEN ", 1)[1].splitlines()[0])
    assert "left-behind" not in seen["home"] + seen["tmp"] and "marker-from-a" not in seen["tmp"], seen
    assert not [p for p in seen["procs"] if "left-behind" in p], seen["procs"]
    assert "marker-from-a" not in printed
    lingering = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if "left-behind" in " ".join(p.info["cmdline"] or [])]
    assert lingering == [], f"a student's process outlived its sandbox: {lingering}"


PROBE_LEAVER = LEAVER.replace('print("LOOP"', '# print("LOOP"') + """
def add(a, b):
    return a + b"""

PROBE_LOOKER = """import os
_procs = []
for _pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        _procs.append(open(f"/proc/{_pid}/cmdline").read())
    except OSError:
        pass
_seen = ("marker-from-a" in os.listdir("/tmp") or "left-behind" in os.listdir("/tmp") + os.listdir(".")
         or any("left-behind" in cmdline for cmdline in _procs))
def add(a, b):
    return a + b + int(_seen)  # wrong sums, so zero points, if anything of a's probe is still there"""


def test_nothing_of_a_submission_survives_into_the_next_warm_probe(tmp_path):
    """One worker: b's probe sandbox is warmed while a's graders run, right after a's probe ended in the same
    slot. a's graded definition, run in its probe, leaves a file in /tmp and in scratch and a detached process;
    b's definition gives wrong sums if it can see any of them."""
    course = tiny_probe_course(tmp_path)
    generate_release(course, "tiny")
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    for student, code in (("a_leaver", PROBE_LEAVER), ("b_looker", PROBE_LOOKER)):
        notebook = copy.deepcopy(reference)
        notebook.cells[0].source = code  # the graded definition cell "add", which the probe runs
        submit(course, student, "tiny", nbformat.writes(notebook).encode())
    results = {r.student: r for r in grade(course=course, assignment="tiny", jobs=1).results}
    logs = {student: (course.autograded / student / "tiny" / "dlgrade.log").read_text() for student in results}
    assert "probe sandbox (cold start)" in logs["a_leaver"] and "probe sandbox (warm start)" in logs["b_looker"]
    assert results["a_leaver"].score == 2 and results["b_looker"].score == 2, {s: r.tests for s, r in results.items()}
