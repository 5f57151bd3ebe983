"""Notebooks through nbgrader's own API: releases, and submissions checked and restored before they run.

Everything a submission contains is untrusted; this module only reads it as data.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import Course
from autograder.errors import ConfigError, SubmissionRejected

MAX_NOTEBOOK_BYTES = 50 * 2**20


def _tools_on_path() -> None:
    """nbgrader runs `alembic` by name when it creates a gradebook: make the environment's tools findable."""
    tools = str(Path(sys.prefix) / "bin")
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def nbgrader_config(course: Course):
    """The course's nbgrader_config.py, with paths made absolute so nothing depends on the working directory."""
    from traitlets.config.loader import PyFileConfigLoader

    _tools_on_path()

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.db_url = course.db_url
    return config


def generate_release(course: Course, assignment: str) -> str:
    """Run nbgrader's generate_assignment (solutions/ -> assignments/, source cells into the gradebook)."""
    from nbgrader.apps.api import NbGraderAPI

    api = NbGraderAPI(config=nbgrader_config(course))
    outcome = api.generate_assignment(assignment, force=True, create=True)
    if not outcome["success"]:
        raise ConfigError(f"nbgrader could not generate {assignment}:\n{outcome.get('log', '')}"
                          f"{outcome.get('error', '')}")
    return outcome.get("log", "")


def ensure_in_gradebook(course: Course, assignment: str) -> None:
    """Grading needs the source cells in the gradebook (to restore locked cells); generate them if absent."""
    from nbgrader.api import Gradebook, MissingEntry

    _tools_on_path()
    with Gradebook(course.db_url) as gradebook:
        try:
            gradebook.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    generate_release(course, assignment)


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Parse a submitted notebook, or reject it with a reason a student can act on."""
    if not path.is_file() or path.is_symlink():
        raise SubmissionRejected(f"no notebook found: expected {path.name} in your submission")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise SubmissionRejected(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB; clear its outputs "
                                 "and submit again")
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmissionRejected(f"{path.name} is not a notebook (not valid JSON: {exc}); submit the .ipynb file "
                                 "saved by JupyterLab") from None
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        found = data.get("nbformat") if isinstance(data, dict) else type(data).__name__
        raise SubmissionRejected(f"{path.name} is in notebook format {found!r}, expected 4; open it in "
                                 "JupyterLab 4 and save it again")
    try:
        notebook = nbformat.reads(raw.decode(), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several unrelated types for malformed files
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SubmissionRejected(f"{path.name} is not a valid notebook: {first_line}") from None
    return notebook


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass(frozen=True)
class Restored:
    """A submission after nbgrader's sanitising steps, with what they changed, in plain words."""

    notebook: nbformat.NotebookNode
    notes: tuple[str, ...]


