"""Digit sequences to sort: the data of the transformer exercise.

This file ships with the release, beside the notebook, and imports only numpy: a student runs the notebook with
Keras alone. The hidden graders import it too, to draw their held-out sequences and labels.

A sequence is 3 to 10 digits, padded with PAD to MAX_LENGTH; its target is the same digits in ascending order,
padded alike. Which sequences are held out is decided by the sorted digits (the multiset), so no ordering of a
held-out sequence's digits ever appears in the training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LENGTH, MAX_LENGTH = 3, 10  # digits per sequence; every row is padded to MAX_LENGTH
N_DIGITS = 10
PAD = 10  # the id of padding, after the digits 0-9
VOCAB_SIZE = N_DIGITS + 1  # input ids, and output classes: the sorted sequence is padded like its input
HELD_OUT_EVERY = 10  # about one multiset of digits in ten is held out of the training data
_GOLDEN = np.uint64(0x9E3779B1)  # Knuth's multiplicative hash


@dataclass(frozen=True)
class SortingData:
    """`x` (n, MAX_LENGTH) int32: digits then PAD; `y` the same digits sorted, then PAD; `lengths` (n,)."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray


def is_held_out(y: np.ndarray) -> np.ndarray:
    """Whether each sorted, padded sequence of `y` (n, MAX_LENGTH) is held out of the training data."""
    key = np.asarray(y, dtype=np.uint64) @ (np.uint64(VOCAB_SIZE) ** np.arange(MAX_LENGTH, dtype=np.uint64))
    return (key * _GOLDEN) % np.uint64(2**32) < np.uint64(2**32 // HELD_OUT_EVERY)


def _draw(rng: np.random.Generator, n: int) -> SortingData:
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n)
    digits = rng.integers(0, N_DIGITS, size=(n, MAX_LENGTH))
    real = np.arange(MAX_LENGTH)[None, :] < lengths[:, None]
    x = np.where(real, digits, PAD)
    y = np.sort(x, axis=1)  # PAD is the largest id: sorting leaves it at the end
    return SortingData(x=x.astype(np.int32), y=y.astype(np.int32), lengths=lengths.astype(np.int32))


def sorting_examples(n: int, *, seed: int, held_out: bool = False) -> SortingData:
    """`n` random sequences and their sorted targets; only held-out multisets when `held_out`, else none."""
    rng = np.random.default_rng(seed)
    parts, found = [], 0
    while found < n:
        drawn = _draw(rng, 2 * n + 100)
        keep = is_held_out(drawn.y) == held_out
        parts.append(SortingData(x=drawn.x[keep], y=drawn.y[keep], lengths=drawn.lengths[keep]))
        found += int(keep.sum())
    return SortingData(*(np.concatenate([getattr(p, f) for p in parts])[:n] for f in ("x", "y", "lengths")))


def sequence_accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    """The share of sequences whose every digit is right (what the model predicts at padding is not counted)."""
    right = (np.asarray(predicted) == y) | (y == PAD)
    return float(right.all(axis=1).mean())


def encode(digits: str) -> np.ndarray:
    """'3141' -> the ids of one padded sequence, shape (1, MAX_LENGTH)."""
    if not MIN_LENGTH <= len(digits) <= MAX_LENGTH or not digits.isdigit():
        raise ValueError(f"expected {MIN_LENGTH} to {MAX_LENGTH} digits, found {digits!r}")
    ids = [int(d) for d in digits] + [PAD] * (MAX_LENGTH - len(digits))
    return np.array([ids], dtype=np.int32)


def decode(ids) -> str:
    """One row of ids -> its digits, padding left out ('1134')."""
    return "".join(str(int(i)) for i in ids if int(i) != PAD)
