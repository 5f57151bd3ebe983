"""Per-student HTML feedback, rendered from `SubmissionResult`s with the jinja2 templates in `templates/`.

Only what the result holds reaches the page: check names, points and the graders' own messages (with what they
compared: a layer table, a measured value and its target), the late penalty, and the student's own artifacts
(training curves drawn from `history.json`, PNG images such as a plot of the model); never hidden test code,
hidden data or tracebacks. Pages are self-contained files: images are embedded, no script runs.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from autograder.course import Course
from autograder.late import LatePenalty, LatePolicy
from autograder.results import CheckResult, SubmissionResult
from autograder.text import plain_text

HISTORY_FILE = "history.json"  # Keras `history.history` dumped as JSON by the notebook (an optional extra)
MAX_HISTORY_BYTES = 2 * 2**20
MAX_HISTORY_SERIES, MAX_EPOCHS = 12, 10_000
MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, MAX_IMAGES = 4 * 2**20, 4096, 6
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def environment() -> jinja2.Environment:
    """The templates of the package `autograder.templates` (the course layout's templates/, shipped in the wheel),
    autoescaped (shared with the course report)."""
    from importlib.resources import files

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(files("autograder.templates"))), autoescape=True,
                              undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class Figure:
    """An image embedded in a page as a data URI."""

    title: str
    data_uri: str
    alt: str


@dataclass(frozen=True)
class LayerPart:
    """A piece of a layer's description ('LSTM', 'return_sequences=True', a separator) and whether it differs."""

    text: str
    differs: bool = False


@dataclass(frozen=True)
class LayerRow:
    """One row of an architecture table, aligned as a diff: an expected layer and the one found in its place, or
    one of them alone (`change` "missing" or "extra"); the parts mark what differs."""

    position: int
    expected: str
    found: str
    ok: bool
    change: str = ""  # "same", "settings", "class", "missing", "extra"; "" when only ok is known
    note: str = ""  # what differs, in words ("return_sequences differs", "extra layer")
    expected_parts: tuple[LayerPart, ...] = ()
    found_parts: tuple[LayerPart, ...] = ()


@dataclass(frozen=True)
class Threshold:
    """A measured value against the value that earns full points, and the floor below which it earns nothing."""

    metric: str
    measured: float
    target: float
    floor: float | None = None

    @property
    def met(self) -> bool:
        return self.measured >= self.target


@dataclass(frozen=True)
class CheckView:
    """One check as the page shows it: its result, its message, and what it compared."""

    check: CheckResult
    message: str
    layers: tuple[LayerRow, ...] = ()
    threshold: Threshold | None = None


# ------------------------------------------------------------------------------------------ what a check compared

_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
_FRAME = re.compile(r'^\s*File ".*", line \d+')


def student_safe(text: str) -> str:
    """`text` without anything that looks like a traceback: graders' messages never hold one (the plugin passes
    on only the assertion's message), but a page shown to students must not rely on every grader being right."""
    match = _TRACEBACK.search(text)
    if match:
        text = text[:match.start()]
    return "\n".join(line for line in text.splitlines() if not _FRAME.match(line)).strip()


_DESCRIPTION = re.compile(r"^(?P<kind>[^()]+?)(?:\((?P<settings>.*)\))?$")
_SETTING = re.compile(r"(\w+)=(.*?)(?=, \w+=|$)")


def _parsed(text: str) -> tuple[str, list[tuple[str, str]]] | None:
    """('LSTM', [('return_sequences', 'True')]) from 'LSTM(return_sequences=True)'; None for an empty side."""
    match = _DESCRIPTION.match(text.strip())
    if not text.strip() or match is None:
        return None
    return match["kind"].strip(), _SETTING.findall(match["settings"] or "")


def _parts(layer: tuple[str, list[tuple[str, str]]] | None, differs: set[str]) -> tuple[LayerPart, ...]:
    if layer is None:
        return ()
    kind, settings = layer
    parts = [LayerPart(kind, "class" in differs)]
    for index, (key, value) in enumerate(settings):
        parts += [LayerPart("(" if index == 0 else ", "), LayerPart(f"{key}={value}", key in differs)]
    return tuple(parts + [LayerPart(")")] if settings else parts)


def aligned_row(position: int, expected: str, found: str, ok: bool) -> LayerRow:
    """One row of an aligned architecture table, what differs worked out from its two sides: both sides of a
    `keras_checks.architecture_rows` row show the same settings, so comparing them names the one that differs
    (an empty side is a missing or an extra layer)."""
    mine, theirs = _parsed(expected), _parsed(found)
    differs: set[str] = set()
    if ok:
        change, note = "same", ""
    elif mine is None or theirs is None:
        change = "extra" if mine is None else "missing"
        note = f"{change} layer"
    elif mine[0] != theirs[0]:
        change, note, differs = "class", f"{theirs[0]} instead of {mine[0]}", {"class"}
    else:
        found_settings = dict(theirs[1])
        named = [key for key, value in mine[1] if found_settings.get(key) != value]
        change, differs = "settings", set(named)
        note = f"{', '.join(named)} differ{'s' if len(named) == 1 else ''}" if named else "differs"
    return LayerRow(position=position, expected=expected, found=found, ok=ok, change=change, note=note,
                    expected_parts=_parts(mine, differs), found_parts=_parts(theirs, differs))


def _from_details(details: dict) -> tuple[tuple[LayerRow, ...], Threshold | None]:
    """Rows or threshold from `CheckResult.details` (see results.py); anything malformed is ignored."""
    try:
        if details.get("kind") == "layers":
            return tuple(aligned_row(index + 1, str(row["expected"]), str(row["found"]), bool(row["ok"]))
                         for index, row in enumerate(details["rows"])), None
        if details.get("kind") == "threshold":
            floor = details.get("floor")
            return (), Threshold(metric=str(details["metric"]), measured=float(details["measured"]),
                                 target=float(details["target"]), floor=None if floor is None else float(floor))
    except (KeyError, TypeError, ValueError):
        pass
    return (), None


def check_view(check: CheckResult) -> CheckView:
    """What the page shows of one check: its message, and the table or threshold its grader handed over as
    structure (`credit.layer_table`, `credit.threshold`); a message is never parsed for either."""
    layers, threshold = _from_details(check.details) if isinstance(check.details, dict) else ((), None)
    return CheckView(check=check, message=student_safe(check.output), layers=layers, threshold=threshold)


# --------------------------------------------------------------------------- the student's artifacts, as figures

def figure_data_uri(figure) -> str:
    """A matplotlib figure as an embeddable PNG data URI (and the figure closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def read_history(path: Path) -> dict[str, list[float]] | None:
    """A Keras history (metric name -> value per epoch) from untrusted JSON; None unless it is one."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_HISTORY_BYTES:
            return None
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("history"), dict):
        data = data["history"]  # {"history": model.fit(...).history, ...}
    if not isinstance(data, dict):
        return None
    series = {}
    for name, values in list(data.items())[:MAX_HISTORY_SERIES]:
        if not isinstance(values, list) or not 0 < len(values) <= MAX_EPOCHS:
            continue
        if all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            series[plain_text(str(name))[:40]] = [float(v) for v in values]
    return series or None


