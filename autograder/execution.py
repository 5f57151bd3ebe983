"""Execute a submission's notebook in the sandbox and bring its artifacts out as plain files."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

import autograder
from autograder import sandbox, untrusted_files
from autograder.course import AssignmentConfig
from autograder.kernel_runner import READY

RUNNER_DIR = ".dlgrade"
KERNEL_START_SECONDS = 300.0  # kernel start and preload, before the time limit counts (a loaded machine is slow)


@dataclass(frozen=True)
class Execution:
    """What running a notebook produced: the sandbox's account, the executed notebook (untrusted), artifacts."""

    run: sandbox.SandboxResult
    executed: nbformat.NotebookNode | None
    artifacts: dict[str, Path]  # declared artifact name -> copy outside the scratch directory
    missing_artifacts: tuple[str, ...]
    refused_artifacts: dict[str, str] = field(default_factory=dict)  # missing because refused: name -> reason


MIRRORS = Path("/var/tmp/dlgrade-mirrors")  # reachable copies of private paths, for a grader running as root


def _reachable(path: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """`path` itself, or a hard-linked mirror of it when the sandbox uid could not reach it (root's home)."""
    if os.geteuid() != 0 or sandbox.reachable_by_others(path):
        return path
    packages = next(path.glob("lib/python3*/site-packages"), path)
    key = hashlib.sha256(f"{path}:{packages.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    MIRRORS.mkdir(mode=0o755, parents=True, exist_ok=True)
    return sandbox.mirror_tree(path, MIRRORS / f"{path.name}-{key}", skip=skip)


def python_mounts(*, engine: bool = False) -> list[sandbox.Mount]:
    """The interpreter and the virtual environment, read-only at their own paths; with `engine` this package too
    (for the grader process, which runs no student code). A notebook's or probe's sandbox runs without it: its
    runner is one file copied into the scratch folder, and a release needs nothing of dlgrade."""
    base = Path(sys.base_prefix).resolve()
    mounts = [sandbox.Mount(_reachable(base, skip=("site-packages", "test", "__pycache__", "idlelib", "tkinter")),
                            base)]
    venv = Path(sys.prefix).resolve()
    if venv != base:
        mounts.append(sandbox.Mount(_reachable(venv), venv))
    if engine:
        package = Path(autograder.__file__).resolve().parent
        mounts.append(sandbox.Mount(_reachable(package), package))
    return mounts


def sandbox_mounts(config: AssignmentConfig, resources: Sequence[sandbox.Mount] = ()) -> list[sandbox.Mount]:
    """Everything a notebook's or probe's sandbox of `config` mounts: the interpreter, the resources (reachable
    copies) and GPUs; no engine code."""
    return [*python_mounts(), *(sandbox.Mount(_reachable(m.source), m.dest) for m in resources),
            *gpu_mounts(config)]


def gpu_mounts(config: AssignmentConfig) -> list[sandbox.Mount]:
    """NVIDIA device nodes for an assignment that wants a GPU, when this machine has one (else CPU, no error)."""
    if config.device != "gpu":
        return []
    nodes = sorted(Path("/dev").glob("nvidia*"))
    return [sandbox.Mount(node, node, device=True) for node in nodes if not node.is_dir()]


def kernel_env(config: AssignmentConfig) -> dict[str, str]:
    """Environment of the runner and kernel: quiet, deterministic, no GPU unless the assignment wants one."""
    return {
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_DETERMINISTIC_OPS": "1",
        "KERAS_BACKEND": config.backend,  # assignment.toml's backend; the release itself names none
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": "/tmp/ipython",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "") if config.device == "gpu" else "",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # parallel sandboxes and the graders share a card
        # threads per sandbox: fixed per assignment (not per --jobs), so a grade never depends on the batch
        "TF_NUM_INTRAOP_THREADS": str(config.cpu_threads),
        "TF_NUM_INTEROP_THREADS": str(config.cpu_threads),
        "OMP_NUM_THREADS": str(config.cpu_threads),
        **backend_env(config.backend, config.cpu_threads),
    }


def backend_env(backend: str, cpu_threads: int) -> dict[str, str]:
    """Thread and determinism settings of a Keras backend beyond TensorFlow's variables (kernel_env's), for the
    kernel and the grader process alike."""
    if backend == "jax":  # XLA on the CPU: one Eigen pool of cpu_threads, deterministic reductions
        return {"XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if cpu_threads > 1 else 'false'} "
                             f"intra_op_parallelism_threads={cpu_threads}",
                "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if backend == "torch":
        return {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # what torch's deterministic algorithms need on a GPU
    return {}


class SandboxedKernel:
    """One submission's sandbox: a fresh scratch directory with the release's files, and a kernel runner in it.

    The runner starts the kernel and imports `config.preload_modules`, then waits for its notebook. `warm=True` starts
    all that at once, before the notebook is known (a warm pool keeps one ready per worker); otherwise it starts in
    `run`. Either way the notebook is handed over once the kernel is ready, the limits count from there, and the
    sandbox serves exactly one notebook: warm and cold runs are the same run.
    """

    def __init__(self, *, config: AssignmentConfig, release_dir: Path, mounts: Sequence[sandbox.Mount],
                 env: dict[str, str], isolated: bool = True, slot: int = 0, warm: bool = False):
        self._tmp = tempfile.TemporaryDirectory(prefix="dlgrade-scratch-")
        self.scratch = Path(self._tmp.name)
        self.config = config
        _copy_release_files(release_dir, self.scratch, skip=config.notebook_name)
        (self.scratch / RUNNER_DIR).mkdir()
        shutil.copy2(Path(__file__).with_name("kernel_runner.py"), self.scratch / RUNNER_DIR / "kernel_runner.py")
        self._argv = [str(Path(sys.prefix) / "bin" / "python"), "-B", f"{RUNNER_DIR}/kernel_runner.py",
                      f"{RUNNER_DIR}/input.ipynb", f"{RUNNER_DIR}/executed.ipynb",
                      "--cell-timeout", str(int(config.limits.wall_seconds)),
                      "--preload", ",".join(config.preload_modules)]
        self._start = dict(scratch=self.scratch, limits=config.limits, env=env, slot=slot,
                           mounts=tuple(mounts) if isolated else (), isolated=isolated)
        self.running: sandbox.Running | None = None
        if warm:
            self.running = sandbox.start(self._argv, **self._start)

    def usable(self) -> bool:
        """False for a warm sandbox that died before its notebook came (then a cold one takes its place)."""
        return self.running is None or self.running.alive()

    def run(self, notebook: nbformat.NotebookNode, *, artifacts_dir: Path) -> Execution:
        """Hand `notebook` over once the kernel is ready, wait for the end under the limits, copy artifacts out."""
        try:
            self.running = self.running or sandbox.start(self._argv, **self._start)
            self.wait_until_ready()
            self._hand_over(notebook)
            run = self.running.watch()
            executed = _read_untrusted_notebook(self.scratch / RUNNER_DIR / "executed.ipynb")
            biggest = self.config.limits.max_file_bytes
            budget, refused = untrusted_files.Budget(biggest), {}  # one limit for all the files together
            found, missing = collect_artifacts(self.scratch, self.config.artifacts, artifacts_dir, max_bytes=biggest,
                                               budget=budget, refused=refused)
            extras, _ = collect_artifacts(self.scratch, self.config.extras, artifacts_dir, max_bytes=biggest,
                                          budget=budget)
        finally:
            self.close()
        return Execution(run=run, executed=executed, artifacts={**found, **extras}, missing_artifacts=missing,
                         refused_artifacts=refused)

    def wait_until_ready(self) -> None:
        """Until the runner says its kernel is up with `preload` imported; no student code has run yet, so a
        kernel that does not start is our failure, not the submission's."""
        deadline = time.monotonic() + KERNEL_START_SECONDS
        while READY not in self.running.err.text():
            if not self.running.alive() or time.monotonic() > deadline:
                self.running.kill()
                raise RuntimeError(f"the sandbox's kernel did not start (exit {self.running.popen.returncode}):\n"
                                   f"{self.running.err.text()[-3000:]}")
            time.sleep(0.02)

    def _hand_over(self, notebook: nbformat.NotebookNode) -> None:
        """Write the notebook beside its final name without following a link, then rename it into place."""
        handover = self.scratch / RUNNER_DIR / ".input.ipynb"
        fd = os.open(handover, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            nbformat.write(notebook, handle)
        os.rename(handover, self.scratch / RUNNER_DIR / "input.ipynb")  # the runner waits for this name

    def close(self) -> None:
        """Stop the sandbox if it still runs and remove its scratch directory."""
        if self.running is not None and self.running.alive():
            self.running.kill()
        self._tmp.cleanup()


def execute_notebook(notebook: nbformat.NotebookNode, *, config: AssignmentConfig, release_dir: Path,
                     artifacts_dir: Path, mounts: Sequence[sandbox.Mount], env: dict[str, str], isolated: bool = True,
                     slot: int = 0, kernel: SandboxedKernel | None = None) -> Execution:
    """Run `notebook` in a fresh scratch directory holding the release's files; copy declared artifacts out.

    `mounts` and `env` are the sandbox's (`plan.sandbox_settings`: interpreter, resources, GPUs; the kernel's
    variables); `kernel` is a warm sandbox started with the same settings (else a cold one is started here).
    """
    kernel = kernel or SandboxedKernel(config=config, release_dir=release_dir, mounts=mounts, env=env,
                                       isolated=isolated, slot=slot)
    return kernel.run(notebook, artifacts_dir=artifacts_dir)


def _copy_release_files(release_dir: Path, scratch: Path, *, skip: str) -> None:
    for item in release_dir.iterdir():
        if item.name == skip or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, scratch / item.name)
        else:
            shutil.copy2(item, scratch / item.name)


def _read_untrusted_notebook(path: Path, *, root: Path | None = None) -> nbformat.NotebookNode | None:
    """The notebook the sandbox wrote at `path`, or None when it is not a readable regular file there.

    Only `root` is trusted (default: the scratch directory above `RUNNER_DIR`): every component below it was
    the sandbox's to replace with a link, so it is walked without following any (`untrusted_files`)."""
    if root is None:
        root = path.parents[1] if path.parent.name == RUNNER_DIR else path.parent
    try:
        data = untrusted_files.read_regular(root, path.relative_to(root).as_posix(), max_bytes=64 * 2**20)
        return nbformat.reads(data.decode("utf-8", errors="replace"), as_version=4)
    except Exception:  # whatever the sandbox left there is data we may fail to parse; it only feeds messages
        return None


def collect_artifacts(scratch: Path, names: tuple[str, ...], dest: Path, *, max_bytes: int = 2**30,
                      budget: untrusted_files.Budget | None = None, refused: dict[str, str] | None = None
                      ) -> tuple[dict[str, Path], tuple[str, ...]]:
    """Copy each declared artifact that is a regular, non-sparse file of at most `max_bytes`, never following a
    link; `budget` (shared by the calls for one submission) caps what all copies write together.

    Returns the copies and the names not copied; `refused`, when given, gets the reason for each name that
    exists but was refused (a link, a pipe, a sparse or oversized file, over the budget)."""
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        if Path(name).name != name:
            raise ValueError(f"artifact names are plain file names, not paths: {name!r}")
        target = dest / name
        target.unlink(missing_ok=True)  # the host's own copy of an earlier run, never a sandbox's file
        copied = untrusted_files.copy_out(scratch, name, target, max_bytes=max_bytes, budget=budget)
        if copied.path is not None:
            found[name] = copied.path
            continue
        missing.append(name)
        if copied.reason and refused is not None:
            refused[name] = copied.reason
    return found, tuple(missing)
