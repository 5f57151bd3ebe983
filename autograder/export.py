"""Exports: pure functions from the gradebook and results to pandas DataFrames."""

from __future__ import annotations

import pandas as pd

from autograder.course import Course
from autograder.gradebook import scores_frame
from autograder.pipeline import load_results


def export_frame(course: Course) -> pd.DataFrame:
    """The long table: student, assignment, score, max_score, status, reason (gradebook scores, dlgrade status)."""
    frame = scores_frame(course)
    statuses = {(r.student, r.assignment): (r.status, r.reason)
                for assignment in frame["assignment"].unique() for r in load_results(course, assignment)}
    keys = list(zip(frame["student"], frame["assignment"], strict=True))
    frame["status"] = [statuses.get(key, ("", ""))[0] for key in keys]
    frame["reason"] = [statuses.get(key, ("", ""))[1] for key in keys]
    return frame
