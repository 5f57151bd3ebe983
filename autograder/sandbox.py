"""Run one untrusted command inside a bubblewrap sandbox and watch it.

The sandbox owns isolation and limits, nothing else: it knows nothing about notebooks or Keras.
Inside, the command sees the system's `/usr`, a few files of `/etc`, the read-only paths the caller names
(the Python installation, the virtual environment, the package) and one writable scratch directory. It runs
under a non-root uid, in fresh user, pid, network, ipc and uts namespaces, so it has no network (not even the
host's loopback), cannot see other processes and cannot signal the grader. Wall time, memory, task count,
file size and captured output are limited; stopping the sandbox kills its whole process tree.

As root the kernel enforces the limits: the run is born in a cgroup of its own (`autograder.cgroups`) that
bounds its memory, shared memory, memfd and tmpfs pages included, and its tasks; the scratch folder is a
size- and inode-limited tmpfs, and so are `/tmp` and `/dev/shm` inside. Without root (a student's laptop) or
without cgroups, a watchdog samples resident memory and walks the scratch folder instead, and says so in the log.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autograder import cgroups
from autograder.errors import SandboxUnavailable
from autograder.watch import family_rss, kill_family

log = logging.getLogger("dlgrade.sandbox")

SCRATCH_MOUNT = "/home/student"
SANDBOX_UID = 1000  # the uid a submission sees inside; outside it is an unprivileged uid of its own
HOST_UID_BASE = 61000  # when the grader runs as root, sandbox slot k runs as host uid HOST_UID_BASE + k
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "ssl", "ca-certificates",
              "alternatives", "fonts", "mime.types")


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use; hitting a limit stops the run and is reported."""

    # all cells, from the hand-over of the notebook to a ready kernel
    wall_seconds: float = field(default=600.0, metadata={"min": 1})
    # memory of the whole sandbox, /dev/shm and memfd included (its files apart)
    memory_bytes: int = field(default=4 * 2**30, metadata={"min": 2**26})
    # processes plus threads (TensorFlow alone starts dozens of threads)
    max_tasks: int = field(default=1024, metadata={"min": 16})
    # stdout and stderr kept each; the rest is drained and dropped
    max_output_bytes: int = field(default=1 * 2**20, metadata={"min": 1024})
    # largest single file the run may write
    max_file_bytes: int = field(default=1 * 2**30, metadata={"min": 2**20})
    # size of the private /tmp
    tmp_bytes: int = field(default=512 * 2**20, metadata={"min": 2**20})
    # everything the run leaves in its scratch folder together
    disk_bytes: int = field(default=2 * 2**30, metadata={"min": 2**20})
    # files and folders in the scratch folder together (its inodes, as root)
    max_files: int = field(default=65_536, metadata={"min": 16})
    # size of the private /dev/shm; its pages count as memory too
    shm_bytes: int = field(default=256 * 2**20, metadata={"min": 2**20})


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
    stopped: str | None  # "timeout" | "memory" | "disk" | "tasks"
    output_truncated: bool
    limits: Limits
    enforced_by: str = "watchdog"  # "cgroup v1" / "cgroup v2" (with "tmpfs scratch") or "watchdog" (sampling)

    @property
    def reason(self) -> str | None:
        """A sentence a student can read when a limit stopped the run."""
        if self.stopped == "timeout":
            return f"stopped after {self.limits.wall_seconds:.0f} s: the time limit was reached"
        if self.stopped == "memory":
            return f"stopped: used more than {self.limits.memory_bytes / 2**30:.1f} GiB of memory"
        if self.stopped == "disk":
            return (f"stopped: wrote more than {self.limits.disk_bytes / 2**20:.0f} MiB of files "
                    f"(or more than {self.limits.max_files} files and folders)")
        if self.stopped == "tasks":
            return f"stopped: kept starting processes or threads beyond the limit of {self.limits.max_tasks}"
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
            "--proc", "/proc", "--dev", "/dev", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
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


def _limit_resources(limits: Limits, *, per_uid_tasks: bool = True) -> None:
    """Runs in the child between fork and exec: rlimits that the kernel enforces per process or per uid."""
    if per_uid_tasks:
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


