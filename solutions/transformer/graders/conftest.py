"""Fixtures of the hidden transformer graders: what the probe returned, read as plain arrays.

Nothing here runs student code: the probe (probe.py) called the student's definitions in a fresh sandbox of its
own after the notebook ran; dlgrade validated its arrays into probe.npz and wrote the seed of this submission's
inputs to probe.json. This process recomputes the inputs, the labels and the references from that seed
(probe_inputs.py, reference.py); none of them ever entered a sandbox. The exercise's folder is on sys.path
(autograder.pytest_plugin), so `transformer_data` is the file released beside the notebook.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import probe_inputs  # probe_inputs.py beside this file (pytest puts this folder on sys.path)
import pytest

# What the probe called for each part, in the words of the notebook (for messages).
CALLS = {"function": "scaled_dot_product_attention(query, key, value)",
         "masked": "scaled_dot_product_attention(query, key, value, mask=mask)",
         "encoding": "positional_encoding(length, d_model)",
         "embedding": "PositionalEmbedding(VOCAB_SIZE, d_model)(tokens)",
         "attention": "MultiHeadSelfAttention(d_model, num_heads)(x)",
         "block": "EncoderBlock(d_model, num_heads, d_ff)(x, padding_mask=...)",
         "model": "model.predict(...) (build_models() with the weights saved after training)",
         "attention_model": "attention_model.predict(...) (build_models() with the weights saved after training)"}
KERAS_FLAGS = {"attention_keras_layer": "MultiHeadSelfAttention", "block_keras_layer": "EncoderBlock",
               "model_keras_layer": "the model of build_models()"}


@dataclass
class ProbeResults:
    """The arrays of probe.npz, or why there are none; `array` turns every gap into a message."""

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

    def flag(self, name: str) -> bool:
        """A true/false the probe recorded (False when that part never got so far)."""
        found = self.arrays.get(name)
        return bool(found is not None and found.dtype.kind in "biuf" and found.size == 1 and found.item())


def read_probe(path: Path) -> ProbeResults:
    """probe.npz as arrays (never unpickling anything), or the reason it cannot be read."""
    if not path.exists():
        return ProbeResults(problem="the grading probe returned nothing: your definitions could not be called "
                            "(see the notebook's errors)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return ProbeResults(arrays={name: npz[name] for name in npz.files})
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return ProbeResults(problem="the grading probe's results could not be read")


@pytest.fixture(scope="session")
def seed(request) -> int:
    """The seed of this submission's probe inputs (dlgrade draws it; the student never sees it)."""
    return int(json.loads((Path(request.config.getoption("--dlgrade-artifacts")) / "probe.json").read_text())["seed"])


@pytest.fixture(scope="session")
def probed(request) -> ProbeResults:
    """The probe's validated arrays."""
    return read_probe(Path(request.config.getoption("--dlgrade-artifacts")) / "probe.npz")


@pytest.fixture(scope="session")
def inputs(seed) -> dict[str, np.ndarray]:
    """What the probe sandbox was given, drawn again from the seed."""
    return probe_inputs.make_inputs(seed)


@pytest.fixture(scope="session")
def held_out_sequences(seed):
    return probe_inputs.held_out_sequences(seed)


@pytest.fixture
def own_attention(probed) -> ProbeResults:
    """The probe's results, for a check of the student's own multi-head attention: none is left to grade when
    keras.layers.MultiHeadAttention stands in for it anywhere."""
    found = [where for name, where in KERAS_FLAGS.items() if probed.flag(name)]
    assert not found, (f"keras.layers.MultiHeadAttention found in {', '.join(found)}: this part grades your own "
                       "MultiHeadSelfAttention, built on your scaled_dot_product_attention")
    return probed