def training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss curves on the left, the other metrics on the right; validation curves dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = [sorted(n for n in history if "loss" in n), sorted(n for n in history if "loss" not in n)]
    groups = [group for group in groups if group]
    figure, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.2), squeeze=False)
    for ax, names in zip(axes[0], groups, strict=True):
        for name in names:
            values = history[name]
            ax.plot(range(1, len(values) + 1), values, linestyle="--" if name.startswith("val_") else "-",
                    marker="o" if len(values) <= 30 else None, markersize=3,
                    label=name.replace("$", r"\$"))  # a student's key is text, never mathtext to parse
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("loss" if "loss" in names[0] else "metrics")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    names = ", ".join(sorted(history))
    return Figure(title="Training curves (from your history.json)", data_uri=figure_data_uri(figure),
                  alt=f"training curves: {names}")


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header chunk, or None when `data` is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def artifact_images(artifacts_dir: Path) -> list[Figure]:
    """The PNG images the notebook left among its artifacts (plots), checked to be PNGs of a
    sane size; anything else (SVG, HTML, a file claiming to be a PNG) never reaches the page."""
    figures = []
    if not artifacts_dir.is_dir():
        return figures
    for path in sorted(artifacts_dir.glob("*.png"))[:MAX_IMAGES]:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
            continue
        data = path.read_bytes()
        size = _png_size(data)
        if size is None or not all(0 < side <= MAX_IMAGE_SIDE for side in size):
            continue
        figures.append(Figure(title=path.name, alt=f"{path.name} ({size[0]}x{size[1]}), written by your notebook",
                              data_uri="data:image/png;base64," + base64.b64encode(data).decode()))
    return figures