def run(argv: Sequence[str], *, scratch: Path, limits: Limits, mounts: Sequence[Mount],
        env: Mapping[str, str] | None = None, slot: int = 0, isolated: bool = True,
        kernel_limits: bool = True) -> SandboxResult:
    """Run `argv` in a fresh sandbox with `scratch` as its only writable directory (mounted at /home/student).

    `mounts` are read-only; their sources must be reachable by an unprivileged uid (see `mirror_tree`).
    `slot` picks the host uid when running as root, so parallel sandboxes do not share a task limit.
    `isolated=False` (the instructor's explicit --no-sandbox) runs `argv` directly in `scratch` as the
    current user, with the same limits but none of the isolation.
    `kernel_limits=False` keeps the kernel out of it even as root: the watchdog samples memory and walks the
    scratch folder, as it must where cgroups are unavailable (used to test that fallback).
    """
    return start(argv, scratch=scratch, limits=limits, mounts=mounts, env=env, slot=slot, isolated=isolated,
                 kernel_limits=kernel_limits).watch()


def start(argv: Sequence[str], *, scratch: Path, limits: Limits, mounts: Sequence[Mount],
          env: Mapping[str, str] | None = None, slot: int = 0, isolated: bool = True,
          kernel_limits: bool = True) -> Running:
    """Start `argv` as `run` does, without waiting: the caller watches it (`Running.watch`) when it is its turn.

    A warm sandbox is started this way ahead of its submission; memory and tasks are bounded from here (by
    the kernel), time from `watch` on. When it ends (`watch`, `kill`, or `alive` finding it dead) every process
    in it is killed, its cgroup removed and its scratch tmpfs unmounted, the files copied back into `scratch`.
    """
    scratch = scratch.resolve()
    identity = _host_identity(slot) if isolated else None
    enforcement = _Enforcement.set_up(scratch, limits=limits, identity=identity, wanted=kernel_limits,
                                      mount_scratch=isolated)
    try:
        if not isolated:
            plain_env = {"HOME": str(scratch), "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
                         **(env or {})}
            return _spawn(list(argv), limits=limits, identity=None, pass_fds=[], scratch=scratch, cwd=scratch,
                          env=plain_env, enforcement=enforcement)
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
            return _spawn(args, limits=limits, identity=identity, pass_fds=[passwd_r, group_r], scratch=scratch,
                          enforcement=enforcement)
        finally:
            os.close(passwd_r)
            os.close(group_r)
    except BaseException:
        enforcement.release(copy_back=True)  # nothing started: leave scratch as the caller made it
        raise


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


_libc = ctypes.CDLL(None, use_errno=True)
_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2
COPY_BACK_DEPTH = 64  # folders nested deeper than this inside scratch are not copied back (nobody needs them)


def _mount_tmpfs(source: str, target: Path, options: str) -> None:
    if _libc.mount(source.encode(), str(target).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mounting a tmpfs on {target}: {os.strerror(code)}")


def _unmount(target: Path) -> None:
    if _libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unmounting {target}: {os.strerror(code)}")


@dataclass
class ScratchFs:
    """A size- and inode-limited tmpfs mounted over the scratch folder for one run.

    The kernel refuses writes beyond it (ENOSPC), whatever they create: data, empty files, folders. The files
    already in the folder are moved in when it is mounted, and what the run left is copied back out when it is
    released (regular files and folders only, holes kept, never through a link, one copy of a hard-linked file),
    so callers see a plain folder before and after. The tmpfs pages count against the memory cgroup of whoever
    wrote them.
    """

    path: Path
    name: str
    under_fd: int  # the folder below the mount, where the files go back
    baseline_bytes: int  # what the host put in before the run (charged to the host, not to the run)

    @classmethod
    def mount(cls, path: Path, *, size: int, inodes: int, identity: tuple[int, int] | None) -> ScratchFs:
        """Mount the tmpfs over `path`, moving the folder's files into it."""
        remove_stale_mounts()
        name = cgroups.unique_name()
        under_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        uid, gid = identity or (os.geteuid(), os.getegid())
        try:
            _mount_tmpfs(name, path, f"size={size},nr_inodes={inodes},mode=0755,uid={uid},gid={gid}")
        except OSError:
            os.close(under_fd)
            raise
        scratch_fs = cls(path, name, under_fd, 0)
        try:
            root_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                _copy_tree(under_fd, root_fd)
            finally:
                os.close(root_fd)
            _clear(under_fd)
        except BaseException:
            scratch_fs.release(copy_back=False)
            raise
        scratch_fs.baseline_bytes = scratch_fs.used_bytes()
        return scratch_fs

    def used_bytes(self) -> int:
        info = os.statvfs(self.path)
        return (info.f_blocks - info.f_bfree) * info.f_frsize

    def full(self) -> bool:
        """Whether the next write or the next new file would fail with ENOSPC."""
        info = os.statvfs(self.path)
        return info.f_bavail == 0 or info.f_favail == 0

    def release(self, *, copy_back: bool) -> None:
        """Copy the run's files back below the mount (unless `copy_back` is False), then unmount."""
        try:
            if copy_back:
                root_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    _copy_tree(root_fd, self.under_fd)
                finally:
                    os.close(root_fd)
        finally:
            os.close(self.under_fd)
            _unmount(self.path)  # detached: its pages are freed once the dead sandbox's namespace lets go too


def _copy_tree(source_fd: int, dest_fd: int) -> None:
    """Copy folders and regular files from one open folder into another, never following a link, keeping holes.

    Everything else (links, FIFOs, sockets) is left out, and so are folders deeper than COPY_BACK_DEPTH and the
    second name of a hard-linked file: a thousand names of one big file must not become a thousand copies.
    """
    copied: set[int] = set()  # inode numbers, all of one file system
    stack = [(os.dup(source_fd), os.dup(dest_fd), 0)]
    while stack:
        src, dst, depth = stack.pop()
        try:
            for entry in os.scandir(src):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode) and depth < COPY_BACK_DEPTH:
                    os.mkdir(entry.name, 0o700, dir_fd=dst)
                    os.chmod(entry.name, stat.S_IMODE(info.st_mode) & 0o777 | 0o700, dir_fd=dst)
                    child_src = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src)
                    child_dst = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dst)
                    stack.append((child_src, child_dst, depth + 1))
                elif stat.S_ISREG(info.st_mode) and info.st_ino not in copied:
                    copied.add(info.st_ino)
                    _copy_file(entry.name, src, dst)
        finally:
            os.close(src)
            os.close(dst)


