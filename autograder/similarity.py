"""Copied work: the code students wrote, compared across all submissions of an assignment with copydetect's
winnowing fingerprints (the MOSS algorithm: Schleimer, Wilkerson and Aiken, SIGMOD 2003).

Only solution cells count: the cells the release marks `solution` (by nbgrader grade id), and of those only what
the student added: every fingerprint of the release's own code (signatures, stubs, given helpers) is
boilerplate and never matches. copydetect tokenises Python with pygments before fingerprinting, so renamed
variables, functions and classes, changed comments and strings, and moved whitespace do not hide a copy.

A pair is flagged when the copied share of either side's code reaches `threshold` and the copied code is at least
`min_tokens` tokens long (a one-line answer that everybody writes the same way is not a copy). The report is for
the instructor, an HTML page of the flagged pairs with the matching regions side by side; it never changes a grade.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from autograder.course import Course

NOISE_TOKENS = 25  # copydetect's noise threshold k: shorter matches are never reported (its default)
GUARANTEE_TOKENS = 30  # copydetect's guarantee threshold: longer matches are always found (its default)
MAX_NOTEBOOK_BYTES = 64 * 2**20
REPORT_DIR = "similarity"  # <course>/similarity/<assignment>.html, git-ignored: it quotes student code


@dataclass(frozen=True)
class Segment:
    """A run of a student's code, copied (found in the other submission) or not."""

    text: str
    copied: bool


@dataclass(frozen=True)
class Pair:
    """Two submissions whose solution code overlaps."""

    first: str
    second: str
    first_share: float  # share of the first student's code found in the second's
    second_share: float
    copied_tokens: int
    first_segments: tuple[Segment, ...] = ()
    second_segments: tuple[Segment, ...] = ()

    @property
    def share(self) -> float:
        return max(self.first_share, self.second_share)


@dataclass(frozen=True)
class SimilarityReport:
    """The flagged pairs of one assignment (highest share first) and what was compared."""

    assignment: str
    threshold: float
    min_tokens: int
    students: tuple[str, ...]  # compared
    unreadable: tuple[str, ...]  # submissions that are not notebooks, or have no solution cells
    pairs: tuple[Pair, ...]
    report: Path | None = None

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "threshold": self.threshold, "min_tokens": self.min_tokens,
                "students": list(self.students), "unreadable": list(self.unreadable),
                "report": str(self.report) if self.report else None,
                "pairs": [{"first": p.first, "second": p.second, "first_share": round(p.first_share, 3),
                           "second_share": round(p.second_share, 3), "copied_tokens": p.copied_tokens}
                          for p in self.pairs]}


def _notebook_cells(path: Path) -> list[dict] | None:
    """The cells of a notebook file as plain dicts; None when it is not a readable notebook."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    return [cell for cell in cells if isinstance(cell, dict)] if isinstance(cells, list) else None


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _grade_id(cell: dict) -> str | None:
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None


def solution_ids(release: list[dict]) -> set[str]:
    """Grade ids of the release's solution code cells."""
    found = set()
    for cell in release:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell.get("metadata"), dict) else {}
        if cell.get("cell_type") == "code" and isinstance(nbgrader, dict) and nbgrader.get("solution"):
            found.add(nbgrader.get("grade_id"))
    return found


def solution_code(cells: list[dict], ids: set[str]) -> str:
    """The student's code in the solution cells (`ids`), cell after cell."""
    return "\n\n".join(_source(cell) for cell in cells if cell.get("cell_type") == "code" and _grade_id(cell) in ids)


def release_hashes(release: list[dict], ids: set[str]):
    """Every k-gram hash of the release's code, tokenised as copydetect tokenises: all of it, not only the
    winnowed few, so that no window of the release's own code (alone, or across the boundary of two solution
    cells as `solution_code` joins them) can count as copied."""
    import numpy as np
    from copydetect.utils import filter_code, hashed_kgrams

    texts = ["\n\n".join(_source(cell) for cell in release if cell.get("cell_type") == "code"),
             solution_code(release, ids)]
    hashes = [hashed_kgrams(filter_code(text, "release.py", "python")[0], NOISE_TOKENS) for text in texts]
    return np.unique(np.concatenate([h for h in hashes if len(h)] or [np.array([], dtype=np.int64)]))


