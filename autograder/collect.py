"""Collecting an LMS's "download all submissions" zip into nbgrader's layout:
`submitted/<student>/<assignment>/<notebook>` and, where the LMS writes submission times, `timestamp.txt`.

The anchor is nbgrader's own `zip_collect`: its `FileNameCollectorPlugin` parses each notebook's name (with each
LMS's pattern from `autograder.lms`), and like `zip_collect` a student's newer file replaces an older one and the
submission time goes to timestamp.txt. What `zip_collect` leaves to the instructor is decided here by a stated
rule, and every member of the zip is reported with what became of it:

1. A name that does not follow the LMS's scheme: "unmatched", not collected.
2. Owners are found by the LMS user id (Canvas, ILIAS); roster students without one (a list that had none) by
   their login (ILIAS) or by the name the LMS wrote; Moodle, whose participant id is per assignment, by name. An
   owner not on the roster (`dlgrade roster import`): "not on roster"; a name or login that fits two roster
   students: "ambiguous"; neither is collected.
3. Of a student's notebooks, the one named like the release (`<assignment>.ipynb`, once the LMS's suffix for a
   second file of the same name is removed) wins; among several such (or, when none is so named, among all),
   the newest by the LMS's submission time (ILIAS), else the LMS's latest copy (`-2` over `-1` on Canvas,
   ` (2)` over the first on ILIAS). The others are "superseded". When that still leaves two, the student is
   "ambiguous" and not collected: nothing is guessed.
4. A notebook under another name is collected as `<assignment>.ipynb` ("renamed"); files that are not notebooks
   are "ignored".
5. A student already collected is "kept" unless `force`, which replaces the submission.

The zip is untrusted. Before anything is written, every member is checked: a name with `..`, an absolute or
drive name, a backslash, control characters or bytes that are not UTF-8; a symbolic link or other special file;
an encrypted member; a member larger than the limit, a compression ratio of a bomb, more members or more bytes
in all than the limits: the whole zip is refused, naming the member and the reason. Reading never trusts the
sizes in the zip's headers (zipfile stops at the declared size and checks the CRC). Everything is written into
a staging folder inside `submitted/` and moved into place student by student; if any step fails, the moves made
so far are undone, so a failed collect leaves `submitted/` as it was.
"""

from __future__ import annotations

import json
import shutil
import stat
import uuid
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from autograder.course import Course
from autograder.errors import ConfigError, DlgradeError
from autograder.late import TIMESTAMP_FILE
from autograder.lms import LmsEntry, LmsFormat, lms_format, name_key, parse_member, undecorated
from autograder.roster import RosterStudent, roster, safe_id

RECORDS_DIR = Path(".dlgrade") / "lms"  # per assignment: which LMS identity each collected student had
STAGING_PREFIX = ".dlgrade-collect-"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"  # nbgrader's Exchange.timestamp_format
_CHUNK = 2**20


class UnsafeArchive(DlgradeError):
    """The zip cannot be collected safely; nothing was written."""


class CollectFailed(DlgradeError):
    """Collecting failed part-way; submitted/ was restored to what it was."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What a submissions zip may hold. A notebook with outputs is rarely above a few MiB."""

    max_members: int = 20_000  # files and folders
    max_member_bytes: int = 64 * 2**20  # one member, uncompressed
    max_total_bytes: int = 2 * 2**30  # all members, uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed size of a member above ratio_from_bytes
    ratio_from_bytes: int = 2**20


@dataclass(frozen=True)
class CollectRow:
    """One member of the zip and what became of it."""

    member: str
    student: str  # "" when it belongs to nobody on the roster
    action: str  # collected, renamed, superseded, ignored, unmatched, not on roster, ambiguous, kept
    reason: str = ""
    late: bool = False


@dataclass(frozen=True)
class CollectReport:
    """What `collect` did with every member of the zip."""

    assignment: str
    lms: str
    rows: tuple[CollectRow, ...]
    collected: tuple[str, ...]  # students whose submission was written

    def count(self, action: str) -> int:
        return sum(row.action == action for row in self.rows)


@dataclass(frozen=True)
class LmsRecord:
    """A collected student's identity in the LMS, kept for the feedback bundle and the grade file."""

    student: str
    lms: str
    key: str
    name: str
    folder: str
    member: str
    filename: str
    late: bool = False
    login: str = ""
    file_id: str = ""


# ------------------------------------------------------------------------------------------- the untrusted zip

