"""The `dlgrade` command: each subcommand forwards its options to one library function and prints.

Imports stay inside the commands so that `dlgrade --help` answers without loading TensorFlow or nbgrader.
Whatever a submission chose (student ids, reasons, messages) goes through `text.plain_text` before it is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from autograder.errors import DlgradeError
from autograder.text import plain_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

course_dir_option = click.option(
    "--course-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Course root (the folder with nbgrader_config.py). Default: search upwards from the current folder.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")


def _course(course_dir: Path | None):
    from autograder.course import find_course, open_course

    return open_course(course_dir) if course_dir else find_course()


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DlgradeError as exc:
            click.secho(f"error: {plain_text(str(exc))}", fg="red", err=True)  # may quote a submission
            sys.exit(EXIT_FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dlgrade")
def main() -> None:
    """Grade Keras notebook exercises in a sandbox, with hidden pytest graders and nbgrader's gradebook.

    \b
    Typical session, from the course root:
      dlgrade generate              # solutions/ -> assignments/ (student releases)
      dlgrade validate seq2seq      # reference earns full marks, blank release zero
      dlgrade grade seq2seq         # grade submitted/<student>/seq2seq/
      dlgrade export -o grades.csv  # gradebook as CSV
    """


@main.command()
@click.argument("assignments", nargs=-1)
@course_dir_option
def generate(assignments: tuple[str, ...], course_dir: Path | None) -> None:
    """Build the student releases in assignments/ from solutions/ (all assignments by default).

    Example: dlgrade generate seq2seq
    """
    from autograder.notebooks import generate_release

    course = _course(course_dir)
    for assignment in assignments or course.assignments():
        course.config(assignment)
        generate_release(course, assignment)
        click.echo(f"generated {course.releases / assignment}")


@main.command()
@click.argument("assignments", nargs=-1)
@course_dir_option
@click.option("--no-sandbox", is_flag=True, help="Run notebooks without bubblewrap (trusted code only).")
@json_option
def validate(assignments: tuple[str, ...], course_dir: Path | None, no_sandbox: bool, as_json: bool) -> None:
    """Prove each assignment's graders: the reference solution must earn full marks, the blank release zero.

    Example: dlgrade validate seq2seq
    """
    from autograder.pipeline import validate as validate_assignment

    course = _course(course_dir)
    outcome = []
    for assignment in assignments or course.assignments():
        click.echo(f"validating {assignment} (grades the reference and the blank release) ...", err=True)
        reference, blank = validate_assignment(course=course, assignment=assignment, isolated=not no_sandbox)
        outcome.append({"assignment": assignment, "reference": reference.score, "blank": blank.score,
                        "max_score": reference.max_score})
        if not as_json:
            click.echo(f"{assignment}: ok (reference {reference.score:g}/{reference.max_score:g}, "
                       f"blank {blank.score:g}/{blank.max_score:g})")
    if as_json:
        click.echo(json.dumps(outcome, indent=2))


@main.command()
@click.argument("assignment")
@click.option("--student", "students", multiple=True, help="Grade only this student (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(0, 64), default=0,
              help="Submissions graded at once. Default (0): one per CPU core, as far as memory allows.")
@click.option("--force", is_flag=True, help="Grade again submissions that already have results.")
@click.option("--time-limit", type=click.FloatRange(1), default=None,
              help="Wall-time limit per notebook in seconds (default: the assignment's, see assignment.toml).")
@click.option("--no-sandbox", is_flag=True,
              help="Run student code WITHOUT bubblewrap isolation. Only for trusted code on a throw-away machine.")
@click.option("--executor", "executor_name", type=click.Choice(["local", "slurm"]), default="local",
              show_default=True,
              help="Where to grade: on this machine (--jobs at once), or on a Slurm cluster as one job array, a task "
                   "per submission, set up by [slurm] in the course's dlgrade.toml (see docs/slurm.md).")
@course_dir_option
@json_option
def grade(assignment: str, students: tuple[str, ...], jobs: int, force: bool, time_limit: float | None,
          no_sandbox: bool, executor_name: str,
          course_dir: Path | None, as_json: bool) -> None:
    """Grade the submissions in submitted/<student>/ASSIGNMENT/.

    Writes autograded/<student>/ASSIGNMENT/results.json and the scores into the gradebook. Exit code 0 when
    every submission was graded (a low score or a rejected notebook is a result, not a failure); 1 when grading
    itself failed for some (they are named, with the command that grades them again).

    \b
    Examples:
      dlgrade grade seq2seq --student alice --jobs 2
      dlgrade grade seq2seq --executor slurm    # one Slurm array task per submission
    """
    from autograder.pipeline import grade as grade_batch

    course = _course(course_dir)
    executor = None
    if executor_name == "slurm":
        from autograder.slurm import SlurmExecutor, load_settings

        def submitted(job_id: str, batch_dir: Path) -> None:
            click.echo(f"submitted Slurm job array {job_id}; task logs in {batch_dir / 'logs'}", err=True)

        executor = SlurmExecutor(load_settings(course.settings_dir), on_submit=submitted)
    if no_sandbox:
        click.secho("warning: --no-sandbox: student code runs unisolated, as you", fg="yellow", err=True)

    from tqdm import tqdm

    bar = tqdm(total=0, unit="submission", file=sys.stderr, dynamic_ncols=True, disable=None)

    def start(todo: list[str]) -> None:
        bar.reset(total=len(todo))
        bar.set_description(f"grading {assignment}")

    def progress(result) -> None:
        student = plain_text(result.student)
        bar.write(f"  {student}: {result.score:g}/{result.max_score:g} {result.status} "
                  f"({result.grading_seconds:.0f} s; log: autograded/{student}/{assignment}/dlgrade.log)",
                  file=sys.stderr)
        bar.update()

    try:
        report = grade_batch(course=course, assignment=assignment, students=students, jobs=jobs, force=force,
                             isolated=not no_sandbox, time_limit=time_limit, executor=executor, on_result=progress,
                             on_start=start)
    finally:
        bar.close()
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps(asdict(report), indent=2))
    else:
        click.echo(results_table(report.results))
        if report.skipped:
            click.echo(f"skipped (already graded; --force grades again): {', '.join(report.skipped)}")
        click.echo(f"{len(report.results)} graded in {report.seconds:.0f} s")
    if report.failed_on_our_side:
        failed = [plain_text(result.student) for result in report.failed_on_our_side]
        options = " ".join(f"--student {student}" for student in failed)
        click.secho(f"error: grading failed on our side for {len(failed)} submission(s), recorded as 0 for now "
                    f"(reasons and logs above); grade them again with: dlgrade grade {assignment} {options} --force",
                    fg="red", err=True)
        sys.exit(1)


def results_table(results) -> str:
    """A plain table of student, score, status and reason, a line each: no control character of a reason (the
    student's exception message) reaches the terminal, and no newline breaks a row."""
    lines = [f"{'student':<16} {'score':>9}  {'status':<9} reason"]
    for r in results:
        reason = " ".join(plain_text(r.reason).split())
        reason = reason if len(reason) <= 90 else reason[:87] + "..."
        lines.append(f"{plain_text(r.student):<16} {f'{r.score:g}/{r.max_score:g}':>9}  {r.status:<9} {reason}")
    return "\n".join(lines)


@main.command()
@click.argument("assignment")
@course_dir_option
@json_option
def feedback(assignment: str, course_dir: Path | None, as_json: bool) -> None:
    """Write an HTML feedback page per graded student: feedback/<student>/ASSIGNMENT/<notebook>.html.

    Each page shows the score and status, every check with its points and message (layer tables, measured
    values against their targets), the late penalty of the course's policy ([late] in dlgrade.toml), the
    student's training curves (history.json) and images (an attention heatmap); never hidden test code or data.

    Example: dlgrade feedback seq2seq
    """
    from autograder.feedback import write_feedback
    from autograder.pipeline import load_results

    course = _course(course_dir)
    config = course.config(assignment)
    written = write_feedback(course, load_results(course, assignment), config.notebook_name)
    if as_json:
        click.echo(json.dumps([str(path) for path in written], indent=2))
    else:
        click.echo(f"wrote {len(written)} feedback page(s) to {course.feedback}")


EXPORT_FORMATS = ("csv", "wide-csv", "xlsx", "canvas", "moodle", "gradescope")  # autograder.export.FORMATS


@main.command()
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True,
              help="csv: one row per student and assignment; wide-csv / xlsx: one row per student; canvas / "
                   "moodle: their gradebook import CSV; gradescope: a results.json per submission (-o FOLDER).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write here (a file; a folder for gradescope) instead of standard output.")
