"""Grading, one submission at a time, as an explicit list of small steps; batches and validation on top.

    read_notebook -> restore_locked_cells -> provide_checkpoint -> execute_in_sandbox -> probe_definitions
    -> run_hidden_graders -> summarize
    then, in the batch's own thread: record (gradebook) and write results.json

Student code runs only in sandboxes: the notebook in `execute_in_sandbox`, and, where the assignment declares a
probe, its graded definitions again in a fresh one (`probe_definitions`); everything else reads files. A local
batch keeps a `WarmPool` per worker slot (the next sandbox started ahead, one long-lived grader process); a
submission graded on its own (a Slurm task, `validate`) starts both cold. Either way the steps and the grades
are the same.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from autograder import gradebook, notebooks
from autograder.course import AssignmentConfig, Course, copy_course
from autograder.errors import GradingFailed, SubmissionRejected, ValidationFailed
from autograder.execution import Execution, execute_notebook, kernel_env, sandbox_mounts
from autograder.executors import Executor, LocalExecutor, Task
from autograder.graders import run_graders
from autograder.probe import probe_seed, run_probe, write_for_graders
from autograder.results import BatchReport, CheckResult, SubmissionResult
from autograder.sandbox import Mount
from autograder.text import plain_text
from autograder.warm import WarmPool

RESULTS_FILE = "results.json"
LOG_FILE = "dlgrade.log"
CHECKPOINT_MOUNT = "/opt/dlgrade/checkpoint"  # where the sandbox sees the course's checkpoint


@dataclass
class Job:
    """The work on one submission as it moves through the steps."""

    course: Course
    config: AssignmentConfig
    student: str
    submission_dir: Path
    output_dir: Path  # autograded/<student>/<assignment>/
    isolated: bool = True
    slot: int = 0
    notebook: nbformat.NotebookNode | None = None
    notes: list[str] = field(default_factory=list)
    manual_answers: dict[str, bool] = field(default_factory=dict)  # hand-graded cell -> answered
    mounts: list[Mount] = field(default_factory=list)  # read-only resources for the sandbox (a checkpoint)
    kernel_env: dict[str, str] = field(default_factory=dict)
    grader_env: dict[str, str] = field(default_factory=dict)
    pool: WarmPool | None = None  # the batch's warm sandboxes and grader processes
    execution: Execution | None = None
    checks: list[CheckResult] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def read_notebook(job: Job) -> None:
    job.notebook = notebooks.read_submission(job.submission_dir / job.config.notebook_name)


def restore_locked_cells(job: Job) -> None:
    restored = notebooks.restore_cells(job.notebook, course=job.course, assignment=job.config.name,
                                       notebook_name=job.config.notebook_name, student=job.student)
    job.notebook = restored.notebook
    job.notes.extend(restored.notes)
    job.manual_answers = notebooks.manual_answers(job.notebook)


@dataclass(frozen=True)
class Resources:
    """What the sandbox mounts read-only beyond the Python installation, and the variables that point at it."""

    mounts: tuple[Mount, ...] = ()
    kernel_env: dict[str, str] = field(default_factory=dict)
    grader_env: dict[str, str] = field(default_factory=dict)


def resources_for(course: Course, config: AssignmentConfig, *, isolated: bool) -> Resources:
    """The course's model checkpoint, read-only, for assignments that declare `checkpoint = true`."""
    if not config.checkpoint:
        return Resources()
    from autograder.checkpoints import resolve

    checkpoint = resolve(course.settings_dir)
    inside = CHECKPOINT_MOUNT if isolated else str(checkpoint.path)
    return Resources(mounts=(Mount(checkpoint.path, Path(CHECKPOINT_MOUNT)),),
                     kernel_env={"DLGRADE_CHECKPOINT": inside, "DLGRADE_CHECKPOINT_PROFILE": checkpoint.profile},
                     grader_env={"DLGRADE_CHECKPOINT": str(checkpoint.path),
                                 "DLGRADE_CHECKPOINT_PROFILE": checkpoint.profile})


