"""Where a course keeps its files, and each assignment's typed configuration (`solutions/<a>/assignment.toml`).

An assignment is a folder `solutions/<a>/` with an assignment.toml; the course's order is each one's `position`
(then its name). The engine knows no assignment by name: everything an exercise owns lives in its folder.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder import config as typed
from autograder.errors import ConfigError
from autograder.resources import ResourceConfig
from autograder.sandbox import Limits

GRADERS_DIR = "graders"  # hidden pytest graders, below solutions/<assignment>/; nbgrader_config.py never releases it
EXAMPLES_FILE = "examples.py"  # example submissions of an assignment (EXAMPLES), beside its notebook; never released
CONFIG_FILE = "assignment.toml"
SETTINGS_FILE = "dlgrade.toml"  # optional, at the course root: [resources.<name>], [late], [slurm]
BACKENDS = ("tensorflow", "jax", "torch")
# What a warm kernel and a grader process import ahead when the assignment names no `preload`: the backend's own
# framework and Keras on it (keras imports the backend that KERAS_BACKEND names, and nothing else).
BACKEND_PRELOAD = {"tensorflow": ("numpy", "tensorflow", "keras"), "jax": ("numpy", "jax", "keras"),
                   "torch": ("numpy", "torch", "keras")}


@dataclass(frozen=True)
class ProbeConfig:
    """What the probe calls (`[probe]` in assignment.toml): student definitions run in a fresh sandbox of their own
    after the notebook, on inputs the host draws (autograder/probe.py)."""

    script: str  # file in graders/ with run(namespace, inputs, artifacts) -> arrays, run in the probe sandbox
    inputs: str  # file in graders/ with make_inputs(seed) -> arrays, run by the host, never in a sandbox
    cells: tuple[str, ...]  # grade_ids of the solution cells whose source the probe executes, in notebook order
    artifacts: tuple[str, ...] = ()  # the notebook's artifacts the probe reads (trained weights), read-only
    wall_seconds: float = field(default=300.0, metadata={"min": 1})  # time limit of the probe sandbox


@dataclass(frozen=True)
class AssignmentConfig:
    """How one assignment is graded. Every field has a default; `assignment.toml` overrides them."""

    name: str
    position: int = 1000  # where the assignment comes in the course (releases, demo, exports), then by name
    notebook: str = ""  # notebook file in solutions/<name>/; default "<name>.ipynb"
    artifacts: tuple[str, ...] = ()  # files the notebook must leave in its working directory for the graders
    extras: tuple[str, ...] = ()  # files collected when present, for feedback (training history, plots); optional
    limits: Limits = field(default_factory=Limits)  # sandbox limits for executing one submission
    grader_seconds: float = field(default=300.0, metadata={"min": 1})  # time limit of the hidden graders, per
    #                                                                    submission
    device: str = field(default="cpu", metadata={"choices": ("cpu", "gpu")})  # "gpu": used when the host has one
    backend: str = field(default="tensorflow", metadata={"choices": BACKENDS})  # KERAS_BACKEND of the kernel
    probe: ProbeConfig | None = None  # student definitions called in a fresh sandbox after the notebook ran
    resources: tuple[ResourceConfig, ...] = ()  # folders mounted read-only for the notebook and the graders
    cpu_threads: int = field(default=1, metadata={"min": 1})  # CPU threads of one submission's kernel; a batch
    #                                                            runs cores // cpu_threads at once
    preload: tuple[str, ...] | None = None  # imported in warm kernels and grader processes; default: the backend's
    grader_memory_bytes: int = field(default=6 * 2**30, metadata={"min": 2**27})  # memory limit of the graders

    @property
    def notebook_name(self) -> str:
        return self.notebook or f"{self.name}.ipynb"

    @property
    def preload_modules(self) -> tuple[str, ...]:
        """`preload`, or the modules of the assignment's backend (BACKEND_PRELOAD) when it names none."""
        return BACKEND_PRELOAD[self.backend] if self.preload is None else self.preload


