"""Grading on Slurm: settings from dlgrade.toml, the batch script, and a real batch on the one-node cluster that
`.ci/slurm-up` starts (`make test` runs it first): the same scores as a local run, and tasks that were cancelled or
killed reported per submission while the rest of the batch is recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.course import AssignmentConfig
from autograder.errors import ConfigError
from autograder.executors import Task
from autograder.notebooks import generate_release
from autograder.plan import BatchPlan, plan_batch
from autograder.slurm import SlurmSettings, _task_indices, batch_script, load_settings, submit
from tests.conftest import REPO, tiny_course
from tests.conftest import submit as submit_notebook

DLGRADE = str(Path(sys.prefix) / "bin" / "dlgrade")


def test_settings_come_from_the_slurm_section_of_dlgrade_toml(tmp_path):
    assert load_settings(tmp_path) == SlurmSettings(), "no dlgrade.toml: the defaults"
    (tmp_path / "dlgrade.toml").write_text(
        '[resources.bert]\npath = "models/bert"\n\n'
        '[slurm]\npartition = "gpu"\naccount = "dl-course"\ntime_minutes = 30\nshared_dir = "/scratch/dlgrade"\n'
        'extra_args = ["--qos=short"]\npoll_seconds = 5\n')
    settings = load_settings(tmp_path)
    assert (settings.partition, settings.account, settings.time_minutes) == ("gpu", "dl-course", 30)
    assert settings.shared_dir == Path("/scratch/dlgrade") and settings.extra_args == ("--qos=short",)
    assert settings.poll_seconds == 5.0

    (tmp_path / "dlgrade.toml").write_text('[slurm]\npartiton = "gpu"\n')
    with pytest.raises(ConfigError, match="unknown setting.*partiton"):
        load_settings(tmp_path)
    (tmp_path / "dlgrade.toml").write_text('[slurm]\ntime_minutes = "1:00:00"\n')
    with pytest.raises(ConfigError, match="time_minutes"):
        load_settings(tmp_path)


def test_batch_script_asks_for_a_gpu_only_for_gpu_assignments(tmp_path):
    plan = BatchPlan(course_root=tmp_path, config=AssignmentConfig(name="bert_finetune"), points={})
    tasks = [Task(plan=plan, student=s) for s in ("alice", "o'brien")]
    settings = SlurmSettings(partition="cpu", gpu_partition="gpu", gpus_per_task=2)
    gpu = batch_script(tasks, settings, directory=tmp_path / "b", gpu=True, notebook_seconds=600,
                       grader_seconds=300, memory_bytes=4 * 2**30)
    cpu = batch_script(tasks, settings, directory=tmp_path / "b", gpu=False, notebook_seconds=600,
                       grader_seconds=300, memory_bytes=4 * 2**30)
    assert "#SBATCH --gres=gpu:2" in gpu and "#SBATCH --partition=gpu" in gpu
    assert "--gres" not in cpu and "#SBATCH --partition=cpu" in cpu
    assert "#SBATCH --time=20" in cpu and "#SBATCH --mem=6G" in cpu
    assert "from autograder.worker import main" in cpu and "machine_slot" in cpu, "the worker, in a free slot"
    assert "--no-sandbox" not in cpu and "check_sandbox()" in cpu, "student code runs in the node's sandbox"
    students_line = next(line for line in cpu.splitlines() if line.startswith("students="))
    listed = subprocess.run(["bash", "-c", students_line + '; printf "%s\\n" "${students[@]}"'],
                            capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines() == ["alice", "o'brien"], "student ids are quoted for bash"


def test_submit_passes_the_array_and_the_assignments_device(tmp_path, monkeypatch):
    """A stand-in sbatch records its arguments: one array over the tasks; --gres only where device = "gpu"."""
    (tmp_path / "course").mkdir()
    course = tiny_course(tmp_path / "course")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\necho "4242;cluster"\n')
    (fake_bin / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    plan = plan_batch(course, "tiny")
    tasks = [Task(plan=plan, student=s) for s in ("a", "b", "c")]

    batch = submit(tasks, SlurmSettings(max_running=2, extra_args=("--qos=short",)))
    assert batch.job_id == "4242" and batch.directory.parent == course.root / "autograded" / ".slurm"
    assert (tmp_path / "args").read_text().split()[:3] == ["--parsable", "--array=0-2%2", "--qos=short"]
    assert "--gres" not in (batch.directory / "grade.sbatch").read_text()

    config = course.solutions / "tiny" / "assignment.toml"
    config.write_text('device = "gpu"\n' + config.read_text())
    gpu_plan = plan_batch(course, "tiny")
    tasks = [Task(plan=gpu_plan, student=s) for s in ("a", "b", "c")]
    batch = submit(tasks, SlurmSettings())
    assert "#SBATCH --gres=gpu:1" in (batch.directory / "grade.sbatch").read_text()
    assert BatchPlan.from_json((batch.directory / "plan.json").read_text(), origin=batch.directory).config == \
        tasks[0].plan.config, "the plan every task grades with travels as JSON, unchanged"


def test_task_ids_as_scontrol_writes_them_for_tasks_sharing_a_record():
    assert _task_indices("4") == [4] and _task_indices("2-3,5") == [2, 3, 5]
    assert _task_indices("0-3%2") == [0, 1, 2, 3], "a throttled array's pending tasks"


# ------------------------------------------------------------------------------------ on the real cluster


def _cluster_up() -> None:
    """Skip where .ci/slurm-up never ran (no Slurm here); fail where it ran but the node does not answer."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.skip("no Slurm on this machine: `make slurm` (.ci/slurm-up) starts a one-node cluster; make test "
                    "runs it first")
    state = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True)
    assert state.returncode == 0 and state.stdout.split() and set(state.stdout.split()) & {"idle", "mix", "alloc"}, \
        f"Slurm is installed but no node is up (sinfo: {state.stdout or state.stderr}); run .ci/slurm-up"


