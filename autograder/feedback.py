"""Per-student HTML feedback, rendered from `SubmissionResult`s with the jinja2 templates in `templates/`.

Only what the result holds reaches the page: check names, points and the graders' own messages; never hidden
test code, hidden data or tracebacks.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from autograder.course import Course
from autograder.results import SubmissionResult

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def render_feedback(result: SubmissionResult) -> str:
    """The feedback page of one submission."""
    return _environment().get_template("feedback.html.j2").render(result=result)


def write_feedback(course: Course, results: list[SubmissionResult], notebook_name: str) -> list[Path]:
    """feedback/<student>/<assignment>/<notebook>.html for each result (nbgrader's feedback layout)."""
    written = []
    for result in results:
        target = course.feedback / result.student / result.assignment / f"{Path(notebook_name).stem}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_feedback(result))
        written.append(target)
    return written
