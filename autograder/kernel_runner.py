"""Executes one notebook with nbclient. Runs *inside* the sandbox, next to the student's kernel, so nothing
it writes is trusted: the grader reads its output file as data only.

    python -m autograder.kernel_runner IN.ipynb OUT.ipynb --cell-timeout 600
"""

from __future__ import annotations

import argparse
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.kernel_runner")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--cell-timeout", type=int, default=600)
    args = parser.parse_args(argv)
    notebook = nbformat.read(args.source, as_version=4)

    def save(*_args, **_kwargs) -> None:  # after each cell, so a later kill still leaves the outputs so far
        nbformat.write(notebook, args.target)

    client = NotebookClient(notebook, timeout=args.cell_timeout, kernel_name="python3", allow_errors=True,
                            record_timing=True, resources={"metadata": {"path": "."}}, on_cell_executed=save)
    try:
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