def load_assignment(path: Path, name: str) -> AssignmentConfig:
    """`path` (an assignment.toml) as an AssignmentConfig; every value checked, cross-references too."""
    config = typed.load(AssignmentConfig, typed.read_toml(path), file=path, fixed={"name": name})
    names = [resource.name for resource in config.resources]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: resources: each name once, found {names}")
    for resource in config.resources:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", resource.name) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", resource.env):
            raise ConfigError(f"{path}: resources: name must be lower-case letters, digits, - or _ and env an "
                              f"environment variable's name (A-Z, 0-9, _), found {resource.name!r}, {resource.env!r}")
    for item in (*config.artifacts, *config.extras):
        if Path(item).name != item or item in ("", ".", ".."):
            raise ConfigError(f"{path}: artifacts and extras are plain file names, not paths: {item!r}")
    if config.probe is not None:
        from autograder.probe import RESERVED_ARTIFACTS

        unknown = sorted(set(config.probe.artifacts) - set(config.artifacts))
        if unknown:
            raise ConfigError(f"{path}: probe.artifacts {unknown} are not among the assignment's artifacts "
                              f"{list(config.artifacts)}")
        clash = sorted(set(config.artifacts) & set(RESERVED_ARTIFACTS))
        if clash:
            raise ConfigError(f"{path}: artifacts {clash} are names the probe writes; call them otherwise")
    return config


@dataclass(frozen=True)
class ResourcePath:
    """`[resources.<name>]` of dlgrade.toml: the folder a course uses for a declared resource."""

    path: Path  # relative to the course root


@dataclass(frozen=True)
class Course:
    """The course root (nbgrader's course directory) and the paths dlgrade derives from it."""

    root: Path
    settings_root: Path | None = None  # where dlgrade.toml is read (resources, ...); default: root

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
        """Assignments that have a source folder with an assignment.toml, in course order (`position`, name)."""
        if not self.solutions.is_dir():
            return []
        found = [p.name for p in self.solutions.iterdir() if (p / CONFIG_FILE).is_file()]
        return sorted(found, key=lambda name: (self.config(name).position, name))

    def exercise_dir(self, assignment: str) -> Path:
        """solutions/<assignment>/: the notebook, its released helper files, examples.py and graders/."""
        return self.solutions / assignment

    def resources(self, config: AssignmentConfig, *, log=None):
        """The assignment's declared resources resolved on this host (built where needed): a ResourceSet."""
        from autograder.resources import resolve_resources

        return resolve_resources(config.resources, exercise_dir=self.exercise_dir(config.name),
                                 course_root=self.settings_dir, configured=configured_resources(self.settings_dir),
                                 log=log)

    def students(self, assignment: str) -> list[str]:
        """Students with a submission folder for `assignment`, sorted."""
        if not self.submitted.is_dir():
            return []
        return sorted(p.name for p in self.submitted.iterdir() if (p / assignment).is_dir())

    def config(self, assignment: str) -> AssignmentConfig:
        """`solutions/<assignment>/assignment.toml`, typed: a wrong or unknown key fails here, naming it."""
        return _config(self.solutions / assignment / CONFIG_FILE, assignment, self)


@functools.lru_cache(maxsize=64)
def _cached_config(path: Path, name: str, mtime_ns: int) -> AssignmentConfig:
    return load_assignment(path, name)


def _config(path: Path, assignment: str, course: Course) -> AssignmentConfig:
    if not path.is_file():
        known = ", ".join(sorted(p.parent.name for p in course.solutions.glob(f"*/{CONFIG_FILE}")))
        raise ConfigError(f"no assignment {assignment!r}: {path} does not exist (assignments: {known or 'none'})")
    return _cached_config(path, assignment, path.stat().st_mtime_ns)


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

    Its settings (dlgrade.toml: resources, late policy, ...) stay those of `source`, so validating or benchmarking in
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


def course_section(settings_dir: Path, section: str, cls: type):
    """`[section]` of `<settings_dir>/dlgrade.toml` as a `cls`, every value checked (defaults when absent)."""
    path = Path(settings_dir) / SETTINGS_FILE
    return typed.load(cls, typed.read_toml(path).get(section, {}), file=path, key=section)


def configured_resources(settings_dir: Path) -> dict[str, Path]:
    """`[resources.<name>] path = "DIR"` of the course's dlgrade.toml: name -> folder (relative to the course)."""
    path = Path(settings_dir) / SETTINGS_FILE
    raw = typed.read_toml(path).get("resources", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [resources] must hold tables, e.g. [resources.model] with path = \"DIR\"")
    found = {}
    for name, table in raw.items():
        entry = typed.load(ResourcePath, table, file=path, key=f"resources.{name}")
        found[name] = entry.path if entry.path.is_absolute() else Path(settings_dir) / entry.path
    return found
