"""What a batch keeps warm per worker slot: the next submission's sandbox (kernel started, the backend
imported), where the assignment has a probe the next probe sandbox (interpreter started, the backend imported,
no request yet), and one long-lived grader process, sandboxed too (`autograder.graders`). All are batch-wide: one
assignment, one set of settings.

A warm sandbox is started right after the slot's previous one ended, while the graders of that submission run, so
its start-up overlaps other work; it serves exactly one submission and is never reused.
"""

from __future__ import annotations

import threading
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
        with self._lock:
            kernel = self._kernels.pop(slot, None)
        if kernel is not None and not kernel.usable():
            kernel.close()
            return None
        return kernel

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
        with self._lock:
            if self._closed or slot in self._kernels or self._begun + len(self._kernels) >= self.total:
                return
            self._kernels[slot] = None  # reserved while it starts
        plan, settings = self.plan, sandbox_settings(self.plan)
        kernel = SandboxedKernel(config=plan.config, release_dir=plan.course.releases / plan.assignment,
                                 mounts=settings.kernel_mounts, env=settings.kernel_env, isolated=plan.isolated,
                                 slot=slot, warm=True)
        with self._lock:
            closed = self._closed
            if not closed:
                self._kernels[slot] = kernel
        if closed:  # the batch ended while it started
            kernel.close()

    def probe(self, slot: int) -> ProbeSandbox | None:
        """The slot's warm probe sandbox, if one is alive (else None: start a cold one). Once per submission."""
        with self._lock:
            self._probed += 1
            probe = self._probes.pop(slot, None)
        if probe is not None and not probe.usable():
            probe.close()
            return None
        return probe

    def prestart_probe(self, slot: int) -> None:
        """Start the slot's next probe sandbox now, if submissions remain that no warm probe waits for."""
        with self._lock:
            if (self._closed or self.plan.config.probe is None or slot in self._probes
                    or self._probed + len(self._probes) >= self.total):
                return
            self._probes[slot] = None  # reserved while it starts
        plan, settings = self.plan, sandbox_settings(self.plan)
        probe = ProbeSandbox(config=plan.config, mounts=settings.kernel_mounts, env=settings.kernel_env, slot=slot,
                             isolated=plan.isolated, warm=True)
        with self._lock:
            closed = self._closed
            if not closed:
                self._probes[slot] = probe
        if closed:  # the batch ended while it started
            probe.close()

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