def _decoded_name(info: zipfile.ZipInfo) -> str:
    """The member's name as UTF-8. zipfile decodes names without the UTF-8 flag as CP437; many tools write UTF-8
    without setting the flag, so such a name is accepted when its bytes are valid UTF-8, refused otherwise."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.orig_filename.encode("cp437")
    if raw.isascii():
        return info.filename
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArchive(f"member {raw!r}: its name is not UTF-8; refusing to guess an encoding") from None


def _check_name(name: str) -> None:
    if any(ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in name):
        raise UnsafeArchive(f"member {name.encode('unicode_escape').decode()!r}: control characters in its name")
    if "\\" in name:
        raise UnsafeArchive(f"member {name!r}: a backslash in its name (a Windows path separator)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"member {name!r}: an absolute path")
    if ".." in PurePosixPath(name).parts:
        raise UnsafeArchive(f"member {name!r}: '..' leads outside the folder it is extracted to")


def inspect_archive(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[tuple[str, zipfile.ZipInfo]]:
    """(name, info) of every file member of the zip at `path`, after checking every member; the first unsafe
    member refuses the whole zip (`UnsafeArchive`, naming it and why)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchive(f"{path}: not a readable zip ({exc})") from None
    with archive:
        infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeArchive(f"{path}: {len(infos)} members, more than the limit of {limits.max_members}")
    files, seen, total = [], set(), 0
    for info in infos:
        name = _decoded_name(info)
        _check_name(name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"member {name!r}: a symbolic link")
        kind = stat.S_IFMT(mode)  # 0: the zip gives permissions only, as most tools write them
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive(f"member {name!r}: not a regular file (mode {oct(mode)})")
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"member {name!r}: encrypted")
        key = name.rstrip("/")
        if key in seen:
            raise UnsafeArchive(f"member {name!r}: twice in the zip; which one is meant?")
        seen.add(key)
        if info.is_dir():
            continue
        if info.file_size > limits.max_member_bytes:
            raise UnsafeArchive(f"member {name!r}: {info.file_size} bytes uncompressed, more than the limit of "
                                f"{limits.max_member_bytes}")
        if info.file_size > limits.ratio_from_bytes and (
                info.compress_size == 0 or info.file_size / info.compress_size > limits.max_ratio):
            raise UnsafeArchive(f"member {name!r}: compressed {info.compress_size} bytes expand to "
                                f"{info.file_size} (a decompression bomb)")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeArchive(f"{path}: more than {limits.max_total_bytes} bytes uncompressed in all")
        files.append((name, info))
    return files


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, read in chunks and never more than `limit` (the declared size was checked against it;
    zipfile stops at the declared size and checks the CRC)."""
    chunks, size = [], 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UnsafeArchive(f"member {info.filename!r}: more than {limit} bytes when read")
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:  # CRC, truncated data, bad method
        raise UnsafeArchive(f"member {info.filename!r}: cannot be read ({exc})") from None
    return b"".join(chunks)


# ------------------------------------------------------------------------------------------------- the rules

def _owner(fmt: LmsFormat, entry: LmsEntry, students: tuple[RosterStudent, ...]) -> tuple[str, str, str]:
    """(student id or "", action, reason): who on the roster `entry` belongs to (rule 2).

    By the LMS user id (Canvas, ILIAS); a roster student who has no LMS user id (imported from a list without
    one) by the login (ILIAS), else by the name the LMS wrote (accents, case and punctuation ignored, first-last
    or last-first). Moodle's participant id is per assignment and never on a roster: Moodle folders are matched
    by name. A student who has an LMS user id is matched by it alone, so a namesake is never taken for them.
    On a match, action is "" and reason says how, when not by id."""
    tries = []
    if fmt.match_by == "lms_user_id":
        tries.append((f"{fmt.title} user id {entry.key}", "", [s for s in students if s.lms_user_id == entry.key]))
    unkeyed = [s for s in students if not s.lms_user_id] if fmt.match_by == "lms_user_id" else list(students)
    if entry.login:
        tries.append((f"login {entry.login!r}", "matched by login",
                      [s for s in unkeyed if s.id == safe_id(entry.login)]))
    wanted = name_key(entry.name)
    tries.append((f"name {entry.name!r}", "matched by name" if fmt.match_by == "lms_user_id" else "",
                  [s for s in unkeyed if wanted and wanted in (name_key(s.first_name + s.last_name),
                                                               name_key(s.last_name + s.first_name))]))
    for how, note, found in tries:
        if len(found) == 1:
            return found[0].id, "", note
        if found:
            return "", "ambiguous", f"{how} fits {', '.join(s.id for s in found)}; not collected"
    return "", "not on roster", f"{tries[0][0]} is not in the gradebook (dlgrade roster import, then collect again)"


def _copy_number(fmt: LmsFormat, filename: str) -> int:
    """Which copy of a file name the LMS made: 0 for the first, n for "-n" (Canvas) or " (n)" (ILIAS)."""
    base = undecorated(fmt, filename)
    if base == filename:
        return 0
    digits = "".join(char for char in PurePosixPath(filename).stem[len(PurePosixPath(base).stem):] if char.isdigit())
    return int(digits or 0)


def _time(info: zipfile.ZipInfo) -> datetime:
    return datetime(*info.date_time)


def choose(fmt: LmsFormat, notebook: str, candidates: list[tuple[LmsEntry, zipfile.ZipInfo]]
           ) -> tuple[tuple[LmsEntry, zipfile.ZipInfo] | None, str]:
    """Rule 3: the notebook that counts among one student's, and why (None when two remain)."""
    exact = [c for c in candidates if undecorated(fmt, c[0].filename) == notebook]
    pool = exact or candidates
    if len(pool) == 1:
        return pool[0], ""

    def rank(candidate):
        entry, info = candidate
        return (_time(info) if fmt.entry_time_is_submission else datetime.min, _copy_number(fmt, entry.filename))

    ranked = sorted(pool, key=rank, reverse=True)
    if rank(ranked[0]) == rank(ranked[1]):
        return None, (f"{len(pool)} notebooks and none is newer: "
                      f"{', '.join(sorted(c[0].filename for c in pool))}; not collected")
    why = "newest submission time" if fmt.entry_time_is_submission and _time(ranked[0][1]) != _time(
        ranked[1][1]) else f"{fmt.title}'s latest copy"
    return ranked[0], why


