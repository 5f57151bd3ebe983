"""Executes one notebook with nbclient. Runs *inside* the sandbox, next to the student's kernel, so nothing
it writes is trusted: the grader reads its output file as data only.

    python .dlgrade/kernel_runner.py IN.ipynb OUT.ipynb --cell-timeout 600 --preload numpy,tensorflow,keras

The sandbox gets this one file, copied into its scratch folder (it needs nbclient and nbformat only): no other
engine code is mounted where student code runs.

The runner starts the kernel, imports the `--preload` modules in it (no names are left in the student's
namespace, no execution count is used), says READY on stderr, and only then waits for IN to appear: the grader
hands the notebook over by renaming it into place, and the time limit counts from there. A warm sandbox is one
started ahead of its submission; a cold one is handed its notebook as soon as it is ready. Both run the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

READY = "dlgrade-runner: kernel ready"


def preload_source(modules: list[str]) -> str:
    """Code that imports `modules` in the kernel and leaves nothing behind in its namespace."""
    return (f"import importlib as _dlgrade_il\nfor _dlgrade_m in {modules!r}:\n"
            "    _dlgrade_il.import_module(_dlgrade_m)\ndel _dlgrade_il, _dlgrade_m\n")


def start_and_wait(client: NotebookClient, modules: list[str], source: Path) -> None:
    """Start the kernel, import `modules`, then wait until the notebook `source` is there."""
    client.km = client.create_kernel_manager()
    client.start_new_kernel()
    client.start_new_kernel_client()
    if modules:
        reply = client.wait_for_reply(client.kc.execute(preload_source(modules), silent=True, store_history=False))
        if reply is None or reply["content"].get("status") != "ok":
            print("dlgrade-runner: preloading failed; the notebook imports them itself", file=sys.stderr)
    print(READY, file=sys.stderr, flush=True)
    while not source.exists():
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.kernel_runner")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--cell-timeout", type=int, default=600)
    parser.add_argument("--preload", default="", help="comma-separated modules imported before the notebook")
    args = parser.parse_args(argv)
    notebook = nbformat.v4.new_notebook()

    def save(*_args, **_kwargs) -> None:  # after each cell, so a later kill still leaves the outputs so far
        nbformat.write(notebook, args.target)

    client = NotebookClient(notebook, timeout=args.cell_timeout, kernel_name="python3", allow_errors=True,
                            record_timing=True, resources={"metadata": {"path": "."}}, on_cell_executed=save)
    try:
        start_and_wait(client, [m for m in args.preload.split(",") if m], Path(args.source))
        notebook = client.nb = nbformat.read(args.source, as_version=4)
        client.execute()
    except (CellTimeoutError, DeadKernelError) as exc:
        save()
        print(f"dlgrade-runner: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return 3
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