def _copy_file(name: str, src_dir: int, dst_dir: int) -> None:
    try:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=src_dir)
    except OSError:
        return
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            return
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dst_dir)
        try:
            offset = 0
            while offset < info.st_size:  # data extents only: a sparse file stays sparse
                try:
                    offset = os.lseek(src, offset, os.SEEK_DATA)
                except OSError as error:
                    if error.errno == errno.ENXIO:  # only a hole is left
                        break
                    raise
                end = os.lseek(src, offset, os.SEEK_HOLE)
                while offset < end:
                    chunk = os.pread(src, min(end - offset, 2**20), offset)
                    if not chunk:
                        break
                    os.pwrite(dst, chunk, offset)
                    offset += len(chunk)
            os.ftruncate(dst, info.st_size)
            os.fchmod(dst, stat.S_IMODE(info.st_mode) & 0o777)
            os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _clear(folder_fd: int) -> None:
    """Remove everything inside an open folder (the originals, once they are on the tmpfs)."""
    for entry in os.scandir(folder_fd):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.name, dir_fd=folder_fd)
        else:
            os.unlink(entry.name, dir_fd=folder_fd)


def remove_stale_mounts() -> list[Path]:
    """Unmount scratch tmpfs mounts left by runs whose process died before unmounting them."""
    removed = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        kind, source = (tail.split() + ["", ""])[:2]
        if kind == "tmpfs" and cgroups.stale(source):
            target = Path(cgroups.unescape(fields.split()[4]))
            try:
                _unmount(target)
                removed.append(target)
            except OSError:
                pass
    return removed


_WATCHDOG = ("which samples resident memory (shared memory and memfd pages escape it), caps tasks per uid (other "
             "sandboxes of the uid count too) and walks the scratch folder (empty files and folders escape it)")
KILL_SECONDS = 30.0  # a thousand killed processes that thrash on a loaded machine can take this long to exit


