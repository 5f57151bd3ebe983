"""Control groups that bound a tree of processes' memory and task count, with the kernel enforcing both.

This module owns creating, filling, reading and removing the groups, on cgroup v1 (a `memory` and a `pids`
hierarchy, as on hybrid machines without systemd) and on cgroup v2 (one unified hierarchy). It knows nothing of
sandboxes, notebooks or Keras. The kernel charges every page a member allocates to its group: anonymous memory,
but also shared memory (`/dev/shm`), `memfd` pages and tmpfs files, which a sampler of resident memory never sees.

Groups are named `dlgrade-<pid namespace>-<pid>-<n>` after the process that made them, below that process's own
group in each hierarchy, so that a later run can tell a group left behind by a killed run (its maker is dead) from
one that a live run in another process still uses, and remove it.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "dlgrade"
_MOUNTINFO = Path("/proc/self/mountinfo")
_counter = itertools.count()  # names a process's groups apart; next() is atomic under the GIL


class CgroupUnavailable(OSError):
    """No cgroup hierarchy with memory and pids controllers that this process may create groups in."""


def pid_namespace() -> int:
    """The inode of this process's pid namespace: a pid in a group's name only means something within it."""
    return os.stat("/proc/self/ns/pid").st_ino


def unique_name() -> str:
    """A name no other group or mount of a live process has: `dlgrade-<pid namespace>-<pid>-<n>`."""
    return f"{PREFIX}-{pid_namespace()}-{os.getpid()}-{next(_counter)}"


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root inside the hierarchy, file system type, super options) for each cgroup mount."""
    found = []
    for line in _MOUNTINFO.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((unescape(fields[4]), unescape(fields[3]), tail[0], set(tail[2].split(","))))
    return found


def unescape(field: str) -> str:
    """A path from /proc/self/mountinfo, where spaces and the like are written as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _own_paths() -> dict[str, str]:
    """This process's group per v1 controller name ('memory', 'pids') and '' for the v2 hierarchy."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _below(mount_point: str, mount_root: str, own: str) -> Path:
    """The directory of group `own` in a hierarchy mounted at `mount_point` (showing it from `mount_root` down)."""
    relative = os.path.relpath(own, mount_root) if own.startswith(mount_root) else "."
    return Path(mount_point) / relative if relative != "." else Path(mount_point)


@dataclass(frozen=True)
class Hierarchy:
    """Where this process may create groups: v1 memory and pids parents, or one v2 parent."""

    version: int  # 1 or 2
    parents: tuple[Path, ...]  # v1: (memory parent, pids parent); v2: (parent,)


def detect() -> Hierarchy:
    """The hierarchy to use (v2 when its memory and pids controllers are available, else v1), or CgroupUnavailable.

    A v1 group goes below this process's own group in each hierarchy. A v2 group needs a parent with the
    controllers enabled for its children and no processes of its own; that is the hierarchy's root (as root on a
    machine without systemd) or this process's own group when a manager has delegated it so.
    """
    if os.geteuid() != 0:
        raise CgroupUnavailable("not running as root: no cgroup can be created")
    mounts, own = _mounts(), _own_paths()
    for mount_point, root, kind, _ in mounts:
        if kind != "cgroup2" or "" not in own:
            continue
        parent = _below(mount_point, root, own[""])
        for candidate in dict.fromkeys([parent, Path(mount_point)]):
            if _v2_usable(candidate):
                return Hierarchy(2, (candidate,))
    memory = [(m, r) for m, r, kind, opts in mounts if kind == "cgroup" and "memory" in opts]
    pids = [(m, r) for m, r, kind, opts in mounts if kind == "cgroup" and "pids" in opts]
    if memory and pids and "memory" in own and "pids" in own:
        parents = (_below(*memory[0], own["memory"]), _below(*pids[0], own["pids"]))
        if all(os.access(p, os.W_OK) for p in parents):
            return Hierarchy(1, parents)
        raise CgroupUnavailable(f"the cgroup v1 groups {', '.join(map(str, parents))} are not writable")
    raise CgroupUnavailable("no cgroup v2 with memory and pids controllers and no cgroup v1 memory and pids "
                            "hierarchies are mounted")


