"""The probe: student-defined functions and layers called in a fresh sandbox of their own, after the notebook ran.

The student's kernel is never trusted to report on itself (a post-run hook or a monkeypatch there can rewrite
anything it writes). Instead, once the notebook's sandbox has ended, a second sandbox starts a plain interpreter
(`autograder/probe_runner.py`: no kernel, no IPython, no dlgrade package, no course data helpers) that gets only

- the source of the graded definition cells, taken from the restored notebook by their nbgrader grade_id;
- the notebook's artifacts that the probe reads (trained weights), read-only;
- inputs drawn by the host for this submission (`make_inputs(seed)` of the assignment's inputs module, run here
  and never in a sandbox), with a seed derived from a course secret that no sandbox sees;

and returns plain arrays, validated here (no pickles, numbers or short error strings only, bounded in count and
size) before they are written to the artifacts as `probe.npz` for the hidden graders, with the seed in
`probe.json`. Hidden labels and reference outputs are computed by the graders from the seed, never in a sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder import sandbox
from autograder.course import AssignmentConfig, ProbeConfig

OUTPUTS_FILE = "probe.npz"  # in the artifacts directory: the validated arrays
SEED_FILE = "probe.json"  # in the artifacts directory: {"seed": ...}, for the graders' references
RESERVED_ARTIFACTS = (OUTPUTS_FILE, SEED_FILE)
SECRET_FILE = Path(".dlgrade") / "probe-secret"  # below the course's settings folder; never mounted anywhere
ARTIFACTS_MOUNT = "/opt/dlgrade/artifacts"  # where the probe sandbox sees the notebook's artifacts, read-only
MAX_ARRAYS = 256
MAX_OUTPUT_BYTES = 256 * 2**20  # all arrays together, uncompressed
MAX_ERROR_CHARS = 1000
NUMERIC_KINDS = "biuf"


@dataclass(frozen=True)
class ProbeRun:
    """What one probe sandbox gave: validated arrays (None when nothing usable came back) and why."""

    seed: int
    arrays: dict | None  # name -> numpy array, validated
    problems: tuple[str, ...]  # arrays dropped, or why there are none (for the instructor's log)
    run: sandbox.SandboxResult


def probe_seed(settings_dir: Path, assignment: str, student: str) -> int:
    """The seed of a submission's probe inputs: unpredictable to students (a keyed hash with the course's secret,
    created on first use), and the same each time the submission is graded, so a regrade gives the same score."""
    path = Path(settings_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    key = path.read_text().strip().encode()
    digest = hmac.new(key, f"{assignment}\0{student}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big")


def _module(path: Path):
    """An instructor's module, imported by path under a name of its own (several assignments have one).

    Its exercise's folder (above graders/) is on the path while it loads, for the helpers released beside the
    notebook; what it imports from there is not left in sys.modules, where another exercise's helper of the same
    name would find it."""
    name = "dlgrade_probe_inputs_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    exercise = str(path.resolve().parents[1])
    before = set(sys.modules)
    sys.path[:0] = [exercise, str(path.resolve().parent)]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:2] = []
        for added in set(sys.modules) - before:
            if str(getattr(sys.modules[added], "__file__", "") or "").startswith(exercise + "/"):
                del sys.modules[added]
    sys.modules[name] = module
    return module


def draw_inputs(graders_dir: Path, probe: ProbeConfig, seed: int) -> dict:
    """`make_inputs(seed)` of the assignment's inputs module: the arrays the probe sandbox may see."""
    import numpy as np

    made = _module(graders_dir / probe.inputs).make_inputs(seed)
    arrays = {str(name): np.asarray(value) for name, value in made.items()}
    for name, array in arrays.items():
        if array.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"{probe.inputs}: make_inputs gave {name} of dtype {array.dtype}; numbers only")
    return arrays


def definitions(notebook: nbformat.NotebookNode, cells: Sequence[str]) -> list[dict[str, str]]:
    """The source of each graded definition cell (by grade_id, in notebook order) of the restored notebook."""
    found = []
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and grade_id in cells:
            found.append({"grade_id": grade_id, "source": cell.source})
    return found


