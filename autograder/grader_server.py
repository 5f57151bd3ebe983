"""A long-lived grader process: imports TensorFlow, Keras and pytest once, then grades one request at a time.

    python -m autograder.grader_server --preload numpy,tensorflow,keras

It runs no student code: it only reads artifacts. Each request (one JSON line on stdin) is run by pytest in a
forked child, so one submission's graders never see another's state; the child's output goes to the request's
log file, and the child is killed when it passes the request's time or memory limit. The reply is one JSON line
on stdout. `autograder.graders.GraderProcess` is the other end.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time

import psutil

READY = {"ready": True}
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a batch killed with kill -9 leaves nothing).

    Linux sends it when the parent *thread* that started this process ends: a batch starts a slot's grader
    process in that slot's worker thread, which lives as long as the batch."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_child(request: dict) -> int:
    """In the forked child: the request's environment and directory, pytest's output to the log, pytest."""
    import pytest

    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    return int(pytest.main(request["args"]))


def _family_rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return sum(member.memory_info().rss for member in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def serve(request: dict) -> dict:
    """Fork, run the graders in the child under the request's limits, and say how it ended."""
    begin = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            die_with_parent()
            code = _run_child(request)
        finally:
            sys.stdout.flush()  # os._exit skips it, and pytest's summary is the log's last lines
            sys.stderr.flush()
            os._exit(code)
    stopped, peak = None, 0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _family_rss(pid))
        if peak > request["memory_bytes"]:
            stopped = "memory"
        elif time.monotonic() - begin > request["timeout"]:
            stopped = "timeout"
        if stopped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = -signal.SIGKILL
            break
        time.sleep(0.05)
    returncode = os.waitstatus_to_exitcode(status) if status != -signal.SIGKILL else status
    return {"returncode": returncode, "stopped": stopped, "peak_memory_bytes": peak,
            "seconds": round(time.monotonic() - begin, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.grader_server", description=__doc__.splitlines()[0])
    parser.add_argument("--preload", default="", help="comma-separated modules imported once, before any request")
    args = parser.parse_args(argv)
    die_with_parent()
    for module in ["pytest", "autograder.pytest_plugin", *[m for m in args.preload.split(",") if m]]:
        importlib.import_module(module)
    print(json.dumps(READY), flush=True)
    for line in sys.stdin:
        print(json.dumps(serve(json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
