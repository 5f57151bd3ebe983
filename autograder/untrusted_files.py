"""Reading files that a sandbox left behind, without trusting anything about them.

A sandboxed process controls every name below its scratch directory: any component may be a symbolic link to a
host path, a file may be a named pipe that blocks a reader, a device, or a sparse file whose apparent size is
far larger than the blocks it uses (copied densely, a 64 KiB file "of" 10 GiB fills the host's disk). Everything
here therefore

- walks a relative path one component at a time with `openat` (`os.open(..., dir_fd=...)`), refusing a link at
  any component (`O_NOFOLLOW`, and `O_DIRECTORY` for the directories on the way), so no name can lead outside
  the root the caller trusts;
- looks at what it opened (`fstat` on the descriptor, never the name again) and refuses what is not a regular
  file, what is larger than the caller allows, and what is sparse;
- reads at most the allowed number of bytes, even from a file that grows meanwhile, and copies within a budget
  shared by all files of one submission.

A refusal is data, not an exception for the caller to forget: `read_regular` raises `UntrustedFile` with a
sentence a student can act on, `copy_out` returns a `Copied` that says what happened.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
# A file may use fewer blocks than its size says (file systems round, compress, or keep a tail inline); refuse
# only when the difference is both large in bytes and more than half of the file.
SPARSE_SLACK_BYTES = 1 << 20


class UntrustedFile(Exception):
    """A file the sandbox left could not be read safely; `str()` says why, in words for the student."""


@dataclass
class Budget:
    """Bytes the host may still write for one submission, over all the files it copies out."""

    remaining: int

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (and nothing reserved) when they are not left."""
        if size > self.remaining:
            return False
        self.remaining -= size
        return True


@dataclass(frozen=True)
class Copied:
    """What became of one file to copy out: `path` of the copy, or None and the `reason` it was refused."""

    name: str
    path: Path | None
    reason: str | None  # None for a file that was copied, or that does not exist (see `absent`)
    size: int = 0
    absent: bool = False  # the name does not exist at all (the notebook did not write it)


def _components(relpath: str | PurePosixPath) -> list[str]:
    """The names of a relative path; absolute paths, `..`, `.` and empty names are refused."""
    text = str(relpath)
    if not text or text.startswith("/") or "\0" in text:
        raise UntrustedFile(f"{text!r} is not a relative path")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UntrustedFile(f"{text!r} is not a plain relative path")
    return parts


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def open_beneath(root: Path, relpath: str | PurePosixPath) -> int:
    """A read-only descriptor of the regular file `root/relpath`, reached without following any link.

    `root` itself is the caller's (a scratch directory it created); every name below it is the sandbox's. Raises
    FileNotFoundError when a component does not exist, UntrustedFile for a link, a non-directory on the way or a
    final name that is not a regular file. The caller closes the descriptor.
    """
    parts = _components(relpath)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                mode = os.stat(part, dir_fd=directory, follow_symlinks=False).st_mode
                raise UntrustedFile(f"{'/'.join(parts)}: {part} is {_kind(mode)}, not a directory") from None
            os.close(directory)
            directory = below
        name = parts[-1]
        # Look before opening: opening a device or a pipe can have effects of its own.
        mode = os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise UntrustedFile(f"{'/'.join(parts)} is {_kind(mode)}; only regular files are collected")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                     dir_fd=directory)
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the look and the open
        os.close(fd)
        raise UntrustedFile(f"{'/'.join(parts)} changed while it was opened; only regular files are collected")
    return fd


def check_regular(fd: int, *, name: str, max_bytes: int) -> int:
    """The size of the open regular file `fd`, or UntrustedFile when it is too large or sparse."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedFile(f"{name} is {_kind(info.st_mode)}; only regular files are collected")
    if info.st_size > max_bytes:
        raise UntrustedFile(f"{name} has {info.st_size / 2**20:.1f} MiB, more than the "
                            f"{max_bytes / 2**20:.1f} MiB allowed")
    allocated = info.st_blocks * 512
    if info.st_size - allocated > max(SPARSE_SLACK_BYTES, info.st_size // 2):
        raise UntrustedFile(f"{name} is a sparse file ({info.st_size / 2**20:.1f} MiB long, "
                            f"{allocated / 2**20:.1f} MiB written); save real data")
    return info.st_size


def _read_at_most(fd: int, limit: int):
    """Chunks of `fd` until its end or `limit` bytes, then UntrustedFile if more remain (a file that grew)."""
    left = limit
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk
    if os.read(fd, 1):
        raise UntrustedFile("the file grew while it was read")


def read_regular(root: Path, relpath: str | PurePosixPath, *, max_bytes: int) -> bytes:
    """The bytes of the regular file `root/relpath` (no link followed, not sparse, at most `max_bytes`).

    FileNotFoundError when it does not exist, UntrustedFile with the reason when it is refused."""
    fd = open_beneath(root, relpath)
    try:
        size = check_regular(fd, name=str(relpath), max_bytes=max_bytes)
        return b"".join(_read_at_most(fd, size))
    finally:
        os.close(fd)


def copy_out(root: Path, relpath: str | PurePosixPath, dest: Path, *, max_bytes: int,
             budget: Budget | None = None) -> Copied:
    """Copy the regular file `root/relpath` to `dest` (a new file), within `max_bytes` and the `budget`.

    Never raises for what the sandbox left: an absent name is `Copied(absent=True)`, a refused one carries the
    reason. `dest` must not exist yet; it is created without following a link and readable by all (a grader
    sandbox reads it as another uid).
    """
    name = str(relpath)
    try:
        fd = open_beneath(root, relpath)
    except FileNotFoundError:
        return Copied(name=name, path=None, reason=None, absent=True)
    except (UntrustedFile, NotADirectoryError) as exc:
        return Copied(name=name, path=None, reason=str(exc))
    try:
        size = check_regular(fd, name=name, max_bytes=max_bytes)
        if budget is not None and not budget.take(size):
            raise UntrustedFile(f"{name} ({size / 2**20:.1f} MiB) would take the files collected from this "
                                f"submission over their limit; {budget.remaining / 2**20:.1f} MiB were left")
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            written = 0
            for chunk in _read_at_most(fd, size):  # a file grown since the fstat is refused, not copied longer
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
                written += len(chunk)
            os.fchmod(out, 0o644)  # whatever the umask: the grader sandbox's uid reads it
        except BaseException:
            os.close(out)
            os.unlink(dest)
            raise
        os.close(out)
        return Copied(name=name, path=dest, reason=None, size=written)
    except UntrustedFile as exc:
        return Copied(name=name, path=None, reason=str(exc))
    finally:
        os.close(fd)
