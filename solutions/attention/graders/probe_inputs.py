"""What the attention probe is asked, drawn on the host for each submission (never run in a sandbox).

`make_inputs(seed)` is what the probe sandbox sees: random queries, keys, values and a mask for
`scaled_dot_product_attention`, and the encoded text of held-out dates for the trained model. The hidden graders
call the same functions with the seed of probe.json to compute the references and the labels themselves: the
labels never enter a sandbox.
"""

from __future__ import annotations

import numpy as np
from dates import (
    INPUT_LENGTH,
    N_INPUT_SYMBOLS,
    N_OUTPUT_SYMBOLS,
    OUTPUT_LENGTH,
    PAD,
    DateData,
    date_examples,
)

N_DATES = 1_000
N_ATTENTION_DATES = 64  # of those, how many the attention weights are saved for
BATCH, N_QUERIES, N_KEYS, D_K, D_V = 3, 5, 7, 16, 3  # all different, so a mixed-up axis shows
CONSTANTS = {"INPUT_LENGTH": INPUT_LENGTH, "OUTPUT_LENGTH": OUTPUT_LENGTH, "N_INPUT_SYMBOLS": N_INPUT_SYMBOLS,
             "N_OUTPUT_SYMBOLS": N_OUTPUT_SYMBOLS, "PAD": PAD}  # the release's names the definitions use


def function_inputs(seed: int) -> dict[str, np.ndarray]:
    """Random query, key, value and a 0/1 mask of shape (batch, Tq, Tk) in which every query sees at least one
    key and misses at least one, and every key is seen by at least one query (so a softmax over the wrong axis
    still gives masked keys no weight: that mistake is graded by another check)."""
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((BATCH, N_QUERIES, D_K)).astype(np.float32)
    key = rng.standard_normal((BATCH, N_KEYS, D_K)).astype(np.float32)
    value = rng.standard_normal((BATCH, N_KEYS, D_V)).astype(np.float32)
    mask = (rng.random((BATCH, N_QUERIES, N_KEYS)) < 0.5).astype(np.float32)
    for k in range(N_KEYS):
        mask[:, k % N_QUERIES, k] = 1.0
    for q in range(N_QUERIES):
        mask[:, q, (q + 1) % N_QUERIES] = 0.0
    return {"query": query, "key": key, "value": value, "mask": mask}


def held_out_dates(seed: int) -> DateData:
    """The held-out dates the trained model is asked about, with their labels (for the graders only)."""
    return date_examples(N_DATES, seed=seed, held_out=True)


def make_inputs(seed: int) -> dict[str, np.ndarray]:
    """Everything the probe sandbox gets: the function's inputs, the dates' encoded text, the release's constants."""
    dates = held_out_dates(seed).x
    return {**function_inputs(seed), "dates_x": dates, "attention_dates_x": dates[:N_ATTENTION_DATES],
            **{name: np.array(value) for name, value in CONSTANTS.items()}}