# --------------------------------------------------------------------------------------------------- collect

def records_path(course: Course, assignment: str) -> Path:
    return course.root / RECORDS_DIR / f"{assignment}.json"


def load_records(course: Course, assignment: str) -> dict[str, LmsRecord]:
    """The LMS identities of an assignment's collected students, by student id ({} before any collect)."""
    path = records_path(course, assignment)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {student: LmsRecord(**record) for student, record in data.items()}
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: damaged ({exc}); collect the LMS's zip again") from None


def _timestamp(info: zipfile.ZipInfo, timezone: str) -> str:
    """The zip entry's time (local time of the LMS's server, `timezone`) as nbgrader writes timestamp.txt, UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {timezone!r} (an IANA name such as Europe/Berlin, or UTC)") from None
    return _time(info).replace(tzinfo=zone).astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def collect(*, course: Course, assignment: str, archive: Path, lms: str, force: bool = False,
            timezone: str = "UTC", limits: ArchiveLimits = ArchiveLimits()) -> CollectReport:
    """Collect the LMS's download-all zip `archive` for `assignment` into submitted/ (see the module's rules).

    `timezone`: the LMS server's time zone, in which ILIAS writes submission times into its zip."""
    fmt = lms_format(lms)
    notebook = course.config(assignment).notebook_name
    members = inspect_archive(archive, limits)  # refuses an unsafe zip before anything is written
    students = roster(course)
    if not students:
        raise ConfigError(f"the gradebook has no students: import the {fmt.title} participant list first "
                          f"(dlgrade roster import FILE --lms {fmt.name})")
    rows: list[CollectRow] = []
    notebooks: dict[str, list[tuple[LmsEntry, zipfile.ZipInfo]]] = defaultdict(list)
    notes: dict[str, str] = {}  # how a student was matched, when not by the LMS user id
    for name, info in members:
        entry = parse_member(fmt, name)
        if entry is None:
            rows.append(CollectRow(member=name, student="", action="unmatched",
                                   reason=f"the name does not follow {fmt.title}'s scheme"))
            continue
        student, action, reason = _owner(fmt, entry, students)
        if student and reason:
            notes[student] = reason
        if not student:
            rows.append(CollectRow(member=name, student="", action=action, reason=reason, late=entry.late))
        elif not entry.filename.endswith(".ipynb"):
            rows.append(CollectRow(member=name, student=student, action="ignored", reason="not a notebook"))
        else:
            notebooks[student].append((entry, info))
    chosen: dict[str, tuple[LmsEntry, zipfile.ZipInfo]] = {}
    for student, candidates in sorted(notebooks.items()):
        winner, why = choose(fmt, notebook, candidates)
        if winner is None:
            rows.extend(CollectRow(member=entry.member, student=student, action="ambiguous", reason=why)
                        for entry, _ in candidates)
            continue
        existing = course.submitted / student / assignment
        if existing.exists() and not force:
            rows.extend(CollectRow(member=entry.member, student=student, action="kept",
                                   reason="already collected; --force replaces it") for entry, _ in candidates)
            continue
        chosen[student] = winner
        entry = winner[0]
        renamed = undecorated(fmt, entry.filename) != notebook
        reasons = [notes[student]] if student in notes else []
        reasons += [f"renamed from {entry.filename}"] if renamed else []
        reasons += [why] if why else []
        reasons += ["replaces the earlier collect"] if existing.exists() else []
        rows.append(CollectRow(member=entry.member, student=student, action="renamed" if renamed else "collected",
                               reason="; ".join(reasons), late=entry.late))
        rows.extend(CollectRow(member=other.member, student=student, action="superseded",
                               reason=f"{entry.filename} counts ({why or 'named like the release'})")
                    for other, _ in candidates if other is not entry)
    _write(course, assignment, archive, fmt, notebook, chosen, timezone, limits)
    order = {name: index for index, (name, _) in enumerate(members)}
    return CollectReport(assignment=assignment, lms=fmt.name, collected=tuple(sorted(chosen)),
                         rows=tuple(sorted(rows, key=lambda row: order.get(row.member, 0))))


