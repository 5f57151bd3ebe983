"""dlgrade's scores in nbgrader's own gradebook, so `nbgrader export` and formgrader see them."""

from __future__ import annotations

import warnings
from collections import defaultdict

import pandas as pd

from autograder.course import Course
from autograder.results import SubmissionResult


def cell_scores(result: SubmissionResult) -> dict[str, float]:
    """Points per nbgrader grade cell: the sum of the hidden checks that cell carries."""
    scores: dict[str, float] = defaultdict(float)
    for check in result.tests:
        scores[check.cell] += check.score
    return dict(scores)


def record(course: Course, result: SubmissionResult) -> None:
    """Write one submission's autograded scores into the gradebook (manual grades are left as they are)."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = cell_scores(result)
    with Gradebook(course.db_url) as gradebook, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's add_submission trips SQLAlchemy autoflush warnings
        gradebook.update_or_create_student(result.student)
        try:
            submission = gradebook.find_submission(result.assignment, result.student)
        except MissingEntry:
            submission = gradebook.add_submission(result.assignment, result.student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if _is_manual(gradebook, grade):
                    _mark_for_hand_grading(gradebook, grade, answered=grade.name not in result.unanswered)
                elif grade.cell.cell_type == "code":
                    grade.auto_score = scores.get(grade.name, 0.0)
                    grade.needs_manual_grade = grade.manual_score is not None
        gradebook.db.commit()


def _mark_for_hand_grading(gradebook, grade, *, answered: bool) -> None:
    """As nbgrader's autograde does: a blank answer scores 0 ("No response."), an answer waits for formgrader."""
    comment = gradebook.find_comment(grade.name, grade.notebook.name, grade.assignment.name, grade.student.id)
    grade.auto_score = None if answered else 0.0
    grade.needs_manual_grade = grade.auto_score is None or grade.manual_score is not None
    comment.auto_comment = None if answered else "No response."


def _is_manual(gradebook, grade) -> bool:
    """A grade cell that is also a solution cell is an answer graded by hand."""
    from nbgrader.api import MissingEntry

    try:
        gradebook.find_solution_cell(grade.name, grade.notebook.name, grade.assignment.name)
        return True
    except MissingEntry:
        return False


def scores_frame(course: Course) -> pd.DataFrame:
    """One row per student and assignment with a submission: the gradebook's score and max score."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(course.db_url) as gradebook:
        for assignment in gradebook.assignments:
            for submission in gradebook.assignment_submissions(assignment.name):
                rows.append({"student": submission.student.id, "assignment": assignment.name,
                             "score": float(submission.score), "max_score": float(submission.max_score),
                             "needs_manual_grade": bool(submission.needs_manual_grade)})
    columns = ["student", "assignment", "score", "max_score", "needs_manual_grade"]
    return pd.DataFrame(rows, columns=columns).sort_values(["assignment", "student"], ignore_index=True)
