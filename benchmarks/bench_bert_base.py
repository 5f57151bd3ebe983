"""Benchmark: the bert_finetune reference graded at bert-base-cased's real size, locally and through Slurm.

    .venv/bin/python benchmarks/bench_bert_base.py [--executor local|slurm ...] [--checkpoint DIR]

Builds a checkpoint with bert-base-cased's exact configuration and random weights (`bert_checkpoint.py
build-base`, into .dlgrade/bench-bert-base/) unless `--checkpoint` names one (e.g. the pretrained MiniLM, as
benchmarks/gpu_check.sh does), times loading it with keras-hub in a fresh process, then grades the reference with
`autograder.pipeline.grade` on a throw-away course copy whose dlgrade.toml says `[resources.bert] path = ...`: the
sandbox, its mounts, the limits of assignment.toml and the hidden graders, as `dlgrade grade` runs them. Without a
GPU the bert-base-cased profile trains 4 steps (the notebook's SETTINGS), so this measures everything but
training at real size: loading, saving the 1.1 GB classifier, predicting, and the limits.

Printed per executor: seconds of the notebook and of the whole grading, the kernel sandbox's peak memory (from
dlgrade.log), the saved classifier's size, the score, each epoch's training seconds and validation accuracy, and
whether the assignment's limits held. `--executor slurm` needs the one-node cluster (`make slurm`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "bert_finetune"
BUILDER = REPO / "solutions" / ASSIGNMENT / "bert_checkpoint.py"
DEFAULT_CHECKPOINT = REPO / ".dlgrade" / "bench-bert-base"
LOGS = REPO / ".dlgrade" / "bench-bert-base-logs"  # each executor's dlgrade.log of the graded reference
ARTIFACT = "bert_classifier.keras"
PEAK = re.compile(r"sandbox \((?:warm|cold) start\): exit -?\d+, [\d.]+ s, peak (\d+) MiB")
EPOCH = re.compile(r"(\d+)/\d+ - (\d+)s - .*?val_accuracy: ([\d.]+)")  # Keras' verbose=2 line per epoch
SETTINGS = re.compile(r"settings (\{.*\})")
LOAD_PROBE = """
import sys, time
start = time.perf_counter()
import keras_hub
imported = time.perf_counter()
classifier = keras_hub.models.BertTextClassifier.from_preset(sys.argv[1], num_classes=2)
print(imported - start, time.perf_counter() - imported, classifier.count_params())
"""


@dataclass(frozen=True)
class Graded:
    executor: str
    score: float
    max_score: float
    status: str
    reason: str
    notebook_seconds: float
    grading_seconds: float
    wall_seconds: float
    peak_mib: int
    artifact_bytes: int
    settings: str
    epochs: tuple[tuple[int, int, float], ...]  # (epoch's steps, seconds, validation accuracy)
    checks: tuple[str, ...]  # "name: score/max status"


def build_checkpoint(target: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(BUILDER), "build-base", str(target)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def load_seconds(checkpoint: Path) -> tuple[float, float, int]:
    """(import keras_hub, from_preset) seconds and the parameter count, in a fresh process as a kernel pays them."""
    run = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(checkpoint)], capture_output=True, text=True,
                         check=True)
    imported, loaded, params = run.stdout.split()
    return float(imported), float(loaded), int(params)


def course_with_checkpoint(root: Path, checkpoint: Path, *, executor: str):
    """A throw-away copy of the course with only bert_finetune, its dlgrade.toml naming `checkpoint`, the
    reference submitted as the student "reference"."""
    from autograder.course import Course, copy_course
    from autograder.notebooks import generate_release

    copy_course(Course(REPO), root, (ASSIGNMENT,))
    settings = f'[resources.bert]\npath = "{checkpoint}"\n'
    if executor == "slurm":  # the test cluster has no GPUs: `--gres=gpu:0` keeps device = "gpu" off a GPU request
        settings += "\n[slurm]\npoll_seconds = 1\ngpus_per_task = 0\n"
    (root / "dlgrade.toml").write_text(settings)
    course = Course(root)  # its own dlgrade.toml, not the original's
    generate_release(course, ASSIGNMENT)
    folder = course.submitted / "reference" / ASSIGNMENT
    folder.mkdir(parents=True)
    name = course.config(ASSIGNMENT).notebook_name
    shutil.copy2(course.solutions / ASSIGNMENT / name, folder / name)
    return course


def grade_reference(checkpoint: Path, executor: str) -> Graded:
    import nbformat

    from autograder.pipeline import grade
    from autograder.slurm import SlurmExecutor, load_settings

    with tempfile.TemporaryDirectory(prefix="dlgrade-bert-base-") as tmp:
        course = course_with_checkpoint(Path(tmp), checkpoint, executor=executor)
        chosen = SlurmExecutor(load_settings(course.root)) if executor == "slurm" else None
        start = time.perf_counter()
        result = grade(course=course, assignment=ASSIGNMENT, jobs=1, executor=chosen).results[0]
        wall = time.perf_counter() - start
        out = course.autograded / "reference" / ASSIGNMENT
        log = (out / "dlgrade.log").read_text()
        shutil.copy2(out / "dlgrade.log", LOGS / f"{executor}-dlgrade.log")  # kept: the course copy is not
        artifact = out / "artifacts" / ARTIFACT
        executed = nbformat.read(out / course.config(ASSIGNMENT).notebook_name, as_version=4)
        text = "\n".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                         for output in cell.get("outputs", ()))
        settings = SETTINGS.search(text)
        return Graded(executor=executor, score=result.score, max_score=result.max_score, status=result.status,
                      reason=result.reason, notebook_seconds=result.execution_seconds,
                      grading_seconds=result.grading_seconds, wall_seconds=wall,
                      peak_mib=max((int(found) for found in PEAK.findall(log)), default=0),
                      artifact_bytes=artifact.stat().st_size if artifact.is_file() else 0,
                      settings=settings.group(1) if settings else "?",
                      epochs=tuple((int(s), int(t), float(a)) for s, t, a in EPOCH.findall(text)),
                      checks=tuple(f"{c.name}: {c.score:g}/{c.max_score:g} {c.status}"
                                   + (f" ({c.output.splitlines()[0][:110]})" if c.status != "passed" and c.output
                                      else "") for c in result.tests))


def seconds_to_target(graded: Graded) -> str:
    """Training seconds until the first epoch whose validation accuracy reached the profile's target."""
    found = re.search(r"'target': ([\d.]+)", graded.settings)
    if not found:
        return "?"
    elapsed = 0
    for _, seconds, accuracy in graded.epochs:
        elapsed += seconds
        if accuracy >= float(found.group(1)):
            return f"{elapsed} s"
    return f"not reached (target {found.group(1)})"


