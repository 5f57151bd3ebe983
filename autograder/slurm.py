"""Grading on a Slurm cluster: one job array per batch, one array task per submission.

    SlurmExecutor(load_settings(course.settings_dir)).run(tasks, grade_one=..., on_done=record)

The head process (the one that ran `dlgrade grade`) writes a batch script into the batch folder on the shared
file system, submits it with `sbatch --parsable --array=0-N`, and polls `squeue` until every task has left the
queue. Each task runs the worker (`autograder.worker`, in a sandbox slot of its node) on a compute node, which
grades one submission in the bubblewrap sandbox there (student code never runs outside it) and writes the result
as `<batch folder>/<student>.json`. The head turns each finished task into exactly one `SubmissionResult`: the one
in its JSON file, or an error result naming the task's final Slurm state, exit code and log when the task left
none (failed, cancelled, timed out, lost its node). Recording (gradebook, results.json) stays with the caller, as
with `LocalExecutor`.

A finished task's final state comes from `scontrol show job` (kept by the controller for MinJobAge seconds after
the task ends, on every cluster) and, when the controller no longer has it, from `sacct` (clusters with
accounting). Settings come from `[slurm]` in the course's `dlgrade.toml`; see `SlurmSettings` and docs/slurm.md.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from autograder.course import course_section
from autograder.errors import DlgradeError
from autograder.executors import GradeOne, OnDone, Task
from autograder.results import SubmissionResult

SECTION = "slurm"
BATCHES_DIR = Path("autograded") / ".slurm"  # below the course root: the default home of batch folders
PLAN_FILE = "plan.json"  # in a batch folder: the batch's plan, which every task grades with
SETUP_SECONDS = 300  # per task, on top of the notebook's and the graders' limits: start-up, imports, restore
GRADER_MEMORY_GIB = 2  # per task, on top of the sandbox's memory limit: the worker and the hidden graders
LATE_FILE_SECONDS = 60  # how long a task that ended COMPLETED may take to show its JSON (NFS attribute caching)
QUEUE_OUTAGE_SECONDS = 900  # squeue failing for this long in a row stops the batch (the tasks are cancelled)
# What a task runs: the worker, in a sandbox slot (host uid) that no other dlgrade process on its node holds, be it
# another task of the batch or a local batch (the same flock-ed slots as LocalExecutor, see executors.machine_slot).
WORKER_IN_A_FREE_SLOT = "\n".join([
    "import sys", "from autograder.executors import machine_slot", "from autograder.worker import main",
    "with machine_slot() as slot:", '    sys.exit(main([*sys.argv[1:], "--slot", str(slot)]))'])


@dataclass(frozen=True)
class SlurmSettings:
    """How dlgrade submits to Slurm: `[slurm]` in the course's dlgrade.toml; every key is optional."""

    partition: str = ""  # sbatch --partition; "" = the cluster's default partition
    gpu_partition: str = ""  # sbatch --partition for assignments with device = "gpu"; "" = `partition`
    account: str = ""  # sbatch --account; "" = the user's default account
    time_minutes: int = 0  # sbatch --time per task; 0 = the assignment's notebook + grader limits + 5 minutes
    cpus_per_task: int = field(default=1, metadata={"min": 1})  # sbatch --cpus-per-task
    memory_gib: int = 0  # sbatch --mem per task; 0 = the assignment's sandbox memory limit + 2 GiB for the graders
    gpus_per_task: int = 1  # sbatch --gres=gpu:N, only for assignments with device = "gpu"
    max_running: int = 0  # at most this many tasks of a batch at once (--array=0-N%M); 0 = as many as Slurm runs
    # batch folders (task results, logs), on a file system every node sees; relative to the course root; default
    # <course>/autograded/.slurm
    shared_dir: Path | None = None
    extra_args: tuple[str, ...] = ()  # passed to sbatch as they are, after dlgrade's own, e.g. ["--qos=short"]
    poll_seconds: float = field(default=10.0, metadata={"min": 0.1})  # how often squeue is asked about the batch