def submission_figures(artifacts_dir: Path) -> list[Figure]:
    """Training curves (when the notebook saved history.json) and the notebook's own images."""
    figures = []
    history = read_history(artifacts_dir / HISTORY_FILE)
    if history:
        figures.append(training_curves(history))
    return figures + artifact_images(artifacts_dir)


# ------------------------------------------------------------------------------------------------------ the page

def render_feedback(result: SubmissionResult, *, late: LatePenalty | None = None,
                    figures: Sequence[Figure] = ()) -> str:
    """The feedback page of one submission."""
    checks = [check_view(check) for check in result.tests]
    final = max(result.score - late.points, 0.0) if late and late.points else None
    return environment().get_template("feedback.html.j2").render(
        result=result, checks=checks, late=late if late and late.late else None, final_score=final,
        figures=list(figures), reason=student_safe(result.reason))


def write_feedback(course: Course, results: list[SubmissionResult], notebook_name: str, *,
                   policy: LatePolicy | None = None) -> list[Path]:
    """feedback/<student>/<assignment>/<notebook>.html for each result (nbgrader's feedback layout).

    `policy`: the late policy to show and apply (default: the course's `[late]` section in dlgrade.toml)."""
    from autograder.late import lateness_by_student, load_policy, penalty

    policy = policy or load_policy(course.settings_dir)
    lateness = {}
    for assignment in {result.assignment for result in results}:
        lateness.update({(student, assignment): value
                         for student, value in lateness_by_student(course, assignment).items()})
    written = []
    for result in results:
        target = course.feedback / result.student / result.assignment / f"{Path(notebook_name).stem}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        found = lateness.get((result.student, result.assignment))
        late = penalty(policy, found, result.score) if found else None
        figures = submission_figures(course.autograded / result.student / result.assignment / "artifacts")
        target.write_text(render_feedback(result, late=late, figures=figures))
        copy_exchange_receipts(course, result.student, result.assignment)
        written.append(target)
    return written


EXCHANGE_RECEIPTS = ("timestamp.txt", "submission_secret.txt")  # what nbgrader's release_feedback reads
MAX_RECEIPT_BYTES = 4096


def copy_exchange_receipts(course: Course, student: str, assignment: str) -> list[Path]:
    """Copy nbgrader's receipts of a submission (timestamp.txt, submission_secret.txt) from submitted/ beside its
    feedback page, as nbgrader's generate_feedback does: `nbgrader release_feedback` reads both from
    feedback/<student>/<assignment>/ to name the page it hands out (a hash of the secret and the notebook id), and
    without them it fails. Absent receipts (an LMS collect writes no secret) are no error."""
    copied = []
    source, target = course.submitted / student / assignment, course.feedback / student / assignment
    for name in EXCHANGE_RECEIPTS:
        path = source / name
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_RECEIPT_BYTES:
            continue
        (target / name).write_bytes(path.read_bytes())
        copied.append(target / name)
    return copied
