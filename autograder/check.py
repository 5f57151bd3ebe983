"""`dlgrade check NOTEBOOK`: a student runs their notebook the way grading will, with the public checks only.

The notebook runs from a fresh scratch folder holding the release's files, in the bubblewrap sandbox where it
works, else (a laptop without bubblewrap) unsandboxed, as the student, with a note saying so. What is reported
is each autograded cell's public check (the test code the release shows: did it raise?), errors in other cells
and missing output files. The hidden graders (`solutions/<a>/graders`) are never read, so nothing of them can
show; passing the public checks does not promise their points.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import nbformat

from autograder.course import AssignmentConfig, Course
from autograder.errors import ConfigError, SandboxUnavailable

MAX_FOLDER_BYTES = 2 * 2**30  # a notebook's folder is copied into the scratch folder: refuse a home directory
PublicStatus = Literal["passed", "failed", "not run"]


@dataclass(frozen=True)
class PublicCheck:
    """One autograded cell's public check: did its visible test code run without an error?"""

    cell: str  # the nbgrader grade id
    points: float  # what the hidden checks of this cell are worth when graded
    status: PublicStatus
    message: str = ""  # the error the public check raised


@dataclass(frozen=True)
class CheckReport:
    """What `dlgrade check` found; `notes` say how it ran (unsandboxed, without the course's settings)."""

    notebook: str
    assignment: str
    sandboxed: bool
    checks: tuple[PublicCheck, ...]
    other_errors: tuple[str, ...] = ()  # errors in cells that are not public checks (your code)
    missing_files: tuple[str, ...] = ()  # declared output files the notebook did not write
    stopped: str = ""  # why the run was stopped early (time or memory limit), if it was
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Every public check passed, every declared file was written, and nothing stopped the run."""
        return all(c.status == "passed" for c in self.checks) and not self.missing_files and not self.stopped


def _course_of(notebook: Path) -> Course | None:
    from autograder.course import find_course

    try:
        return find_course(notebook.parent)
    except ConfigError:
        return None


def find_config(notebook: Path, course: Course | None = None) -> tuple[AssignmentConfig, Path, list[str]]:
    """(the assignment's grading settings, the folder whose files grading puts beside the notebook, notes).

    The assignment is named after the notebook. Inside the instructor's course (`course`, else found above the
    notebook) the settings come from `solutions/<a>/assignment.toml` and the files from the release; in a
    student's folder (no solutions/ about) the defaults hold and the notebook's own folder provides the files."""
    assignment = notebook.stem
    course = course or _course_of(notebook)
    if course is not None and (course.solutions / assignment / "assignment.toml").is_file():
        config = course.config(assignment)
        release = course.releases / assignment
        return config, release if release.is_dir() else notebook.parent, []
    config = AssignmentConfig(name=assignment, notebook=notebook.name)
    notes = [f"no assignment.toml for {assignment} here: default limits ({config.limits.wall_seconds:.0f} s), "
             "and the output files grading expects are not checked"]
    return config, notebook.parent, notes


def _folder_bytes(folder: Path, limit: int) -> int:
    """Bytes below `folder`, counting stops once over `limit` (the answer is then > limit)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    continue
            if total > limit:
                return total
    return total


def _use_sandbox(requested: bool | None) -> tuple[bool, list[str]]:
    """Whether to sandbox: required (True), refused (False) or, by default, where bubblewrap works."""
    from autograder.sandbox import check_sandbox

    if requested is False:
        return False, ["--no-sandbox: the notebook ran unsandboxed, as you (like running it in Jupyter)"]
    try:
        check_sandbox()
        return True, []
    except SandboxUnavailable as exc:
        if requested:
            raise
        return False, [f"bubblewrap is not available here ({str(exc).split(':')[0]}), so the notebook ran "
                       "UNSANDBOXED, as you, like running it in Jupyter. Grading runs it in the sandbox."]


def public_checks(source: nbformat.NotebookNode, executed: nbformat.NotebookNode | None) -> list[PublicCheck]:
    """Each autograded cell of `source` (a grade cell that is not an answer) and how its code ran."""
    ran = {}
    for cell in executed.cells if executed is not None else []:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            ran[grade_id] = cell
    checks = []
    for cell in source.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        grade_id, points = meta.get("grade_id", ""), float(meta.get("points", 0))
        done = ran.get(grade_id)
        errors = [o for o in done.get("outputs", []) if o.get("output_type") == "error"] if done else []
        if errors:
            name, value = str(errors[0].get("ename", "")), str(errors[0].get("evalue", ""))[:500]
            message = f"{name}: {value}" if value else name
            checks.append(PublicCheck(grade_id, points, "failed", message))
        elif done is None or done.get("execution_count") is None:
            checks.append(PublicCheck(grade_id, points, "not run", "the notebook stopped before this cell"))
        else:
            checks.append(PublicCheck(grade_id, points, "passed"))
    return checks