class ProbeSandbox:
    """One probe run's fresh sandbox: a plain interpreter that executes the graded definitions and the probe.

    `warm=True` starts the interpreter at once, before the submission is known: it imports `config`'s preload
    (numpy and the backend; no student code, no request yet) and waits for its request, so a batch's next probe
    starts while the current submission's graders run. Cold, it starts when `run` has laid the request out. Either
    way the limits count from the hand-over, and the sandbox serves exactly one submission.
    """

    def __init__(self, *, config: AssignmentConfig, mounts: Sequence[sandbox.Mount], env: dict[str, str],
                 slot: int = 0, isolated: bool = True, warm: bool = False):
        self._tmp = tempfile.TemporaryDirectory(prefix="dlgrade-probe-")
        base = Path(self._tmp.name)
        base.chmod(0o755)  # the sandbox user reaches both folders, and may write only in scratch
        self.scratch, self.shared = base / "scratch", base / "artifacts"
        self.scratch.mkdir()
        self.shared.mkdir(mode=0o755)
        (self.scratch / ".dlgrade").mkdir()
        shutil.copy2(Path(__file__).with_name("probe_runner.py"), self.scratch / ".dlgrade" / "probe_runner.py")
        self.isolated = isolated
        argv = [str(Path(sys.prefix) / "bin" / "python"), "-I", "-B", ".dlgrade/probe_runner.py",
                ".dlgrade/request.json", "--preload", ",".join(config.preload_modules) if warm else ""]
        limits = sandbox.Limits(wall_seconds=config.probe.wall_seconds, memory_bytes=config.limits.memory_bytes,
                                max_tasks=config.limits.max_tasks, max_file_bytes=MAX_OUTPUT_BYTES,
                                tmp_bytes=config.limits.tmp_bytes, disk_bytes=MAX_OUTPUT_BYTES * 2)
        all_mounts = [*mounts, sandbox.Mount(self.shared, Path(ARTIFACTS_MOUNT))] if isolated else []
        self._start = dict(scratch=self.scratch, limits=limits, mounts=all_mounts, env=env, slot=slot,
                           isolated=isolated)
        self.running: sandbox.Running | None = None
        if warm:
            self.running = sandbox.start(argv, **self._start)
        self._argv = argv

    def usable(self) -> bool:
        """Whether a warm sandbox still runs, waiting for its request (a pool starts a cold one otherwise)."""
        return self.running is None or self.running.alive()

    def run(self, *, probe: ProbeConfig, graders_dir: Path, notebook: nbformat.NotebookNode,
            artifacts: dict[str, Path], seed: int) -> ProbeRun:
        """The probe on `notebook`'s restored definitions and this seed's inputs; the arrays validated here."""
        try:
            inputs = draw_inputs(graders_dir, probe, seed)
            _read_only_copy(artifacts, probe.artifacts, self.shared)
            _lay_out(self.scratch, script=graders_dir / probe.script, cells=definitions(notebook, probe.cells),
                     inputs=inputs, artifacts_inside=ARTIFACTS_MOUNT if self.isolated else str(self.shared))
            self.running = self.running or sandbox.start(self._argv, **self._start)
            run = self.running.watch()
            arrays, problems = validate_outputs(self.scratch / "outputs.npz")
        finally:
            self.close()
        if run.stopped:
            problems.insert(0, f"the probe was {run.reason}")
        return ProbeRun(seed=seed, arrays=arrays or None, problems=tuple(problems), run=run)

    def close(self) -> None:
        """Stop the sandbox if it still runs and remove its folders."""
        if self.running is not None and self.running.alive():
            self.running.kill()
        self._tmp.cleanup()


def _lay_out(scratch: Path, *, script: Path, cells: list[dict[str, str]], inputs: dict, artifacts_inside: str) -> None:
    """The request beside the runner; request.json last, renamed into place (a warm runner waits for that name)."""
    import numpy as np

    runner = scratch / ".dlgrade"
    shutil.copy2(script, runner / "probe.py")
    np.savez(runner / "inputs.npz", **inputs)
    request = {"script": ".dlgrade/probe.py", "cells": cells, "inputs": ".dlgrade/inputs.npz",
               "artifacts": artifacts_inside, "outputs": "outputs.npz"}
    (runner / ".request.json").write_text(json.dumps(request))
    os.rename(runner / ".request.json", runner / "request.json")