def load_settings(course_root: Path) -> SlurmSettings:
    """`[slurm]` of `<course_root>/dlgrade.toml` (optional file, optional section), every value checked."""
    settings = course_section(course_root, SECTION, SlurmSettings)
    if settings.shared_dir is not None and not settings.shared_dir.is_absolute():
        settings = replace(settings, shared_dir=course_root / settings.shared_dir)
    return settings


# ------------------------------------------------------------------------------------------------- one batch


@dataclass(frozen=True)
class TaskEnd:
    """How Slurm says an array task ended; `state` is "UNKNOWN" when neither scontrol nor sacct know any more."""

    state: str  # COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, ...
    exit_code: str  # Slurm's "exit status:signal", e.g. "1:0" (the worker failed) or "0:9" (killed)


@dataclass(frozen=True)
class Batch:
    """One submitted job array: its folder on the shared file system, its job id, and task i = tasks[i]."""

    directory: Path
    job_id: str
    tasks: tuple[Task, ...]

    def output(self, index: int) -> Path:
        return self.directory / f"{self.tasks[index].student}.json"

    def log(self, index: int) -> Path:
        return self.directory / "logs" / f"task-{index}.log"

    def task_id(self, index: int) -> str:
        return f"{self.job_id}_{index}"


@dataclass(frozen=True)
class SlurmExecutor:
    """Grades tasks as one Slurm job array; see the module docstring. `on_submit(job_id, batch_dir)` is told once
    the array is queued (the CLI prints it)."""

    settings: SlurmSettings = SlurmSettings()
    on_submit: Callable[[str, Path], None] | None = None

    def run(self, tasks: list[Task], *, grade_one: GradeOne, on_done: OnDone) -> None:
        """Submit `tasks`, then call `on_done` once per task as each ends. `grade_one` is not used here: each
        task runs the worker (`autograder.worker`), which calls the same function on its node."""
        if not tasks:
            return
        batch = submit(tasks, self.settings)
        if self.on_submit:
            self.on_submit(batch.job_id, batch.directory)
        waiting = set(range(len(tasks)))
        try:
            _follow(batch, waiting, settings=self.settings, on_done=on_done)
        finally:
            if waiting:  # interrupted (Ctrl-C, an error while recording): nobody would record the rest
                subprocess.run(["scancel", batch.job_id], capture_output=True, check=False)


def submit(tasks: list[Task], settings: SlurmSettings) -> Batch:
    """Write the batch folder and script, and queue the job array; the Batch knows where each result will be."""
    plan = tasks[0].plan
    if any(task.plan is not plan for task in tasks):
        raise ValueError("one Slurm batch grades one assignment of one course with one plan")
    config = plan.config
    batches = settings.shared_dir or plan.course_root / BATCHES_DIR
    batches.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{plan.assignment}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=batches))
    (directory / "logs").mkdir()
    (directory / PLAN_FILE).write_text(plan.to_json())  # what every task grades with: computed once, here
    script = directory / "grade.sbatch"
    script.write_text(batch_script(tasks, settings, directory=directory, gpu=config.device == "gpu",
                                   notebook_seconds=config.limits.wall_seconds,
                                   grader_seconds=config.grader_seconds, memory_bytes=config.limits.memory_bytes))
    array = f"0-{len(tasks) - 1}" + (f"%{settings.max_running}" if settings.max_running else "")
    command = ["sbatch", "--parsable", f"--array={array}", *settings.extra_args, str(script)]
    try:
        submitted = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=directory)
    except FileNotFoundError as exc:
        raise DlgradeError("sbatch is not installed here: run dlgrade grade --executor slurm on a machine that "
                           "submits to the cluster (a login node)") from exc
    if submitted.returncode != 0:
        raise DlgradeError(f"sbatch refused the batch ({shlex.join(command)}): {submitted.stderr.strip()}")
    job_id = submitted.stdout.strip().split(";")[0]  # "<job id>[;<cluster>]"
    (directory / "job_id").write_text(job_id + "\n")
    return Batch(directory=directory, job_id=job_id, tasks=tuple(tasks))