@dataclass
class _Enforcement:
    """What the kernel bounds for one run: its cgroup and its scratch tmpfs, each None where unavailable."""

    cgroup: cgroups.Cgroup | None
    scratch_fs: ScratchFs | None
    label: str

    @classmethod
    def set_up(cls, scratch: Path, *, limits: Limits, identity: tuple[int, int] | None, wanted: bool,
               mount_scratch: bool) -> _Enforcement:
        """Create the cgroup and mount the scratch tmpfs; say in the log what falls back to the watchdog."""
        if not wanted or os.geteuid() != 0:
            why = "kernel limits turned off (kernel_limits=False)" if not wanted else "not running as root"
            log.warning("%s: no cgroup and no tmpfs scratch, falling back to the watchdog, %s", why, _WATCHDOG)
            return cls(None, None, "watchdog")
        scratch_fs = None
        if mount_scratch:
            try:
                scratch_fs = ScratchFs.mount(scratch, size=limits.disk_bytes, inodes=limits.max_files,
                                             identity=identity)
            except OSError as error:
                log.warning("the scratch folder cannot be a size-limited tmpfs (%s): falling back to walking it "
                            "for disk use", error)
        # tmpfs pages (scratch, /tmp) are memory the run holds too: the kernel's cap leaves room for full file
        # systems on top of memory_bytes, and the watchdog holds the rest to memory_bytes from the kernel's counters
        ceiling = limits.memory_bytes + limits.tmp_bytes + (limits.disk_bytes if scratch_fs else 0)
        try:
            group = cgroups.Cgroup.create(memory_bytes=ceiling, max_tasks=limits.max_tasks)
        except OSError as error:
            log.warning("no cgroup for this sandbox (%s): falling back to the watchdog, %s", error, _WATCHDOG)
            group = None
        label = " + ".join(filter(None, [f"cgroup v{group.version}" if group else "watchdog",
                                         "tmpfs scratch" if scratch_fs else ""]))
        return cls(group, scratch_fs, label)

    def release(self, *, copy_back: bool) -> None:
        """Kill every process left in the cgroup, copy the scratch back and unmount it, remove the cgroup."""
        try:
            if self.cgroup is not None:
                self.cgroup.kill_all(timeout=KILL_SECONDS)  # no process may write while scratch is copied back
        except OSError as error:  # they die in the kernel (a SIGKILL is pending): none runs a line of its code again
            log.warning("processes of cgroup %s are slow to die: %s", self.cgroup.name, str(error)[:200])
        finally:
            try:
                if self.scratch_fs is not None:
                    scratch_fs, self.scratch_fs = self.scratch_fs, None
                    scratch_fs.release(copy_back=copy_back)
            finally:
                if self.cgroup is not None:
                    group, self.cgroup = self.cgroup, None
                    try:
                        group.remove(timeout=KILL_SECONDS)
                    except OSError as error:  # a submission's slow death is no reason to fail its grading
                        log.warning("cgroup %s kept for later removal: %s", group.name, str(error)[:200])
                        cgroups.remove_later(group)


def _child_setup(limits: Limits, identity: tuple[int, int] | None, procs: Sequence[Path]) -> None:
    """Runs in the child between fork and exec: join the cgroup while still root, then drop to `identity`.

    subprocess's own `user=` would switch uid before `preexec_fn` runs, and an unprivileged uid may not join
    a cgroup; joining first means the sandbox is a member before it execs bwrap, so no child escapes the limits.
    """
    for path in procs:
        with open(path, "w") as handle:
            handle.write(str(os.getpid()))
    if identity is not None:
        os.setgroups([])
        os.setgid(identity[1])
        os.setuid(identity[0])
    # in a cgroup its task limit counts this sandbox alone (and counts refusals, so a bomb can be told), while a
    # per-uid limit counts every process of the uid, other sandboxes and the grader's own when it is not root
    _limit_resources(limits, per_uid_tasks=not procs)


def _spawn(args: list[str], *, limits: Limits, identity: tuple[int, int] | None, pass_fds: list[int],
           scratch: Path, enforcement: _Enforcement, cwd: Path | None = None,
           env: Mapping[str, str] | None = None) -> Running:
    procs = enforcement.cgroup.procs_paths if enforcement.cgroup else ()
    popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             pass_fds=pass_fds, start_new_session=True, cwd=cwd, env=env,
                             preexec_fn=lambda: _child_setup(limits, identity, procs))
    out, err = _CappedReader(popen.stdout, limits.max_output_bytes), _CappedReader(popen.stderr,
                                                                                 limits.max_output_bytes)
    out.start()
    err.start()
    return Running(popen=popen, out=out, err=err, limits=limits, scratch=scratch, enforcement=enforcement)


TASK_BOMB_SECONDS = 1.0  # refusals by the task limit that go on this long mean a fork or thread bomb


