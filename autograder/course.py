"""Where a course keeps its files, and each assignment's typed configuration (`solutions/<a>/assignment.toml`)."""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import ConfigError
from autograder.sandbox import Limits

ASSIGNMENTS = ("seq2seq", "attention", "transfer_learning", "bert_finetune", "hub_exploration")
GRADERS_DIR = "graders"  # hidden pytest graders, below solutions/<assignment>/; nbgrader_config.py never releases it
CONFIG_FILE = "assignment.toml"
SETTINGS_FILE = "dlgrade.toml"  # optional, at the course root: [checkpoint], [late], [slurm]


@dataclass(frozen=True)
class ProbeConfig:
    """What the probe calls (`[probe]` in assignment.toml): student definitions run in a fresh sandbox of their own
    after the notebook, on inputs the host draws (autograder/probe.py)."""

    script: str  # file in graders/ with run(namespace, inputs, artifacts) -> arrays, run in the probe sandbox
    inputs: str  # file in graders/ with make_inputs(seed) -> arrays, run by the host, never in a sandbox
    cells: tuple[str, ...]  # grade_ids of the solution cells whose source the probe executes, in notebook order
    artifacts: tuple[str, ...] = ()  # the notebook's artifacts the probe reads (trained weights), read-only
    wall_seconds: float = 300.0  # time limit of the probe sandbox


@dataclass(frozen=True)
class AssignmentConfig:
    """How one assignment is graded. Every field has a default; `assignment.toml` overrides them."""

    name: str
    notebook: str = ""  # notebook file in solutions/<name>/; default "<name>.ipynb"
    artifacts: tuple[str, ...] = ()  # files the notebook must leave in its working directory for the graders
    extras: tuple[str, ...] = ()  # files collected when present, for feedback (training history, plots); optional
    limits: Limits = field(default_factory=Limits)  # sandbox limits for executing one submission
    grader_seconds: float = 300.0  # time limit of the hidden graders for one submission
    device: str = "cpu"  # "cpu", or "gpu" when the assignment wants one (used when present)
    probe: ProbeConfig | None = None  # student definitions called in a fresh sandbox after the notebook ran
    checkpoint: bool = False  # mount the course's BERT checkpoint read-only (autograder.checkpoints.resolve)
    cpu_threads: int = 1  # CPU threads of one submission's TensorFlow; a batch runs cores // cpu_threads at once
    preload: tuple[str, ...] = ("numpy", "tensorflow", "keras")  # imported in warm kernels and grader processes
    grader_memory_bytes: int = 6 * 2**30  # memory limit of the hidden graders for one submission

    @property
    def notebook_name(self) -> str:
        return self.notebook or f"{self.name}.ipynb"


@dataclass(frozen=True)
class Course:
    """The course root (nbgrader's course directory) and the paths dlgrade derives from it."""

    root: Path
    settings_root: Path | None = None  # where dlgrade.toml is read (checkpoint, ...); default: root

    @property
    def settings_dir(self) -> Path:
        """The folder of the course's dlgrade.toml; a throw-away copy of a course keeps its original's."""
        return self.settings_root or self.root

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def releases(self) -> Path:
        return self.root / "assignments"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @functools.cached_property
    def db_url(self) -> str:
        """nbgrader's gradebook: `c.CourseDirectory.db_url` of nbgrader_config.py (any SQLAlchemy URL, the same
        one `nbgrader export` and formgrader use), a relative SQLite path taken from the course root; default
        `gradebook.db` in the course root."""
        configured = _nbgrader_setting(self.root, "CourseDirectory", "db_url")
        if not configured:
            return f"sqlite:///{(self.root / 'gradebook.db').resolve()}"
        prefix = "sqlite:///"
        if configured.startswith(prefix) and not configured[len(prefix):].startswith("/"):
            return f"{prefix}{(self.root / configured[len(prefix):]).resolve()}"
        return configured

    def graders(self, assignment: str) -> Path:
        return self.solutions / assignment / GRADERS_DIR

    def assignments(self) -> list[str]:
        """Assignments that have a source folder, in course order."""
        found = [p.name for p in sorted(self.solutions.iterdir()) if (p / CONFIG_FILE).exists()]
        return sorted(found, key=lambda name: (ASSIGNMENTS.index(name) if name in ASSIGNMENTS else 99, name))

    def students(self, assignment: str) -> list[str]:
        """Students with a submission folder for `assignment`, sorted."""
        if not self.submitted.is_dir():
            return []
        return sorted(p.name for p in self.submitted.iterdir() if (p / assignment).is_dir())

    def config(self, assignment: str) -> AssignmentConfig:
        """Read `solutions/<assignment>/assignment.toml`; unknown keys are an error, not silently ignored."""
        path = self.solutions / assignment / CONFIG_FILE
        if not path.exists():
            known = ", ".join(self.assignments()) or "none"
            raise ConfigError(f"no assignment {assignment!r}: {path} does not exist (assignments: {known})")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        limits = _typed(Limits, raw.pop("limits", {}), path)
        raw["artifacts"] = tuple(raw.get("artifacts", ()))
        raw["extras"] = tuple(raw.get("extras", ()))
        if "preload" in raw:
            raw["preload"] = tuple(raw["preload"])
        if "probe" in raw:
            raw["probe"] = _probe(raw["probe"], path, artifacts=raw["artifacts"])
        return _typed(AssignmentConfig, {**raw, "name": assignment, "limits": limits}, path)


