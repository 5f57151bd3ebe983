"""A long-lived grader process: imports TensorFlow, Keras and pytest once, then grades one request at a time.

    python -m autograder.grader_server --inbox DIR --outbox DIR --preload numpy,tensorflow,keras [--sandboxed]

It runs no student code, but it opens the submission's archives, so it runs in a sandbox of its own
(`autograder.graders.GraderProcess`): no network, a non-root uid, a memory cgroup, a private size-limited /tmp.
The host talks to it through two folders. The inbox (read-only here) holds `request-<n>.json` and the request's
artifacts; the server answers in the outbox (its writable home) with `reply-<n>.json`, which carries the request's
nonce, how the run ended, the checks' results as written by the plugin and the tail of pytest's output. The host
treats every byte of the reply as untrusted: the graders parse files made by a student.

Each request is run by pytest in a forked child, in a fresh folder below /tmp that is its HOME, TMPDIR and
working directory, so one submission's graders never see another's state; the child is killed when it passes
the request's time or memory limit. Afterwards the server removes that folder and, in a sandbox, every process
the child left behind.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import resource
import shutil
import signal
import stat
import sys
import time
from pathlib import Path

import psutil

from autograder.watch import family_rss

READY = "dlgrade-grader-ready"
PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.02
LOG_TAIL_CHARS = 25_000
RESULTS_CHARS = 4 * 2**20  # what the plugin writes for a few dozen checks is a few KiB


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a batch killed with kill -9 leaves nothing).

    Linux sends it when the parent *thread* that started this process ends: a batch starts a slot's grader
    process in that slot's worker thread, which lives as long as the batch."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_child(request: dict, work: Path) -> int:
    """In the forked child: the request's environment, `work` as home, temp and working folder, pytest."""
    import pytest

    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(work / "pytest.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if request.get("file_bytes"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_bytes"], request["file_bytes"]))
    os.environ.update(request["env"])
    os.environ.update({"HOME": str(work), "TMPDIR": str(work)})
    os.chdir(work)
    import tempfile

    tempfile.tempdir = None  # picked up again from TMPDIR
    return int(pytest.main([*request["args"], f"--dlgrade-results={work / 'results.json'}"]))


def _tail(path: Path, chars: int) -> str:
    """The last `chars` characters of a file the child wrote; "" unless it is a regular file (a child that a
    crafted archive took over could leave a pipe there, which would block a plain open)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        handle.seek(max(0, os.fstat(fd).st_size - 4 * chars))
        return handle.read(8 * chars).decode("utf-8", errors="replace")[-chars:]


def serve(request: dict, *, work: Path) -> dict:
    """Fork, run the graders in the child under the request's limits, and say how it ended."""
    begin = time.monotonic()
    work.mkdir(mode=0o700)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            die_with_parent()
            code = _run_child(request, work)
        finally:
            sys.stdout.flush()  # os._exit skips it, and pytest's summary is the log's last lines
            sys.stderr.flush()
            os._exit(code)
    stopped, peak = None, 0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, family_rss(pid))
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
    results = None  # a child that was stopped wrote no complete results
    if stopped is None:
        results = _tail(work / "results.json", RESULTS_CHARS + 1) or None  # cut short: refused by the host
    return {"nonce": request["nonce"], "returncode": returncode, "stopped": stopped, "peak_memory_bytes": peak,
            "seconds": round(time.monotonic() - begin, 2), "results": results,
            "log": _tail(work / "pytest.log", LOG_TAIL_CHARS)}


def _clean_up(work: Path, *, sandboxed: bool) -> None:
    """Leave nothing of one request for the next: its folder, and in a sandbox every other process."""
    if sandboxed:  # alone in the sandbox's pid namespace with its init (pid 1): every other process is a leftover
        for process in psutil.process_iter():
            if process.pid not in (1, os.getpid()):
                try:
                    process.kill()
                except psutil.Error:
                    pass
        while True:  # reap our own, so none is left a zombie
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    break
            except ChildProcessError:
                break
    shutil.rmtree(work, ignore_errors=True)


def _write_reply(outbox: Path, number: int, reply: dict) -> None:
    """Beside its final name, then renamed into place: the host never reads half a reply."""
    partial = outbox / f".reply-{number}.json"
    partial.write_text(json.dumps(reply))
    os.rename(partial, outbox / f"reply-{number}.json")


def _next_request(inbox: Path, number: int) -> dict | None:
    """Request `number` once the host has renamed it into the inbox; None when the host asked us to stop."""
    path = inbox / f"request-{number}.json"
    while not path.exists():
        if (inbox / "stop").exists():
            return None
        time.sleep(POLL_SECONDS)
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.grader_server", description=__doc__.splitlines()[0])
    parser.add_argument("--preload", default="", help="comma-separated modules imported once, before any request")
    parser.add_argument("--inbox", required=True, type=Path, help="folder of requests and their artifacts")
    parser.add_argument("--outbox", required=True, type=Path, help="folder where replies are written")
    parser.add_argument("--sandboxed", action="store_true",
                        help="alone in a pid namespace: after each request, kill every process but this one")
    args = parser.parse_args(argv)
    die_with_parent()
    for module in ["pytest", "autograder.pytest_plugin", *[m for m in args.preload.split(",") if m]]:
        importlib.import_module(module)
    print(READY, flush=True)
    number = 1
    scratch = Path(os.environ.get("TMPDIR") or "/tmp")
    while (request := _next_request(args.inbox, number)) is not None:
        work = scratch / f"dlgrade-request-{number}"
        try:
            reply = serve(request, work=work)
        finally:
            _clean_up(work, sandboxed=args.sandboxed)
        _write_reply(args.outbox, number, reply)
        number += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
