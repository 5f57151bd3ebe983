"""Notebooks through nbgrader's own API: releases, and submissions checked and restored before they run.

Everything a submission contains is untrusted; this module only reads it as data. A file that cannot be read
as a notebook is the student's to fix (`SubmissionRejected`, with a reason they can act on), whatever the way it
is broken: nothing in it may raise an error of ours. What it quotes from the submission is plain text.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import Course
from autograder.errors import ConfigError, SubmissionRejected
from autograder.text import plain_text

MAX_NOTEBOOK_BYTES = 50 * 2**20
# Readers after this one recurse (nbformat's NotebookNode, deepcopy, json.dumps) and fail near 450 levels; the
# notebooks JupyterLab writes nest under a dozen (widget state, JSON outputs included).
MAX_JSON_DEPTH = 100
# About one JSON value per line of source or output (110,000 in 6.5 MiB of training logs); bounds the time that
# nbformat takes to read what is left (8 million empty lists: 15 s after json.loads).
MAX_JSON_VALUES = 1_000_000
MAX_CELLS = 2_000
MAX_CELL_SOURCE_CHARS = 2**20


def prepare_gradebook_tools() -> None:
    """nbgrader runs the `alembic` command by name each time it creates a gradebook, to learn the schema's head
    revision (a new Python process: 1 to 4 s here). Make the environment's tools findable, and ask once per
    process: the head is a property of the installed nbgrader, the same for every gradebook."""
    tools = str(Path(sys.prefix) / "bin")
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")
    import nbgrader.api

    if not hasattr(nbgrader.api.get_alembic_version, "cache_info"):  # Gradebook() calls the module's global
        nbgrader.api.get_alembic_version = functools.cache(nbgrader.api.get_alembic_version)


def nbgrader_config(course: Course):
    """The course's nbgrader_config.py, with paths made absolute so nothing depends on the working directory."""
    from traitlets.config.loader import PyFileConfigLoader

    prepare_gradebook_tools()

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

    prepare_gradebook_tools()
    with Gradebook(course.db_url) as gradebook:
        try:
            gradebook.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    generate_release(course, assignment)


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Parse a submitted notebook, or reject it with a reason a student can act on.

    Checked before nbformat or nbgrader see it: UTF-8, JSON (no deeper than `MAX_JSON_DEPTH`, no lone surrogate),
    nbformat 4 by the schema of its minor version, one id per cell, at most `MAX_CELLS` cells of at most
    `MAX_CELL_SOURCE_CHARS` each, nbgrader metadata that is an object.
    """
    if not path.is_file() or path.is_symlink():
        raise SubmissionRejected(f"no notebook found: expected {path.name} in your submission")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise SubmissionRejected(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB; clear its outputs "
                                 "and submit again")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte order mark is harmless; other encodings are not
    except UnicodeDecodeError as exc:
        raise SubmissionRejected(f"{path.name} is not UTF-8 text (byte {raw[exc.start]:#04x} at position {exc.start}"
                                 "); submit the .ipynb file saved by JupyterLab") from None
    try:
        data = json.loads(text)
    except ValueError as exc:  # a JSONDecodeError, or a number of more digits than Python converts
        raise SubmissionRejected(f"{path.name} is not a notebook (not valid JSON: {_short(str(exc), 200)}); submit "
                                 "the .ipynb file saved by JupyterLab") from None
    except RecursionError:  # the C parser stops at Python's recursion limit, cleanly
        problem = _TOO_DEEP
    else:
        problem = _unreadable(data)
    if problem:
        raise SubmissionRejected(f"{path.name} cannot be graded: {problem}") from None
    if not isinstance(data, dict) or type(data.get("nbformat")) is not int or data["nbformat"] != 4:
        found = _shown(data.get("nbformat")) if isinstance(data, dict) else f"JSON {_json_type(data)}"
        raise SubmissionRejected(f"{path.name} is in notebook format {found}, expected 4; open it in "
                                 "JupyterLab 4 and save it again")
    problem = _notebook_problem(data)
    if problem:
        raise SubmissionRejected(f"{path.name} is not a valid notebook: {problem}; open it in JupyterLab and save "
                                 "it again, or download the release and copy your answers into it")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as exc:  # checked above; nbformat raises several unrelated types for what slipped through
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SubmissionRejected(f"{path.name} is not a valid notebook: {_short(first_line, 200)}") from None


_TOO_DEEP = (f"it nests data more than {MAX_JSON_DEPTH} levels deep, which no notebook saved by JupyterLab does; "
             "submit the .ipynb file saved by JupyterLab")


def _unreadable(data) -> str | None:
    """What in parsed JSON would break or stall the readers after us (they recurse, copy and write UTF-8), or None.

    A walk level by level with lists of its own, so that depth costs memory, not Python frames.
    """
    level, depth, values = [data], 1, 0
    while level:
        if depth > MAX_JSON_DEPTH:
            return _TOO_DEEP
        values += len(level)
        if values > MAX_JSON_VALUES:
            return (f"it holds more than {MAX_JSON_VALUES:,} values (large outputs?); clear all outputs (Edit > "
                    "Clear Outputs of All Cells), save it and submit again")
        deeper: list = []
        for node in level:
            if isinstance(node, dict):
                deeper.extend(node.keys())  # one level too deep for keys: harmless, they are strings
                deeper.extend(node.values())
            elif isinstance(node, list):
                deeper.extend(node)
            elif isinstance(node, str) and not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return ("it holds text that is not Unicode (a lone surrogate escape such as \\ud800); submit "
                            "the .ipynb file saved by JupyterLab")
        level, depth = deeper, depth + 1
    return None


def _notebook_problem(data: dict) -> str | None:
    """What makes an nbformat-4 dict unfit to grade, in words naming the cell, or None."""
    minor = data.get("nbformat_minor")
    if type(minor) is not int or minor < 0:
        return f"its nbformat_minor is {_shown(minor)}, expected a whole number such as 5"
    problem = _schema_problem(data, min(minor, nbformat.v4.nbformat_minor))  # a future minor: today's schema
    if problem:
        return problem
    cells = data["cells"]
    if len(cells) > MAX_CELLS:
        return f"it has {len(cells)} cells, at most {MAX_CELLS} can be graded"
    first_with_id: dict[str, int] = {}
    for number, cell in enumerate(cells, start=1):
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if len(source) > MAX_CELL_SOURCE_CHARS:
            return (f"cell {number} holds {len(source):,} characters, at most {MAX_CELL_SOURCE_CHARS:,} per cell "
                    "can be graded (load large data from a file instead)")
        if "nbgrader" in cell["metadata"] and not isinstance(cell["metadata"]["nbgrader"], dict):
            return (f"cell {number}: its nbgrader metadata should be an object, not "
                    f"{_json_type(cell['metadata']['nbgrader'])}")
        if "id" in cell:
            if cell["id"] in first_with_id:
                return (f"cells {first_with_id[cell['id']]} and {number} have the same id {_shown(cell['id'])} "
                        "(cell ids must be unique; copy the content of one of them into a new cell)")
            first_with_id[cell["id"]] = number
    return None


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


_SCHEMA_TYPES = {"object": "an object", "array": "an array", "string": "a string", "integer": "a whole number",
                 "number": "a number", "boolean": "a boolean", "null": "null"}


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value, limit: int = 80) -> str:
    """A value of the submission, quoted in a message: its repr, plain and short."""
    return _short(repr(value), limit)


def _short(text: str, limit: int) -> str:
    """Untrusted text for a message: plain, and cut to `limit` characters."""
    text = plain_text(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _schema_problem(data: dict, minor: int) -> str | None:
    """The first way `data` breaks nbformat's JSON schema for version 4.`minor`, or None.

    fastjsonschema (nbformat's default) decides quickly; jsonschema then finds the words for the student.
    """
    from nbformat.validator import get_validator

    try:
        get_validator(4, minor).validate(data)
        return None
    except Exception:  # fastjsonschema's JsonSchemaException, or whatever the installed validator raises
        pass
    error = next(iter(get_validator(4, minor, name="jsonschema").iter_errors(data)), None)
    if error is None:
        return None
    error = _branch_error(error)
    return f"{_location(error.absolute_path)}: {_schema_message(error)}"


def _branch_error(error):
    """Inside a `oneOf` (a cell is a code, markdown or raw cell; an output a stream, error, ...), the error of the
    branch for the value's own `cell_type` or `output_type`, which names the actual fault."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[int, list] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        own = [errors for errors in branches.values()
               if not any(list(e.relative_path) in (["cell_type"], ["output_type"]) for e in errors)]
        if len(own) != 1:
            break
        error = max(own[0], key=lambda e: len(e.absolute_path))
    return error


