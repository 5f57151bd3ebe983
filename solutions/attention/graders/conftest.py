"""Fixtures of the hidden attention graders: what the probe saved in the sandbox, read as plain arrays.

Nothing here runs student code: the probe (probe.py, the submission's last cell) called the student's function and
models inside the sandbox; this process only reads attention_probe.npz (no pickles) and imports probe.py for the
inputs it used, which it makes from fixed seeds.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import probe  # probe.py beside this file (pytest puts this folder on sys.path); importing it runs nothing
import pytest

# What the probe called for each part, in the words of the notebook (for messages).
CALLS = {"function": "scaled_dot_product_attention(query, key, value)",
         "masked": "scaled_dot_product_attention(query, key, value, mask=mask)",
         "model": "model.predict(...)", "attention_model": "attention_model.predict(...)"}


@dataclass
class ProbeResults:
    """The arrays of attention_probe.npz, or why there are none; `array` turns every gap into a message."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    problem: str = ""  # why the file could not be read at all

    def raw(self, name: str, *, part: str) -> np.ndarray:
        """The float64 array `name` that the probe saved for `part`, of any shape; else AssertionError."""
        if self.problem:
            raise AssertionError(self.problem)
        if name not in self.arrays:
            error = self.arrays.get(f"error_{part}")
            if error is not None and error.dtype.kind == "U" and error.ndim == 0:
                raise AssertionError(f"{CALLS[part]} raised {error}")
            raise AssertionError(f"{CALLS[part]} gave no result (is it defined when the notebook ends?)")
        found = self.arrays[name]
        if found.dtype.kind not in "fiub":
            raise AssertionError(f"{CALLS[part]} returned {found.dtype} values, expected numbers")
        return found.astype(np.float64)

    def array(self, name: str, *, part: str, shape: tuple[int, ...]) -> np.ndarray:
        """`raw`, which must have `shape`."""
        found = self.raw(name, part=part)
        if found.shape != shape:
            raise AssertionError(f"{CALLS[part]} returned shape {found.shape}, expected {shape}")
        return found


def read_probe(path: Path) -> ProbeResults:
    """attention_probe.npz as arrays (never unpickling anything), or the reason it cannot be read."""
    if not path.exists():
        return ProbeResults(problem=f"{path.name} is missing: the grading probe runs after your last cell and "
                            "saves it; did the notebook run to its end?")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return ProbeResults(arrays={name: npz[name] for name in npz.files})
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return ProbeResults(problem=f"{path.name} is not the file the grading probe writes; do not write a file of "
                            "that name yourself")


@pytest.fixture(scope="session")
def probed(request) -> ProbeResults:
    """What the probe saved in the sandbox."""
    return read_probe(Path(request.config.getoption("--dlgrade-artifacts")) / probe.PROBE_FILE)


@pytest.fixture(scope="session")
def function_inputs() -> dict[str, np.ndarray]:
    return {name: array.astype(np.float64) for name, array in probe.function_inputs().items()}


@pytest.fixture(scope="session")
def held_out_dates():
    return probe.held_out_dates()
