"""Run an assignment's hidden pytest graders over a submission's artifacts, in a process of their own.

That process never runs student code: it reads artifacts (a `.keras` file loaded with safe_mode=True, arrays,
JSON) and computes everything else itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.results import CheckResult


def run_graders(*, graders_dir: Path, artifacts_dir: Path, timeout: float,
                env: dict[str, str] | None = None) -> tuple[list[CheckResult], str]:
    """The checks' results, and pytest's own output for the instructor's log (never shown to students).

    `env` adds variables for the graders (where the course's checkpoint lives, its profile).
    """
    with tempfile.TemporaryDirectory(prefix="dlgrade-graders-") as tmp:
        results_path = Path(tmp) / "results.json"
        argv = [sys.executable, "-m", "pytest", str(graders_dir), "-p", "autograder.pytest_plugin",
                "--assert=plain", "-q", "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(graders_dir),
                f"--dlgrade-artifacts={artifacts_dir}", f"--dlgrade-results={results_path}"]
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1",
               "KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "HOME": tmp, **(env or {})}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
            log = done.stdout[-20000:] + done.stderr[-5000:]
        except subprocess.TimeoutExpired:
            return [], f"the hidden graders took longer than {timeout:.0f} s"
        if not results_path.exists():
            return [], log
        checks = [CheckResult(**item) for item in json.loads(results_path.read_text())]
    return checks, log
