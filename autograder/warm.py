"""What a batch keeps warm per worker slot: the next submission's sandbox (kernel started, the backend
imported), where the assignment has a probe the next probe sandbox (interpreter started, the backend imported,
no request yet), and one long-lived grader process, sandboxed too (`autograder.graders`). All are batch-wide: one
assignment, one set of settings.

A warm sandbox is started right after the slot's previous one ended, while the graders of that submission run, so
its start-up overlaps other work; it serves exactly one submission and is never reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from autograder.execution import SandboxedKernel
from autograder.graders import GraderProcess
from autograder.plan import BatchPlan, sandbox_settings
from autograder.probe import ProbeSandbox


@dataclass
class WarmPool:
    """Warm sandboxes and grader processes of one batch, by slot, all made from the batch's plan. Thread-safe;
    `close` when the batch ends."""

    plan: BatchPlan
    total: int  # submissions in the batch: no sandbox is warmed for a submission that will never come
    _kernels: dict[int, SandboxedKernel] = field(default_factory=dict)
    _graders: dict[int, GraderProcess] = field(default_factory=dict)
    _probes: dict[int, ProbeSandbox | None] = field(default_factory=dict)  # where the assignment has a probe
    _begun: int = 0
    _probed: int = 0  # probes handed out (warm or not): no probe is warmed for a submission that will never come
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> None:
        """A worker starts on one of the `total` submissions (warm sandboxes are kept only for the ones left)."""
        with self._lock:
            self._begun += 1

    def kernel(self, slot: int) -> SandboxedKernel | None:
        """The slot's warm sandbox, if one is alive (else None: start a cold one)."""
        return self._take(self._kernels, slot)

    def probe(self, slot: int) -> ProbeSandbox | None:
        """The slot's warm probe sandbox, if one is alive (else None: start a cold one). Once per submission."""
        with self._lock:
            self._probed += 1
        return self._take(self._probes, slot)

    def wait_until_ready(self, slot: int) -> None:
        """Until the slot's grader process and its warm sandbox, if one was started, are up: what a batch's later
        submissions find (benchmarks/bench_grade.py times a grade from there)."""
        self.grader(slot).wait_until_ready()
        with self._lock:
            kernel = self._kernels.get(slot)
        if kernel is not None:
            kernel.wait_until_ready()

    def prestart(self, slot: int) -> None:
        """Start the slot's next sandbox now, if submissions remain that no warm sandbox waits for."""
        plan, settings = self.plan, sandbox_settings(self.plan)
        self._prestart(self._kernels, slot, lambda: self._begun, lambda: SandboxedKernel(
            config=plan.config, release_dir=plan.course.releases / plan.assignment, mounts=settings.kernel_mounts,
            env=settings.kernel_env, isolated=plan.isolated, slot=slot, warm=True))

    def prestart_probe(self, slot: int) -> None:
        """Start the slot's next probe sandbox now, if submissions remain that no warm probe waits for."""
        if self.plan.config.probe is None:
            return
        plan, settings = self.plan, sandbox_settings(self.plan)
        self._prestart(self._probes, slot, lambda: self._probed, lambda: ProbeSandbox(
            config=plan.config, mounts=settings.kernel_mounts, env=settings.kernel_env, slot=slot,
            isolated=plan.isolated, warm=True))

    def _take(self, store: dict, slot: int):
        with self._lock:
            found = store.pop(slot, None)
        if found is not None and not found.usable():
            found.close()
            return None
        return found

    def _prestart(self, store: dict, slot: int, used: Callable[[], int], start: Callable[[], object]) -> None:
        """`start()` one for `slot` into `store` unless one is there or no submission is left to use it (`used()`
        of the `total` have had theirs, warm or cold)."""
        with self._lock:
            if self._closed or slot in store or used() + len(store) >= self.total:
                return
            store[slot] = None  # reserved while it starts
        started = start()
        with self._lock:
            closed = self._closed
            if not closed:
                store[slot] = started
        if closed:  # the batch ended while it started
            started.close()

    def grader(self, slot: int) -> GraderProcess:
        """The slot's grader process, started on first use and again if it died."""
        with self._lock:
            process = self._graders.get(slot)
        if process is None or not process.alive():
            if process is not None:
                process.close()
            plan, settings = self.plan, sandbox_settings(self.plan)
            process = GraderProcess(preload=plan.config.preload_modules, backend=plan.config.backend,
                                    memory_bytes=plan.config.grader_memory_bytes,
                                    graders_dir=plan.course.graders(plan.assignment), slot=slot,
                                    isolated=plan.isolated, read_only=settings.grader_read_only,
                                    devices=settings.devices, artifact_bytes=plan.config.limits.max_file_bytes)
            with self._lock:
                self._graders[slot] = process
        return process

    def close(self) -> None:
        """Stop every warm sandbox and grader process; a sandbox still starting is stopped when it is up."""
        with self._lock:
            self._closed = True
            kernels, graders = list(self._kernels.values()), list(self._graders.values())
            probes = list(self._probes.values())
            self._kernels.clear()
            self._graders.clear()
            self._probes.clear()
        for kernel in [*kernels, *probes]:
            if kernel is not None:
                kernel.close()
        for process in graders:
            process.close()