def _v2_usable(parent: Path) -> bool:
    """Whether children of `parent` can get memory and pids controllers (enabling them there if need be)."""
    try:
        if not {"memory", "pids"} <= set((parent / "cgroup.controllers").read_text().split()):
            return False
        if not {"memory", "pids"} <= set((parent / "cgroup.subtree_control").read_text().split()):
            (parent / "cgroup.subtree_control").write_text("+memory +pids")  # EBUSY where it holds processes
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Cgroup:
    """One group (a directory per hierarchy) whose members share a memory and a task limit."""

    name: str
    version: int
    paths: tuple[Path, ...]  # v1: (memory group, pids group); v2: (group,)

    @classmethod
    def create(cls, *, memory_bytes: int, max_tasks: int, hierarchy: Hierarchy | None = None) -> Cgroup:
        """A new empty group with these limits (swap forbidden); stale groups of dead makers are removed first."""
        hierarchy = hierarchy or detect()
        remove_stale(hierarchy)
        name = unique_name()
        group = cls(name, hierarchy.version, tuple(parent / name for parent in hierarchy.parents))
        try:
            for path in group.paths:
                path.mkdir()
            group._set_limits(memory_bytes, max_tasks)
        except OSError:
            group.remove()
            raise
        return group

    @property
    def memory_dir(self) -> Path:
        return self.paths[0]

    @property
    def pids_dir(self) -> Path:
        return self.paths[-1]

    @property
    def procs_paths(self) -> tuple[Path, ...]:
        """The files to write a pid into to make it (and every child it starts later) a member."""
        return tuple(path / "cgroup.procs" for path in self.paths)

    def _set_limits(self, memory_bytes: int, max_tasks: int) -> None:
        if self.version == 2:
            (self.memory_dir / "memory.max").write_text(str(memory_bytes))
            _write_if_present(self.memory_dir / "memory.swap.max", "0")
            _write_if_present(self.memory_dir / "memory.oom.group", "1")  # an OOM kill takes the whole group
        else:
            (self.memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
            # memory+swap no larger than memory: the group may not swap (present only with swap accounting)
            _write_if_present(self.memory_dir / "memory.memsw.limit_in_bytes", str(memory_bytes))
        (self.pids_dir / "pids.max").write_text(str(max_tasks))

    def join(self, pid: int) -> None:
        """Make process `pid` a member; children it forks afterwards are born members."""
        for path in self.procs_paths:
            with open(path, "w") as handle:
                handle.write(str(pid))

    def pids(self) -> set[int]:
        """The member processes (thread group ids) still running in any of the group's hierarchies."""
        members: set[int] = set()
        for path in self.procs_paths:
            try:
                members.update(int(line) for line in path.read_text().split())
            except FileNotFoundError:
                pass
        return members

    def memory_stat(self) -> dict[str, int]:
        """The kernel's counters of the group's memory by kind (v1: 'rss', 'shmem', ...; v2: 'anon', 'shmem')."""
        counters = {}
        for line in (self.memory_dir / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.isdigit():
                counters[key] = int(value)
        return counters

    def held_memory(self) -> int:
        """Bytes the members hold that the kernel cannot drop: anonymous memory plus shared memory, memfd and
        tmpfs pages (page cache of files read, which the kernel reclaims under the limit, is left out)."""
        stat = self.memory_stat()
        return stat.get("anon", stat.get("rss", 0)) + stat.get("shmem", 0)

    def peak_memory(self) -> int:
        """The highest memory the kernel charged to the group (page cache included), 0 where it does not say."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.memory_dir / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def oom_killed(self) -> int:
        """How many members the kernel's OOM killer killed because the group reached its memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _counter_in(self.memory_dir / name, "oom_kill")

    def task_limit_hits(self) -> int:
        """How many forks or thread creations the task limit refused."""
        return _counter_in(self.pids_dir / "pids.events", "max")

    def kill_all(self, *, timeout: float = 10.0) -> None:
        """SIGKILL every member until none is left (forks racing the kill are refused: the task limit drops to 0)."""
        _write_if_present(self.pids_dir / "pids.max", "0")
        if self.version == 2:
            _write_if_present(self.memory_dir / "cgroup.kill", "1")  # the kernel kills all members at once
        deadline, pause, signalled = time.monotonic() + timeout, 0.002, set()
        while members := self.pids():
            for pid in members - signalled:  # a pending SIGKILL is never lost: signal each once, then let them die
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            signalled |= members
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"{len(members)} processes of cgroup {self.name} do not die "
                                           f"({', '.join(map(str, sorted(members)[:10]))}, ...)")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)  # a thousand dying processes need the CPU more than this loop does

    def remove(self, *, timeout: float = 10.0) -> None:
        """Kill whatever is left in the group, then remove its directories (the kernel refuses while tasks remain)."""
        self.kill_all(timeout=timeout)
        deadline = time.monotonic() + timeout
        for path in self.paths:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)  # a dying member leaves the group a moment after its kill

    def exists(self) -> bool:
        """Whether any of the group's directories is still there."""
        return any(path.exists() for path in self.paths)


def _write_if_present(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except FileNotFoundError:
        return False
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOTSUP, errno.EACCES):  # a control this kernel lacks or refuses
            return False
        raise


def _counter_in(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


_deferred: list[Cgroup] = []  # groups whose members were still dying when their run ended; removed later


def remove_later(group: Cgroup) -> None:
    """Keep `group` (limits in force, no fork allowed) until a later `Cgroup.create` finds it empty and removes it."""
    _deferred.append(group)


def _remove_deferred() -> None:
    for group in list(_deferred):
        try:
            group.remove(timeout=0.1)
            _deferred.remove(group)
        except (OSError, ValueError):
            pass  # still dying, or another thread removed it meanwhile


_NAME = re.compile(rf"^{PREFIX}-(\d+)-(\d+)-\d+$")


def stale(name: str) -> bool:
    """Whether a group or mount named `name` was made by a process of this pid namespace that is now dead."""
    match = _NAME.match(name)
    if match is None or int(match.group(1)) != pid_namespace():
        return False  # not ours, or made in another pid namespace where we cannot tell whether its maker lives
    try:
        os.kill(int(match.group(2)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale(hierarchy: Hierarchy) -> list[str]:
    """Remove the groups that dead makers left below the hierarchy's parents, killing their members first, and
    this process's own groups left for later whose members have died since."""
    _remove_deferred()
    names: set[str] = set()
    for parent in hierarchy.parents:
        try:
            names.update(entry.name for entry in os.scandir(parent) if entry.is_dir() and stale(entry.name))
        except OSError:
            continue
    removed = []
    for name in sorted(names):
        group = Cgroup(name, hierarchy.version, tuple(p / name for p in hierarchy.parents))
        try:
            group.remove(timeout=5.0)
            removed.append(name)
        except OSError:
            pass  # another run is removing it too, or it will be removed on the next start
    return removed