@dataclass
class Running:
    """A started sandbox: watch it to its end under its limits, or kill it."""

    popen: subprocess.Popen
    out: _CappedReader
    err: _CappedReader
    limits: Limits
    scratch: Path
    enforcement: _Enforcement | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ended_by: str | None = None  # the kernel's verdict, read just before the cgroup and tmpfs went away

    def alive(self) -> bool:
        """Whether the sandbox's process still runs (a dead one's cgroup and scratch tmpfs are released here)."""
        if self.popen.poll() is None:
            return True
        self._release(copy_back=True)
        return False

    def kill(self) -> None:
        """Stop the whole tree now (a warm sandbox nobody needed); its scratch files are not copied back."""
        kill_family(self.popen.pid)
        self.popen.wait()
        self._release(copy_back=False)

    def _release(self, *, copy_back: bool) -> None:
        with self._lock:
            enforcement, self.enforcement = self.enforcement, None
        if enforcement is None:
            return
        try:
            if enforcement.cgroup is not None and enforcement.cgroup.oom_killed():
                self._ended_by = "memory"  # the kernel's OOM killer ended it between two polls
            elif (enforcement.scratch_fs is not None and self.popen.returncode not in (0, None)
                  and enforcement.scratch_fs.full()):
                self._ended_by = "disk"  # it died of ENOSPC, or of something else on a full disk: same reason
        finally:
            enforcement.release(copy_back=copy_back)

    def watch(self) -> SandboxResult:
        """Wait for the end, stopping the run when it crosses a limit; wall time counts from this call."""
        enforcement = self.enforcement
        group = enforcement.cgroup if enforcement else None
        scratch_fs = enforcement.scratch_fs if enforcement else None
        label = enforcement.label if enforcement else "watchdog"
        begin = time.monotonic()
        stopped, peak, polls = None, 0, 0
        first_refusal, refusals = None, group.task_limit_hits() if group else 0
        while self.popen.poll() is None:
            polls += 1
            stopped = None
            if group is not None:  # the kernel's own counters, shared memory and memfd included
                try:
                    held, hits, oom = self._held_memory(group, scratch_fs), group.task_limit_hits(), group.oom_killed()
                except OSError:  # killed from another thread meanwhile: the next poll sees it end
                    held, hits, oom = 0, refusals, 0
                peak = max(peak, held)
                if oom or held > self.limits.memory_bytes:
                    stopped = "memory"
                elif hits > refusals:
                    refusals, first_refusal = hits, first_refusal or time.monotonic()
                    if time.monotonic() - first_refusal >= TASK_BOMB_SECONDS:
                        stopped = "tasks"  # refused again and again: a bomb, not one failed fork
            else:
                peak = max(peak, family_rss(self.popen.pid))
                stopped = "memory" if peak > self.limits.memory_bytes else None
            if stopped is None and time.monotonic() - begin > self.limits.wall_seconds:
                stopped = "timeout"
            if stopped is None and scratch_fs is not None and scratch_fs.full():
                stopped = "disk"
            if (stopped is None and scratch_fs is None and polls % 10 == 0  # a walk costs more: once a second
                    and _disk_usage(self.scratch) > self.limits.disk_bytes):
                stopped = "disk"
            if stopped:
                kill_family(self.popen.pid)
                break
            time.sleep(0.1)
        self.popen.wait()
        self._release(copy_back=True)
        stopped = stopped or self._ended_by
        self.out.join(timeout=5)
        self.err.join(timeout=5)
        return SandboxResult(returncode=self.popen.returncode, stdout=self.out.text(), stderr=self.err.text(),
                             wall_seconds=time.monotonic() - begin, peak_memory_bytes=peak, stopped=stopped,
                             output_truncated=self.out.truncated or self.err.truncated, limits=self.limits,
                             enforced_by=label)

    def _held_memory(self, group: cgroups.Cgroup, scratch_fs: ScratchFs | None) -> int:
        """Memory the run holds by the kernel's count, less its files in scratch and /tmp (bounded apart)."""
        held = group.held_memory()
        if scratch_fs is not None:
            held -= max(0, scratch_fs.used_bytes() - scratch_fs.baseline_bytes)
        return held - _tmp_used(group, outer=self.popen.pid)


def _tmp_used(group: cgroups.Cgroup, *, outer: int) -> int:
    """Bytes in the sandbox's private /tmp, seen through a member's root (0 when no member is left)."""
    for pid in group.pids() - {outer}:
        try:
            info = os.statvfs(f"/proc/{pid}/root/tmp")
        except OSError:
            continue
        return (info.f_blocks - info.f_bfree) * info.f_frsize
    return 0
