"""Where submissions are graded: here, in parallel sandboxes (`LocalExecutor`), or elsewhere (`autograder.slurm`).

An executor gets plain `Task`s and calls back with one `SubmissionResult` per task; recording in the gradebook and
writing results.json stay with the caller (`pipeline.grade`), in one process, whatever the executor.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from autograder.plan import BatchPlan
from autograder.results import SubmissionResult


@dataclass(frozen=True)
class Task:
    """One submission to grade: the batch's plan (which travels to another machine as JSON) and the student."""

    plan: BatchPlan
    student: str


GradeOne = Callable[[Task, int], SubmissionResult]  # (task, slot) -> result; the slot picks the sandbox's host uid
OnDone = Callable[[SubmissionResult], None]


class Executor(Protocol):
    """Grades tasks and reports each result as it is ready; every task gets exactly one result."""

    def run(self, tasks: list[Task], *, grade_one: GradeOne, on_done: OnDone) -> None: ...


SLOT_LOCKS = Path(f"/var/tmp/dlgrade-slots-{os.geteuid()}")  # a lock file per slot, for all dlgrade processes
MAX_SLOTS = 64


@contextmanager
def machine_slot() -> Iterator[int]:
    """A sandbox slot no other process on this machine holds (each slot is a host uid with its own task limit).

    An flock is released by the kernel when its holder dies, so a batch killed with SIGKILL frees its slots.
    """
    SLOT_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        for slot in range(MAX_SLOTS):
            handle = open(SLOT_LOCKS / f"{slot}.lock", "w")  # noqa: SIM115 - held for the whole with-block
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield slot
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(0.5)


@dataclass(frozen=True)
class LocalExecutor:
    """`jobs` workers on this machine; each holds one slot (its own host uid) for the whole batch, so what it
    keeps warm between submissions (`autograder.warm`) stays in its slot."""

    jobs: int = 1

    def run(self, tasks: list[Task], *, grade_one: GradeOne, on_done: OnDone) -> None:
        todo: queue.SimpleQueue[Task] = queue.SimpleQueue()
        for task in tasks:
            todo.put(task)
        done: queue.SimpleQueue[SubmissionResult | BaseException] = queue.SimpleQueue()
        stop = threading.Event()

        def worker() -> None:
            try:
                with machine_slot() as slot:
                    while not stop.is_set():
                        try:
                            task = todo.get_nowait()
                        except queue.Empty:
                            return
                        done.put(grade_one(task, slot))
            except BaseException as exc:  # handed to the batch's thread, which stops the others and raises it
                done.put(exc)

        workers = [threading.Thread(target=worker, daemon=True) for _ in range(min(max(1, self.jobs), len(tasks)))]
        for thread in workers:
            thread.start()
        interrupted = False
        try:
            for _ in tasks:  # results are recorded here, in the caller's thread
                item = done.get()
                if isinstance(item, BaseException):
                    raise item
                on_done(item)
        except KeyboardInterrupt:  # the process ends now; its sandboxes die with it
            interrupted = True
            raise
        finally:  # on another error the workers finish the submission at hand, take no other, and are gone
            stop.set()
            for thread in workers if not interrupted else ():
                thread.join()
