"""Limits the kernel enforces, tried as a determined student would: each attack is a real Python program in the
real sandbox, and each must end with the right verdict (or fail inside with ENOSPC / EFBIG and still end), with
nothing left behind on the host: no process, no cgroup, no mount, no shared memory, no disk beyond the limit.

Where the attack beats the watchdog alone (`kernel_limits=False`, today's fallback), a second test shows that
it does, so that each defence is proven by an attack that would succeed without it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from autograder import cgroups, sandbox
from autograder.execution import python_mounts

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras

PYTHON = str(Path(sys.prefix) / "bin" / "python")
MiB = 2**20
SMALL = dict(memory_bytes=256 * MiB, disk_bytes=64 * MiB, tmp_bytes=64 * MiB, shm_bytes=1024 * MiB, max_tasks=64,
             max_files=4096, wall_seconds=20)


def _kernel_limits_reason() -> str | None:
    try:
        cgroups.detect()
    except OSError as error:
        return str(error)
    return None


kernel = pytest.mark.skipif(_kernel_limits_reason() is not None,
                            reason=f"kernel limits need root and cgroups: {_kernel_limits_reason()}")


@pytest.fixture
def scratch():
    """Below /tmp like the pipeline's scratch: pytest's own tmp_path is private to root, out of the sandbox's reach."""
    with tempfile.TemporaryDirectory(prefix="dlgrade-test-") as path:
        yield Path(path)


def attack(code: str, scratch: Path, *, kernel_limits: bool = True, **limits) -> sandbox.SandboxResult:
    """Run the student's `code` under SMALL limits (overridden by `limits`), tagged so its processes can be found."""
    tagged = f"# dlgrade-attack-{os.getpid()}\n{code}"
    return sandbox.run([PYTHON, "-c", tagged], scratch=scratch, limits=sandbox.Limits(**{**SMALL, **limits}),
                       mounts=python_mounts(), kernel_limits=kernel_limits)


def _ours(name: str) -> bool:
    return name.startswith(f"{cgroups.PREFIX}-{cgroups.pid_namespace()}-{os.getpid()}-")


def _shmem_bytes() -> int:
    """The host's shared memory and tmpfs pages, from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1]) * 1024
    return 0


def assert_nothing_left(shmem_before: int | None = None) -> None:
    """No process of the attack, no cgroup and no scratch mount of this test process; shared memory freed."""
    marker = f"dlgrade-attack-{os.getpid()}"
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    _, alive = psutil.wait_procs(leftovers, timeout=5)  # a dead pid namespace is emptied asynchronously
    assert not alive, f"processes survived their sandbox: {alive}"
    try:
        hierarchy = cgroups.detect()
    except OSError:
        hierarchy = None
    for parent in hierarchy.parents if hierarchy else ():
        groups = [entry.name for entry in os.scandir(parent) if entry.is_dir() and _ours(entry.name)]
        assert not groups, f"cgroups left behind below {parent}: {groups}"
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if any(_ours(field) for field in line.split())]
    assert not mounts, f"scratch tmpfs left mounted: {mounts}"
    if shmem_before is not None:
        deadline = time.monotonic() + 10
        while _shmem_bytes() > shmem_before + 64 * MiB and time.monotonic() < deadline:
            time.sleep(0.1)  # a detached tmpfs is freed once the sandbox's mount namespace is gone
        assert _shmem_bytes() <= shmem_before + 64 * MiB, "the attack's shared memory outlived its sandbox"


def allocated_bytes(folder: Path) -> int:
    """Disk blocks really used below `folder` (what a sparse or empty file costs the host)."""
    total = os.lstat(folder).st_blocks * 512
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


SHM_FILL = ("import time\nwith open('/dev/shm/hoard', 'wb') as f:\n"
            "    for _ in range(600):\n        f.write(b'x' * 2**20); f.flush()\n"
            "print('holding 600 MiB in /dev/shm', flush=True)\ntime.sleep(60)")
MEMFD_FILL = ("import os, time\nfd = os.memfd_create('hoard')\nos.ftruncate(fd, 600 * 2**20)\n"
              "for i in range(600):\n    os.pwrite(fd, b'x' * 2**20, i * 2**20)\n"
              "print('holding 600 MiB of memfd pages', flush=True)\ntime.sleep(60)")


@kernel
@pytest.mark.parametrize("code", [SHM_FILL, MEMFD_FILL], ids=["dev-shm", "memfd"])
def test_shared_memory_counts_as_memory(scratch, code):
    """Pages in /dev/shm or a memfd are no process's RSS, but the cgroup charges them: stopped for memory."""
    before = _shmem_bytes()
    result = attack(code, scratch)
    assert result.stopped == "memory", (result.stopped, result.stdout, result.stderr[-500:])
    assert "memory" in result.reason and "holding" not in result.stdout
    assert result.enforced_by.startswith("cgroup")
    assert_nothing_left(before)


