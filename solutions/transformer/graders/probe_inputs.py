"""What the transformer probe is asked, drawn on the host for each submission (never run in a sandbox).

`make_inputs(seed)` is what the probe sandbox sees: random tensors for `scaled_dot_product_attention`, for a fresh
`MultiHeadSelfAttention` and a fresh `EncoderBlock` (with a padding mask, and other numbers at its padded
positions), digit ids for `PositionalEmbedding`, and the held-out sequences for the trained model. The dimensions
differ from the notebook's and from each other, so that a hard-coded size or a mixed-up axis shows. The hidden
graders call the same functions with the seed of probe.json to compute the references and the labels themselves:
the labels never enter a sandbox.
"""

from __future__ import annotations

import numpy as np
from transformer_data import MAX_LENGTH, MIN_LENGTH, N_DIGITS, PAD, VOCAB_SIZE, ReversalData, reversal_examples

# scaled_dot_product_attention on (batch, heads, T, d): all sizes different
F_BATCH, F_HEADS, F_QUERIES, F_KEYS, F_D_K, F_D_V = 2, 3, 5, 7, 16, 4
PE_LENGTH, PE_D_MODEL = 13, 10  # positional_encoding(length, d_model)
EMBEDDING_BATCH, EMBEDDING_D_MODEL = 3, 12  # PositionalEmbedding(VOCAB_SIZE, d_model) on (batch, MAX_LENGTH) ids
ATTENTION_BATCH, ATTENTION_LENGTH, ATTENTION_D_MODEL, ATTENTION_HEADS = 2, 7, 12, 3  # MultiHeadSelfAttention
BLOCK_LENGTHS = (7, 5, 3)  # EncoderBlock on three sequences of 7 positions, the last ones padded
BLOCK_D_MODEL, BLOCK_HEADS, BLOCK_D_FF = 12, 3, 20
N_SEQUENCES = 1_000  # held-out sequences the trained model is asked to reverse
N_ATTENTION_SEQUENCES = 64  # of those, how many its attention weights are saved for
DIMENSIONS = {"pe_length": PE_LENGTH, "pe_d_model": PE_D_MODEL, "embedding_d_model": EMBEDDING_D_MODEL,
              "attention_d_model": ATTENTION_D_MODEL, "attention_heads": ATTENTION_HEADS,
              "block_d_model": BLOCK_D_MODEL, "block_heads": BLOCK_HEADS, "block_d_ff": BLOCK_D_FF}
CONSTANTS = {"MIN_LENGTH": MIN_LENGTH, "MAX_LENGTH": MAX_LENGTH, "N_DIGITS": N_DIGITS, "PAD": PAD,
             "VOCAB_SIZE": VOCAB_SIZE}  # the release's names the definitions use


def function_inputs(seed: int) -> dict[str, np.ndarray]:
    """Query, key, value of (batch, heads, T, d) and a padding mask (batch, 1, 1, Tk) that hides the last keys
    of each sequence (a different number in each), never all of them."""
    rng = np.random.default_rng([seed, 1])
    query = rng.standard_normal((F_BATCH, F_HEADS, F_QUERIES, F_D_K)).astype(np.float32)
    key = rng.standard_normal((F_BATCH, F_HEADS, F_KEYS, F_D_K)).astype(np.float32)
    value = rng.standard_normal((F_BATCH, F_HEADS, F_KEYS, F_D_V)).astype(np.float32)
    real_keys = np.array([F_KEYS - 2, F_KEYS - 4])[:F_BATCH]
    mask = (np.arange(F_KEYS)[None, :] < real_keys[:, None])[:, None, None, :]
    return {"query": query, "key": key, "value": value, "key_mask": mask}


def embedding_tokens(seed: int) -> np.ndarray:
    """Digit ids (batch, MAX_LENGTH) drawn from four digits only, so each digit stands at several positions."""
    return np.random.default_rng([seed, 2]).integers(0, 4, size=(EMBEDDING_BATCH, MAX_LENGTH)).astype(np.int32)


def attention_inputs(seed: int) -> dict[str, np.ndarray]:
    """x (batch, T, d_model) for a fresh MultiHeadSelfAttention, and a permutation of the positions (no fixed
    point, so every position moves)."""
    rng = np.random.default_rng([seed, 3])
    x = rng.standard_normal((ATTENTION_BATCH, ATTENTION_LENGTH, ATTENTION_D_MODEL)).astype(np.float32)
    order = rng.permutation(ATTENTION_LENGTH)
    while (order == np.arange(ATTENTION_LENGTH)).any():
        order = rng.permutation(ATTENTION_LENGTH)
    return {"attention_x": x, "attention_order": order.astype(np.int32)}


def block_inputs(seed: int) -> dict[str, np.ndarray]:
    """x (batch, T, d_model) far from normalised (scaled and shifted per position, so LayerNorm(x) is not x), its
    padding mask (batch, T), and x with other, larger numbers at the padded positions."""
    rng = np.random.default_rng([seed, 4])
    shape = (len(BLOCK_LENGTHS), max(BLOCK_LENGTHS), BLOCK_D_MODEL)
    x = (3 * rng.standard_normal(shape) + rng.uniform(-2, 2, size=shape[:2] + (1,))).astype(np.float32)
    mask = np.arange(shape[1])[None, :] < np.array(BLOCK_LENGTHS)[:, None]
    other = np.where(mask[..., None], x, 20 * rng.standard_normal(shape)).astype(np.float32)
    return {"block_x": x, "block_mask": mask, "block_other": other}


def held_out_sequences(seed: int) -> ReversalData:
    """The held-out sequences the trained model is asked about, with their labels (for the graders only)."""
    return reversal_examples(N_SEQUENCES, seed=seed + 2**32, held_out=True)  # never the notebook's seeds 0 and 1


def make_inputs(seed: int) -> dict[str, np.ndarray]:
    """Everything the probe sandbox gets; the sequences' labels stay here."""
    sequences = held_out_sequences(seed).x
    return {**function_inputs(seed), "embedding_tokens": embedding_tokens(seed), **attention_inputs(seed),
            **block_inputs(seed), "sequences_x": sequences,
            "attention_sequences_x": sequences[:N_ATTENTION_SEQUENCES],
            **{name: np.array(value) for name, value in {**CONSTANTS, **DIMENSIONS}.items()}}
