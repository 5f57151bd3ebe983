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


def library_default(module: str, function: str, parameter: str):
    """The default of `parameter` of autograder.<module>.<function>: an option's default is the library's, read
    when the command runs (the library is imported then anyway; `dlgrade --help` stays quick)."""
    import importlib
    import inspect

    found = getattr(importlib.import_module(f"autograder.{module}"), function)
    return inspect.signature(found).parameters[parameter].default


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
      dlgrade validate lab1      # reference earns full marks, blank release zero
      dlgrade grade lab1         # grade submitted/<student>/lab1/
      dlgrade export -o grades.csv  # gradebook as CSV
    """


@main.command()
@click.argument("assignments", nargs=-1)
@course_dir_option
def generate(assignments: tuple[str, ...], course_dir: Path | None) -> None:
    """Build the student releases in assignments/ from solutions/ (all assignments by default).

    Example: dlgrade generate lab1
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

    Example: dlgrade validate lab1
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
@click.option("--jobs", "-j", type=click.IntRange(0, 64), default=lambda: library_default("pipeline", "grade", "jobs"),
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
      dlgrade grade lab1 --student alice --jobs 2
      dlgrade grade lab1 --executor slurm    # one Slurm array task per submission
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
@click.option("--bundle", "bundle_lms", type=click.Choice(["moodle", "canvas", "ilias"]), default=None,
              help="Also pack the pages for this LMS's bulk feedback upload (-o FILE.zip) and write its grade "
                   "import file beside the zip, late penalty applied.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The feedback zip to write (with --bundle).")
@click.option("--grade-column", default=None,
              help="With --bundle canvas: the heading of the assignment's column, as Canvas names it, e.g. "
                   "'Lab1 (12345)'. Default: the assignment's name.")
@course_dir_option
@json_option
def feedback(assignment: str, bundle_lms: str | None, output: Path | None, grade_column: str | None,
             course_dir: Path | None, as_json: bool) -> None:
    """Write an HTML feedback page per graded student: feedback/<student>/ASSIGNMENT/<notebook>.html.

    Each page shows the score and status, every check with its points and message (layer tables, measured
    values against their targets), the late penalty of the course's policy ([late] in dlgrade.toml), the
    student's training curves (history.json) and images (plots it saved); never hidden test code or data.
    nbgrader's receipts (timestamp.txt, submission_secret.txt) are copied beside each page, so that
    `nbgrader release_feedback` hands the pages out through the exchange.

    With --bundle, the pages of the students collected from that LMS (dlgrade collect) are packed as its bulk
    feedback upload wants them, and its grade file is written beside: FILE-grades.csv (Moodle's grading
    worksheet, Canvas's gradebook import) or status.xlsx and status.csv (ILIAS).

    \b
    Examples:
      dlgrade feedback lab1
      dlgrade feedback lab1 --bundle moodle -o moodle-feedback.zip
    """
    from autograder.feedback import write_feedback
    from autograder.pipeline import load_results

    if bundle_lms and output is None:
        raise click.UsageError("--bundle needs -o FILE.zip")
    course = _course(course_dir)
    config = course.config(assignment)
    written = write_feedback(course, load_results(course, assignment), config.notebook_name)
    if not bundle_lms:
        if as_json:
            click.echo(json.dumps([str(path) for path in written], indent=2))
        else:
            click.echo(f"wrote {len(written)} feedback page(s) to {course.feedback}")
        return
    from dataclasses import asdict

    from autograder.bundle import write_bundle

    report = write_bundle(course=course, assignment=assignment, lms=bundle_lms, output=output,
                          grade_column=grade_column)
    if as_json:
        click.echo(json.dumps({"pages": [str(path) for path in written], **asdict(report)}, indent=2, default=str))
        return
    click.echo(_table(["student", "action", "score", "in the zip / reason"],
                      [[row.student, row.action, f"{row.score:g}/{row.max_score:g}" if row.action == "packed" else "",
                        row.entry or row.reason] for row in report.rows]))
    click.echo(f"wrote {report.count('packed')} page(s) to {report.archive}; grades: "
               f"{', '.join(str(path) for path in report.grades)}")


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

    Example: dlgrade check lab1.ipynb
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
@click.argument("assignments", nargs=-1)
@course_dir_option
@json_option
def resources(assignments: tuple[str, ...], course_dir: Path | None, as_json: bool) -> None:
    """Show the folders the assignments' declared resources resolve to, building them where needed.

    An assignment declares what it needs mounted in its assignment.toml ([[resources]]: name, env, build); each
    resolves to $<env>, else [resources.<name>] path in the course's dlgrade.toml, else what its builder script
    builds into .dlgrade/resources/<name> (see README, "Resources"). Default: every assignment.

    Example: MODEL_DIR=~/models/pretrained dlgrade resources lab1   # for a resource with env = "MODEL_DIR"
    """
    from autograder.resources import describe

    course = _course(course_dir)
    rows = describe(course, assignments or tuple(course.assignments()),
                    log=lambda line: click.echo(f"==> {line}", err=True))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no assignment declares a resource")
    else:
        click.echo("\n".join(f"{r['assignment']}: {r['name']} (${r['env']}) = {r['path']}  [{r['origin']}]"
                              for r in rows))


# ------------------------------------------------------------- the course's round trip through an LMS (issue 13)

LMS_CHOICE = click.Choice(["moodle", "canvas", "ilias"], case_sensitive=False)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table; every cell stripped of control characters (names and file names come from a zip)."""
    cells = [[" ".join(plain_text(str(cell)).split()) for cell in row] for row in [headers, *rows]]
    widths = [min(max(len(row[i]) for row in cells), 48) for i in range(len(headers) - 1)]
    return "\n".join("  ".join([*(row[i][:48].ljust(widths[i]) for i in range(len(widths))), row[-1]])
                     for row in cells)


@main.group()
def roster() -> None:
    """The course's students, from the LMS's participant list (each subcommand takes --course-dir).

    Example: dlgrade roster import participants.csv --lms moodle
    """


@roster.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lms", required=True, type=LMS_CHOICE,
              help="Whose export FILE is: Moodle's participants or grades export, Canvas's gradebook export, "
                   "ILIAS's member export or status file (CSV or XLSX).")
@course_dir_option
@json_option
def roster_import(file: Path, lms: str, course_dir: Path | None, as_json: bool) -> None:
    """Import the participant list FILE into nbgrader's gradebook students (names, e-mail, LMS user id).

    Idempotent: importing it again changes nothing and says so. Each row is reported: added, updated,
    unchanged or skipped (with the reason).

    Example: dlgrade roster import participants.csv --lms moodle
    """
    from dataclasses import asdict

    from autograder.roster import import_roster

    report = import_roster(course=_course(course_dir), path=file, lms=lms.lower())
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    click.echo(_table(["line", "student", "action", "name", "LMS user id", "note"],
                      [[str(r.line), r.student, r.action, f"{r.first_name} {r.last_name}".strip(), r.lms_user_id,
                        r.reason] for r in report.rows]))
    click.echo(f"{report.count('added')} added, {report.count('updated')} updated, {report.count('unchanged')} "
               f"unchanged, {report.count('skipped')} skipped")


@main.command()
@click.argument("assignment")
@click.argument("archive", metavar="ZIP", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lms", required=True, type=LMS_CHOICE, help="The LMS whose 'download all submissions' ZIP is.")
@click.option("--force", is_flag=True, help="Replace submissions collected before.")
@click.option("--timezone", default="UTC", show_default=True,
              help="The LMS server's time zone (IANA name), in which ILIAS writes submission times into its zip.")
@course_dir_option
@json_option
def collect(assignment: str, archive: Path, lms: str, force: bool, timezone: str, course_dir: Path | None,
            as_json: bool) -> None:
    """Collect the LMS's download-all ZIP into submitted/<student>/ASSIGNMENT/ (and timestamp.txt where the LMS
    writes submission times), matching file names to the roster by the identifiers the LMS writes.

    Every member of the zip is reported with what became of it: collected, renamed, superseded (an older or
    other file of the same student), ignored (not a notebook), unmatched, not on roster, ambiguous, kept
    (collected before; --force replaces). An unsafe zip (.. or absolute names, links, a decompression bomb,
    names that are not UTF-8, huge members) is refused whole, and a collect that fails leaves submitted/ as it
    was.

    Example: dlgrade collect lab1 submissions.zip --lms canvas
    """
    from dataclasses import asdict

    from autograder.collect import collect as collect_archive

    report = collect_archive(course=_course(course_dir), assignment=assignment, archive=archive, lms=lms.lower(),
                             force=force, timezone=timezone)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    click.echo(_table(["member", "student", "action", "reason"],
                      [[r.member, r.student, r.action + (" (late)" if r.late else ""), r.reason]
                       for r in report.rows]))
    counts = ", ".join(f"{report.count(action)} {action}" for action in
                       ("collected", "renamed", "superseded", "ignored", "unmatched", "not on roster", "ambiguous",
                        "kept") if report.count(action))
    click.echo(f"{len(report.collected)} submission(s) collected into submitted/ ({counts or 'empty zip'})")


@main.command()
@click.argument("assignment")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Flag a pair when this share of one side's solution code is found in the other.")
@click.option("--min-tokens", type=click.IntRange(1), default=40, show_default=True,
              help="...and the copied code is at least this many tokens long.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML report. Default: similarity/ASSIGNMENT.html in the course root (the course report "
                   "links it).")
@course_dir_option
@json_option
def similarity(assignment: str, threshold: float, min_tokens: int, output: Path | None, course_dir: Path | None,
               as_json: bool) -> None:
    """Find copied work: compare the solution code of every pair of ASSIGNMENT's submissions (winnowing
    fingerprints, copydetect; the release's own code never counts) and write an HTML report of the pairs above
    the threshold, the matching regions side by side. Changes no grade.

    Example: dlgrade similarity lab1 --threshold 0.6
    """
    from autograder.similarity import write_similarity

    report = write_similarity(course=_course(course_dir), assignment=assignment, threshold=threshold,
                              min_tokens=min_tokens, output=output)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(_table(["first", "second", "of first", "of second", "copied tokens"],
                      [[p.first, p.second, f"{p.first_share:.0%}", f"{p.second_share:.0%}", str(p.copied_tokens)]
                       for p in report.pairs]))
    click.echo(f"{len(report.pairs)} pair(s) above {threshold:.0%} among {len(report.students)} submission(s); "
               f"report: {report.report}")