def _write(course: Course, assignment: str, archive: Path, fmt: LmsFormat, notebook: str,
           chosen: dict[str, tuple[LmsEntry, zipfile.ZipInfo]], timezone: str, limits: ArchiveLimits) -> None:
    """Stage every chosen notebook, then move them into place; undo every move if one fails."""
    if not chosen:
        return
    course.submitted.mkdir(parents=True, exist_ok=True)
    staging = course.submitted / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"  # same file system: moves are renames
    done: list[tuple[Path, Path | None]] = []  # (installed folder, the folder it replaced, kept in staging)
    records_file = records_path(course, assignment)
    old_records = records_file.read_bytes() if records_file.is_file() else None
    try:
        with zipfile.ZipFile(archive) as zf:
            for student, (_, info) in chosen.items():
                folder = staging / "new" / student / assignment
                folder.mkdir(parents=True)
                (folder / notebook).write_bytes(read_member(zf, info, limits.max_member_bytes))
                if fmt.entry_time_is_submission:
                    (folder / TIMESTAMP_FILE).write_text(_timestamp(info, timezone))
        for student in chosen:
            done.append(_install(staging / "new" / student / assignment, course.submitted / student / assignment,
                                 staging / "old" / student))
        records = load_records(course, assignment)
        records.update({student: LmsRecord(student=student, lms=fmt.name, key=entry.key, name=entry.name,
                                           folder=entry.folder, member=entry.member, filename=entry.filename,
                                           late=entry.late, login=entry.login, file_id=entry.file_id)
                        for student, (entry, _) in chosen.items()})
        records_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = records_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({s: asdict(r) for s, r in sorted(records.items())}, indent=2))
        tmp.replace(records_file)
    except BaseException as exc:
        for installed, replaced in reversed(done):
            shutil.rmtree(installed, ignore_errors=True)
            if replaced is not None:
                replaced.rename(installed)
            elif not any(installed.parent.iterdir()):
                installed.parent.rmdir()  # the student's folder was new
        if old_records is not None:
            records_file.write_bytes(old_records)
        elif records_file.exists():
            records_file.unlink()
        if isinstance(exc, DlgradeError):
            raise
        if isinstance(exc, Exception):
            raise CollectFailed(f"collecting {assignment} failed ({exc}); submitted/ is as it was before") from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(staged: Path, final: Path, backup: Path) -> tuple[Path, Path | None]:
    """Move `staged` to `final`, the folder there before (if any) to `backup`; returns what undoes it."""
    replaced = None
    if final.exists():
        backup.parent.mkdir(parents=True, exist_ok=True)
        final.rename(backup)
        replaced = backup
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        staged.rename(final)
    except BaseException:
        if replaced is not None:
            replaced.rename(final)
        raise
    return final, replaced
