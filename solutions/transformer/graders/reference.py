"""What the student's definitions should compute, in numpy: the hidden graders' references (never in a sandbox).

Each function takes plain arrays (the probe's inputs, and the projection weights the probe read off the student's
fresh layer) and returns what the release's equations give for them.
"""

from __future__ import annotations

import numpy as np


def positional_encodings(length: int, d_model: int) -> dict[str, np.ndarray]:
    """The paper's sinusoidal encoding (length, d_model) in the two accepted layouts: sines and cosines
    interleaved (the paper's), and all sines first, then all cosines (TensorFlow's tutorial)."""
    positions = np.arange(length)[:, None]
    frequencies = 1.0 / np.power(10000.0, 2 * np.arange(d_model // 2) / d_model)
    angles = positions * frequencies[None, :]
    interleaved = np.empty((length, d_model))
    interleaved[:, 0::2], interleaved[:, 1::2] = np.sin(angles), np.cos(angles)
    return {"interleaved": interleaved, "sines then cosines": np.concatenate([np.sin(angles), np.cos(angles)], 1)}


def layer_norm(x: np.ndarray, epsilon: float = 1e-3) -> np.ndarray:
    """A fresh LayerNormalization (gamma 1, beta 0, Keras's epsilon) over the last axis."""
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + epsilon)


def double_centred(matrix: np.ndarray) -> np.ndarray:
    """`matrix` minus its row and column means (last two axes): what is left of log-weights after any per-query
    normalisation, so that scores compare whatever constant the softmax removed."""
    return (matrix - matrix.mean(axis=-1, keepdims=True) - matrix.mean(axis=-2, keepdims=True)
            + matrix.mean(axis=(-2, -1), keepdims=True))


def split_heads(projected: np.ndarray, heads: int) -> np.ndarray:
    """(batch, T, d_model) -> (batch, heads, T, d_k): head i gets features i d_k ... (i + 1) d_k - 1."""
    batch, length, d_model = projected.shape
    return projected.reshape(batch, length, heads, d_model // heads).transpose(0, 2, 1, 3)


def merge_heads(per_head: np.ndarray) -> np.ndarray:
    """(batch, heads, T, d_k) -> (batch, T, heads d_k): the heads concatenated along the features."""
    batch, heads, length, d_k = per_head.shape
    return per_head.transpose(0, 2, 1, 3).reshape(batch, length, heads * d_k)


def head_scores(x: np.ndarray, projections: dict[str, tuple[np.ndarray, np.ndarray]], heads: int) -> np.ndarray:
    """Q_i K_i^T of each head (batch, heads, T, T), unscaled, from the layer's own w_query and w_key."""
    query, key = (split_heads(x @ kernel + bias, heads) for kernel, bias in
                  (projections["w_query"], projections["w_key"]))
    return query @ np.swapaxes(key, -1, -2)


def merged_output(x: np.ndarray, projections: dict[str, tuple[np.ndarray, np.ndarray]],
                  weights: np.ndarray) -> np.ndarray:
    """Concat_i(weights_i V_i) W^O + b^O for the given attention weights (batch, heads, T, T)."""
    value = split_heads(x @ projections["w_value"][0] + projections["w_value"][1], weights.shape[1])
    kernel, bias = projections["w_output"]
    return merge_heads(weights @ value) @ kernel + bias


def fitted_scale(found_logits: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The c for which double_centred(found_logits) is closest to c double_centred(scores), and the largest
    difference left."""
    found, expected = double_centred(found_logits), double_centred(scores)
    scale = float((found * expected).sum() / max(float((expected**2).sum()), 1e-12))
    return scale, float(np.abs(found - scale * expected).max())
