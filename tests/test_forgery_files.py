"""Untrusted files and archives, attacked as a determined student would: crafted `.keras` archives (a zip bomb,
traversal and absolute member names, a config nested 100k deep, weights that lie about their shapes), and
scratch files meant to fool the host (a sparse 10 GiB file, a FIFO, a link to /etc/shadow named like the
artifact, `.dlgrade` swapped for a link to a host folder, more bytes than the artifact limit).

Contained means: the check concerned fails with the reason, the honest part of the submission keeps its points,
nothing outside the sandboxes grows, and the hidden graders themselves run sandboxed (shown by a grader-side
attack that works without the sandbox and fails with it).
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from autograder import untrusted_files
from autograder.execution import _read_untrusted_notebook, collect_artifacts
from autograder.keras_checks import READ_FAILURE, check_keras_archive, json_depth
from autograder.untrusted_files import Budget, UntrustedFile, copy_out, open_beneath, read_regular
from tests.conftest import GRADER, _cell, submit, tiny_course

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras

MiB = 2**20


def _allocated(path: Path) -> int:
    """Bytes `path` really takes on disk, below it when it is a folder (links not followed)."""
    if path.is_file() or path.is_symlink():
        return os.lstat(path).st_blocks * 512
    return sum(os.lstat(p).st_blocks * 512 for p in path.rglob("*"))


# ------------------------------------------------------------------------------ pure file functions, fast

def test_a_sparse_10_gib_file_is_refused_and_nothing_is_written(tmp_path):
    scratch, dest = tmp_path / "scratch", tmp_path / "dest"
    scratch.mkdir()
    dest.mkdir()
    with open(scratch / "model.keras", "wb") as handle:
        handle.write(b"PK")
        handle.truncate(10 * 2**30)  # 10 GiB long, one block written
    copied = copy_out(scratch, "model.keras", dest / "model.keras", max_bytes=16 * 2**30)
    assert copied.path is None and "sparse" in copied.reason, copied
    assert not (dest / "model.keras").exists() and _allocated(dest) == 0


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "model.keras")
    start = time.monotonic()
    copied = copy_out(tmp_path, "model.keras", tmp_path / "copy", max_bytes=MiB)
    assert copied.path is None and "named pipe" in copied.reason
    assert time.monotonic() - start < 1


def test_a_device_node_is_refused_without_opening_it(tmp_path):
    try:
        os.mknod(tmp_path / "model.keras", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("making a device node needs root (and no sandbox makes one possible for a student)")
    copied = copy_out(tmp_path, "model.keras", tmp_path / "copy", max_bytes=MiB)
    assert copied.path is None and "a device" in copied.reason


def test_a_link_to_etc_shadow_named_like_the_artifact_is_refused(tmp_path):
    (tmp_path / "model.keras").symlink_to("/etc/shadow")
    copied = copy_out(tmp_path, "model.keras", tmp_path / "copy", max_bytes=MiB)
    assert copied.path is None and "symbolic link" in copied.reason
    assert not (tmp_path / "copy").exists()


def test_no_component_of_a_path_is_followed(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "executed.ipynb").write_text("host secret")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / ".dlgrade").symlink_to(host)
    with pytest.raises(UntrustedFile, match="not a directory"):
        read_regular(scratch, ".dlgrade/executed.ipynb", max_bytes=MiB)
    for bad in ("../host/executed.ipynb", "/etc/passwd", "a//b", "./x", ""):
        with pytest.raises(UntrustedFile):
            open_beneath(scratch, bad)
    with pytest.raises(FileNotFoundError):
        open_beneath(scratch, "absent/executed.ipynb")


def test_the_executed_notebook_is_not_read_through_a_swapped_folder(tmp_path):
    """`.dlgrade` replaced by a link to a host folder that holds an `executed.ipynb` (today's hole)."""
    host = tmp_path / "host"
    host.mkdir()
    secret = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("HOST-SECRET")])
    nbformat.write(secret, host / "executed.ipynb")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / ".dlgrade").symlink_to(host)
    assert _read_untrusted_notebook(scratch / ".dlgrade" / "executed.ipynb") is None
    (scratch / ".dlgrade").unlink()
    (scratch / ".dlgrade").mkdir()
    (scratch / ".dlgrade" / "executed.ipynb").symlink_to(host / "executed.ipynb")
    assert _read_untrusted_notebook(scratch / ".dlgrade" / "executed.ipynb") is None
    (scratch / ".dlgrade" / "executed.ipynb").unlink()
    nbformat.write(nbformat.v4.new_notebook(), scratch / ".dlgrade" / "executed.ipynb")
    assert _read_untrusted_notebook(scratch / ".dlgrade" / "executed.ipynb") is not None


