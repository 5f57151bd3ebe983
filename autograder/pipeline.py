"""Grading, one submission at a time, as an explicit list of small steps that take and return values; batches
and validation on top.

    plan_batch (once per batch: config, points, resources)
    read_notebook -> restore_locked_cells -> execute_in_sandbox -> probe_definitions -> run_hidden_graders
    -> summarize, then, in the batch's own thread, a Recorder: the gradebook, then results.json

Student code runs only in sandboxes: the notebook in `execute_in_sandbox`, and, where the assignment declares a
probe, its graded definitions again in a fresh one (`probe_definitions`); everything else reads files. A local
batch keeps a `WarmPool` per worker slot (the next sandbox started ahead, one long-lived grader process); a
submission graded on its own (a Slurm task, `validate`) starts both cold. Either way the steps and the grades
are the same.
"""

from __future__ import annotations

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
from autograder.execution import Execution, execute_notebook
from autograder.executors import Executor, LocalExecutor, Task
from autograder.graders import run_graders
from autograder.plan import BatchPlan, autograded_points, plan_batch, sandbox_settings
from autograder.probe import probe_seed, run_probe, write_for_graders
from autograder.results import RESULTS_FILE, BatchReport, CheckResult, SubmissionResult, load_results
from autograder.text import plain_text
from autograder.warm import WarmPool

LOG_FILE = "dlgrade.log"
__all__ = ["autograded_points", "grade", "grade_one", "grade_submission", "load_results", "plan_batch", "validate"]


@dataclass(frozen=True)
class Restored:
    """The submission with its locked cells restored from the gradebook, and what that found."""

    notebook: nbformat.NotebookNode
    notes: tuple[str, ...]  # what was restored, for the student
    manual_answers: dict[str, bool]  # hand-graded cell -> answered


def read_notebook(plan: BatchPlan, student: str) -> nbformat.NotebookNode:
    """The submitted notebook, parsed as hostile data (SubmissionRejected with a reason when it cannot be)."""
    return notebooks.read_submission(plan.submission_dir(student) / plan.config.notebook_name)


def restore_locked_cells(plan: BatchPlan, student: str, notebook: nbformat.NotebookNode) -> Restored:
    restored = notebooks.restore_cells(notebook, course=plan.course, assignment=plan.assignment,
                                       notebook_name=plan.config.notebook_name, student=student)
    return Restored(notebook=restored.notebook, notes=tuple(restored.notes),
                    manual_answers=notebooks.manual_answers(restored.notebook))


def execute_in_sandbox(plan: BatchPlan, notebook: nbformat.NotebookNode, *, output_dir: Path, slot: int,
                       pool: WarmPool | None, log: list[str]) -> Execution:
    """The notebook run in its sandbox (the pool's warm one, else a cold one); its artifacts copied out, the
    executed notebook kept beside them."""
    settings = sandbox_settings(plan)
    warm = pool.kernel(slot) if pool else None
    execution = execute_notebook(notebook, config=plan.config, release_dir=plan.course.releases / plan.assignment,
                                 artifacts_dir=output_dir / "artifacts", mounts=settings.kernel_mounts,
                                 env=settings.kernel_env, isolated=plan.isolated, slot=slot, kernel=warm)
    if pool:  # this slot's sandbox has ended: warm the next one while the graders run
        try:
            pool.prestart(slot)
        except Exception:  # the next submission then starts cold; this one is not concerned
            log.append("--- could not warm the next sandbox\n" + traceback.format_exc())
    kept = notebooks.with_outputs(notebook, execution.executed)  # never the sandbox's file as it lies
    nbformat.write(kept, output_dir / plan.config.notebook_name)
    if execution.executed is not None:
        execution = replace(execution, executed=kept)
    run = execution.run
    log.append(f"sandbox ({'warm' if warm else 'cold'} start): exit {run.returncode}, {run.wall_seconds:.1f} s, "
               f"peak {run.peak_memory_bytes / 2**20:.0f} MiB\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}")
    return execution


