"""Run an assignment's hidden pytest graders over a submission's artifacts, in a sandbox of their own.

The graders never run student code, but they open what a student made: `.keras` archives (loaded with
safe_mode=True after `keras_checks` has inspected them), arrays, JSON. A crafted file must cost at most its
submission's points, so the grader process runs sandboxed like a notebook (`autograder.sandbox`): a non-root uid
of its own, no network, a memory cgroup, a private size-limited /tmp; it sees the interpreter, the engine, a
copy of the assignment's folder (graders and their data, no notebook) at its own path, the resources the graders
read (the assignment's resources) and, read-only, the artifacts of the submission it grades, nothing else of the
host.

A `GraderProcess` is long-lived (one per worker of a batch): its sandbox imports TensorFlow once and forks a
fresh child per submission (`autograder.grader_server`). The host hands each submission's artifacts over
through an inbox folder the sandbox sees read-only (hard links, or copies, made per request) and reads the
reply from the sandbox's home as untrusted data: never through a link, size-capped, the request's nonce
echoed, every check validated against the `CheckResult` schema.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from autograder import sandbox, untrusted_files
from autograder.course import AssignmentConfig
from autograder.results import CheckResult

DEFAULT_PRELOAD = AssignmentConfig(name='').preload_modules
DEFAULT_MEMORY = AssignmentConfig.grader_memory_bytes
DEFAULT_TMP_BYTES = sandbox.Limits.tmp_bytes
START_SECONDS = 300.0  # importing TensorFlow on a loaded machine
SERVER_MEMORY_BYTES = 2 * 2**30  # the server itself (TensorFlow imported) beside its child: the sandbox's cap
LIFETIME_SECONDS = 30 * 24 * 3600.0  # the sandbox lives as long as its batch; each request has its own limit
GRADER_SLOT_OFFSET = 1000  # grader sandboxes run as host uids apart from the notebook sandboxes of their slot
INBOX = Path("/opt/dlgrade/inbox")  # where the sandbox sees the inbox
REPLY_BYTES = 8 * 2**20
MAX_CHECKS = 1000
MAX_TEXT = 100_000  # characters of one check's name or message
SKIPPED = ("__pycache__", ".pytest_cache", "*.ipynb", ".*")  # never copied for the graders: no solution notebook


def server_env(backend: str) -> dict[str, str]:
    """The grader server's environment: quiet, deterministic, one thread, Keras on the assignment's backend (the
    one that trained the artifacts, so they load and run as the notebook saw them)."""
    from autograder.execution import backend_env  # the kernel's settings of the same backend

    return {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1",
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
            "KERAS_BACKEND": backend, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
            "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", **backend_env(backend, 1)}


class GraderProcess:
    """A sandboxed grader server: started once, `run` for each submission, `close` at the end of the batch.

    `graders_dir` starts it at once (else on the first `run`); `read_only` are host paths the graders read
    (the assignment's resources), visible at the same path inside; `devices` are device mounts (GPUs);
    `artifact_bytes` is the assignment's artifact limit, from which `keras_checks` bounds what an archive may
    expand to; `tmp_bytes` sizes the private /tmp. `isolated=False` (the instructor's --no-sandbox) runs the
    same server unprotected, as the current user.
    """

    def __init__(self, *, preload: Sequence[str] = DEFAULT_PRELOAD, backend: str = "tensorflow",
                 memory_bytes: int = DEFAULT_MEMORY, graders_dir: Path | None = None, slot: int = 0,
                 isolated: bool = True,
                 read_only: Sequence[Path] = (), devices: Sequence[sandbox.Mount] = (),
                 artifact_bytes: int | None = None, tmp_bytes: int = DEFAULT_TMP_BYTES):
        self.memory_bytes = memory_bytes
        self.preload, self.backend = tuple(preload), backend
        self.slot, self.isolated = slot, isolated
        self.read_only, self.devices = tuple(read_only), tuple(devices)
        # room in /tmp for what an archive within the artifact limit expands to (keras_checks bounds that), so an
        # honest large model never fills it; a full /tmp still takes the whole server down (README, known limits)
        self.artifact_bytes = artifact_bytes
        self.tmp_bytes = max(tmp_bytes, 2 * artifact_bytes) if artifact_bytes else tmp_bytes
        self.start_seconds: float | None = None  # from start to ready, once known
        self._running: sandbox.Running | None = None
        self._graders_dir: Path | None = None
        if graders_dir is not None:
            self._start(Path(graders_dir).resolve())

    # ------------------------------------------------------------------------------------------- starting
    def _start(self, graders_dir: Path) -> None:
        self._group = os.getegid() if os.geteuid() != 0 else sandbox.HOST_UID_BASE + GRADER_SLOT_OFFSET + self.slot
        self._base = Path(tempfile.mkdtemp(prefix="dlgrade-graders-"))
        self._base.chmod(0o711)  # traversable, for the sandbox's uid to reach its folders; not listable
        self._inbox, self._home = self._base / "inbox", self._base / "home"
        self._private_dir(self._inbox)
        self._home.mkdir()
        self._number = 0
        self._graders_dir = graders_dir
        assignment = graders_dir.parent
        env = server_env(self.backend)
        argv = [str(Path(sys.prefix) / "bin" / "python"), "-m", "autograder.grader_server",
                "--preload", ",".join(self.preload)]
        if self.isolated:
            from autograder.execution import _reachable, python_mounts  # the notebook sandbox's own mounts

            copy = self._base / "assignment"
            shutil.copytree(assignment, copy, ignore=shutil.ignore_patterns(*SKIPPED))
            self._share(copy)
            mounts = [*python_mounts(engine=True), sandbox.Mount(copy, assignment), sandbox.Mount(self._inbox, INBOX),
                      *(sandbox.Mount(_reachable(path), path) for path in self.read_only), *self.devices]
            argv += ["--inbox", str(INBOX), "--outbox", sandbox.SCRATCH_MOUNT, "--sandboxed"]
            env.update({"TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"})
            self._inbox_inside = INBOX
        else:
            tmp = self._base / "tmp"
            tmp.mkdir()
            mounts = []
            argv += ["--inbox", str(self._inbox), "--outbox", str(self._home)]
            env.update({"TMPDIR": str(tmp), "MPLCONFIGDIR": str(tmp / "matplotlib")})
            self._inbox_inside = self._inbox
        limits = sandbox.Limits(wall_seconds=LIFETIME_SECONDS, memory_bytes=self.memory_bytes + SERVER_MEMORY_BYTES,
                                max_file_bytes=max(self.tmp_bytes, 2**20), tmp_bytes=self.tmp_bytes,
                                disk_bytes=64 * 2**20, max_files=4096)
        self._began = time.monotonic()
        self._running = sandbox.start(argv, scratch=self._home, limits=limits, mounts=mounts, env=env,
                                      slot=GRADER_SLOT_OFFSET + self.slot, isolated=self.isolated)
        self._ended: sandbox.SandboxResult | None = None
        self._watcher = threading.Thread(target=self._watch, args=(self._running,), daemon=True)
        self._watcher.start()

    def _watch(self, running: sandbox.Running) -> None:
        """The sandbox's own limits (time of its life, memory, disk) hold while it serves; watched here."""
        self._ended = running.watch()

    def _private_dir(self, path: Path) -> None:
        path.mkdir(mode=0o750)
        self._share(path)

    def _share(self, path: Path) -> None:
        """Readable by the sandbox's uid (through its group) and by nobody else (hidden graders stay hidden)."""
        for item in [path, *path.rglob("*")]:
            if item.is_symlink():
                continue
            if os.geteuid() == 0:
                os.chown(item, 0, self._group)
            item.chmod(0o750 if item.is_dir() else 0o640)

    def alive(self) -> bool:
        """Whether the server still runs (a pool replaces one that died)."""
        return self._running is None or self._running.alive()

    def wait_until_ready(self) -> None:
        """Until the server has imported its preload; no submission is involved yet, so failing here is ours."""
        deadline = time.monotonic() + START_SECONDS
        while not sandbox_ready(self._running):
            if not self._running.alive() or time.monotonic() > deadline:
                log = self._server_log()
                self.close()
                raise RuntimeError("the grader process did not start:\n" + log)
            time.sleep(0.02)
        if self.start_seconds is None:
            self.start_seconds = round(time.monotonic() - self._began, 2)

    # -------------------------------------------------------------------------------------------- serving
    def run(self, *, graders_dir: Path, artifacts_dir: Path, timeout: float,
            env: dict[str, str] | None = None) -> tuple[list[CheckResult], str]:
        """The checks' results, and pytest's own output for the instructor's log (never shown to students)."""
        graders_dir = Path(graders_dir).resolve()
        if self._graders_dir != graders_dir:  # another assignment's graders: they are mounted at the start
            self.close()
            self._start(graders_dir)
        self.wait_until_ready()
        self._number += 1
        number, nonce = self._number, secrets.token_hex(16)
        handed = self._inbox / f"artifacts-{number}"
        _hand_over(Path(artifacts_dir), handed, share=self._share)
        extra = {} if self.artifact_bytes is None else {"DLGRADE_ARTIFACT_BYTES": str(self.artifact_bytes)}
        inside = self._inbox_inside / handed.name
        args = [str(graders_dir), "-p", "autograder.pytest_plugin", "--assert=plain", "-q", "-p",
                "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(graders_dir),
                f"--dlgrade-artifacts={inside}"]
        # one file may fill half the private /tmp: a grader that extracts a bomb gets EFBIG, and the server
        # keeps room for its own files
        request = {"nonce": nonce, "args": args, "env": {**(env or {}), **extra}, "timeout": timeout,
                   "memory_bytes": self.memory_bytes, "file_bytes": max(self.tmp_bytes // 2, 2**20)}
        partial = self._inbox / f".request-{number}.json"
        partial.write_text(json.dumps(request))
        os.chmod(partial, 0o640)
        if os.geteuid() == 0:
            os.chown(partial, 0, self._group)
        os.rename(partial, self._inbox / f"request-{number}.json")
        try:
            raw = self._await_reply(number, timeout + 60)
        finally:
            shutil.rmtree(handed, ignore_errors=True)
            (self._inbox / f"request-{number}.json").unlink(missing_ok=True)
        if raw is None:  # the server itself died or hung (a child's crash is a reply): an internal error
            log = self._server_log()
            self.close()
            raise RuntimeError(f"the grader process died:\n{log}")
        try:
            reply = _validated_reply(raw, nonce)
        except ValueError as exc:  # made inside the sandbox by code that read this submission's files
            self.close()  # a sandbox that wrote a bad reply serves no other submission
            return [], f"the grader sandbox's reply was refused: {exc}"
        log = reply["log"]
        if reply["stopped"] == "timeout":
            return [], f"the hidden graders took longer than {timeout:.0f} s\n{log}"
        if reply["stopped"] == "memory":
            return [], f"the hidden graders used more than {self.memory_bytes / 2**30:.1f} GiB\n{log}"
        if reply["results"] is None:
            return [], log
        try:
            checks = validated_checks(reply["results"])
        except ValueError as exc:
            return [], f"the hidden graders' results were refused: {exc}\n{log}"
        return checks, log

    def _await_reply(self, number: int, seconds: float) -> bytes | None:
        """The reply's bytes, read from the sandbox's home without following a link; None if none came."""
        deadline = time.monotonic() + seconds
        name = f"reply-{number}.json"
        while time.monotonic() < deadline:
            try:
                data = untrusted_files.read_regular(self._home, name, max_bytes=REPLY_BYTES)
            except FileNotFoundError:
                if not self._running.alive():
                    return None
                time.sleep(0.02)
                continue
            except (untrusted_files.UntrustedFile, OSError) as exc:
                data = json.dumps({"refused": str(exc)}).encode()
            try:
                os.unlink(self._home / name)
            except OSError:
                pass
            return data
        return None

    def _server_log(self) -> str:
        running = self._running
        if running is None:
            return ""
        ended = self._ended
        reason = f"(the sandbox was {ended.reason})\n" if ended is not None and ended.reason else ""
        return reason + running.err.text()[-5000:] + running.out.text()[-1000:]

    def close(self) -> None:
        """Stop the server and remove its folders."""
        running, self._running = self._running, None
        if running is None:
            return
        running.kill()
        self._watcher.join(timeout=30)
        shutil.rmtree(self._base, ignore_errors=True)
        self._graders_dir = None


def sandbox_ready(running: sandbox.Running) -> bool:
    """Whether the grader server said it is ready (its first line on stdout)."""
    from autograder.grader_server import READY

    return READY in running.out.text()


def _hand_over(source: Path, target: Path, *, share) -> None:
    """The artifacts for one request, in the inbox: hard links to the host's own copies where it can (they
    are read-only inside), else copies; regular files only, links skipped."""
    target.mkdir(mode=0o750)
    for root, dirs, files in os.walk(source):
        here = target / Path(root).relative_to(source)
        for name in dirs:
            if not (Path(root) / name).is_symlink():
                (here / name).mkdir(mode=0o750)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        for name in files:
            origin = Path(root) / name
            info = origin.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            try:
                if not info.st_mode & 0o004:
                    raise PermissionError("not readable by the sandbox's uid")
                os.link(origin, here / name)
            except OSError:
                shutil.copyfile(origin, here / name)
                (here / name).chmod(0o644)
    for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        share(directory)


def _validated_reply(raw: bytes, nonce: str) -> dict:
    """The server's reply, checked field by field; ValueError says what is wrong."""
    try:
        reply = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(reply, dict):
        raise ValueError("not a JSON object")
    if "refused" in reply and isinstance(reply["refused"], str):
        raise ValueError(reply["refused"])
    if reply.get("nonce") != nonce:
        raise ValueError("it does not answer this request")
    if reply.get("stopped") not in (None, "timeout", "memory"):
        raise ValueError("unknown end")
    if not (reply.get("results") is None or isinstance(reply["results"], str)):
        raise ValueError("results are not text")
    if not isinstance(reply.get("log"), str):
        raise ValueError("the log is not text")
    return reply


_TEXT_FIELDS = ("name", "cell", "output", "visibility")


def _valid_details(details) -> bool:
    if details is None:
        return True
    if not isinstance(details, dict) or len(json.dumps(details)) > MAX_TEXT:
        return False
    if details.get("kind") == "layers":
        rows = details.get("rows")
        return isinstance(rows, list) and all(
            isinstance(r, dict) and set(r) == {"expected", "found", "ok"} and isinstance(r["expected"], str)
            and isinstance(r["found"], str) and isinstance(r["ok"], bool) for r in rows)
    if details.get("kind") == "threshold":
        numbers = [details.get("measured"), details.get("target")]
        floor = details.get("floor")
        return (set(details) == {"kind", "metric", "measured", "target", "floor"}
                and isinstance(details["metric"], str)
                and all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)
                and (floor is None or isinstance(floor, int | float)))
    return False


def validated_checks(text: str) -> list[CheckResult]:
    """The plugin's results.json as `CheckResult`s, each field checked; ValueError says what is wrong."""
    if len(text) > REPLY_BYTES:
        raise ValueError("results too large")
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("results are not JSON") from None
    if not isinstance(items, list) or len(items) > MAX_CHECKS:
        raise ValueError("results are not a list of checks")
    checks = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {*_TEXT_FIELDS, "score", "max_score", "status", "details"}:
            raise ValueError("a check has unknown fields")
        if not all(isinstance(item.get(key, ""), str) and len(item.get(key, "")) <= MAX_TEXT
                   for key in _TEXT_FIELDS):
            raise ValueError("a check's text fields are not text")
        score, max_score = item.get("score"), item.get("max_score")
        if not all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n)
                   for n in (score, max_score)) or not 0 <= score <= max_score:
            raise ValueError("a check's points are not 0 <= score <= max_score")
        if item.get("status") not in ("passed", "failed", "error"):
            raise ValueError("a check's status is unknown")
        if not _valid_details(item.get("details")):
            raise ValueError("a check's details do not follow the schema")
        checks.append(CheckResult(**{key: item[key] for key in item}))
    return checks


def run_graders(*, graders_dir: Path, artifacts_dir: Path, timeout: float, env: dict[str, str] | None = None,
                preload: Sequence[str] = DEFAULT_PRELOAD, backend: str = "tensorflow",
                memory_bytes: int = DEFAULT_MEMORY, slot: int = 0,
                isolated: bool = True, read_only: Sequence[Path] = (), devices: Sequence[sandbox.Mount] = (),
                artifact_bytes: int | None = None) -> tuple[list[CheckResult], str]:
    """One submission's checks in a grader sandbox of its own (a batch keeps one per worker instead)."""
    process = GraderProcess(preload=preload, backend=backend, memory_bytes=memory_bytes, graders_dir=graders_dir,
                            slot=slot, isolated=isolated, read_only=read_only, devices=devices,
                            artifact_bytes=artifact_bytes)
    try:
        return process.run(graders_dir=graders_dir, artifacts_dir=artifacts_dir, timeout=timeout, env=env)
    finally:
        process.close()
