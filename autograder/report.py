"""The course report: how each assignment went, from the results.json files, as one self-contained HTML page.

Score distribution per assignment, the pass rate of each check (which mistakes are common), status counts
(graded, error, timeout, rejected) and grading time per submission; tables and matplotlib plots (embedded PNGs).
For instructors: it names checks and students, never shows anything to students.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autograder.course import Course
from autograder.export import course_order, in_course_order
from autograder.feedback import Figure, environment, figure_data_uri
from autograder.results import SubmissionResult

STATUSES = ("graded", "error", "timeout", "rejected")
STATUS_COLORS = {"graded": "#1a7f37", "error": "#b42318", "timeout": "#f0b400", "rejected": "#6e7781"}


def submissions_frame(results: Sequence[SubmissionResult]) -> pd.DataFrame:
    """One row per submission: student, assignment, score, max_score, status, execution and grading seconds."""
    columns = ["student", "assignment", "score", "max_score", "status", "execution_seconds", "grading_seconds"]
    return pd.DataFrame([{name: getattr(r, name) for name in columns} for r in results], columns=columns)


def checks_frame(results: Sequence[SubmissionResult]) -> pd.DataFrame:
    """The pass rate of each check: over the submissions where it ran, the share with full points
    (`pass_rate`) and the mean share of its points (`mean_credit`); lowest pass rate first."""
    rows = [{"assignment": r.assignment, "check": c.name, "cell": c.cell, "full": c.score >= c.max_score,
             "credit": c.score / c.max_score if c.max_score else 1.0} for r in results for c in r.tests]
    if not rows:
        return pd.DataFrame(columns=["assignment", "check", "cell", "runs", "pass_rate", "mean_credit"])
    frame = pd.DataFrame(rows).groupby(["assignment", "check", "cell"], sort=False).agg(
        runs=("full", "size"), pass_rate=("full", "mean"), mean_credit=("credit", "mean")).reset_index()
    rank = {name: index for index, name in enumerate(course_order(frame["assignment"]))}
    frame["rank"] = frame["assignment"].map(rank)
    return frame.sort_values(["rank", "pass_rate", "check"], ignore_index=True).drop(columns="rank")


def status_counts(results: Sequence[SubmissionResult]) -> pd.DataFrame:
    """Submissions per assignment and status (a column per status, zeros included)."""
    frame = submissions_frame(results)
    if frame.empty:
        return pd.DataFrame(columns=list(STATUSES)).rename_axis(index="assignment")
    table = pd.crosstab(frame["assignment"], frame["status"]).reindex(course_order(frame["assignment"]))
    return table.reindex(columns=list(STATUSES), fill_value=0).rename_axis(index="assignment", columns=None)


def summary_frame(results: Sequence[SubmissionResult]) -> pd.DataFrame:
    """Per assignment: submissions, mean and median score, max score, and grading time (median and max)."""
    frame = submissions_frame(results)
    if frame.empty:
        return pd.DataFrame(columns=["assignment", "submissions", "mean_score", "median_score", "max_score",
                                     "median_grading_seconds", "max_grading_seconds"])
    frame = frame.set_index("assignment").loc[course_order(frame["assignment"])].reset_index()
    return frame.groupby("assignment", sort=False).agg(
        submissions=("student", "size"), mean_score=("score", "mean"), median_score=("score", "median"),
        max_score=("max_score", "max"), median_grading_seconds=("grading_seconds", "median"),
        max_grading_seconds=("grading_seconds", "max")).round(2).reset_index()


# ---------------------------------------------------------------------------------------------------- the plots

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _whole_numbers(axis) -> None:
    """Counts of submissions have no halves."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def score_distribution(frame: pd.DataFrame) -> Figure:
    """A histogram of scores per assignment, from 0 to its maximum."""
    plt = _pyplot()
    assignments = course_order(frame["assignment"])
    figure, axes = plt.subplots(1, len(assignments), figsize=(3.6 * len(assignments), 2.8), squeeze=False)
    for ax, assignment in zip(axes[0], assignments, strict=True):
        part = frame[frame["assignment"] == assignment]
        top = float(part["max_score"].max()) or 1.0
        ax.hist(part["score"], bins=10, range=(0, top), color="#4c78a8", edgecolor="white")  # tenths of the max
        ax.set_title(assignment)
        ax.set_xlabel(f"score (of {top:g})")
        _whole_numbers(ax.yaxis)
    axes[0][0].set_ylabel("submissions")
    figure.tight_layout()
    return Figure(title="Score distribution per assignment", data_uri=figure_data_uri(figure),
                  alt="histograms of the scores of each assignment")