@pytest.mark.parametrize("code", [SHM_FILL, MEMFD_FILL], ids=["dev-shm", "memfd"])
def test_watchdog_alone_misses_shared_memory(scratch, code):
    """The proof that the cgroup is needed: sampling RSS, the same attack holds 600 MiB under a 256 MiB limit."""
    result = attack(code, scratch, kernel_limits=False, wall_seconds=4)
    assert "holding 600 MiB" in result.stdout and result.stopped == "timeout", (result.stopped, result.stderr)
    assert_nothing_left()


@kernel
def test_anonymous_memory_beyond_the_ceiling_is_an_oom_kill_reported_as_memory(scratch):
    result = attack("x = bytearray(2 * 2**30)\nprint('allocated')", scratch)
    assert result.stopped == "memory" and "allocated" not in result.stdout, (result.stopped, result.stderr[-300:])
    assert_nothing_left()


@kernel
def test_tmp_is_a_bounded_tmpfs(scratch):
    code = ("try:\n    with open('/tmp/fill', 'wb') as f:\n        for _ in range(200):\n"
            "            f.write(b'x' * 2**20); f.flush()\n    print('wrote 200 MiB')\n"
            "except OSError as e:\n    print('refused', e.errno)")
    before = _shmem_bytes()
    result = attack(code, scratch)
    assert "refused 28" in result.stdout and result.returncode == 0, result.stdout + result.stderr[-300:]
    assert_nothing_left(before)


MANY_FILES = ("import os\nn = 0\ntry:\n    for n in range({count}):\n        {make}\n"
              "    print('made', {count})\nexcept OSError as e:\n    print('refused', e.errno, 'after', n)")


@kernel
@pytest.mark.parametrize("make", ["open(f'f{n}', 'w').close()", "os.mkdir(f'd{n}')"], ids=["files", "folders"])
def test_many_empty_files_or_folders_hit_the_inode_limit(scratch, make):
    """200k empty files or folders take no data blocks, but a tmpfs with nr_inodes refuses them."""
    result = attack(MANY_FILES.format(count=200_000, make=make), scratch)
    assert "refused 28" in result.stdout, result.stdout + result.stderr[-300:]
    assert len(os.listdir(scratch)) < SMALL["max_files"]
    assert_nothing_left()


def test_watchdog_alone_misses_many_empty_files(scratch):
    """The proof that the inode limit is needed: a walk that sums file sizes sees 20k empty files as nothing."""
    result = attack(MANY_FILES.format(count=20_000, make="open(f'f{n}', 'w').close()"), scratch, kernel_limits=False)
    assert "made 20000" in result.stdout and result.stopped is None, result.stdout + result.stderr[-300:]


@kernel
def test_deep_folders_are_contained_and_not_copied_back_without_bound(scratch):
    """A chain of 3000 nested folders must neither break the copy back out of the tmpfs nor reach the host whole."""
    code = ("import os\nfor _ in range(3000):\n    os.mkdir('d'); os.chdir('d')\nprint('deep')")
    result = attack(code, scratch)
    assert "deep" in result.stdout and result.returncode == 0, result.stderr[-300:]
    depth = sum(1 for _ in os.walk(scratch))
    assert depth <= sandbox.COPY_BACK_DEPTH + 1
    assert_nothing_left()


@kernel
def test_sparse_file_stays_sparse_and_bounded(scratch):
    """A 10 GiB sparse file costs nothing, filling it hits the tmpfs size, and the copy out keeps it sparse."""
    code = ("import os\nwith open('sparse', 'wb') as f:\n    f.truncate(10 * 2**30)\nprint('truncated', flush=True)\n"
            "fd = os.open('sparse', os.O_WRONLY)\ntry:\n    for i in range(0, 10 * 2**30, 64 * 2**20):\n"
            "        os.pwrite(fd, b'x' * 2**20, i)\n    print('filled')\nexcept OSError as e:\n"
            "    print('refused', e.errno)")
    result = attack(code, scratch, max_file_bytes=20 * 2**30)
    assert "truncated" in result.stdout, result.stdout + result.stderr[-300:]
    assert "filled" not in result.stdout
    assert result.stopped in (None, "disk")
    copied = scratch / "sparse"
    assert copied.stat().st_size == 10 * 2**30
    assert allocated_bytes(scratch) <= SMALL["disk_bytes"] + MiB, "the copy out of the sandbox filled the holes"
    assert_nothing_left()