def batch_script(tasks: list[Task], settings: SlurmSettings, *, directory: Path, gpu: bool, notebook_seconds: float,
                 grader_seconds: float, memory_bytes: int) -> str:
    """The sbatch script: array task i grades tasks[i] with the worker, in the sandbox, on its node."""
    plan = tasks[0].plan
    minutes = settings.time_minutes or math.ceil((notebook_seconds + grader_seconds + SETUP_SECONDS) / 60)
    memory_gib = settings.memory_gib or math.ceil(memory_bytes / 2**30) + GRADER_MEMORY_GIB
    directives = [f"--job-name=dlgrade-{plan.assignment}", f"--output={directory}/logs/task-%a.log",
                  f"--chdir={directory}", f"--time={minutes}", "--nodes=1", "--ntasks=1",
                  f"--cpus-per-task={settings.cpus_per_task}", f"--mem={memory_gib}G"]
    partition = (gpu and settings.gpu_partition) or settings.partition
    if partition:
        directives.append(f"--partition={partition}")
    if settings.account:
        directives.append(f"--account={settings.account}")
    if gpu:
        directives.append(f"--gres=gpu:{settings.gpus_per_task}")
    worker = [sys.executable, "-c", WORKER_IN_A_FREE_SLOT, "--plan", str(directory / PLAN_FILE)]
    students = " ".join(shlex.quote(task.student) for task in tasks)
    check = [] if not plan.isolated else [
        "# this node must be able to start a sandbox; if not, the task fails with the reason in its log",
        f"{shlex.quote(sys.executable)} -c 'from autograder.sandbox import check_sandbox; check_sandbox()'"]
    return "\n".join([
        "#!/bin/bash",
        f"# dlgrade: grade {plan.assignment}, one submission per array task (written by autograder/slurm.py).",
        "# Task i grades students[i]; to redo some by hand: sbatch --array=3,7 grade.sbatch",
        *(f"#SBATCH {shlex.quote(d)}" for d in directives),
        "set -euo pipefail",
        f"students=({students})",
        'student="${students[$SLURM_ARRAY_TASK_ID]}"',
        'echo "dlgrade: task $SLURM_ARRAY_TASK_ID grades $student on $(hostname)"',
        *check,
        f"exec {shlex.join(worker)} --student \"$student\" --output {shlex.quote(str(directory))}/\"$student.json\"",
        ""])


def _follow(batch: Batch, waiting: set[int], *, settings: SlurmSettings, on_done: OnDone) -> None:
    """Poll until every task in `waiting` has ended and been reported; removes each index once reported."""
    max_score = batch.tasks[0].plan.max_score
    ended_at: dict[int, float] = {}
    queue_failing_since: float | None = None
    while waiting:
        time.sleep(settings.poll_seconds)
        active = _active_tasks(batch.job_id)
        if active is None:
            queue_failing_since = queue_failing_since or time.monotonic()
            if time.monotonic() - queue_failing_since > QUEUE_OUTAGE_SECONDS:
                raise DlgradeError(f"squeue has not answered for {QUEUE_OUTAGE_SECONDS} s; cancelling job "
                                   f"{batch.job_id}. Grade again later: finished submissions are kept")
            continue
        queue_failing_since = None
        ended = sorted(waiting - active)
        ends = _final_states(batch.job_id, ended) if ended else {}
        for index in ended:
            end = ends.get(index, TaskEnd("UNKNOWN", "?"))
            ended_at.setdefault(index, time.monotonic())
            result = _result_of(batch, index, end, max_score=max_score,
                                may_still_appear=time.monotonic() - ended_at[index] < LATE_FILE_SECONDS)
            if result is not None:
                waiting.discard(index)
                on_done(result)