def _location(path) -> str:
    """'cell 3, metadata' for ['cells', 2, 'metadata']; "the notebook's metadata" for ['metadata']."""
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "cells" and isinstance(parts[1], int):
        where, parts = f"cell {parts[1] + 1}", parts[2:]
    else:
        where = "the notebook"
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")
    if not field:
        return where
    return _short(f"{where}, {field}" if where != "the notebook" else f"the notebook's {field}", 120)


def _schema_message(error) -> str:
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(_SCHEMA_TYPES.get(name, str(name)) for name in wanted)
        return f"should be {expected}, not {_json_type(error.instance)}"
    if error.validator in ("oneOf", "anyOf"):
        return "is not a cell or output nbformat knows (check its cell_type or output_type)"
    return _short(error.message, 200)

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
            "the notebook's grading cells were tampered with beyond repair ("
            + _short((str(exc).splitlines() or [type(exc).__name__])[0], 200)
            + "); download the release again and copy your answers into it") from None
    finally:
        log.removeHandler(collect)
    notes = [f"cell {grade_id} was deleted; it was added back from the release" for grade_id in added]
    return Restored(notebook=notebook, notes=(*notes, *(_plain(m) for m in collect.messages)))


def _nbgrader(cell) -> dict:
    """A cell's nbgrader metadata; {} where an untrusted cell has none, or something else in its place."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    found = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


def _grade_id(cell) -> str | None:
    grade_id = _nbgrader(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


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
        if not _nbgrader(cell).get("grade") or grade_id in present:
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
    """One of nbgrader's warnings in the student's words; it quotes the submission's grade ids, so made plain."""
    message = _short(message, 500)
    cell = message.split("cell ", 1)[1].split(" ")[0] if "cell " in message else "?"
    if message.startswith("Attribute 'checksum'"):
        return f"locked cell {cell} was edited; it was restored from the release"
    if message.startswith("Missing grade cell"):
        return f"cell {cell} was deleted; it was added back from the release"
    return message