def test_the_files_of_one_submission_share_one_budget(tmp_path):
    scratch, dest = tmp_path / "scratch", tmp_path / "dest"
    scratch.mkdir()
    for name in ("a.npz", "b.npz", "c.npz"):
        (scratch / name).write_bytes(os.urandom(3 * MiB))
    (scratch / "big.npz").write_bytes(os.urandom(5 * MiB))
    budget, refused = Budget(8 * MiB), {}
    found, missing = collect_artifacts(scratch, ("a.npz", "big.npz", "b.npz"), dest, max_bytes=4 * MiB,
                                       budget=budget, refused=refused)
    extras, _ = collect_artifacts(scratch, ("c.npz", "absent.json"), dest, max_bytes=4 * MiB, budget=budget)
    assert set(found) == {"a.npz", "b.npz"} and missing == ("big.npz",) and extras == {}
    assert "more than the 4.0 MiB allowed" in refused["big.npz"]
    assert _allocated(dest) <= 8 * MiB + 64 * 1024
    leftover = copy_out(scratch, "c.npz", dest / "c2.npz", max_bytes=4 * MiB, budget=budget)
    assert leftover.path is None and "over their limit" in leftover.reason


def test_refused_artifacts_carry_their_reason(tmp_path):
    scratch, dest = tmp_path / "scratch", tmp_path / "dest"
    scratch.mkdir()
    (scratch / "answer.json").symlink_to("/etc/shadow")
    os.mkfifo(scratch / "model.keras")
    refused: dict[str, str] = {}
    found, missing = collect_artifacts(scratch, ("answer.json", "model.keras", "absent.npz"), dest, refused=refused)
    assert found == {} and set(missing) == {"answer.json", "model.keras", "absent.npz"}
    assert "symbolic link" in refused["answer.json"] and "named pipe" in refused["model.keras"]
    assert "absent.npz" not in refused


def test_a_file_that_grows_while_it_is_copied_is_refused(tmp_path, monkeypatch):
    (tmp_path / "grows.npz").write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def shrunk(fd):  # the size seen by the check, before the student's process appended more
        info = real_fstat(fd)
        return SimpleNamespace(st_mode=info.st_mode, st_size=10, st_blocks=info.st_blocks)

    monkeypatch.setattr(untrusted_files.os, "fstat", shrunk)
    copied = copy_out(tmp_path, "grows.npz", tmp_path / "copy", max_bytes=MiB)
    assert copied.path is None and "grew" in copied.reason and not (tmp_path / "copy").exists()


# -------------------------------------------------------------------------- crafted .keras archives, fast

CONFIG = json.dumps({"module": "keras", "class_name": "Sequential", "config": {"layers": []}})


