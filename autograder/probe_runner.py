"""Runs inside a fresh probe sandbox: the student's graded definitions, then the assignment's probe, arrays out.

    python -I -B probe_runner.py REQUEST.json [--preload numpy,keras]

This file is copied into the probe's scratch directory and run by a plain interpreter: no kernel, no IPython, no
notebook state, and no dlgrade package (it imports only the standard library and numpy, and in a warm sandbox the
assignment's `preload` before any request is there), so nothing the notebook
did while it ran and no course helper that could compute labels is within reach. The request names:

- `script`: the assignment's probe (graders/<probe>), a module with `run(namespace, inputs, artifacts) -> dict`
  and optionally `namespace(inputs) -> dict`, the globals the definitions expect (the release's imports);
- `cells`: the source of each graded definition cell, by grade_id, as restored by the host;
- `inputs`: an .npz the host drew for this run; `artifacts`: the notebook's artifacts, read-only;
- `outputs`: where the arrays go (.npz). A definition or probe part that raises is recorded as an `error_<name>`
  string, never fatal. The host validates every array before a grader sees it: nothing here is believed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from pathlib import Path

MAX_ERROR_CHARS = 500


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:MAX_ERROR_CHARS]}"


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location("dlgrade_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait_for(request: Path, preload: str) -> None:
    """Import `preload` (a warm sandbox: before any request), say so, then wait until the request is there."""
    import importlib
    import time

    for module in filter(None, preload.split(",")):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the definitions import what they need themselves
            print(f"dlgrade-probe: could not preload {module}", file=sys.stderr)
    print("dlgrade-probe: ready", file=sys.stderr, flush=True)
    while not request.exists():
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    import numpy as np

    _wait_for(Path(argv[0]), argv[argv.index("--preload") + 1] if "--preload" in argv[:-1] else "")
    request = json.loads(Path(argv[0]).read_text())
    with np.load(request["inputs"], allow_pickle=False) as npz:
        inputs = {name: npz[name] for name in npz.files}
    script = _load_script(Path(request["script"]))
    namespace = {"__name__": "__main__", **(script.namespace(inputs) if hasattr(script, "namespace") else {})}
    found: dict[str, np.ndarray] = {}
    for cell in request["cells"]:
        try:
            exec(compile(cell["source"], f"<cell {cell['grade_id']}>", "exec"), namespace)  # noqa: S102 - sandboxed
        except BaseException as exc:  # noqa: BLE001 - the student's cell may raise anything; it is recorded
            found[f"error_cell_{cell['grade_id']}"] = np.array(_error(exc))
    try:
        found.update(script.run(namespace, inputs, Path(request["artifacts"])))
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc()
        found["error_probe"] = np.array(_error(exc))
    np.savez(request["outputs"], **found)
    print(f"probe: saved {', '.join(sorted(found))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