def _fingerprint(name: str, code: str, boilerplate=None):
    from copydetect import CodeFingerprint

    window = GUARANTEE_TOKENS - NOISE_TOKENS + 1
    return CodeFingerprint(f"{name}.py", NOISE_TOKENS, window, boilerplate=boilerplate, fp=io.StringIO(code),
                           language="python")


def _segments(code: str, slices) -> tuple[Segment, ...]:
    """`code` cut at copydetect's copied slices (start and end offsets into the original code)."""
    segments, position = [], 0
    for start, end in sorted(zip(slices[0].tolist(), slices[1].tolist(), strict=True)) if len(slices[0]) else ():
        start, end = max(int(start), position), int(end)
        if start > position:
            segments.append(Segment(code[position:start], copied=False))
        if end > start:
            segments.append(Segment(code[start:end], copied=True))
        position = max(position, end)
    if position < len(code):
        segments.append(Segment(code[position:], copied=False))
    return tuple(segments)


def compare(*, course: Course, assignment: str, threshold: float = 0.5, min_tokens: int = 40,
            students: tuple[str, ...] = ()) -> SimilarityReport:
    """Compare the solution code of every pair of submissions of `assignment` (or of `students`)."""
    from copydetect import compare_files

    notebook = course.config(assignment).notebook_name
    release = _notebook_cells(course.releases / assignment / notebook)
    if release is None:
        from autograder.errors import ConfigError

        raise ConfigError(f"no release of {assignment} at {course.releases / assignment / notebook}: run "
                          f"`dlgrade generate {assignment}` first")
    ids = solution_ids(release)
    boilerplate = release_hashes(release, ids)
    codes, unreadable = {}, []
    for student in students or tuple(course.students(assignment)):
        cells = _notebook_cells(course.submitted / student / assignment / notebook)
        code = solution_code(cells, ids) if cells is not None else ""
        if cells is None or not code.strip():
            unreadable.append(student)
            continue
        codes[student] = code
    prints = {student: _fingerprint(student, code, boilerplate) for student, code in codes.items()}
    pairs = []
    for first, second in itertools.combinations(sorted(prints), 2):
        tokens, (share1, share2), (slices1, slices2) = compare_files(prints[first], prints[second])
        if int(tokens) < min_tokens or max(share1, share2) < threshold:
            continue
        pairs.append(Pair(first=first, second=second, first_share=float(share1), second_share=float(share2),
                          copied_tokens=int(tokens), first_segments=_segments(codes[first], slices1),
                          second_segments=_segments(codes[second], slices2)))
    pairs.sort(key=lambda pair: (-pair.share, pair.first, pair.second))
    return SimilarityReport(assignment=assignment, threshold=threshold, min_tokens=min_tokens,
                            students=tuple(sorted(prints)), unreadable=tuple(sorted(unreadable)), pairs=tuple(pairs))


def report_path(course: Course, assignment: str) -> Path:
    return course.root / REPORT_DIR / f"{assignment}.html"


def render_similarity(report: SimilarityReport) -> str:
    """The HTML page of a comparison (jinja2, autoescaped: student code is data)."""
    from autograder.feedback import environment

    return environment().get_template("similarity.html.j2").render(report=report)


def write_similarity(*, course: Course, assignment: str, threshold: float = 0.5, min_tokens: int = 40,
                     output: Path | None = None) -> SimilarityReport:
    """Compare `assignment`'s submissions and write the HTML report (default <course>/similarity/<a>.html)."""
    import dataclasses

    report = compare(course=course, assignment=assignment, threshold=threshold, min_tokens=min_tokens)
    target = output or report_path(course, assignment)
    target.parent.mkdir(parents=True, exist_ok=True)
    report = dataclasses.replace(report, report=target)
    target.write_text(render_similarity(report))
    return report