def _cells(notebook) -> list:
    """The cells of an untrusted notebook (the sandbox wrote it): a list, whatever its JSON held."""
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    return cells if isinstance(cells, list) else []


def cell_errors(executed: nbformat.NotebookNode) -> list[str]:
    """'cell 4 (build_model): NotImplementedError: ...' for each cell whose execution raised, as plain text: the
    exception's name and message are the student's to choose, and end up in a terminal."""
    errors = []
    for index, cell in enumerate(_cells(executed)):
        outputs = cell.get("outputs") if isinstance(cell, dict) and cell.get("cell_type") == "code" else None
        for output in outputs if isinstance(outputs, list) else []:
            if isinstance(output, dict) and output.get("output_type") == "error":
                grade_id = _short(_grade_id(cell) or "", 100)
                label = f"cell {index + 1}" + (f" ({grade_id})" if grade_id else "")
                errors.append(f"{label}: {_short(_text(output.get('ename')), 100)}: "
                              f"{_short(_text(output.get('evalue')), 300)}")
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


def _text(value) -> str:
    """A notebook's text field as one string (nbformat allows a string or a list of them). Anything else an
    untrusted notebook put there is no text; str() of it could recurse through a deep list, or be huge."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(item for item in value if isinstance(item, str))
    return ""


def _clip(text, limit: int = MAX_OUTPUT_CHARS) -> str:
    text = _text(text)
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit} characters cut by dlgrade]"


def _safe_output(output) -> nbformat.NotebookNode | None:
    """A copy of one untrusted output holding only plain text, tracebacks and images; None to drop it."""
    kind = output.get("output_type") if isinstance(output, dict) else None
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_clip(output.get("text", "")))
    if kind == "error":
        lines = output.get("traceback")
        traceback = [_clip(line, 2000) for line in (lines[:50] if isinstance(lines, list) else [])]
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
    ran = _cells(executed)
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