def _archive(path: Path, members: dict[str, bytes], *, deflate: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data,
                             compress_type=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    return path


def zip_bomb(path: Path, *, expands_to: int, config: str = CONFIG) -> Path:
    """A .keras archive whose weights member is `expands_to` zeros, deflated (about 1/1000 of that on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config)
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            zeros = bytes(MiB)
            for _ in range(expands_to // MiB):
                member.write(zeros)
    return path


def test_a_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path):
    bomb = zip_bomb(tmp_path / "model.keras", expands_to=512 * MiB)
    assert bomb.stat().st_size < 2 * MiB
    with pytest.raises(AssertionError, match=f"^{READ_FAILURE}: model.keras would expand to 512 MiB"):
        check_keras_archive(bomb, max_bytes=64 * MiB)
    with pytest.raises(AssertionError, match="decompression bomb"):  # under a generous limit, its ratio tells
        check_keras_archive(bomb, max_bytes=8 * 2**30)


@pytest.mark.parametrize("name", ["../../../../tmp/dlgrade-escaped", "/etc/cron.d/evil", "assets/../../x",
                                  "C:/evil", "a\\..\\..\\evil"])
def test_traversal_and_absolute_member_names_are_refused(tmp_path, name):
    archive = _archive(tmp_path / "model.keras", {"config.json": CONFIG.encode(), name: b"x"})
    with pytest.raises(AssertionError, match=f"^{READ_FAILURE}: model.keras holds a file"):
        check_keras_archive(archive)


def test_a_config_nested_100k_deep_is_refused_without_recursion(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    archive = _archive(tmp_path / "model.keras", {"config.json": deep.encode()})
    start = time.monotonic()
    with pytest.raises(AssertionError, match=f"^{READ_FAILURE}: .*nested more than 200 levels"):
        check_keras_archive(archive)
    assert time.monotonic() - start < 5
    assert json_depth('{"a": ["[[[[", {"b": "]]}"}]}') == 3  # brackets in strings are not structure


def test_a_huge_config_and_too_many_members_are_refused(tmp_path):
    huge = _archive(tmp_path / "huge.keras", {"config.json": b" " * (17 * MiB) + CONFIG.encode()})
    with pytest.raises(AssertionError, match="config.json of more than 16 MiB"):
        check_keras_archive(huge)
    many = _archive(tmp_path / "many.keras", {"config.json": CONFIG.encode(),
                                              **{f"assets/{i}": b"" for i in range(10_001)}})
    with pytest.raises(AssertionError, match="holds 10002 files"):
        check_keras_archive(many)


def test_weights_that_declare_more_than_they_hold_are_refused(tmp_path):
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as weights:  # 40 GB declared, nothing written: reading it would allocate it all
        weights.create_dataset("layers/dense/vars/0", shape=(100_000, 100_000), dtype="float32")
    archive = _archive(tmp_path / "model.keras", {"config.json": CONFIG.encode(),
                                                  "model.weights.h5": buffer.getvalue()})
    with pytest.raises(AssertionError, match=f"^{READ_FAILURE}: model.keras declares weights of more than"):
        check_keras_archive(archive, max_bytes=64 * MiB)


def test_weights_that_lie_about_their_shapes_cost_the_check_with_a_reason(tmp_path):
    import keras

    from autograder.keras_checks import load_model

    for units, name in ((2, "two.keras"), (7, "seven.keras")):
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)]).save(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "two.keras") as two, zipfile.ZipFile(tmp_path / "seven.keras") as seven:
        lying = {"config.json": two.read("config.json"), "metadata.json": two.read("metadata.json"),
                 "model.weights.h5": seven.read("model.weights.h5")}
    archive = _archive(tmp_path / "model.keras", lying)
    with pytest.raises(AssertionError, match=f"^{READ_FAILURE}: model.keras could not be loaded by Keras"):
        load_model(archive)


# -------------------------------------------------------------- the hidden graders run sandboxed

ESCAPE_GRADER = '''
import json
import os
import socket
import tempfile
import zipfile

import pytest


def attempt(action):
    try:
        return f"done: {action()}"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"


def write_host_tmp():
    with open(os.environ["ESCAPE_FILE"], "w") as handle:
        handle.write("a grader-side load wrote this to the host")
    return "written"


def extract_bomb(artifacts_dir):
    target = tempfile.mkdtemp()
    with zipfile.ZipFile(artifacts_dir / "model.keras") as archive:
        archive.extractall(target)
    return sum(os.path.getsize(os.path.join(target, name)) for name in os.listdir(target))


@pytest.mark.points(1, cell="check_add")
def test_escape(artifacts_dir, credit):
    """what a grader that a crafted file took over could do"""
    seen = {
        "host_tmp": attempt(write_host_tmp),
        "network": attempt(lambda: socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=3)),
        "root_home": attempt(lambda: os.listdir("/root")),
        "other_student": attempt(lambda: os.listdir(os.environ["OTHER_STUDENT"])),
        "tmpdir": tempfile.gettempdir(),
        "uid": os.getuid(),
        "write_artifacts": attempt(lambda: open(artifacts_dir / "answer.json", "w").write("{}")),
    }
    if os.environ.get("BOMB"):
        seen["bomb"] = attempt(lambda: extract_bomb(artifacts_dir))
    credit.message = json.dumps(seen)
'''


def _escape_setup(tmp_path, port: int) -> tuple[Path, Path, dict[str, str], Path]:
    graders = tmp_path / "course" / "solutions" / "tiny" / "graders"
    graders.mkdir(parents=True)
    (graders / "test_escape.py").write_text(ESCAPE_GRADER)
    artifacts = tmp_path / "course" / "autograded" / "ann" / "tiny" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "answer.json").write_text('{"sum": 5}')
    other = tmp_path / "course" / "submitted" / "bob" / "tiny"
    other.mkdir(parents=True)
    (other / "tiny.ipynb").write_text("bob's work")
    escape = Path("/tmp") / f"dlgrade-escape-{uuid.uuid4().hex}"
    env = {"ESCAPE_FILE": str(escape), "PORT": str(port), "OTHER_STUDENT": str(other)}
    return graders, artifacts, env, escape


def test_the_graders_are_sandboxed_and_the_same_attack_works_without_it(tmp_path, listener):
    from autograder.graders import GraderProcess, run_graders

    port, accepted = listener
    graders, artifacts, env, escape = _escape_setup(tmp_path, port)
    zip_bomb(artifacts / "model.keras", expands_to=256 * MiB)  # a .keras that the grader extracts itself
    process = GraderProcess(graders_dir=graders, tmp_bytes=64 * MiB)
    try:
        checks, log = process.run(graders_dir=graders, artifacts_dir=artifacts, timeout=60, env={**env, "BOMB": "1"})
    finally:
        process.close()
    assert not process._base.exists(), "a closed grader process leaves no folder behind"
    seen = json.loads(checks[0].output)
    assert not escape.exists(), seen  # written, if at all, to the sandbox's private /tmp
    assert seen["network"].startswith("failed") and accepted == [], seen
    assert seen["other_student"].startswith("failed: FileNotFoundError"), seen
    interpreter = {Path(sys.base_prefix).resolve().relative_to("/root").parts[0]} if str(
        Path(sys.base_prefix).resolve()).startswith("/root/") else set()
    listed = set(json.loads(seen["root_home"].removeprefix("done: ").replace("'", '"'))) if seen[
        "root_home"].startswith("done") else set()
    assert listed <= interpreter, seen  # at most the path to the mounted interpreter, nothing of root's own
    assert seen["uid"] != 0 and seen["write_artifacts"].startswith("failed: OSError"), seen  # artifacts are read-only
    assert seen["bomb"].startswith("failed: OSError"), seen["bomb"]  # 256 MiB do not fit the 64 MiB private /tmp
    assert (artifacts / "answer.json").read_text() == '{"sum": 5}'

    plain, _ = run_graders(graders_dir=graders, artifacts_dir=artifacts, timeout=60, env=env, isolated=False)
    try:
        unprotected = json.loads(plain[0].output)
        assert unprotected["host_tmp"] == "done: written" and escape.exists(), unprotected
        assert unprotected["network"].startswith("done") and accepted, unprotected
    finally:
        escape.unlink(missing_ok=True)
        (artifacts / "answer.json").write_text('{"sum": 5}')


FORGING_GRADER = """
import json
import os

import pytest

FORGED = {"name": "x", "cell": "check_add", "score": 100, "max_score": 100, "status": "passed"}


@pytest.mark.points(1, cell="check_add")
def test_forge(artifacts_dir):
    \"""a grader child that a crafted file took over forges replies and leaves a process behind\"""
    for number in range(1, 5):
        with open(f"/home/student/reply-{number}.json", "w") as handle:
            json.dump({"nonce": "guess", "returncode": 0, "stopped": None, "log": "",
                       "results": json.dumps([FORGED])}, handle)
    if os.fork() == 0:
        os.setsid()
        import time
        time.sleep(3600)
    assert False, "honest failure"
"""


def test_a_forged_or_lingering_reply_is_never_believed(tmp_path):
    from autograder.graders import GraderProcess

    graders = tmp_path / "solutions" / "tiny" / "graders"
    graders.mkdir(parents=True)
    (graders / "test_forge.py").write_text(FORGING_GRADER)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    process = GraderProcess(graders_dir=graders)
    try:
        outcomes = [process.run(graders_dir=graders, artifacts_dir=artifacts, timeout=60) for _ in range(2)]
    finally:
        process.close()
    for checks, log in outcomes:
        assert sum(check.score for check in checks) == 0, (checks, log)


# ------------------------------------------------------------------- the real pipeline on a tiny course

MODEL_CELL = """import keras
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.save("model.keras")"""

PIPELINE_GRADER = GRADER.replace("points(2", "points(1").replace(
    "import pytest\n", "import pytest\n\nfrom autograder.keras_checks import load_model\n") + '''

@pytest.mark.points(1, cell="check_add")
def test_model(artifacts_dir):
    """the saved model maps 3 features to 2 outputs"""
    model = load_model(artifacts_dir / "model.keras")
    assert tuple(model.output_shape) == (None, 2), f"found output shape {model.output_shape}"
'''

PIPELINE_CONFIG = '''artifacts = ["answer.json", "model.keras"]
extras = ["history.json"]
grader_seconds = 120
grader_memory_bytes = 2147483648
[limits]
wall_seconds = 120
memory_bytes = 2147483648
max_file_bytes = 67108864
disk_bytes = 268435456
'''

REAL_PARTS = """import zipfile
with zipfile.ZipFile("model.keras") as _saved:
    _config, _meta, _weights = (_saved.read(n) for n in ("config.json", "metadata.json", "model.weights.h5"))
def _write(members):
    import os
    os.remove("model.keras")
    with zipfile.ZipFile("model.keras", "w") as out:
        for name, data in members.items():
            out.writestr(zipfile.ZipInfo(name), data)
"""


def _hostile_cells(host_dir: Path, marker: str) -> dict[str, str]:
    return {
        "zip_bomb": REAL_PARTS + """
import os
os.remove("model.keras")
with zipfile.ZipFile("model.keras", "w", zipfile.ZIP_DEFLATED) as out:
    out.writestr("config.json", _config)
    out.writestr("metadata.json", _meta)
    with out.open("model.weights.h5", "w", force_zip64=True) as member:
        for _ in range(1024):
            member.write(bytes(2**20))  # 1 GiB of zeros, about 1 MB on disk
print("BOMB", os.path.getsize("model.keras"))""",
        "traversal": REAL_PARTS + f"""
_write({{"config.json": _config, "metadata.json": _meta, "model.weights.h5": _weights,
        "../../../../../tmp/{marker}-traversal": b"x", "/tmp/{marker}-absolute": b"x"}})""",
        "deep_config": REAL_PARTS + """
_write({"config.json": b"[" * 100_000 + b"]" * 100_000, "metadata.json": _meta, "model.weights.h5": _weights})""",
        "lying_weights": REAL_PARTS + """
import keras
keras.Sequential([keras.Input((3,)), keras.layers.Dense(7)]).save("seven.keras")
with zipfile.ZipFile("seven.keras") as _seven:
    _write({"config.json": _config, "metadata.json": _meta, "model.weights.h5": _seven.read("model.weights.h5")})""",
        "sparse": """import os
try:
    os.truncate("model.keras", 10 * 2**30)
    print("SPARSE 10 GiB")
except OSError as exc:  # the file size limit: the biggest hole that fits
    print("SPARSE refused", exc)
    os.truncate("model.keras", 60 * 2**20)""",
        "fifo": "import os\nos.remove('model.keras')\nos.mkfifo('model.keras')",
        "shadow": "import os\nos.remove('model.keras')\nos.symlink('/etc/shadow', 'model.keras')",
        "dlgrade_link": f"import os\nos.rename('.dlgrade', 'moved')\nos.symlink({str(host_dir)!r}, '.dlgrade')",
        "dir_swap": "import os\nos.rename('.dlgrade', 'real')\nos.symlink('real', '.dlgrade')",
        "over_budget": "with open('history.json', 'wb') as handle:\n    handle.write(b'1' * (64 * 2**20 - 1024))",
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from autograder.notebooks import generate_release
    from autograder.pipeline import grade

    course = tiny_course(tmp_path_factory.mktemp("course"), PIPELINE_GRADER)
    source = course.solutions / "tiny" / "tiny.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.insert(2, _cell(MODEL_CELL, "save_model", locked=True))
    nbformat.write(notebook, source)
    (course.solutions / "tiny" / "assignment.toml").write_text(PIPELINE_CONFIG)
    generate_release(course, "tiny")
    marker = f"dlgrade-forgery-{uuid.uuid4().hex[:8]}"
    host_dir = Path("/tmp") / marker  # a host folder the student names: the host must never read it for them
    host_dir.mkdir()
    secret = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    secret.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="HOST-SECRET\n")]
    nbformat.write(secret, host_dir / "executed.ipynb")
    cells = _hostile_cells(host_dir, marker)
    submit(course, "honest", "tiny", nbformat.writes(notebook).encode())
    for student, code in cells.items():
        hostile = nbformat.read(source, as_version=4)
        hostile.cells.append(nbformat.v4.new_code_cell(code))
        submit(course, student, "tiny", nbformat.writes(hostile).encode())
    tmp_before = {p.name for p in Path("/tmp").iterdir()}
    start = time.monotonic()
    results = {r.student: r for r in grade(course=course, assignment="tiny", jobs=2).results}
    yield course, results, set(cells), tmp_before, marker, time.monotonic() - start
    for path in host_dir.iterdir():
        path.unlink()
    host_dir.rmdir()