@kernel
def test_hard_links_are_not_copied_out_as_copies(scratch):
    """100 names of one 8 MiB file fit the tmpfs; copied out name by name they would cost the host 800 MiB."""
    code = ("import os\nopen('big', 'wb').write(b'x' * 8 * 2**20)\n"
            "for i in range(100):\n    os.link('big', f'name{i}')\nprint('linked')")
    result = attack(code, scratch)
    assert "linked" in result.stdout, result.stderr[-300:]
    assert allocated_bytes(scratch) <= SMALL["disk_bytes"] + MiB
    assert_nothing_left()


@kernel
def test_sparse_file_beyond_the_file_size_limit_is_refused(scratch):
    code = ("import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\ntry:\n"
            "    open('sparse', 'wb').truncate(10 * 2**30)\nexcept OSError as e:\n    print('refused', e.errno)")
    result = attack(code, scratch, max_file_bytes=MiB)
    assert "refused 27" in result.stdout, result.stdout + result.stderr[-300:]  # EFBIG
    assert_nothing_left()


@kernel
def test_full_scratch_is_reported_as_disk(scratch):
    code = "with open('fill', 'wb') as f:\n    for _ in range(200):\n        f.write(b'x' * 2**20)\n"
    result = attack(code, scratch)
    assert result.stopped == "disk" and "64 MiB" in result.reason, (result.stopped, result.stderr[-300:])
    assert allocated_bytes(scratch) <= SMALL["disk_bytes"] + MiB
    assert_nothing_left()


FORK_BOMB = ("import os, time\nwhile True:\n    try:\n        if os.fork() == 0:\n            time.sleep(60)\n"
             "    except OSError:\n        pass")
THREAD_BOMB = ("import threading, time\nwhile True:\n    try:\n"
               "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
               "    except RuntimeError:\n        pass")


@kernel
@pytest.mark.parametrize("code", [FORK_BOMB, THREAD_BOMB], ids=["fork", "threads"])
def test_task_bombs_are_stopped_as_tasks(scratch, code):
    """Capped by the cgroup's task limit, which counts its refusals: a bomb is stopped with its own reason."""
    start = time.monotonic()
    result = attack(code, scratch)
    assert result.stopped == "tasks", (result.stopped, result.stderr[-300:])
    assert "processes or threads" in result.reason and time.monotonic() - start < 10
    assert_nothing_left()


def test_watchdog_alone_cannot_tell_a_fork_bomb(scratch):
    """Without the cgroup the bomb is capped per uid, but nothing tells it for what it is: it runs on until the time
    limit, or until 64 copies of the same shared pages, summed as RSS, look like a memory hog."""
    result = attack(FORK_BOMB, scratch, kernel_limits=False, wall_seconds=3)
    assert result.stopped in ("timeout", "memory")
    assert_nothing_left()


HOLD_TASKS = ("import os, sys, time\ntry:\n    for _ in range(100):\n        if os.fork() == 0:\n"
              "            time.sleep(60)\nexcept OSError:\n    pass\n"
              "print('holding', flush=True)\nsys.stdout.close()\ntime.sleep(60)")
FORK_TWENTY = ("import os\ntry:\n    for n in range(20):\n        if os.fork() == 0:\n            os._exit(0)\n"
               "        os.wait()\n    print('forked 20')\nexcept OSError as e:\n    print('refused', e.errno)")


def _fork_beside_a_full_sandbox(scratch: Path, *, kernel_limits: bool) -> sandbox.SandboxResult:
    """A sandbox in slot 0 holds all the tasks it may; a second sandbox in the same slot (same host uid) forks."""
    with tempfile.TemporaryDirectory(prefix="dlgrade-test-") as other:
        holder = sandbox.start([PYTHON, "-c", f"# dlgrade-attack-{os.getpid()}\n{HOLD_TASKS}"], scratch=Path(other),
                               limits=sandbox.Limits(**SMALL), mounts=python_mounts(), kernel_limits=kernel_limits)
        try:
            deadline = time.monotonic() + 20
            while "holding" not in holder.out.text() and holder.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "holding" in holder.out.text(), holder.err.text()[-300:]
            return attack(FORK_TWENTY, scratch, kernel_limits=kernel_limits)
        finally:
            holder.kill()


