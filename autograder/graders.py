"""Run an assignment's hidden pytest graders over a submission's artifacts, in a process of their own.

That process never runs student code: it reads artifacts (a `.keras` file loaded with safe_mode=True, arrays,
JSON) and computes everything else itself. A `GraderProcess` is long-lived (one per worker of a batch): it
imports TensorFlow once and forks a fresh child per submission (`autograder.grader_server`).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from autograder.course import AssignmentConfig
from autograder.results import CheckResult

DEFAULT_PRELOAD = AssignmentConfig.preload
DEFAULT_MEMORY = AssignmentConfig.grader_memory_bytes
START_SECONDS = 300.0  # importing TensorFlow on a loaded machine


class GraderProcess:
    """A grader server: started once, `run` for each submission, `close` at the end of the batch."""

    def __init__(self, *, preload: Sequence[str] = DEFAULT_PRELOAD, memory_bytes: int = DEFAULT_MEMORY):
        self.memory_bytes = memory_bytes
        self._home = tempfile.TemporaryDirectory(prefix="dlgrade-graders-")
        self._stderr = open(Path(self._home.name) / "server.log", "w+")  # noqa: SIM115 - lives with the process
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1",
               "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
               "KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "HOME": self._home.name}
        self._popen = subprocess.Popen([sys.executable, "-m", "autograder.grader_server", "--preload",
                                        ",".join(preload)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=self._stderr, text=True, env=env, cwd=self._home.name)
        self._ready = False

    def alive(self) -> bool:
        """Whether the server still runs (a pool replaces one that died)."""
        return self._popen.poll() is None

    def _reply(self, seconds: float) -> dict | None:
        readable, _, _ = select.select([self._popen.stdout], [], [], seconds)
        line = self._popen.stdout.readline() if readable else ""
        return json.loads(line) if line else None

    def run(self, *, graders_dir: Path, artifacts_dir: Path, timeout: float,
            env: dict[str, str] | None = None) -> tuple[list[CheckResult], str]:
        """The checks' results, and pytest's own output for the instructor's log (never shown to students)."""
        if not self._ready:
            if self._reply(START_SECONDS) is None:  # ours to fix, not the submission's: an internal error
                raise RuntimeError("the grader process did not start:\n" + self._server_log())
            self._ready = True
        with tempfile.TemporaryDirectory(prefix="dlgrade-graders-") as tmp:
            results_path, log_path = Path(tmp) / "results.json", Path(tmp) / "pytest.log"
            args = [str(graders_dir), "-p", "autograder.pytest_plugin", "--assert=plain", "-q", "-p",
                    "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(graders_dir),
                    f"--dlgrade-artifacts={artifacts_dir}", f"--dlgrade-results={results_path}"]
            request = {"args": args, "env": {"HOME": tmp, **(env or {})}, "cwd": tmp, "log": str(log_path),
                       "timeout": timeout, "memory_bytes": self.memory_bytes}
            try:
                self._popen.stdin.write(json.dumps(request) + "\n")
                self._popen.stdin.flush()
                reply = self._reply(timeout + 60)
            except (BrokenPipeError, OSError):
                reply = None
            log = log_path.read_text(errors="replace")[-25000:] if log_path.exists() else ""
            if reply is None:  # the server itself died (a child's crash is a reply): an internal error
                server_log = self._server_log()
                self.close()
                raise RuntimeError(f"the grader process died:\n{log}\n{server_log}")
            if reply["stopped"] == "timeout":
                return [], f"the hidden graders took longer than {timeout:.0f} s\n{log}"
            if reply["stopped"] == "memory":
                return [], f"the hidden graders used more than {self.memory_bytes / 2**30:.1f} GiB\n{log}"
            if not results_path.exists():
                return [], log
            checks = [CheckResult(**item) for item in json.loads(results_path.read_text())]
        return checks, log

    def _server_log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-5000:]

    def close(self) -> None:
        """Stop the server and remove its home folder."""
        if self.alive():
            self._popen.kill()
        self._popen.wait()
        self._stderr.close()
        self._home.cleanup()


def run_graders(*, graders_dir: Path, artifacts_dir: Path, timeout: float, env: dict[str, str] | None = None,
                preload: Sequence[str] = DEFAULT_PRELOAD, memory_bytes: int = DEFAULT_MEMORY
                ) -> tuple[list[CheckResult], str]:
    """One submission's checks in a grader process of its own (a batch keeps one per worker instead)."""
    process = GraderProcess(preload=preload, memory_bytes=memory_bytes)
    try:
        return process.run(graders_dir=graders_dir, artifacts_dir=artifacts_dir, timeout=timeout, env=env)
    finally:
        process.close()