def _probe(raw, path: Path, *, artifacts: tuple[str, ...]) -> ProbeConfig:
    """[probe] of assignment.toml, checked where it is read: each name it uses must exist in the config."""
    from autograder.probe import RESERVED_ARTIFACTS

    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: probe must be a table ([probe] with script, inputs, cells), not {raw!r}")
    for key in ("cells", "artifacts"):
        if key in raw:
            if not isinstance(raw[key], list) or not all(isinstance(item, str) for item in raw[key]):
                raise ConfigError(f"{path}: probe.{key} must be a list of strings, not {raw[key]!r}")
            raw = {**raw, key: tuple(raw[key])}
    probe = _typed(ProbeConfig, raw, path)
    unknown = sorted(set(probe.artifacts) - set(artifacts))
    if unknown:
        raise ConfigError(f"{path}: probe.artifacts {unknown} are not among the assignment's artifacts {artifacts}")
    clash = sorted(set(artifacts) & set(RESERVED_ARTIFACTS))
    if clash:
        raise ConfigError(f"{path}: artifacts {clash} are names the probe writes; call them otherwise")
    return probe


def _typed(cls, values: dict, path: Path):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**values)


def open_course(root: Path) -> Course:
    """The course at `root`, which must hold nbgrader_config.py."""
    root = root.resolve()
    if not (root / "nbgrader_config.py").exists():
        raise ConfigError(f"{root} is not a course: it has no nbgrader_config.py")
    return Course(root)


def find_course(start: Path | None = None) -> Course:
    """The course whose root holds nbgrader_config.py, searching upwards from `start` (default: cwd)."""
    here = (start or Path.cwd()).resolve()
    for candidate in [here, *here.parents]:
        if (candidate / "nbgrader_config.py").exists():
            return Course(candidate)
    raise ConfigError(f"no nbgrader_config.py in {here} or above: pass --course-dir COURSE")


def _nbgrader_setting(root: Path, section: str, name: str):
    """One value of the course's nbgrader_config.py, read with traitlets as nbgrader reads it (None if unset)."""
    if not (root / "nbgrader_config.py").is_file():
        return None
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return config[section][name] if section in config and name in config[section] else None


def copy_course(source: Course, target: Path, assignments: tuple[str, ...]) -> Course:
    """A throw-away course at `target`: `source`'s nbgrader_config.py and the sources of `assignments`.

    Its settings (dlgrade.toml: which checkpoint, ...) stay those of `source`, so validating or benchmarking in
    the copy grades exactly as the real course would.
    """
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.root / "nbgrader_config.py", target / "nbgrader_config.py")
    with open(target / "nbgrader_config.py", "a") as config:  # a gradebook of its own, never the course's
        config.write('\nc.CourseDirectory.db_url = "sqlite:///gradebook.db"  # dlgrade: a throw-away copy\n')
    for assignment in assignments:
        shutil.copytree(source.solutions / assignment, target / "solutions" / assignment)
    return Course(target, settings_root=source.settings_dir)


def course_settings(settings_dir: Path, section: str, known: set[str]) -> dict:
    """The `[section]` table of `<settings_dir>/dlgrade.toml`: {} when the file or the section is absent.

    Unknown keys are an error naming the file, never silently ignored.
    """
    path = Path(settings_dir) / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text()).get(section, {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [{section}] must be a table of settings")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) in [{section}]: {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    return raw
