"""nbgrader's exchange with two real Unix accounts, as on a JupyterHub machine: the instructor releases the tiny
assignment, the student fetches, answers and submits it, the instructor collects; `dlgrade grade` and
`dlgrade feedback` run; nbgrader's `release_feedback` hands the page out and the student's `fetch_feedback`
receives exactly dlgrade's page.

Needs root (to create the accounts with .ci/exchange-accounts, which `make test-deps` runs, and to run commands
as each of them with runuser); skipped otherwise."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO, tiny_course

INSTRUCTOR, STUDENT = "dlgrade-instructor", "dlgrade-student"
COURSE_ID = "dl-keras"  # c.CourseDirectory.course_id of the repository's nbgrader_config.py
BIN = Path(sys.prefix) / "bin"
RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")

pytestmark = [pytest.mark.sandbox, pytest.mark.skipif(os.geteuid() != 0 or RUNUSER is None,
                                reason="runs commands as two Unix accounts: needs root and runuser")]


@pytest.fixture(scope="module")
def accounts() -> tuple[pwd.struct_passwd, pwd.struct_passwd]:
    """The instructor's and the student's accounts, created once and reused (idempotent)."""
    subprocess.run(["bash", str(REPO / ".ci" / "exchange-accounts")], check=True, capture_output=True)
    return pwd.getpwnam(INSTRUCTOR), pwd.getpwnam(STUDENT)


@pytest.fixture
def place():
    """A folder every account can reach (pytest's own tmp_path is root's alone), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="dlgrade-exchange-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(account: pwd.struct_passwd, *command: str, cwd: Path) -> str:
    """Run `command` as `account`, in its own home and with this environment's tools; its output."""
    env = {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name, "LANG": "C.UTF-8",
           "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin"}
    done = subprocess.run([RUNUSER, "-u", account.pw_name, "--", *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} as {account.pw_name}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _chown(path: Path, account: pwd.struct_passwd) -> None:
    for item in [path, *path.rglob("*")]:
        os.lchown(item, account.pw_uid, account.pw_gid)


def test_the_exchange_loop_hands_the_student_exactly_dlgrades_page(accounts, place):
    instructor, student = accounts
    exchange = place / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)  # nbgrader's exchange root must be writable by everyone
    settings = f'\nc.Exchange.root = "{exchange}"\nc.Exchange.assignment_dir = "."\n'

    course_root = place / "course"
    course_root.mkdir()
    tiny_course(course_root)
    with open(course_root / "nbgrader_config.py", "a") as config:
        config.write(settings)
    _chown(course_root, instructor)
    work = place / "student"
    work.mkdir()
    (work / "nbgrader_config.py").write_text(f'c = get_config()\nc.CourseDirectory.course_id = "{COURSE_ID}"'
                                             f'{settings}')
    _chown(work, student)

    # the instructor releases
    as_user(instructor, str(BIN / "dlgrade"), "generate", "tiny", "--course-dir", str(course_root), cwd=course_root)
    as_user(instructor, str(BIN / "nbgrader"), "release_assignment", "tiny", cwd=course_root)
    # the student fetches, answers and submits
    as_user(student, str(BIN / "nbgrader"), "fetch_assignment", "tiny", cwd=work)
    fetched = work / "tiny" / "tiny.ipynb"
    notebook = nbformat.read(fetched, as_version=4)
    answer = next(cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution"))
    answer.source = "def add(a, b):\n    return a + b"
    fetched.write_text(nbformat.writes(notebook))  # the student's edit, saved as the student
    _chown(work / "tiny", student)
    as_user(student, str(BIN / "nbgrader"), "submit", "tiny", "--course", COURSE_ID, cwd=work)
    # the instructor collects; dlgrade grades (as root, as a grading service would) and writes the feedback
    as_user(instructor, str(BIN / "nbgrader"), "collect", "tiny", cwd=course_root)
    submitted = course_root / "submitted" / STUDENT / "tiny"
    assert (submitted / "tiny.ipynb").is_file() and (submitted / "submission_secret.txt").is_file()
    from autograder.course import open_course
    from autograder.pipeline import grade

    (result,) = grade(course=open_course(course_root), assignment="tiny").results
    assert (result.student, result.score, result.max_score) == (STUDENT, 2, 2)
    _chown(course_root, instructor)
    as_user(instructor, str(BIN / "dlgrade"), "feedback", "tiny", "--course-dir", str(course_root), cwd=course_root)
    page = course_root / "feedback" / STUDENT / "tiny" / "tiny.html"
    assert (page.parent / "submission_secret.txt").read_bytes() == (submitted / "submission_secret.txt").read_bytes()
    # nbgrader hands the page out; the student fetches it
    as_user(instructor, str(BIN / "nbgrader"), "release_feedback", "tiny", cwd=course_root)
    as_user(student, str(BIN / "nbgrader"), "fetch_feedback", "tiny", "--course", COURSE_ID, cwd=work)
    (received,) = (work / "tiny" / "feedback").glob("*/tiny.html")
    assert received.read_bytes() == page.read_bytes(), "the student receives exactly dlgrade's page"
    assert received.stat().st_uid == student.pw_uid
    assert received.parent.name == (submitted / "timestamp.txt").read_text().strip()