def _result_of(batch: Batch, index: int, end: TaskEnd, *, max_score: float,
               may_still_appear: bool) -> SubmissionResult | None:
    """The task's own result, or an error result saying how the task ended; None: wait for its file a little."""
    task, path = batch.tasks[index], batch.output(index)
    try:
        result = SubmissionResult.from_json(path.read_text())
    except FileNotFoundError:
        result = None
    except (ValueError, TypeError, KeyError) as exc:  # a task killed while writing is handled by write()'s rename
        return _error(batch, index, end, max_score, f"left an unreadable result file {path} ({exc})")
    if result is not None and (result.student, result.assignment) == (task.student, task.plan.assignment):
        return result
    if result is not None:
        return _error(batch, index, end, max_score, f"wrote the result of {result.student}/{result.assignment}")
    if end.state in ("COMPLETED", "UNKNOWN") and may_still_appear:
        return None  # the worker may have written it; a shared file system can show it here a little later
    return _error(batch, index, end, max_score, "left no result")


def _error(batch: Batch, index: int, end: TaskEnd, max_score: float, what: str) -> SubmissionResult:
    task = batch.tasks[index]
    how = "ended (Slurm no longer says how)" if end.state == "UNKNOWN" else f"ended {end.state}"
    return SubmissionResult(
        student=task.student, assignment=task.plan.assignment, score=0.0, max_score=max_score, status="error",
        reason=f"grading failed on our side: the Slurm task {batch.task_id(index)} that graded this submission "
               f"{how} and {what} (exit code {end.exit_code}; log: {batch.log(index)}); "
               f"`dlgrade grade {task.plan.assignment} --student {task.student} --force` grades it again",
        failed_on_our_side=True)


# ------------------------------------------------------------------------------------------- asking Slurm


def _active_tasks(job_id: str) -> set[int] | None:
    """Indices of the array's tasks still queued or running; None when squeue could not answer this time."""
    try:
        listed = subprocess.run(["squeue", "--jobs", job_id, "--array", "--noheader", "--format=%K %T"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        # once the whole array has ended and been purged, the job id is unknown: nothing is active
        return set() if "Invalid job id" in listed.stderr else None
    active = set()
    for line in listed.stdout.splitlines():
        index, _, _state = line.strip().partition(" ")
        if index.isdigit():
            active.add(int(index))
    return active


def _final_states(job_id: str, indices: list[int]) -> dict[int, TaskEnd]:
    """How the given finished tasks ended: scontrol while the controller remembers them, else sacct."""
    ends = _scontrol_states(job_id)
    missing = [i for i in indices if i not in ends]
    if missing:
        ends.update(_sacct_states(job_id))
    return ends


_FIELD = re.compile(r"\b(ArrayTaskId|JobState|ExitCode)=(\S+)")


def _scontrol_states(job_id: str) -> dict[int, TaskEnd]:
    try:
        shown = subprocess.run(["scontrol", "--oneliner", "show", "job", job_id], capture_output=True, text=True,
                               timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    ends = {}
    for line in shown.stdout.splitlines():
        fields = dict(_FIELD.findall(line))
        if "ArrayTaskId" in fields and "JobState" in fields:
            for index in _task_indices(fields["ArrayTaskId"]):
                ends[index] = TaskEnd(fields["JobState"], fields.get("ExitCode", "?"))
    return ends


def _task_indices(spec: str) -> list[int]:
    """Array task ids as scontrol writes them for tasks that share a record: "4", "2-5", "2-3,5", "0-9%2"."""
    indices = []
    for part in spec.split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            indices.extend(range(int(first), int(last or first) + 1))
    return indices


def _sacct_states(job_id: str) -> dict[int, TaskEnd]:
    try:
        listed = subprocess.run(["sacct", "--jobs", job_id, "--array", "--noheader", "--parsable2",
                                 "--format=JobID,State,ExitCode"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    ends = {}
    for line in listed.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or "." in parts[0]:  # job steps ("1234_5.batch") repeat their task's state
            continue
        _, _, index = parts[0].partition("_")
        if index.isdigit():
            ends[int(index)] = TaskEnd(parts[1].split()[0] if parts[1] else "UNKNOWN", parts[2])  # "CANCELLED by 0"
    return ends