def check_notebook(path: Path, *, course: Course | None = None, sandbox: bool | None = None,
                   time_limit: float | None = None) -> CheckReport:
    """Run the notebook at `path` as grading would and report its public checks.

    `course`: where the assignment's settings are (default: the course above the notebook, if any). `sandbox`:
    None uses bubblewrap where it works and says so where it does not; True requires it; False runs
    unsandboxed. `time_limit` (seconds) overrides the assignment's limit."""
    from autograder import notebooks
    from autograder.execution import execute_notebook

    path = Path(path).resolve()
    notebook = notebooks.read_submission(path)
    course = course or _course_of(path)
    config, files_dir, notes = find_config(path, course)
    if files_dir == path.parent and _folder_bytes(files_dir, MAX_FOLDER_BYTES) > MAX_FOLDER_BYTES:
        raise ConfigError(f"{files_dir} holds more than {MAX_FOLDER_BYTES // 2**30} GiB, all of which would be "
                          "copied beside the notebook: put the notebook and its data files in a folder of their own")
    isolated, sandbox_notes = _use_sandbox(sandbox)
    limits = config.limits
    if time_limit is not None:
        limits = replace(limits, wall_seconds=float(time_limit))
    if not isolated:
        # Unsandboxed, the task limit (RLIMIT_NPROC) would count every process and thread of the student's own
        # user (a browser alone has hundreds), so keep theirs.
        limits = replace(limits, max_tasks=resource.getrlimit(resource.RLIMIT_NPROC)[1])
    config = replace(config, limits=limits)
    settings = _sandbox_settings(config, course, isolated)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dlgrade-check-") as tmp:
        execution = execute_notebook(notebook, config=config, release_dir=files_dir,
                                     artifacts_dir=Path(tmp) / "artifacts", mounts=settings.kernel_mounts,
                                     env=settings.kernel_env, isolated=isolated)
    executed = execution.executed
    checks = public_checks(notebook, executed)
    checked = {c.cell for c in checks}
    other = [e for e in notebooks.cell_errors(executed) if not any(f"({cell})" in e for cell in checked)] \
        if executed is not None else []
    stopped = execution.run.reason or ""
    if not stopped and executed is None:
        stopped = "the notebook could not be executed (the kernel did not start or was killed)"
    return CheckReport(notebook=path.name, assignment=config.name, sandboxed=isolated, checks=tuple(checks),
                       other_errors=tuple(other), missing_files=execution.missing_artifacts, stopped=stopped,
                       seconds=round(time.monotonic() - start, 1), notes=tuple(sandbox_notes + notes))


def _sandbox_settings(config: AssignmentConfig, course: Course | None, isolated: bool):
    """The sandbox grading would give the notebook: inside a course with the assignment's resources resolved as
    grading resolves them (`plan_batch`); elsewhere none (a release's helpers then find their own defaults)."""
    from autograder.plan import BatchPlan, sandbox_settings

    in_course = course is not None and (course.solutions / config.name / "assignment.toml").is_file()
    resources = course.resources(config) if in_course else None
    plan = BatchPlan(course_root=course.root if course else Path.cwd(), config=config, points={},
                     isolated=isolated, **({"resources": resources} if resources else {}))
    return sandbox_settings(plan)


def format_report(report: CheckReport) -> str:
    """The report as the terminal shows it."""
    marks = {"passed": "passed ", "failed": "FAILED ", "not run": "not run"}
    how = "in the sandbox" if report.sandboxed else "UNSANDBOXED"
    lines = [f"{report.notebook}: ran {how} in {report.seconds:.0f} s"]
    if report.stopped:
        lines.append(f"  the run was {report.stopped}")
    for check in report.checks:
        line = f"  {marks[check.status]}  {check.cell} ({check.points:g} points)"
        lines.append(line + (f": {check.message}" if check.message else ""))
    if report.other_errors:
        lines.append("errors in other cells:")
        lines += [f"  {error}" for error in report.other_errors]
    if report.missing_files:
        lines.append("missing output files (grading needs them): " + ", ".join(report.missing_files))
    passed = sum(c.status == "passed" for c in report.checks)
    lines.append(f"{passed} of {len(report.checks)} public checks pass. Grading runs hidden checks too: passing "
                 "the public ones does not promise their points.")
    return "\n".join(lines)
