"""The one process watcher of dlgrade: a process family's memory, and its end.

Every supervisor uses these: a sandbox's watchdog (`sandbox.Running.watch`, where no cgroup counts for it) and the
grader server's watch over its forked child (`grader_server.serve`). A family is a process and all its descendants,
as psutil sees them now; a member that vanishes meanwhile is skipped.
"""

from __future__ import annotations

import os
import signal

import psutil


def family(pid: int) -> list[psutil.Process]:
    """The process `pid` and its descendants ([] when it is gone)."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def family_rss(pid: int) -> int:
    """Resident memory of `pid` and its descendants, in bytes."""
    total = 0
    for member in family(pid):
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_family(pid: int) -> None:
    """SIGKILL the descendants of `pid`, then `pid` itself (whatever escapes the walk dies with its namespace)."""
    members = family(pid)
    for member in members[1:]:
        try:
            member.kill()
        except psutil.Error:
            pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
