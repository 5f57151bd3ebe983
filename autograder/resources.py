"""Resources an assignment declares (`[[resources]]` in assignment.toml): folders its notebook and graders read,
resolved once per batch and mounted read-only.

A resource is a folder the exercise needs beyond its released files: a pretrained model today, a data set or
another model tomorrow. Its declaration names the environment variable through which the notebook and the graders
find it and, optionally, a builder script in the exercise's folder. Which folder is used, first match wins:

1. the instructor's environment: `<env>=DIR dlgrade grade ...`;
2. the course's dlgrade.toml: `[resources.<name>]` with `path = "DIR"` (relative to the course root);
3. the builder's output, built once into `<course root>/.dlgrade/resources/<name>/` with
   `python <build> build DIR` and rebuilt when the builder or one of its declared `inputs` changes.

A folder from 1 or 2 is checked with `python <build> check DIR` (exit 0, or a reason on stderr) where a builder is
declared. The notebook's sandbox sees the folder at `/opt/dlgrade/resources/<name>`, the graders at its own path;
the variable `<env>` holds the path each of them sees. Grading, `dlgrade check`, Slurm tasks and validation all
resolve resources here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import ConfigError
from autograder.sandbox import Mount

MOUNT_ROOT = Path("/opt/dlgrade/resources")  # where a sandbox sees the resources
CACHE_DIR = Path(".dlgrade") / "resources"  # below the course root: built resources
STAMP_FILE = ".dlgrade-resource.json"  # in a built resource: the digest of what built it
BUILD_SECONDS = 1800  # a builder that trains or converts a model may take minutes


@dataclass(frozen=True)
class ResourceConfig:
    """One `[[resources]]` entry of assignment.toml."""

    name: str  # identifier: the cache folder, the mount point and the dlgrade.toml section are named after it
    env: str  # environment variable holding the folder's path, in the notebook's sandbox and in the graders
    build: str = ""  # builder script in the exercise's folder: `python SCRIPT build DIR`, `python SCRIPT check DIR`
    inputs: tuple[str, ...] = ()  # files beside the builder that it reads: a change to one rebuilds the resource


@dataclass(frozen=True)
class Resource:
    """A declared resource resolved to a folder on this host."""

    name: str
    env: str
    path: Path  # on the host
    origin: str  # where the folder came from, for messages: "built by ...", "$VAR", "dlgrade.toml [resources.x]"

    @property
    def inside(self) -> Path:
        """Where a notebook's sandbox sees it."""
        return MOUNT_ROOT / self.name


@dataclass(frozen=True)
class ResourceSet:
    """What a sandbox and the graders get from an assignment's resources: mounts and variables."""

    resources: tuple[Resource, ...] = ()

    def mounts(self) -> tuple[Mount, ...]:
        return tuple(Mount(r.path, r.inside) for r in self.resources)

    def kernel_env(self, *, isolated: bool) -> dict[str, str]:
        return {r.env: str(r.inside if isolated else r.path) for r in self.resources}

    def grader_env(self) -> dict[str, str]:
        return {r.env: str(r.path) for r in self.resources}

    def host_paths(self) -> tuple[Path, ...]:
        return tuple(r.path for r in self.resources)


def resolve_resources(declared: Sequence[ResourceConfig], *, exercise_dir: Path, course_root: Path,
                      configured: Mapping[str, Path], environ: Mapping[str, str] | None = None,
                      log=None) -> ResourceSet:
    """Each declared resource as a folder on this host (see the module docstring), built where needed.

    `configured` maps names to the `path` of dlgrade.toml's `[resources.<name>]`; `log` (a callable taking a line)
    hears about builds, which may take a while."""
    environ = os.environ if environ is None else environ
    found = []
    for item in declared:
        builder = (exercise_dir / item.build).resolve() if item.build else None  # shared builders: one cache
        if builder is not None and not builder.is_file():
            raise ConfigError(f"{exercise_dir / 'assignment.toml'}: resources {item.name!r}: the builder "
                              f"{builder} does not exist")
        if environ.get(item.env):
            path, origin = Path(environ[item.env]).expanduser().resolve(), f"the environment variable {item.env}"
        elif item.name in configured:
            path, origin = Path(configured[item.name]).resolve(), f"dlgrade.toml [resources.{item.name}]"
        elif builder is not None:
            path = build_resource(item, builder=builder, cache=course_root / CACHE_DIR, log=log)
            found.append(Resource(item.name, item.env, path, f"built by {builder.name}"))
            continue
        else:
            raise ConfigError(f"the assignment in {exercise_dir} needs the resource {item.name!r}: set {item.env}=DIR "
                              f"or [resources.{item.name}] path = \"DIR\" in the course's dlgrade.toml")
        if not path.is_dir():
            raise ConfigError(f"the resource {item.name!r} from {origin} is not a folder: {path}")
        if builder is not None:
            _check(builder, path, origin=origin)
        found.append(Resource(item.name, item.env, path, origin))
    return ResourceSet(tuple(found))


def build_resource(item: ResourceConfig, *, builder: Path, cache: Path, log=None) -> Path:
    """`cache/<name>`, built by `builder` unless it was built by the same builder and files already.

    A lock serialises builders of the same resource (parallel batches, Slurm tasks on a shared course)."""
    target = cache / item.name
    digest = _builder_digest(builder, item.inputs)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{item.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp(target) == digest:
            return target
        if log:
            log(f"building the resource {item.name!r} with {builder} (once; cached in {target})")
        staging = cache / f".{item.name}-building"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _run_builder(builder, "build", staging)
            if not staging.is_dir():
                raise ConfigError(f"{builder} build {staging} made no folder")
            (staging / STAMP_FILE).write_text(json.dumps({"builder": str(builder), "sha256": digest}) + "\n")
            _readable_by_all(staging)  # the sandboxes that mount it run as other uids
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _builder_digest(builder: Path, inputs: Sequence[str]) -> str:
    """What a built resource depends on: the builder and the inputs it declares (files beside it)."""
    digest = hashlib.sha256()
    for path in [builder, *(builder.parent / name for name in inputs)]:
        if not path.is_file():
            raise ConfigError(f"the resource builder {builder} declares the input {path.name}, which does not exist")
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _stamp(target: Path) -> str | None:
    try:
        return json.loads((target / STAMP_FILE).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def _run_builder(builder: Path, command: str, folder: Path) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run([sys.executable, builder.name, command, str(folder)], cwd=builder.parent,
                              capture_output=True, text=True, timeout=BUILD_SECONDS)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{builder} {command} {folder} took more than {BUILD_SECONDS} s; it was stopped") from None
    if command == "build" and done.returncode != 0:
        raise ConfigError(f"{builder} build failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done


def _check(builder: Path, path: Path, *, origin: str) -> None:
    done = _run_builder(builder, "check", path)
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise ConfigError(f"the folder {path} (from {origin}) is not usable: {reason}")


def _readable_by_all(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def describe(course, assignments: Sequence[str], *, log=None) -> list[dict[str, str]]:
    """One row per declared resource of `assignments` (of `course`): the assignment, name, env, path, origin."""
    rows = []
    for assignment in assignments:
        config = course.config(assignment)
        for resource in course.resources(config, log=log).resources:
            rows.append({"assignment": assignment, "name": resource.name, "env": resource.env,
                         "path": str(resource.path), "origin": resource.origin})
    return rows