def restore_cells(notebook: nbformat.NotebookNode, *, course: Course, assignment: str, notebook_name: str,
                  student: str) -> Restored:
    """nbgrader's sanitize steps: clear outputs, restore locked and test cells (and deleted ones) from the
    gradebook's copy of the source, reset kernelspec and point values, then check the cell metadata."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    release = nbformat.read(course.releases / assignment / notebook_name, as_version=4)
    notebook, added = _put_back_deleted_grade_cells(notebook, release)
    log = logging.getLogger(f"dlgrade.restore.{student}")
    log.propagate = False
    collect = _Collect()
    log.addHandler(collect)
    resources = {"nbgrader": {"db_url": course.db_url, "assignment": assignment, "student": student,
                              "notebook": Path(notebook_name).stem}}
    steps = [ClearOutput(log=log), DeduplicateIds(log=log), OverwriteKernelspec(log=log),
             OverwriteCells(log=log, add_missing_cells=True), CheckCellMetadata(log=log)]
    from sqlalchemy.exc import SQLAlchemyError

    try:
        for step in steps:
            notebook, resources = step.preprocess(notebook, resources)
    except SQLAlchemyError:
        raise  # the gradebook failed us: an internal error (pipeline.grade_submission), never a rejection
    except Exception as exc:  # nbgrader raises ValidationError, KeyError or RuntimeError on tampered metadata
        raise SubmissionRejected(
            "the notebook's grading cells were tampered with beyond repair (" + (str(exc).splitlines() or [""])[0]
            + "); download the release again and copy your answers into it") from None
    finally:
        log.removeHandler(collect)
    notes = [f"cell {grade_id} was deleted; it was added back from the release" for grade_id in added]
    return Restored(notebook=notebook, notes=(*notes, *(_plain(m) for m in collect.messages)))


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _put_back_deleted_grade_cells(notebook: nbformat.NotebookNode, release: nbformat.NotebookNode
                                  ) -> tuple[nbformat.NotebookNode, list[str]]:
    """Re-insert deleted grade cells from the release, after the nearest earlier cell the submission still has.

    nbgrader's OverwriteCells(add_missing_cells=True) does this too, but raises KeyError when the cell before the
    deleted one is a locked cell that is neither a grade nor a solution cell (nbgrader 0.9.6); it then finds
    nothing missing and restores sources and metadata as usual.
    """
    present = {_grade_id(cell) for cell in notebook.cells} - {None}
    added = []
    for index, cell in enumerate(release.cells):
        grade_id = _grade_id(cell)
        if not cell.get("metadata", {}).get("nbgrader", {}).get("grade") or grade_id in present:
            continue
        earlier = [_grade_id(c) for c in release.cells[:index] if _grade_id(c) in present]
        position = 0
        if earlier:
            position = next(i for i, c in enumerate(notebook.cells) if _grade_id(c) == earlier[-1]) + 1
        notebook.cells.insert(position, copy.deepcopy(cell))
        present.add(grade_id)
        added.append(grade_id)
    return notebook, added


def _plain(message: str) -> str:
    if message.startswith("Attribute 'checksum'"):
        cell = message.split("cell ")[1].split(" ")[0]
        return f"locked cell {cell} was edited; it was restored from the release"
    if message.startswith("Missing grade cell"):
        return f"cell {message.split('cell ')[1].split(' ')[0]} was deleted; it was added back from the release"
    return message


def cell_errors(executed: nbformat.NotebookNode) -> list[str]:
    """'cell 4 (build_model): NotImplementedError: ...' for each cell whose execution raised."""
    errors = []
    for index, cell in enumerate(executed.get("cells", [])):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") == "error":
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
                label = f"cell {index + 1}" + (f" ({grade_id})" if grade_id else "")
                errors.append(f"{label}: {str(output.get('ename', ''))[:100]}: {str(output.get('evalue', ''))[:300]}")
    return errors


def manual_answers(notebook: nbformat.NotebookNode) -> dict[str, bool]:
    """Hand-graded answer cells (grade and solution) of a restored submission: grade id -> answered at all.

    An answer whose nbgrader checksum still matches the release was left blank; nbgrader scores it 0.
    """
    from nbgrader.utils import determine_grade, is_grade, is_solution

    answers = {}
    for cell in notebook.cells:
        if is_grade(cell) and is_solution(cell):
            auto_score, _ = determine_grade(cell)
            answers[cell.metadata.nbgrader["grade_id"]] = auto_score is None
    return answers


SAFE_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")  # no HTML or JavaScript reaches a grader's browser
MAX_OUTPUT_CHARS = 20_000  # of one stream, one text or one traceback line block
MAX_CELL_OUTPUT_CHARS = 2 * 2**20  # of one cell's outputs together (images included)


def _clip(text, limit: int = MAX_OUTPUT_CHARS) -> str:
    text = "".join(text) if isinstance(text, list) else str(text)
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit} characters cut by dlgrade]"


def _safe_output(output) -> nbformat.NotebookNode | None:
    """A copy of one untrusted output holding only plain text, tracebacks and images; None to drop it."""
    kind = output.get("output_type") if isinstance(output, dict) else None
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_clip(output.get("text", "")))
    if kind == "error":
        traceback = [_clip(line, 2000) for line in list(output.get("traceback", []))[:50]]
        return nbformat.v4.new_output("error", ename=_clip(output.get("ename", ""), 200),
                                      evalue=_clip(output.get("evalue", ""), 2000), traceback=traceback)
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {}) if isinstance(output.get("data"), dict) else {}
        kept = {mime: _clip(data[mime]) for mime in SAFE_MIME_TYPES if mime in data and not mime.startswith("image/")}
        kept.update({mime: data[mime] for mime in SAFE_MIME_TYPES if mime.startswith("image/")  # whole, or not at all
                     and isinstance(data.get(mime), str) and len(data[mime]) <= MAX_CELL_OUTPUT_CHARS})
        if not kept:
            return None
        if kind == "display_data":
            return nbformat.v4.new_output("display_data", data=kept)
        return nbformat.v4.new_output("execute_result", data=kept, execution_count=None)
    return None


def with_outputs(restored: nbformat.NotebookNode, executed: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    """The restored submission with the executed notebook's outputs, made safe: what autograded/ keeps.

    Sources and nbgrader metadata come from `restored` (trusted: restored from the release); from the
    untrusted `executed` (the sandbox wrote it) only the outputs of cells whose type and source are unchanged,
    as plain text, tracebacks and images, cut to size.
    """
    notebook = copy.deepcopy(restored)
    ran = executed.get("cells", []) if executed is not None else []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        other = ran[index] if index < len(ran) and isinstance(ran[index], dict) else {}
        if other.get("cell_type") != "code" or _clip(other.get("source", ""), 10**7) != cell.source:
            continue
        size = 0
        for output in other.get("outputs", []) if isinstance(other.get("outputs"), list) else []:
            safe = _safe_output(output)
            if safe is None:
                continue
            size += len(json.dumps(safe))
            if size > MAX_CELL_OUTPUT_CHARS:
                cell.outputs.append(nbformat.v4.new_output("stream", name="stderr",
                                                           text="[further output cut by dlgrade]\n"))
                break
            cell.outputs.append(safe)
        count = other.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
    return notebook