def provide_checkpoint(job: Job) -> None:
    """The course's checkpoint for the sandbox and the graders, where the assignment declares one."""
    resources = resources_for(job.course, job.config, isolated=job.isolated)
    job.mounts.extend(resources.mounts)
    job.kernel_env.update(resources.kernel_env)
    job.grader_env.update(resources.grader_env)


def execute_in_sandbox(job: Job) -> None:
    warm = job.pool.kernel(job.slot) if job.pool else None
    job.execution = execute_notebook(job.notebook, config=job.config,
                                     release_dir=job.course.releases / job.config.name,
                                     artifacts_dir=job.output_dir / "artifacts", isolated=job.isolated, slot=job.slot,
                                     resources=job.mounts, env=job.kernel_env, kernel=warm)
    if job.pool:  # this slot's sandbox has ended: warm the next one while the graders run
        try:
            job.pool.prestart(job.slot)
        except Exception:  # the next submission then starts cold; this one is not concerned
            job.log.append("--- could not warm the next sandbox\n" + traceback.format_exc())
    kept = notebooks.with_outputs(job.notebook, job.execution.executed)  # never the sandbox's file as it lies
    nbformat.write(kept, job.output_dir / job.config.notebook_name)
    if job.execution.executed is not None:
        job.execution = replace(job.execution, executed=kept)
    run = job.execution.run
    job.log.append(f"sandbox ({'warm' if warm else 'cold'} start): exit {run.returncode}, {run.wall_seconds:.1f} s, "
                   f"peak {run.peak_memory_bytes / 2**20:.0f} MiB\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}")


def probe_definitions(job: Job) -> None:
    """Where the assignment declares a probe: the graded definitions called in a fresh sandbox, on inputs drawn
    here for this submission; the validated arrays and the seed go to the artifacts for the graders."""
    if job.config.probe is None:
        return
    seed = probe_seed(job.course.settings_dir, job.config.name, job.student)
    outcome = run_probe(config=job.config, graders_dir=job.course.graders(job.config.name), notebook=job.notebook,
                        artifacts=job.execution.artifacts, seed=seed, slot=job.slot, isolated=job.isolated,
                        mounts=sandbox_mounts(job.config, job.mounts, engine=False),
                        env={**kernel_env(job.config), **job.kernel_env})
    write_for_graders(outcome, job.output_dir / "artifacts")
    run = outcome.run
    job.log.append(f"probe sandbox: exit {run.returncode}, {run.wall_seconds:.1f} s, peak "
                   f"{run.peak_memory_bytes / 2**20:.0f} MiB; {'; '.join(outcome.problems) or 'arrays validated'}"
                   f"\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}")


def run_hidden_graders(job: Job) -> None:
    where = dict(graders_dir=job.course.graders(job.config.name), artifacts_dir=job.output_dir / "artifacts",
                 timeout=job.config.grader_seconds, env=job.grader_env)
    if job.pool:
        checks, log = job.pool.grader(job.slot).run(**where)
    else:  # sandboxed like the pool's: the mounted resources at their host paths, the artifact limit for archives
        from autograder.execution import gpu_mounts

        checks, log = run_graders(**where, preload=job.config.preload, memory_bytes=job.config.grader_memory_bytes,
                                  slot=job.slot, isolated=job.isolated, read_only=[m.source for m in job.mounts],
                                  devices=gpu_mounts(job.config), artifact_bytes=job.config.limits.max_file_bytes)
    job.checks = checks
    job.log.append(f"--- graders\n{log}")


STEPS: tuple[Callable[[Job], None], ...] = (read_notebook, restore_locked_cells, provide_checkpoint,
                                            execute_in_sandbox, probe_definitions, run_hidden_graders)