def _grade(course, *args: str) -> dict:
    run = subprocess.run([DLGRADE, "grade", "tiny", "--course-dir", str(course.root), "--json", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return {r["student"]: r for r in json.loads(run.stdout)["results"]}


def _wait_running(job_id: str, indices: set[int], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "--jobs", job_id, "--array", "--noheader", "--format=%K %T"],
                                capture_output=True, text=True).stdout.split("\n")
        if indices <= {int(line.split()[0]) for line in listed if line.endswith(" RUNNING")}:
            return
        time.sleep(0.5)
    raise AssertionError(f"tasks {sorted(indices)} of job {job_id} did not start in {timeout} s")


@pytest.mark.slow
def test_a_batch_on_slurm_matches_local_grading_and_reports_lost_tasks(tmp_path):
    _cluster_up()
    course = tiny_course(tmp_path)
    generate_release(course, "tiny")
    (course.root / "dlgrade.toml").write_text("[slurm]\npoll_seconds = 1\n")
    reference = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    wrong = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    wrong.cells[0].source = "def add(a, b):\n    return a - b"
    slow = nbformat.read(course.solutions / "tiny" / "tiny.ipynb", as_version=4)
    slow.cells[0].source = "import time\ntime.sleep(50)\n\ndef add(a, b):\n    return a + b"
    # array task i grades the i-th student in sorted order: the two slow ones start first, on the two CPUs
    for student, notebook in (("a_cancelled", slow), ("b_killed", slow), ("good1", reference),
                              ("good2", reference), ("wrong", wrong)):
        submit_notebook(course, student, "tiny", nbformat.writes(notebook).encode())

    head = subprocess.Popen([DLGRADE, "grade", "tiny", "--executor", "slurm", "--course-dir", str(course.root),
                             "--json"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_id = ""
    try:
        deadline = time.monotonic() + 60
        while not (found := list(course.autograded.glob(".slurm/*/job_id"))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert found, "the batch was not submitted"
        job_id = found[0].read_text().strip()
        _wait_running(job_id, {0, 1})
        time.sleep(5)  # the workers are in their sandboxes by now
        subprocess.run(["scancel", f"{job_id}_0"], check=True)  # an instructor cancels one task
        subprocess.run(["scancel", "--batch", "--signal=KILL", f"{job_id}_1"], check=True)  # a worker dies (OOM)
        out, err = head.communicate(timeout=240)
    finally:  # a failed test leaves neither the head nor its tasks behind
        if head.poll() is None:
            head.kill()
            head.wait()
            if job_id:
                subprocess.run(["scancel", job_id], check=False)
    assert head.returncode == 1, err  # lost tasks are a failure of grading, named with the command that regrades
    assert "grading failed on our side for 2 submission(s)" in err, err
    assert "dlgrade grade tiny --student a_cancelled --student b_killed --force" in err, err
    on_slurm = {r["student"]: r for r in json.loads(out)["results"]}
    assert {s for s, r in on_slurm.items() if r["failed_on_our_side"]} == {"a_cancelled", "b_killed"}

    assert set(on_slurm) == {"a_cancelled", "b_killed", "good1", "good2", "wrong"}, "one result per task"
    for student, state, exit_code in (("a_cancelled", "CANCELLED", "0:15"), ("b_killed", "FAILED", "0:9")):
        result = on_slurm[student]
        assert (result["status"], result["score"], result["max_score"]) == ("error", 0, 2), result
        index = 0 if student == "a_cancelled" else 1
        assert f"Slurm task {job_id}_{index}" in result["reason"] and state in result["reason"], result["reason"]
        assert exit_code in result["reason"] and f"--student {student} --force" in result["reason"], result["reason"]
        log = Path(result["reason"].split("log: ")[1].split(")")[0])
        assert log.is_file() and f"grades {student}" in log.read_text()
        recorded = json.loads((course.autograded / student / "tiny" / "results.json").read_text())
        assert recorded["status"] == "error", "a lost task is recorded, so `--force` is what grades it again"
    assert {s: (r["score"], r["status"]) for s, r in on_slurm.items() if s not in ("a_cancelled", "b_killed")} == {
        "good1": (2, "graded"), "good2": (2, "graded"), "wrong": (0, "graded")}
    leftovers = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                 if str(course.root) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], "no worker, sandbox or grader outlives its task"

    again = subprocess.run([DLGRADE, "grade", "tiny", "--executor", "slurm", "--course-dir", str(course.root)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "skipped" in again.stdout and "submitted" not in again.stderr, \
        "a second run submits nothing: every submission has its results.json"

    local = _grade(course, "--executor", "local", "--jobs", "2", "--force", "--student", "good1", "--student",
                   "good2", "--student", "wrong")
    for student, result in local.items():
        slurm_result = on_slurm[student]
        assert (slurm_result["score"], slurm_result["status"], [t["score"] for t in slurm_result["tests"]]) == \
            (result["score"], result["status"], [t["score"] for t in result["tests"]]), student
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        scores = sorted((s.student.id, s.score) for s in gradebook.assignment_submissions("tiny"))
    assert scores == [("a_cancelled", 0), ("b_killed", 0), ("good1", 2), ("good2", 2), ("wrong", 0)]
