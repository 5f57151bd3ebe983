"""Run one untrusted command inside a bubblewrap sandbox and watch it.

The sandbox owns isolation and limits, nothing else: it knows nothing about notebooks or Keras.
Inside, the command sees the system's `/usr`, a few files of `/etc`, the read-only paths the caller names
(the Python installation, the virtual environment, the package) and one writable scratch directory. It runs
under a non-root uid, in fresh user, pid, network, ipc and uts namespaces, so it has no network (not even the
host's loopback), cannot see other processes and cannot signal the grader. Wall time, memory, task count,
file size and captured output are limited; stopping the sandbox kills its whole process tree.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder.errors import SandboxUnavailable

SCRATCH_MOUNT = "/home/student"
SANDBOX_UID = 1000  # the uid a submission sees inside; outside it is an unprivileged uid of its own
HOST_UID_BASE = 61000  # when the grader runs as root, sandbox slot k runs as host uid HOST_UID_BASE + k
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "ssl", "ca-certificates",
              "alternatives", "fonts", "mime.types")


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use; hitting a limit stops the run and is reported."""

    wall_seconds: float = 600.0  # all cells, from the hand-over of the notebook to a ready kernel
    memory_bytes: int = 4 * 2**30  # resident memory of the whole process tree
    max_tasks: int = 1024  # processes plus threads (TensorFlow alone starts dozens of threads)
    max_output_bytes: int = 1 * 2**20  # stdout and stderr kept each; the rest is drained and dropped
    max_file_bytes: int = 1 * 2**30  # largest single file the run may write
    tmp_bytes: int = 512 * 2**20  # size of the private /tmp
    disk_bytes: int = 2 * 2**30  # everything the run leaves in its scratch folder together


@dataclass(frozen=True)
class Mount:
    """A read-only path inside the sandbox (`dest`) and where its content comes from on the host (`source`)."""

    source: Path
    dest: Path
    device: bool = False  # a device node (a GPU), bound with device access instead of read-only


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended. `stopped` is None for a run that ended by itself."""

    returncode: int | None
    stdout: str
    stderr: str
    wall_seconds: float
    peak_memory_bytes: int
    stopped: str | None  # "timeout" | "memory" | "disk"
    output_truncated: bool
    limits: Limits

    @property
    def reason(self) -> str | None:
        """A sentence a student can read when a limit stopped the run."""
        if self.stopped == "timeout":
            return f"stopped after {self.limits.wall_seconds:.0f} s: the time limit was reached"
        if self.stopped == "memory":
            return f"stopped: used more than {self.limits.memory_bytes / 2**30:.1f} GiB of memory"
        if self.stopped == "disk":
            return f"stopped: wrote more than {self.limits.disk_bytes / 2**20:.0f} MiB of files"
        return None


def bwrap_path() -> str:
    """The bubblewrap executable, or SandboxUnavailable saying how to install it."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap` (make demo and make test do), "
            "or pass --no-sandbox to run student code unprotected on a machine you do not mind losing")
    return path