def probe_definitions(plan: BatchPlan, student: str, notebook: nbformat.NotebookNode, execution: Execution, *,
                      output_dir: Path, slot: int, pool: WarmPool | None, log: list[str]) -> None:
    """Where the assignment declares a probe: the graded definitions called in a fresh sandbox (the pool's warm
    one, else a cold one), on inputs drawn here for this submission; the validated arrays and the seed go to the
    artifacts for the graders."""
    if plan.config.probe is None:
        return
    settings = sandbox_settings(plan)
    seed = probe_seed(plan.course.settings_dir, plan.assignment, student)
    warm = pool.probe(slot) if pool else None
    outcome = run_probe(config=plan.config, graders_dir=plan.course.graders(plan.assignment), notebook=notebook,
                        artifacts=execution.artifacts, seed=seed, slot=slot, isolated=plan.isolated,
                        mounts=settings.kernel_mounts, env=settings.kernel_env, sandboxed=warm)
    if pool:  # warm the slot's next probe while these graders and the next notebook run
        try:
            pool.prestart_probe(slot)
        except Exception:  # the next probe then starts cold; this submission is not concerned
            log.append("--- could not warm the next probe sandbox\n" + traceback.format_exc())
    write_for_graders(outcome, output_dir / "artifacts")
    run = outcome.run
    log.append(f"probe sandbox ({'warm' if warm else 'cold'} start): exit {run.returncode}, {run.wall_seconds:.1f} s, "
               f"peak {run.peak_memory_bytes / 2**20:.0f} MiB; {'; '.join(outcome.problems) or 'arrays validated'}"
               f"\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}")


def run_hidden_graders(plan: BatchPlan, *, output_dir: Path, slot: int, pool: WarmPool | None,
                       log: list[str]) -> tuple[CheckResult, ...]:
    """The hidden pytest graders over the artifacts, in the pool's grader process or a cold one (sandboxed alike)."""
    settings = sandbox_settings(plan)
    where = dict(graders_dir=plan.course.graders(plan.assignment), artifacts_dir=output_dir / "artifacts",
                 timeout=plan.config.grader_seconds, env=settings.grader_env)
    if pool:
        checks, graders_log = pool.grader(slot).run(**where)
    else:
        checks, graders_log = run_graders(**where, preload=plan.config.preload_modules,
                                          backend=plan.config.backend,
                                          memory_bytes=plan.config.grader_memory_bytes, slot=slot,
                                          isolated=plan.isolated, read_only=settings.grader_read_only,
                                          devices=settings.devices, artifact_bytes=plan.config.limits.max_file_bytes)
    log.append(f"--- graders\n{graders_log}")
    return tuple(checks)


def summarize(plan: BatchPlan, student: str, restored: Restored, execution: Execution,
              checks: tuple[CheckResult, ...]) -> SubmissionResult:
    """Status and reason from what happened: the graders' checks decide the score, nothing else."""
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
    if not checks:
        status = "error" if status == "graded" else status
        reasons.append("the hidden checks could not run; your instructor has the log")
    score = round(sum(check.score for check in checks), 3)
    answers = restored.manual_answers
    return SubmissionResult(student=student, assignment=plan.assignment, score=score, max_score=plan.max_score,
                            status=status, reason="; ".join(reasons), tests=checks,
                            execution_seconds=round(execution.run.wall_seconds, 2), notes=restored.notes,
                            unanswered=tuple(cell for cell, answered in answers.items() if not answered),
                            needs_manual_grade=any(answers.values()))


def grade_submission(plan: BatchPlan, student: str, *, slot: int = 0, pool: WarmPool | None = None
                     ) -> SubmissionResult:
    """The steps above for one submission; a rejected submission scores 0 with the reason, a fault of ours is
    an error result that says so (the batch goes on). The log goes to autograded/<student>/<a>/dlgrade.log."""
    start = time.monotonic()
    output_dir, log = plan.output_dir(student), []
    notes: tuple[str, ...] = ()
    try:
        shutil.rmtree(output_dir, ignore_errors=True)
        output_dir.mkdir(parents=True)
        notebook = read_notebook(plan, student)
        restored = restore_locked_cells(plan, student, notebook)
        notes = restored.notes
        execution = execute_in_sandbox(plan, restored.notebook, output_dir=output_dir, slot=slot, pool=pool, log=log)
        probe_definitions(plan, student, restored.notebook, execution, output_dir=output_dir, slot=slot, pool=pool,
                          log=log)
        checks = run_hidden_graders(plan, output_dir=output_dir, slot=slot, pool=pool, log=log)
        result = summarize(plan, student, restored, execution, checks)
    except SubmissionRejected as exc:
        result = SubmissionResult(student=student, assignment=plan.assignment, score=0.0, max_score=plan.max_score,
                                  status="rejected", reason=str(exc), notes=notes)
    except Exception:  # a fault of ours must not cost the student a grade or stop the batch: say so, keep going
        log.append("--- internal error\n" + traceback.format_exc())
        result = SubmissionResult(student=student, assignment=plan.assignment, score=0.0, max_score=plan.max_score,
                                  status="error", reason="grading failed on our side; your instructor has the log "
                                  f"({output_dir / LOG_FILE})", notes=notes, failed_on_our_side=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / LOG_FILE).write_text(plain_text("\n".join(log)))  # the sandboxes' output is the student's
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