@kernel
def test_task_limit_is_per_sandbox_not_per_uid(scratch):
    """Two sandboxes that share a host uid (one slot, or no root) must not share a task limit."""
    result = _fork_beside_a_full_sandbox(scratch, kernel_limits=True)
    assert "forked 20" in result.stdout, result.stdout + result.stderr[-300:]
    assert_nothing_left()


@kernel
def test_watchdog_alone_shares_the_task_limit_of_a_uid(scratch):
    """The proof that the cgroup is needed: with a per-uid limit, one sandbox's tasks starve the next one (its
    forks are refused, or bubblewrap cannot even start it)."""
    result = _fork_beside_a_full_sandbox(scratch, kernel_limits=False)
    assert "forked 20" not in result.stdout
    assert "refused 11" in result.stdout or "Resource temporarily unavailable" in result.stderr, result.stderr[-300:]
    assert_nothing_left()


@kernel
def test_detached_processes_do_not_survive(scratch):
    """setsid and a double fork, then the notebook's process ends: the grandchild must die with the sandbox."""
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(300)\n    os._exit(0)\nprint('detached')")
    result = attack(code, scratch)
    assert "detached" in result.stdout and result.stopped is None
    assert_nothing_left()


@kernel
def test_killing_a_warm_sandbox_leaves_nothing(scratch):
    (scratch / "release.txt").write_text("from the release")
    running = sandbox.start([PYTHON, "-c", f"# dlgrade-attack-{os.getpid()}\nimport time; time.sleep(60)"],
                            scratch=scratch, limits=sandbox.Limits(**SMALL), mounts=python_mounts())
    assert running.alive()
    running.kill()
    assert_nothing_left()


@kernel
def test_files_written_before_and_during_the_run_are_there_after_it(scratch):
    (scratch / "release.txt").write_text("from the release")
    result = attack("print(open('release.txt').read()); open('out.txt', 'w').write('ok')", scratch)
    assert "from the release" in result.stdout, result.stderr[-300:]
    assert (scratch / "out.txt").read_text() == "ok" and (scratch / "release.txt").exists()
    assert_nothing_left()


@kernel
def test_stale_groups_and_mounts_of_a_dead_run_are_removed(scratch, tmp_path):
    """A grader killed mid-run leaves a cgroup and a scratch mount named after its pid; the next start removes them."""
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)  # a pid that is certainly dead now
    name = f"{cgroups.PREFIX}-{cgroups.pid_namespace()}-{child}-0"
    hierarchy = cgroups.detect()
    stale_dirs = [parent / name for parent in hierarchy.parents]
    for path in stale_dirs:
        path.mkdir()
    stale_mount = Path(tempfile.mkdtemp(prefix="dlgrade-stale-"))
    sandbox._mount_tmpfs(name, stale_mount, "size=1m")
    try:
        result = attack("print('ok')", scratch)
        assert result.stdout.strip() == "ok"
        assert not any(path.exists() for path in stale_dirs)
        assert name not in Path("/proc/self/mountinfo").read_text()
    finally:
        for path in stale_dirs:
            if path.exists():
                path.rmdir()
        if name in Path("/proc/self/mountinfo").read_text():
            sandbox._unmount(stale_mount)
        stale_mount.rmdir()


@kernel
def test_a_group_whose_members_are_still_dying_is_removed_later():
    """A run whose processes outlast the kill's patience must not fail its grading, nor leave its cgroup forever."""
    import subprocess

    group = cgroups.Cgroup.create(memory_bytes=64 * MiB, max_tasks=8)
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: group.join(os.getpid()))
    cgroups.remove_later(group)
    assert group.exists()
    sleeper.kill()
    sleeper.wait()
    cgroups.Cgroup.create(memory_bytes=64 * MiB, max_tasks=8).remove()
    assert not group.exists()


def test_fallback_says_so_in_the_log(scratch, caplog):
    """Where the kernel cannot enforce the limits, the run still has the watchdog, and the log says which."""
    with caplog.at_level("WARNING", logger="dlgrade.sandbox"):
        result = attack("print('ok')", scratch, kernel_limits=False)
    assert result.stdout.strip() == "ok" and result.enforced_by == "watchdog"
    assert "falling back to the watchdog" in caplog.text