def _read_only_copy(artifacts: dict[str, Path], names: Sequence[str], folder: Path) -> None:
    """The artifacts the probe reads, copied where the sandbox user may read but not change them."""
    for name in names:
        if name in artifacts:
            shutil.copyfile(artifacts[name], folder / name)
            (folder / name).chmod(0o444)


def validate_outputs(path: Path) -> tuple[dict, list[str]]:
    """The arrays of the .npz the probe sandbox left, as far as they are plain numbers or short error strings.

    Checked before numpy reads a byte of data: a regular file (no link followed), a zip of at most MAX_ARRAYS
    members whose uncompressed size is bounded; then each array loaded without pickles, and kept only when it is
    numeric (or a 0-d string named error_*). Returns the arrays and what was dropped.
    """
    import numpy as np

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}, ["the probe left no outputs.npz"]
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return {}, ["outputs.npz is not a regular file"]
        try:
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
                if len(members) > MAX_ARRAYS:
                    return {}, [f"outputs.npz holds {len(members)} arrays (at most {MAX_ARRAYS})"]
                if sum(member.file_size for member in members) > MAX_OUTPUT_BYTES:
                    return {}, [f"outputs.npz holds more than {MAX_OUTPUT_BYTES // 2**20} MiB"]
                handle.seek(0)
                arrays, problems = {}, []
                with np.load(handle, allow_pickle=False) as npz:
                    for name in npz.files:
                        try:
                            array = npz[name]
                        except ValueError as exc:  # numpy refuses pickled (object) arrays this way
                            problems.append(f"{name[:60]}: object arrays are refused" if "pickle" in str(exc)
                                            else f"{name[:60]}: unreadable ({type(exc).__name__})")
                            continue
                        except (OSError, zipfile.BadZipFile, EOFError) as exc:
                            problems.append(f"{name[:60]}: unreadable ({type(exc).__name__})")
                            continue
                        problem = _array_problem(name, array)
                        if problem:
                            problems.append(problem)
                        else:
                            arrays[name] = array
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            return {}, [f"outputs.npz is not an .npz archive ({type(exc).__name__})"]
    return arrays, problems


def _array_problem(name: str, array) -> str | None:
    if not name.isidentifier() or len(name) > 100:
        return f"{name[:60]!r}: not a plain name"
    if array.dtype.kind in NUMERIC_KINDS:
        return None
    if name.startswith("error_") and array.dtype.kind == "U" and array.ndim == 0 and len(str(array)) <= MAX_ERROR_CHARS:
        return None
    return f"{name}: dtype {array.dtype} of shape {array.shape} is not a plain numeric array"


def run_probe(*, config: AssignmentConfig, graders_dir: Path, notebook: nbformat.NotebookNode,
              artifacts: dict[str, Path], seed: int, mounts: Sequence[sandbox.Mount], env: dict[str, str],
              slot: int = 0, isolated: bool = True, sandboxed: ProbeSandbox | None = None) -> ProbeRun:
    """Run the assignment's probe in a fresh sandbox on the restored definitions and this seed's inputs.

    `mounts` are the interpreter's (without the dlgrade package) and the assignment's resources; `env` the kernel's
    environment (threads, backend); `sandboxed` a warm probe sandbox started with the same settings (else a cold
    one starts here). Nothing computed in there is believed: the arrays are validated here.
    """
    sandboxed = sandboxed or ProbeSandbox(config=config, mounts=mounts, env=env, slot=slot, isolated=isolated)
    return sandboxed.run(probe=config.probe, graders_dir=graders_dir, notebook=notebook, artifacts=artifacts,
                         seed=seed)


def write_for_graders(probe_run: ProbeRun, artifacts_dir: Path) -> None:
    """probe.npz (the validated arrays, written anew here: never the sandbox's file) and probe.json (the seed)."""
    import numpy as np

    if probe_run.arrays is not None:
        np.savez(artifacts_dir / OUTPUTS_FILE, **probe_run.arrays)
    problems = list(probe_run.problems)
    (artifacts_dir / SEED_FILE).write_text(json.dumps({"seed": probe_run.seed, "problems": problems}))