def summarize(job: Job, *, max_score: float) -> SubmissionResult:
    """Status and reason from what happened: the graders' checks decide the score, nothing else."""
    execution = job.execution
    reasons: list[str] = []
    status = "graded"
    if execution.run.stopped == "timeout":
        status = "timeout"
        reasons.append(f"the notebook was {execution.run.reason}")
    elif execution.run.stopped in ("memory", "disk", "tasks"):
        status = "error"
        reasons.append(f"the notebook was {execution.run.reason}")
    elif execution.executed is None:
        status = "error"
        reasons.append("the notebook could not be executed (the kernel did not start or was killed)")
    elif execution.run.returncode == 3:
        status = "error"
        reasons.append("the kernel died while running the notebook (did it call exit() or crash?)")
    elif execution.run.returncode != 0:
        status = "error"
        reasons.append(f"the notebook stopped the process that runs it (exit code {execution.run.returncode}); "
                       "the cells after that did not run")
    if execution.executed is not None:
        errors = notebooks.cell_errors(execution.executed)
        if errors:
            reasons.append("errors while running: " + "; ".join(errors[:3]) + (" ..." if len(errors) > 3 else ""))
    refused = execution.refused_artifacts
    absent = [name for name in execution.missing_artifacts if name not in refused]
    if absent:
        reasons.append("missing output file(s): " + ", ".join(absent))
    reasons.extend(f"{name} was not collected: {why}" for name, why in refused.items())
    if not job.checks:
        status = "error" if status == "graded" else status
        reasons.append("the hidden checks could not run; your instructor has the log")
    score = round(sum(check.score for check in job.checks), 3)
    return SubmissionResult(student=job.student, assignment=job.config.name, score=score, max_score=max_score,
                            status=status, reason="; ".join(reasons), tests=tuple(job.checks),
                            execution_seconds=round(execution.run.wall_seconds, 2), notes=tuple(job.notes),
                            unanswered=tuple(cell for cell, answered in job.manual_answers.items() if not answered),
                            needs_manual_grade=any(job.manual_answers.values()))


def autograded_points(course: Course, assignment: str, notebook_name: str) -> dict[str, float]:
    """Points of each autograded grade cell (a test cell, not a hand-graded answer) in the source notebook."""
    source = nbformat.read(course.solutions / assignment / notebook_name, as_version=4)
    points = {}
    for cell in source.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            points[meta["grade_id"]] = float(meta.get("points", 0))
    return points


def grade_submission(job: Job) -> SubmissionResult:
    """Run the steps for one submission; a rejected submission scores 0 with the reason."""
    start = time.monotonic()
    max_score = 0.0
    try:
        max_score = sum(autograded_points(job.course, job.config.name, job.config.notebook_name).values())
        shutil.rmtree(job.output_dir, ignore_errors=True)
        job.output_dir.mkdir(parents=True)
        for step in STEPS:
            step(job)
        result = summarize(job, max_score=max_score)
    except SubmissionRejected as exc:
        result = SubmissionResult(student=job.student, assignment=job.config.name, score=0.0, max_score=max_score,
                                  status="rejected", reason=str(exc), notes=tuple(job.notes))
    except Exception:  # a fault of ours must not cost the student a grade or stop the batch: say so, keep going
        job.log.append("--- internal error\n" + traceback.format_exc())
        result = SubmissionResult(student=job.student, assignment=job.config.name, score=0.0, max_score=max_score,
                                  status="error", reason="grading failed on our side; your instructor has the log "
                                  f"({job.output_dir / LOG_FILE})", notes=tuple(job.notes), failed_on_our_side=True)
    (job.output_dir / LOG_FILE).write_text(plain_text("\n".join(job.log)))  # the sandboxes' output is the student's
    return replace(result, grading_seconds=round(time.monotonic() - start, 2))