@course_dir_option
def export(fmt: str, output: Path | None, course_dir: Path | None) -> None:
    """Export the gradebook, with the late policy ([late] in dlgrade.toml) applied.

    Scores are the gradebook's (autograded and hand-graded points) less the late penalty; the penalties are
    written into the gradebook too, so `nbgrader export` agrees.

    Example: dlgrade export --format canvas -o canvas.csv
    """
    from autograder.export import export as write_export

    text, count = write_export(_course(course_dir), fmt=fmt, output=output)
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {count} {'file' if fmt == 'gradescope' else 'row'}(s) to {output}", err=True)


@main.command()
@click.argument("assignments", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML report. Default: course_report.html in the course root.")
@course_dir_option
@json_option
def report(assignments: tuple[str, ...], output: Path | None, course_dir: Path | None, as_json: bool) -> None:
    """Write the course report (HTML with plots): score distribution per assignment, pass rate of each check,
    status counts and grading time per submission (all graded assignments by default).

    Example: dlgrade report -o report.html
    """
    from autograder.report import write_report

    course = _course(course_dir)
    target = output or course.root / "course_report.html"
    stats = write_report(course, target, assignments=assignments)
    if as_json:
        click.echo(json.dumps(stats.to_dict(), indent=2, default=str))
    else:
        click.echo(f"wrote {target} ({len(stats.submissions)} submissions)")


EXIT_CHECKS_FAILED = 3


@main.command()
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-sandbox", is_flag=True, help="Run without bubblewrap even where it works.")
@click.option("--time-limit", type=click.FloatRange(1), default=None,
              help="Wall-time limit in seconds (default: the assignment's, else 600).")
@course_dir_option
@json_option
def check(notebook: Path, no_sandbox: bool, time_limit: float | None, course_dir: Path | None,
          as_json: bool) -> None:
    """Run your NOTEBOOK as grading will and report its public checks (the test cells you can see).

    Runs in the bubblewrap sandbox where it works; where bubblewrap is missing (a laptop) it runs unsandboxed,
    as you, and says so. Hidden checks are not run: passing the public ones does not promise their points.
    Exit code 0 when every public check passes, 3 when one fails or does not run. Inside a course (found above
    the notebook, or --course-dir) the assignment's limits and expected output files apply; elsewhere defaults.

    Example: dlgrade check seq2seq.ipynb
    """
    from dataclasses import asdict

    from autograder.check import check_notebook, format_report

    course = _course(course_dir) if course_dir else None
    result = check_notebook(notebook, course=course, sandbox=False if no_sandbox else None, time_limit=time_limit)
    for note in result.notes:
        click.secho(f"note: {plain_text(note)}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps({**asdict(result), "passed": result.passed}, indent=2))
    else:
        click.echo(plain_text(format_report(result)))
    if not result.passed:
        sys.exit(EXIT_CHECKS_FAILED)


@main.command()
@click.option("--build-tiny", "build_tiny", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Build the tiny test checkpoint (Hugging Face format) into this folder instead.")
@course_dir_option
@json_option
def checkpoint(build_tiny: Path | None, course_dir: Path | None, as_json: bool) -> None:
    """Show which BERT checkpoint the course fine-tunes (bert_finetune, hub_exploration), building the tiny
    default on first use.

    The checkpoint is a Hugging Face-format folder (config.json, model.safetensors, vocab.txt), taken from
    $DLGRADE_CHECKPOINT, else [checkpoint] path in the course's dlgrade.toml, else the tiny test checkpoint in
    .dlgrade/checkpoints/tiny-bert.

    Example: DLGRADE_CHECKPOINT=~/models/bert-base-cased dlgrade checkpoint
    """
    from autograder import checkpoints

    if build_tiny is not None:
        from autograder.textdata import load_reviews

        found = checkpoints.build_tiny_bert(build_tiny, corpus=load_reviews().texts.tolist())
    else:
        found = checkpoints.resolve(_course(course_dir).root)
    config = json.loads((found.path / "config.json").read_text())
    summary = {"path": str(found.path), "profile": found.profile, "layers": config.get("num_hidden_layers"),
               "hidden_size": config.get("hidden_size"), "vocabulary_size": config.get("vocab_size")}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo("\n".join(f"{key}: {value}" for key, value in summary.items()))