def grade_one(task: Task, slot: int = 0, pool: WarmPool | None = None) -> SubmissionResult:
    """Grade one submission (the steps above) in this process: what a local slot or a Slurm task runs.

    `pool` is the batch's warm pool, built for the same plan; without one, all starts cold."""
    if pool:
        pool.begin()
    return grade_submission(task.plan, task.student, slot=slot, pool=pool)


@dataclass
class Recorder:
    """Records a batch's results in the caller's thread: the gradebook first, then results.json (which marks the
    submission done). A result that cannot be recorded gets no results.json, so the next run grades it again;
    the batch goes on. Hidden checks whose points disagree with the notebook's grade cells stop the batch."""

    course: Course
    plan: BatchPlan
    on_result: Callable[[SubmissionResult], None] | None = None
    results: list[SubmissionResult] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    mismatch: list[ValidationFailed] = field(default_factory=list)

    def __call__(self, result: SubmissionResult) -> None:
        try:
            check_points_match(result, self.plan.points)
            gradebook.record(self.course, result)
        except ValidationFailed as exc:  # the graders disagree with the notebook: no result of this batch is sound
            self.mismatch.append(exc)
            return
        except Exception as exc:  # the rest of the batch must still be recorded
            self.unrecorded.append(f"{result.student}: {exc}")
            return
        result.write(self.course.autograded / result.student / result.assignment / RESULTS_FILE)
        self.results.append(result)
        if self.on_result:
            self.on_result(result)

    def raise_problems(self) -> None:
        """After the batch: what could not be recorded, as the error the CLI reports."""
        if self.mismatch:
            raise self.mismatch[0]
        if self.unrecorded:
            raise GradingFailed(f"{len(self.unrecorded)} result(s) could not be recorded (run again to grade them): "
                                + "; ".join(self.unrecorded))


def grade(*, course: Course, assignment: str, students: tuple[str, ...] = (), jobs: int = 0, force: bool = False,
          isolated: bool = True, time_limit: float | None = None, executor: Executor | None = None,
          on_result: Callable[[SubmissionResult], None] | None = None,
          on_start: Callable[[list[str]], None] | None = None, plan: BatchPlan | None = None) -> BatchReport:
    """Grade the submissions of `assignment` (all, or `students`); skip graded ones unless `force`.

    `executor` decides where (default: `LocalExecutor(jobs)`, `jobs` submissions at once on this machine; 0, the
    default, means as many as it holds, see `default_jobs`). `time_limit` overrides the assignment's wall-time
    limit (seconds). `on_start` gets the students about to be graded, `on_result` each result once it is recorded.
    `plan` is the batch's plan when the caller made it already (else `plan_batch` makes it here).
    """
    start = time.monotonic()
    plan = plan or plan_batch(course, assignment, isolated=isolated, time_limit=time_limit)
    executor = executor or LocalExecutor(jobs or default_jobs(plan.config))
    if plan.isolated and isinstance(executor, LocalExecutor):  # a remote executor's workers check on their nodes
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
    recorder = Recorder(course=course, plan=plan, on_result=on_result)
    tasks = [Task(plan=plan, student=student) for student in todo]
    pool = WarmPool(plan=plan, total=len(tasks)) if tasks and isinstance(executor, LocalExecutor) else None
    try:
        executor.run(tasks, grade_one=lambda task, slot: grade_one(task, slot, pool), on_done=recorder)
    finally:
        if pool:
            pool.close()
    recorder.raise_problems()
    return BatchReport(assignment=assignment, results=tuple(sorted(recorder.results, key=lambda r: r.student)),
                       skipped=skipped, seconds=round(time.monotonic() - start, 2))


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
