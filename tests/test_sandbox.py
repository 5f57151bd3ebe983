"""The sandbox's promises, each tried for real with bubblewrap: isolation, limits, and a kill that takes all."""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from autograder import sandbox
from autograder.execution import python_mounts

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras

PYTHON = str(Path(sys.prefix) / "bin" / "python")


def run_python(code: str, scratch: Path, **limits) -> sandbox.SandboxResult:
    return sandbox.run([PYTHON, "-c", code], scratch=scratch, limits=sandbox.Limits(**limits), mounts=python_mounts())


@pytest.fixture
def scratch():
    """Below /tmp like the pipeline's scratch: pytest's own tmp_path is private to root, out of the sandbox's reach."""
    with tempfile.TemporaryDirectory(prefix="dlgrade-test-") as path:
        yield Path(path)


def test_runs_as_unprivileged_user_in_scratch(scratch):
    """Inside, a plain user in its scratch folder; outside, seen from the host, not root either."""
    marker = f"dlgrade-uid-probe-{time.monotonic_ns()}"
    code = (f"import os, time; print(os.getuid(), os.getcwd()); open('out.txt', 'w').write('ok'); time.sleep(3)"
            f"  # {marker}")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=run_python(code, scratch)))
    runner.start()
    host_uids = set()
    while runner.is_alive():
        for process in psutil.process_iter(["cmdline", "uids"]):
            if process.info["cmdline"] and marker in " ".join(process.info["cmdline"]) and "bwrap" not in \
                    process.info["cmdline"][0]:
                host_uids.add(process.info["uids"].real)
        time.sleep(0.2)
    runner.join()
    result = outcome["result"]
    assert result.returncode == 0, result.stderr
    uid, cwd = result.stdout.split()
    assert uid != "0" and cwd == sandbox.SCRATCH_MOUNT
    assert host_uids and 0 not in host_uids, f"the sandboxed process runs as host uid(s) {host_uids}"
    assert (scratch / "out.txt").read_text() == "ok"


def test_instructor_tree_and_host_files_are_invisible(scratch, tmp_path):
    secret = tmp_path / "solutions" / "answer.txt"
    secret.parent.mkdir()
    secret.write_text("42")
    repo = Path(__file__).resolve().parents[1]
    code = (f"import os\nfor p in [{str(secret)!r}, {str(repo / 'solutions')!r}, {str(repo / 'tests')!r},"
            " '/root/.bashrc', '/etc/shadow', '/var']:\n"
            "    print(p, os.path.exists(p) and bool(os.listdir(p) if os.path.isdir(p) else 1))")
    result = run_python(code, scratch)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        path, visible = line.rsplit(" ", 1)
        assert visible == "False", f"{path} is visible inside the sandbox"


def test_cannot_write_outside_scratch(scratch):
    code = ("import os\nfor p in ['/usr/x', os.__file__ + '.x', '/etc/x', '/x', '/home/x']:\n"
            "    try:\n        open(p, 'w').write('x'); print('wrote', p)\n"
            "    except OSError as e: print('refused', p)")
    result = run_python(code, scratch)
    assert "wrote" not in result.stdout and result.stdout.count("refused") == 5, result.stdout + result.stderr


def test_no_network_not_even_host_loopback(scratch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\n"
            "except OSError as e: print('refused', e)\n"
            "try:\n    socket.getaddrinfo('pypi.org', 443); print('resolved')\nexcept OSError: print('no dns')")
    result = run_python(code, scratch)
    listener.close()
    assert "connected" not in result.stdout and "resolved" not in result.stdout, result.stdout
    assert not accepted


def test_timeout_kills_whole_process_tree(scratch):
    code = ("import os, subprocess, time\n"
            "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid(); time.sleep(300)\ntime.sleep(300)")
    start = time.monotonic()
    result = run_python(code, scratch, wall_seconds=3)
    assert result.stopped == "timeout" and time.monotonic() - start < 15
    assert "time limit" in result.reason
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and
                 p.info["cmdline"][:2] == ["sleep", "300"]]
    _, alive = psutil.wait_procs(leftovers, timeout=5)  # the kernel empties the dead pid namespace asynchronously
    assert not alive, alive


def test_memory_limit_stops_the_run(scratch):
    result = run_python("x = bytearray(1500 * 2**20); import time; time.sleep(30)", scratch,
                        memory_bytes=512 * 2**20)
    assert result.stopped == "memory"
    assert "memory" in result.reason


def test_fork_bomb_is_capped(scratch):
    code = ("import os, time\nn = 0\ntry:\n    for _ in range(5000):\n        if os.fork() == 0:\n"
            "            time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError as e: print('capped at', n)")
    result = run_python(code, scratch, max_tasks=64, wall_seconds=30)
    assert "capped at" in result.stdout, result.stdout + result.stderr


def test_output_is_capped_and_drained(scratch):
    result = run_python("import sys\nfor _ in range(200): sys.stdout.write('x' * 65536)", scratch,
                        max_output_bytes=100_000)
    assert result.returncode == 0 and result.output_truncated and len(result.stdout) == 100_000


def test_file_size_limit(scratch):
    result = run_python("open('big', 'wb').write(b'x' * 5 * 2**20)", scratch, max_file_bytes=2**20)
    assert result.returncode != 0
    assert (scratch / "big").stat().st_size <= 2**20


def test_disk_limit_counts_all_files_in_scratch(scratch):
    code = ("import time\nfor i in range(40):\n    open(f'f{i}', 'wb').write(b'x' * 2**20)\ntime.sleep(3)\n")
    result = run_python(code, scratch, disk_bytes=16 * 2**20, max_file_bytes=4 * 2**20, wall_seconds=30)
    assert result.stopped == "disk" and "more than 16 MiB" in result.reason
