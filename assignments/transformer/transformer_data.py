"""Digit sequences to reverse: the data of the transformer exercise.

This file ships with the release, beside the notebook, and imports only numpy: a student runs the notebook with
Keras alone. The hidden graders import it too, to draw their held-out sequences and labels.

A sequence is 3 to 10 digits, padded with PAD to MAX_LENGTH; its target is the same digits in reverse order,
padded alike (`31415` -> `51413`). About one sequence in ten is held out: it never appears in the training data,
and the hidden checks ask about held-out sequences only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LENGTH, MAX_LENGTH = 3, 10  # digits per sequence; every row is padded to MAX_LENGTH
N_DIGITS = 10
PAD = 10  # the id of padding, after the digits 0-9
VOCAB_SIZE = N_DIGITS + 1  # input ids, and output classes: the target is padded like its input
HELD_OUT_EVERY = 10  # about one sequence in ten is held out of the training data
_GOLDEN = np.uint64(0x9E3779B1)  # Knuth's multiplicative hash


@dataclass(frozen=True)
class ReversalData:
    """`x` (n, MAX_LENGTH) int32: digits then PAD; `y` the same digits reversed, then PAD; `lengths` (n,)."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray


def is_held_out(x: np.ndarray) -> np.ndarray:
    """Whether each padded sequence of `x` (n, MAX_LENGTH) is held out of the training data."""
    key = np.asarray(x, dtype=np.uint64) @ (np.uint64(VOCAB_SIZE) ** np.arange(MAX_LENGTH, dtype=np.uint64))
    return (key * _GOLDEN) % np.uint64(2**32) < np.uint64(2**32 // HELD_OUT_EVERY)


def reverse(x: np.ndarray) -> np.ndarray:
    """The target of each padded sequence of `x`: its digits in reverse order, padding left where it is."""
    x = np.asarray(x)
    lengths = (x != PAD).sum(axis=1)
    source = np.clip(lengths[:, None] - 1 - np.arange(x.shape[1])[None, :], 0, None)
    return np.where(x != PAD, np.take_along_axis(x, source, axis=1), PAD).astype(np.int32)


def _draw(rng: np.random.Generator, n: int) -> ReversalData:
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n)
    digits = rng.integers(0, N_DIGITS, size=(n, MAX_LENGTH))
    x = np.where(np.arange(MAX_LENGTH)[None, :] < lengths[:, None], digits, PAD).astype(np.int32)
    return ReversalData(x=x, y=reverse(x), lengths=lengths.astype(np.int32))


def reversal_examples(n: int, *, seed: int, held_out: bool = False) -> ReversalData:
    """`n` random sequences and their reversed targets: only held-out sequences when `held_out`, else none."""
    rng = np.random.default_rng(seed)
    parts, found = [], 0
    while found < n:
        drawn = _draw(rng, 2 * n + 100)
        keep = is_held_out(drawn.x) == held_out
        parts.append(ReversalData(x=drawn.x[keep], y=drawn.y[keep], lengths=drawn.lengths[keep]))
        found += int(keep.sum())
    return ReversalData(*(np.concatenate([getattr(p, name) for p in parts])[:n] for name in ("x", "y", "lengths")))


def sequence_accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    """The share of sequences whose every digit is right (what the model predicts at padding is not counted)."""
    right = (np.asarray(predicted) == y) | (np.asarray(y) == PAD)
    return float(right.all(axis=1).mean())


def encode(digits: str) -> np.ndarray:
    """'31415' -> the ids of one padded sequence, shape (1, MAX_LENGTH)."""
    if not (MIN_LENGTH <= len(digits) <= MAX_LENGTH and digits.isdigit() and digits.isascii()):
        raise ValueError(f"expected {MIN_LENGTH} to {MAX_LENGTH} digits, found {digits!r}")
    return np.array([[int(d) for d in digits] + [PAD] * (MAX_LENGTH - len(digits))], dtype=np.int32)


def decode(ids) -> str:
    """One row of ids -> its digits, padding left out ('51413')."""
    return "".join(str(int(i)) for i in ids if int(i) != PAD)