def check_points_match(result: SubmissionResult, points: dict[str, float]) -> None:
    """The hidden checks of each cell must add up to that cell's points, or the gradebook would disagree."""
    if not result.tests:
        return
    per_cell: dict[str, float] = {}
    for check in result.tests:
        per_cell[check.cell] = per_cell.get(check.cell, 0.0) + check.max_score
    if per_cell != points:
        raise ValidationFailed(f"{result.assignment}: hidden checks carry {per_cell} points per cell, but the "
                               f"notebook's grade cells have {points}")


def already_graded(course: Course, assignment: str, student: str) -> bool:
    return (course.autograded / student / assignment / RESULTS_FILE).exists()


def default_jobs(config: AssignmentConfig) -> int:
    """Parallel sandboxes this machine holds: one per CPU core, as far as memory allows each its limit."""
    import os

    import psutil

    by_memory = psutil.virtual_memory().available // max(config.limits.memory_bytes, 1)
    by_cores = (os.cpu_count() or 1) // max(config.cpu_threads, 1)
    return int(max(1, min(by_cores, by_memory)))


def task_config(course: Course, task: Task) -> AssignmentConfig:
    """The assignment's config with the task's overrides (a batch's --time-limit)."""
    config = course.config(task.assignment)
    if task.time_limit is not None:
        config = replace(config, limits=replace(config.limits, wall_seconds=float(task.time_limit)))
    return config


def grade_one(task: Task, slot: int = 0, pool: WarmPool | None = None) -> SubmissionResult:
    """Grade one submission (the steps above), in this process; what a local slot or a Slurm task runs.

    `pool` is the batch's warm pool, built for the same task settings (`warm_pool`); without one, all starts cold.
    """
    course = Course(task.course_root, settings_root=task.settings_root)
    if pool:
        pool.begin()
    return grade_submission(Job(course=course, config=task_config(course, task), student=task.student,
                                submission_dir=course.submitted / task.student / task.assignment,
                                output_dir=course.autograded / task.student / task.assignment,
                                isolated=task.isolated, slot=slot, pool=pool))


def warm_pool(course: Course, task: Task, total: int) -> WarmPool:
    """A warm pool for a local batch of `total` tasks that share `task`'s assignment and settings."""
    config = task_config(course, task)
    resources = resources_for(course, config, isolated=task.isolated)
    return WarmPool(config=config, release_dir=course.releases / config.name, isolated=task.isolated, total=total,
                    resources=resources.mounts, env=resources.kernel_env, graders_dir=course.graders(config.name))