def check_sandbox() -> None:
    """Start a trivial sandbox; raise SandboxUnavailable with bwrap's own message when that fails."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlgrade-check-") as tmp:
        result = run(["/usr/bin/true"], scratch=Path(tmp), limits=Limits(wall_seconds=30), mounts=())
    if result.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap could not start a sandbox (exit {result.returncode}): {result.stderr.strip()[:500]}. "
            "User namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1 on older Debian kernels).")


def _host_identity(slot: int) -> tuple[int, int] | None:
    """The unprivileged (uid, gid) to run as, or None when we already are unprivileged."""
    if os.geteuid() != 0:
        return None
    return HOST_UID_BASE + slot, HOST_UID_BASE + slot


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _ETC_FILES:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def reachable_by_others(path: Path) -> bool:
    """Whether an unprivileged uid can reach `path` (every ancestor directory lets others traverse it)."""
    return all(parent.stat().st_mode & 0o001 for parent in [*reversed(path.resolve().parents)])


def mirror_tree(source: Path, mirror: Path, *, skip: Sequence[str] = ()) -> Path:
    """Hard-link (or copy, across file systems) `source` into `mirror` once, leaving out names in `skip`.

    Used for a Python installation below a private home directory: bubblewrap resolves bind sources as
    the unprivileged sandbox uid, so it needs a path that uid can reach; inside, it appears at its old path.
    """
    marker = mirror / ".dlgrade-mirror-complete"
    if marker.exists():
        return mirror
    building = Path(tempfile.mkdtemp(prefix=f".{mirror.name}-", dir=mirror.parent))  # parallel jobs build apart
    try:
        _build_mirror(source, building / "tree", skip=skip)
        try:
            os.rename(building / "tree", mirror)  # atomic: a sandbox never sees half a mirror
        except OSError:
            if not marker.exists():  # not another job's finished mirror: a stale half one from a killed run
                shutil.rmtree(mirror, ignore_errors=True)
                os.rename(building / "tree", mirror)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return mirror


def _build_mirror(source: Path, mirror: Path, *, skip: Sequence[str]) -> None:

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, mirror, symlinks=True, copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns(*skip))
    for directory in [mirror, *[p for p in mirror.rglob("*") if p.is_dir() and not p.is_symlink()]]:
        directory.chmod(directory.stat().st_mode | 0o755)
    (mirror / ".dlgrade-mirror-complete").touch()


def _bwrap_argv(argv: Sequence[str], *, limits: Limits, mounts: Sequence[Mount],
                scratch: Path, env: Mapping[str, str]) -> list[str]:
    args = [bwrap_path(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
            "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    args += _system_binds()
    args += ["--file", "0", "/etc/passwd", "--file", "0", "/etc/group"]  # placeholders replaced below
    for mount in mounts:
        args += ["--dev-bind" if mount.device else "--ro-bind", str(mount.source), str(mount.dest)]
    args += ["--bind", str(scratch), SCRATCH_MOUNT, "--remount-ro", "/", "--chdir", SCRATCH_MOUNT, "--clearenv"]
    base_env = {"HOME": SCRATCH_MOUNT, "USER": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
                "PATH": "/usr/local/bin:/usr/bin:/bin"}
    for key, value in {**base_env, **env}.items():
        args += ["--setenv", key, value]
    return args + ["--", *argv]


def _limit_resources(limits: Limits) -> None:
    """Runs in the child between fork and exec: rlimits that the kernel enforces per process or per uid."""
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_tasks, limits.max_tasks))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class _CappedReader(threading.Thread):
    """Drains a pipe to its end, keeping only the first `cap` bytes, so a chatty child never blocks."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap, self.kept, self.truncated = stream, cap, bytearray(), False

    def run(self) -> None:
        while chunk := self.stream.read1(65536):  # what is there: a waiting reader sees it at once
            room = self.cap - len(self.kept)
            if len(chunk) > room:
                self.truncated = True
            self.kept += chunk[:max(room, 0)]

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in family:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill_tree(popen: subprocess.Popen) -> None:
    """SIGKILL bwrap and everything below it; the pid namespace takes down whatever escaped the walk."""
    try:
        family = psutil.Process(popen.pid).children(recursive=True)
    except psutil.Error:
        family = []
    for member in [*family]:
        try:
            member.kill()
        except psutil.Error:
            pass
    try:
        popen.kill()
    except ProcessLookupError:
        pass


def run(argv: Sequence[str], *, scratch: Path, limits: Limits, mounts: Sequence[Mount],
        env: Mapping[str, str] | None = None, slot: int = 0, isolated: bool = True) -> SandboxResult:
    """Run `argv` in a fresh sandbox with `scratch` as its only writable directory (mounted at /home/student).

    `mounts` are read-only; their sources must be reachable by an unprivileged uid (see `mirror_tree`).
    `slot` picks the host uid when running as root, so parallel sandboxes do not share a task limit.
    `isolated=False` (the instructor's explicit --no-sandbox) runs `argv` directly in `scratch` as the
    current user, with the same limits but none of the isolation.
    """
    return start(argv, scratch=scratch, limits=limits, mounts=mounts, env=env, slot=slot, isolated=isolated).watch()