def check_pass_rates(checks: pd.DataFrame) -> Figure:
    """A bar per check: the share of submissions with its full points; lowest (most common mistake) on top."""
    plt = _pyplot()
    labels = [f"{row.assignment}: {row.check[:60]}" for row in checks.itertuples()]
    figure, ax = plt.subplots(figsize=(9, 0.35 * len(labels) + 1))
    ax.barh(range(len(labels)), checks["pass_rate"] * 100, color="#4c78a8")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("submissions with full points (%)")
    figure.tight_layout()
    return Figure(title="Pass rate of each check", data_uri=figure_data_uri(figure),
                  alt="bar chart of the share of submissions passing each check")


def status_chart(counts: pd.DataFrame) -> Figure:
    """Stacked bars: submissions per assignment by status."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(counts)), 3))
    bottom = [0] * len(counts)
    for status in STATUSES:
        values = counts[status].tolist()
        ax.bar(counts.index.tolist(), values, bottom=bottom, label=status, color=STATUS_COLORS[status])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("submissions")
    _whole_numbers(ax.yaxis)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return Figure(title="Status counts", data_uri=figure_data_uri(figure),
                  alt="stacked bars of graded, error, timeout and rejected submissions per assignment")


def grading_times(frame: pd.DataFrame) -> Figure:
    """Grading time of each submission (a dot each) per assignment, with the median marked."""
    plt = _pyplot()
    assignments = course_order(frame["assignment"])
    figure, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(assignments)), 3))
    for index, assignment in enumerate(assignments):
        seconds = frame.loc[frame["assignment"] == assignment, "grading_seconds"].to_numpy()
        offsets = [(i % 7 - 3) * 0.04 for i in range(len(seconds))]  # spread the dots so equal times stay visible
        ax.scatter([index + o for o in offsets], seconds, s=14, color="#4c78a8")
        ax.hlines(float(pd.Series(seconds).median()), index - 0.3, index + 0.3, color="#b42318")
    ax.set_xticks(range(len(assignments)), assignments)
    ax.set_ylabel("grading time (s)")
    ax.set_ylim(bottom=0)
    figure.tight_layout()
    return Figure(title="Grading time per submission (red: median)", data_uri=figure_data_uri(figure),
                  alt="grading time of each submission per assignment")


# ------------------------------------------------------------------------------------------------------ the page

@dataclass(frozen=True)
class CourseReport:
    """The numbers behind the report page (also what `dlgrade report --json` prints)."""

    summary: pd.DataFrame
    statuses: pd.DataFrame
    checks: pd.DataFrame
    submissions: pd.DataFrame

    def to_dict(self) -> dict:
        return {"assignments": self.summary.to_dict("records"),
                "statuses": self.statuses.reset_index().to_dict("records"),
                "checks": self.checks.round(3).to_dict("records")}


def course_report(results: Sequence[SubmissionResult]) -> CourseReport:
    """The statistics of `results` (any assignments)."""
    return CourseReport(summary=summary_frame(results), statuses=status_counts(results),
                        checks=checks_frame(results), submissions=submissions_frame(results))


def render_report(report: CourseReport, *, title: str = "Course report",
                  similarity: Sequence[tuple[str, str]] = ()) -> str:
    """The report page: summary tables and the four plots (no plots when nothing was graded), and links to the
    similarity reports `similarity` ((assignment, relative link) pairs, see `dlgrade similarity`)."""
    figures = []
    if not report.submissions.empty:
        figures = [score_distribution(report.submissions), status_chart(report.statuses)]
        if not report.checks.empty:
            figures.append(check_pass_rates(report.checks))
        figures.append(grading_times(report.submissions))
    return environment().get_template("report.html.j2").render(
        title=title, summary=report.summary.to_dict("records"),
        statuses=report.statuses.reset_index().to_dict("records"), checks=report.checks.to_dict("records"),
        figures=figures, status_names=STATUSES, similarity=list(similarity))


def load_course_results(course: Course, assignments: Sequence[str] = ()) -> list[SubmissionResult]:
    """Every results.json of the course (or of `assignments`), assignment by assignment."""
    from autograder.export import graded_assignments
    from autograder.results import load_results

    return [r for a in (assignments or graded_assignments(course)) for r in load_results(course, a)]


def write_report(course: Course, output: Path, *, assignments: Sequence[str] = ()) -> CourseReport:
    """Write the course report to `output` (HTML) and return its statistics."""
    report = course_report(load_course_results(course, assignments))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_report(report, title=f"Course report: {course.root.name}",
                                    similarity=similarity_links(course, output.parent)))
    return report


def similarity_links(course: Course, start: Path) -> list[tuple[str, str]]:
    """(assignment, link relative to `start`) of every similarity report the course has (`dlgrade similarity`)."""
    import os

    from autograder.similarity import REPORT_DIR

    found = sorted((course.root / REPORT_DIR).glob("*.html"))
    order = in_course_order(course, (path.stem for path in found))
    by_name = {path.stem: path for path in found}
    return [(name, Path(os.path.relpath(by_name[name], start.resolve())).as_posix()) for name in order]