def grade(*, course: Course, assignment: str, students: tuple[str, ...] = (), jobs: int = 1, force: bool = False,
          isolated: bool = True, time_limit: float | None = None, executor: Executor | None = None,
          on_result: Callable[[SubmissionResult], None] | None = None,
          on_start: Callable[[list[str]], None] | None = None) -> BatchReport:
    """Grade the submissions of `assignment` (all, or `students`); skip graded ones unless `force`.

    `executor` decides where (default: `LocalExecutor(jobs)`, `jobs` submissions at once on this machine; 0 means
    as many as it holds, see `default_jobs`). `time_limit` overrides the assignment's wall-time limit (seconds).
    `on_start` gets the students about to be graded, `on_result` each result once it is recorded.
    """
    start = time.monotonic()
    config = course.config(assignment)
    executor = executor or LocalExecutor(jobs or default_jobs(config))
    if isolated and isinstance(executor, LocalExecutor):  # a remote executor's workers check on their nodes
        from autograder.sandbox import check_sandbox

        check_sandbox()
    notebooks.ensure_in_gradebook(course, assignment)
    chosen = list(students) or course.students(assignment)
    for student in chosen:
        if not (course.submitted / student / assignment).is_dir():
            raise SubmissionRejected(f"no submission of {student} for {assignment} in {course.submitted}")
    skipped = tuple(s for s in chosen if not force and already_graded(course, assignment, s))
    todo = [s for s in chosen if s not in skipped]
    if on_start:
        on_start(todo)
    points = autograded_points(course, assignment, config.notebook_name)
    results = []

    unrecorded: list[str] = []
    mismatch: list[ValidationFailed] = []

    def record(result: SubmissionResult) -> None:
        """In this thread only: the gradebook first, then results.json (which marks the submission done).

        A result that cannot be recorded gets no results.json, so the next run grades it again; the batch goes on.
        """
        try:
            check_points_match(result, points)
            gradebook.record(course, result)
        except ValidationFailed as exc:  # the graders disagree with the notebook: no result of this batch is sound
            mismatch.append(exc)
            return
        except Exception as exc:  # the rest of the batch must still be recorded
            unrecorded.append(f"{result.student}: {exc}")
            return
        result.write(course.autograded / result.student / assignment / RESULTS_FILE)
        results.append(result)
        if on_result:
            on_result(result)

    tasks = [Task(course_root=course.root, assignment=assignment, student=student, isolated=isolated,
                  time_limit=time_limit, settings_root=course.settings_root) for student in todo]
    pool = warm_pool(course, tasks[0], len(tasks)) if tasks and isinstance(executor, LocalExecutor) else None
    try:
        executor.run(tasks, grade_one=functools.partial(grade_one, pool=pool), on_done=record)
    finally:
        if pool:
            pool.close()
    if mismatch:
        raise mismatch[0]
    if unrecorded:
        raise GradingFailed(f"{len(unrecorded)} result(s) could not be recorded (run again to grade them): "
                            + "; ".join(unrecorded))
    results.sort(key=lambda r: r.student)
    return BatchReport(assignment=assignment, results=tuple(results), skipped=skipped,
                       seconds=round(time.monotonic() - start, 2))


def validate(*, course: Course, assignment: str, isolated: bool = True) -> tuple[SubmissionResult, SubmissionResult]:
    """Grade the reference solution and the blank release in a throw-away copy of the course.

    Raises ValidationFailed unless the reference earns full marks and the blank release earns zero.
    """
    config = course.config(assignment)
    with tempfile.TemporaryDirectory(prefix="dlgrade-validate-") as tmp:
        scratch_course = copy_course(course, Path(tmp), (assignment,))
        notebooks.generate_release(scratch_course, assignment)
        for student, source in (("reference", scratch_course.solutions), ("blank", scratch_course.releases)):
            target = scratch_course.submitted / student / assignment
            target.mkdir(parents=True)
            shutil.copy2(source / assignment / config.notebook_name, target / config.notebook_name)
        report = grade(course=scratch_course, assignment=assignment, jobs=1, isolated=isolated)
    by_student = {r.student: r for r in report.results}
    reference, blank = by_student["reference"], by_student["blank"]
    problems = []
    if reference.score != reference.max_score:
        failed = [f"{c.name}: {c.output}" for c in reference.tests if c.score < c.max_score]
        problems.append(f"the reference solution earned {reference.score}/{reference.max_score} "
                        f"({reference.status}; {reference.reason}; {failed})")
    if blank.score != 0:
        passed = [c.name for c in blank.tests if c.score > 0]
        problems.append(f"the blank release earned {blank.score} points (checks passed: {passed})")
    if problems:
        raise ValidationFailed(f"{assignment}: " + "; ".join(problems))
    return reference, blank


def load_results(course: Course, assignment: str) -> list[SubmissionResult]:
    """Every results.json written for `assignment`, sorted by student."""
    found = []
    for path in sorted(course.autograded.glob(f"*/{assignment}/{RESULTS_FILE}")):
        try:
            found.append(SubmissionResult.from_json(path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:  # never an export that silently lacks a student
            raise GradingFailed(f"{path} is not a dlgrade result ({type(exc).__name__}: {exc}); grade it again with "
                                f"`dlgrade grade {assignment} --student {path.parts[-3]} --force`") from exc
    return found