def _model_check(result):
    return next(t for t in result.tests if t.name.startswith("the saved model"))


def test_the_honest_submission_earns_full_marks(graded):
    _, results, _, _, _, _ = graded
    assert (results["honest"].score, results["honest"].status) == (2, "graded"), results["honest"]


@pytest.mark.parametrize(("student", "says"), [
    ("zip_bomb", f"{READ_FAILURE}: model.keras would expand to 1024 MiB, more than the 64 MiB allowed"),
    ("traversal", f"{READ_FAILURE}: model.keras holds a file"),
    ("deep_config", f"{READ_FAILURE}: model.keras has a config.json nested more than 200 levels deep"),
    ("lying_weights", f"{READ_FAILURE}: model.keras could not be loaded by Keras"),
])
def test_a_crafted_archive_costs_its_check_with_the_reason_and_the_honest_part_keeps_its_points(graded, student,
                                                                                              says):
    _, results, _, _, _, _ = graded
    result = results[student]
    assert result.score == 1 and result.status == "graded", result
    assert _model_check(result).output.startswith(says), _model_check(result)


@pytest.mark.parametrize("student", ["sparse", "fifo", "shadow"])
def test_a_refused_artifact_costs_its_check_and_the_honest_part_keeps_its_points(graded, student):
    course, results, _, _, _, _ = graded
    result = results[student]
    assert result.score == 1, result
    # a sparse file is refused with its reason; links and FIFOs never leave the tmpfs scratch (sandbox copy-back)
    says = "model.keras was not collected: " if student == "sparse" else "missing output file(s): model.keras"
    assert says in result.reason, result.reason
    assert not (course.autograded / student / "tiny" / "artifacts" / "model.keras").exists()


def test_a_swapped_runner_folder_is_never_read(graded):
    course, results, _, _, _, _ = graded
    for student in ("dlgrade_link", "dir_swap"):
        kept = (course.autograded / student / "tiny" / "tiny.ipynb").read_text()
        assert "HOST-SECRET" not in kept, student
        assert results[student].score == 2, results[student]  # its artifacts were fine


def test_nothing_outside_the_sandboxes_grew(graded):
    course, results, hostile, tmp_before, marker, _ = graded
    for student in hostile | {"honest"}:
        limit = 64 * MiB if student == "over_budget" else 4 * MiB  # the artifact limit bounds all files together
        assert _allocated(course.autograded / student) < limit, student
    assert not (course.autograded / "over_budget" / "tiny" / "artifacts" / "history.json").exists()
    left = {p.name for p in Path("/tmp").iterdir()} - tmp_before
    assert not [name for name in left if name.startswith(marker + "-")], "an archive member was extracted"
    assert not Path(f"/tmp/{marker}-absolute").exists()