def report(graded: Graded, limits) -> str:
    epochs = ", ".join(f"{steps} steps {seconds} s val_accuracy {accuracy:.3f}"
                       for steps, seconds, accuracy in graded.epochs) or "none printed"
    held = (graded.status == "graded" and graded.peak_mib * 2**20 < limits.memory_bytes
            and 0 < graded.artifact_bytes <= limits.max_file_bytes)
    return "\n".join([
        f"[{graded.executor}] score {graded.score:g}/{graded.max_score:g}, status {graded.status}"
        + (f" ({graded.reason})" if graded.reason else ""),
        f"  notebook {graded.notebook_seconds:.1f} s, grading {graded.grading_seconds:.1f} s, "
        f"whole grade() call {graded.wall_seconds:.1f} s",
        f"  kernel sandbox peak {graded.peak_mib} MiB of {limits.memory_bytes / 2**20:.0f} MiB; saved "
        f"{ARTIFACT} {graded.artifact_bytes / 1e9:.2f} GB ({graded.artifact_bytes / 2**30:.2f} GiB) of "
        f"{limits.max_file_bytes / 2**30:.0f} GiB per file, {limits.disk_bytes / 2**30:.0f} GiB disk",
        f"  limits held: {'yes' if held else 'NO'}",
        f"  settings {graded.settings}; epochs: {epochs}; training time to target: {seconds_to_target(graded)}",
        *(f"  check {check}" for check in graded.checks),
        f"  log: {LOGS / (graded.executor + '-dlgrade.log')}",
    ])


def main() -> None:
    sys.path.insert(0, str(REPO))
    from autograder.course import Course

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", action="append", choices=("local", "slurm"), help="default: both")
    parser.add_argument("--checkpoint", type=Path, help="grade on this checkpoint instead of building one")
    args = parser.parse_args()
    executors = args.executor or ["local", "slurm"]
    if "slurm" in executors and subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        raise SystemExit("Slurm does not answer: `make slurm` starts the one-node cluster (or --executor local)")

    checkpoint = args.checkpoint.resolve() if args.checkpoint else DEFAULT_CHECKPOINT
    if args.checkpoint is None:
        print(f"checkpoint build: {build_checkpoint(checkpoint):.1f} s", flush=True)
    size = sum(file.stat().st_size for file in checkpoint.iterdir() if file.is_file())
    config = json.loads((checkpoint / "config.json").read_text())
    imported, loaded, params = load_seconds(checkpoint)
    print(f"checkpoint {checkpoint}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
          f"vocabulary {config['vocab_size']}, {params / 1e6:.1f} M parameters (classifier), {size / 1e6:.0f} MB",
          flush=True)
    print(f"load in a fresh process: import keras_hub {imported:.1f} s, from_preset {loaded:.1f} s", flush=True)
    limits = Course(REPO).config(ASSIGNMENT).limits
    LOGS.mkdir(parents=True, exist_ok=True)
    for executor in executors:
        print(report(grade_reference(checkpoint, executor), limits), flush=True)


if __name__ == "__main__":
    main()
