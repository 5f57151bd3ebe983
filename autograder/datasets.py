"""Deterministic, download-free data sets for the course exercises.

Students import these in the released notebooks; hidden graders import them with their own seeds and splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BITS = 12  # input length: binary strings of 12 digits, "000000000000" .. "111111111111"
DIGITS = 4  # output length: decimal strings zero-padded to 4 digits, "0000" .. "4095"
INPUT_SYMBOLS = "01"
OUTPUT_SYMBOLS = "0123456789"


@dataclass(frozen=True)
class SequenceData:
    """Integer-encoded pairs: `x[i]` are input symbol ids, `y[i]` output symbol ids, `numbers[i]` the value."""

    x: np.ndarray  # (n, BITS) int32
    y: np.ndarray  # (n, DIGITS) int32
    numbers: np.ndarray  # (n,) int64


def encode_numbers(numbers: np.ndarray) -> SequenceData:
    """Binary input and zero-padded decimal output for each number in [0, 2**BITS)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 0 or numbers.max() >= 2**BITS):
        raise ValueError(f"numbers must lie in [0, {2**BITS})")
    x = ((numbers[:, None] >> np.arange(BITS - 1, -1, -1)) & 1).astype(np.int32)
    y = ((numbers[:, None] // 10 ** np.arange(DIGITS - 1, -1, -1)) % 10).astype(np.int32)
    return SequenceData(x=x, y=y, numbers=numbers)


def binary_string(bits: np.ndarray) -> str:
    """'111101001010' for the ids of one input row."""
    return "".join(INPUT_SYMBOLS[int(b)] for b in bits)


def decimal_string(digits: np.ndarray) -> str:
    """'3914' for the ids of one output row."""
    return "".join(OUTPUT_SYMBOLS[int(d)] for d in digits)


def binary_to_decimal(split: str, *, seed: int = 0) -> SequenceData:
    """The public splits of the seq2seq exercise: "train" (3/4 of all numbers) and "validation" (the rest).

    The same permutation (fixed, public) always gives the same split, so a student's validation numbers
    are never in their training data. Hidden graders draw their own inputs.
    """
    order = np.random.default_rng(2024).permutation(2**BITS)
    cut = 3 * 2**BITS // 4
    if split == "train":
        chosen = order[:cut]
    elif split == "validation":
        chosen = order[cut:]
    else:
        raise ValueError(f"split must be 'train' or 'validation', not {split!r}")
    chosen = np.random.default_rng(seed).permutation(chosen)
    return encode_numbers(chosen)