def start(argv: Sequence[str], *, scratch: Path, limits: Limits, mounts: Sequence[Mount],
          env: Mapping[str, str] | None = None, slot: int = 0, isolated: bool = True) -> Running:
    """Start `argv` as `run` does, without waiting: the caller watches it (`Running.watch`) when it is its turn.

    A warm sandbox is started this way ahead of its submission; the limits hold from `watch` on.
    """
    scratch = scratch.resolve()
    if not isolated:
        plain_env = {"HOME": str(scratch), "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})}
        return _spawn(list(argv), limits=limits, identity=None, pass_fds=[], scratch=scratch, cwd=scratch,
                      env=plain_env)
    identity = _host_identity(slot)
    if identity is not None:
        if not reachable_by_others(scratch):
            raise SandboxUnavailable(f"scratch directory {scratch} lies below a private directory; the sandbox "
                                     "user cannot reach it (use one below /tmp)")
        for path in [scratch, *scratch.rglob("*")]:
            os.lchown(path, *identity)
    passwd_r = _pipe_with(f"student:x:{SANDBOX_UID}:{SANDBOX_UID}:student:{SCRATCH_MOUNT}:/bin/sh\n")
    group_r = _pipe_with(f"student:x:{SANDBOX_UID}:\n")
    try:
        args = _bwrap_argv(argv, limits=limits, mounts=mounts, scratch=scratch, env=env or {})
        args[args.index("/etc/passwd") - 1] = str(passwd_r)
        args[args.index("/etc/group") - 1] = str(group_r)
        return _spawn(args, limits=limits, identity=identity, pass_fds=[passwd_r, group_r], scratch=scratch)
    finally:
        os.close(passwd_r)
        os.close(group_r)


def _pipe_with(text: str) -> int:
    read_end, write_end = os.pipe()
    os.write(write_end, text.encode())
    os.close(write_end)
    return read_end


def _disk_usage(folder: Path) -> int:
    """Bytes allocated below `folder` (never following symlinks); files vanishing meanwhile are skipped."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _spawn(args: list[str], *, limits: Limits, identity: tuple[int, int] | None, pass_fds: list[int],
           scratch: Path, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Running:
    user_kwargs = {} if identity is None else {"user": identity[0], "group": identity[1], "extra_groups": []}
    popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             pass_fds=pass_fds, start_new_session=True, cwd=cwd, env=env,
                             preexec_fn=lambda: _limit_resources(limits), **user_kwargs)
    out, err = _CappedReader(popen.stdout, limits.max_output_bytes), _CappedReader(popen.stderr,
                                                                                 limits.max_output_bytes)
    out.start()
    err.start()
    return Running(popen=popen, out=out, err=err, limits=limits, scratch=scratch)


@dataclass
class Running:
    """A started sandbox: watch it to its end under its limits, or kill it."""

    popen: subprocess.Popen
    out: _CappedReader
    err: _CappedReader
    limits: Limits
    scratch: Path

    def alive(self) -> bool:
        """Whether the sandbox's process still runs."""
        return self.popen.poll() is None

    def kill(self) -> None:
        """Stop the whole tree now (a warm sandbox nobody needed)."""
        _kill_tree(self.popen)
        self.popen.wait()

    def watch(self) -> SandboxResult:
        """Wait for the end, stopping the run when it crosses a limit; wall time counts from this call."""
        begin = time.monotonic()
        watched = psutil.Process(self.popen.pid)
        stopped, peak, polls = None, 0, 0
        while self.popen.poll() is None:
            peak = max(peak, _tree_rss(watched))
            polls += 1
            if peak > self.limits.memory_bytes:
                stopped = "memory"
            elif time.monotonic() - begin > self.limits.wall_seconds:
                stopped = "timeout"
            elif polls % 10 == 0 and _disk_usage(self.scratch) > self.limits.disk_bytes:  # a walk costs more
                stopped = "disk"
            if stopped:
                _kill_tree(self.popen)
                break
            time.sleep(0.1)
        self.popen.wait()
        self.out.join(timeout=5)
        self.err.join(timeout=5)
        return SandboxResult(returncode=self.popen.returncode, stdout=self.out.text(), stderr=self.err.text(),
                             wall_seconds=time.monotonic() - begin, peak_memory_bytes=peak, stopped=stopped,
                             output_truncated=self.out.truncated or self.err.truncated, limits=self.limits)
