"""What every submission of one batch shares, computed once (`plan_batch`) and handed to each worker: the local
slots and their warm pool, a Slurm task on another node (as JSON), validation and `dlgrade check`.

A plan holds only what is the same on every machine that sees the course: the assignment's typed configuration
(with the batch's overrides), the points of its grade cells, its resources resolved to folders, and whether the
sandbox is used. What depends on the machine (the interpreter's mounts, GPU device nodes) is derived from the plan
once per process (`sandbox_settings`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from autograder import config as typed
from autograder.course import AssignmentConfig, Course
from autograder.resources import Resource, ResourceSet
from autograder.sandbox import Mount


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one plan per batch, its settings cached
class BatchPlan:
    """One assignment's grading settings for a batch; see the module docstring."""

    course_root: Path
    config: AssignmentConfig
    points: dict[str, float]  # grade_id of each autograded cell -> its points
    resources: ResourceSet = field(default_factory=ResourceSet)
    isolated: bool = True  # False: the instructor's --no-sandbox
    settings_root: Path | None = None  # where dlgrade.toml lies, when not in course_root (a throw-away copy)

    @property
    def course(self) -> Course:
        return Course(self.course_root, settings_root=self.settings_root)

    @property
    def assignment(self) -> str:
        return self.config.name

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    def submission_dir(self, student: str) -> Path:
        return self.course.submitted / student / self.assignment

    def output_dir(self, student: str) -> Path:
        return self.course.autograded / student / self.assignment

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["resources"] = [dataclasses.asdict(r) for r in self.resources.resources]
        return json.dumps(values, default=str, indent=1)

    @classmethod
    def from_json(cls, text: str, *, origin: Path) -> BatchPlan:
        """A plan written by `to_json` (the file `origin`), read back with the same checks as assignment.toml."""
        raw = json.loads(text)
        config = dict(raw["config"])
        name = config.pop("name")
        loaded = typed.load(AssignmentConfig, _without_nulls(config), file=origin, key="config", fixed={"name": name})
        resources = ResourceSet(tuple(Resource(name=r["name"], env=r["env"], path=Path(r["path"]), origin=r["origin"])
                                      for r in raw["resources"]))
        return cls(course_root=Path(raw["course_root"]), config=loaded,
                   points={str(k): float(v) for k, v in raw["points"].items()}, resources=resources,
                   isolated=bool(raw["isolated"]),
                   settings_root=Path(raw["settings_root"]) if raw["settings_root"] else None)


def _without_nulls(values: dict) -> dict:
    return {key: (_without_nulls(value) if isinstance(value, dict) else value)
            for key, value in values.items() if value is not None}


def autograded_points(course: Course, assignment: str, notebook_name: str) -> dict[str, float]:
    """Points of each autograded grade cell (a test cell, not a hand-graded answer) in the source notebook."""
    source = nbformat.read(course.solutions / assignment / notebook_name, as_version=4)
    points = {}
    for cell in source.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            points[meta["grade_id"]] = float(meta.get("points", 0))
    return points


def plan_batch(course: Course, assignment: str, *, isolated: bool = True, time_limit: float | None = None,
               log=None) -> BatchPlan:
    """The plan of a batch of `assignment`: its config (`time_limit` overriding the notebook's wall time), the
    points of its grade cells and its resources, resolved (and built, where needed) here, once."""
    config = course.config(assignment)
    if time_limit is not None:
        config = replace(config, limits=replace(config.limits, wall_seconds=float(time_limit)))
    return BatchPlan(course_root=course.root, config=config,
                     points=autograded_points(course, assignment, config.notebook_name),
                     resources=course.resources(config, log=log), isolated=isolated,
                     settings_root=course.settings_root)


@dataclass(frozen=True)
class SandboxSettings:
    """A plan's sandboxes on this machine: what the notebook's and the probe's sandboxes mount and their
    environment, and what the graders read."""

    kernel_mounts: tuple[Mount, ...]  # interpreter, resources (reachable copies), GPUs; no engine code
    kernel_env: dict[str, str]
    grader_env: dict[str, str]
    grader_read_only: tuple[Path, ...]  # resources, at their own paths
    devices: tuple[Mount, ...]  # GPU device nodes, where the assignment wants one and the machine has one


@functools.lru_cache(maxsize=16)
def sandbox_settings(plan: BatchPlan) -> SandboxSettings:
    """The plan's `SandboxSettings` on this machine, derived once per process."""
    from autograder.execution import gpu_mounts, kernel_env, sandbox_mounts

    resources = plan.resources
    return SandboxSettings(
        kernel_mounts=tuple(sandbox_mounts(plan.config, resources.mounts())) if plan.isolated else (),
        kernel_env={**kernel_env(plan.config), **resources.kernel_env(isolated=plan.isolated)},
        grader_env=resources.grader_env(), grader_read_only=resources.host_paths(),
        devices=tuple(gpu_mounts(plan.config)))
