"""Example submissions of the transformer exercise: `make demo` grades them and tests/test_transformer.py proves
that each mistake loses exactly its checks (see autograder/examples.py). Never released (nbgrader_config.py
ignores this file)."""

from __future__ import annotations

import copy

from autograder.examples import HONEST, Example

KERAS_ATTENTION = '''class MultiHeadSelfAttention(layers.Layer):
    """Multi-head self-attention: Keras's own layer does it all."""

    def __init__(self, d_model, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads = d_model, num_heads
        self.keras_attention = layers.MultiHeadAttention(num_heads, key_dim=d_model // num_heads)

    def call(self, x, padding_mask=None):
        mask = None if padding_mask is None else ops.expand_dims(padding_mask, 1)  # (batch, 1, T): every query
        output, weights = self.keras_attention(x, x, attention_mask=mask, return_attention_scores=True)
        return output, weights
'''


def _edited(*edits: tuple[str, str, str]):
    """A build that replaces `old` by `new` in the reference's cell `grade_id`, for each (grade_id, old, new)."""

    def build(reference, release):
        changed = copy.deepcopy(reference)
        for grade_id, old, new in edits:
            cell = next(c for c in changed.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                        == grade_id)
            if old not in cell.source:
                raise ValueError(f"{old!r} not in cell {grade_id}")
            cell.source = cell.source.replace(old, new)
        return changed

    return build


def _keras_attention(reference, release):
    changed = copy.deepcopy(reference)
    cell = next(c for c in changed.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                == "multi_head_attention")
    cell.source = KERAS_ATTENTION
    return changed


EXAMPLES = (
    *HONEST,
    Example("no_scaling", "forgets to divide the scores by sqrt(d_k): loses the 1 point of the scaling check",
            _edited(("scaled_dot_product_attention", " / ops.sqrt(d_k)", ""))),
    Example("no_positional_encoding", "never adds the positional encoding: loses the embedding check (1) and, unable "
            "to tell positions apart, the accuracy (5)",
            _edited(("positional_embedding", "return embedded + self.encoding[None, :length, :]",
                     "return embedded  # the positional encoding: later"))),
    Example("heads_not_merged", "reshapes the heads to (batch, T, d_model) without transposing them back, which mixes "
            "positions: loses the merge and permutation checks and, padding now leaking into the digits' outputs, "
            "the block's padding check (3); it still learns to reverse",
            _edited(("multi_head_attention", "ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (batch, length, "
                     "self.d_model))", "ops.reshape(heads, (batch, length, self.d_model))"))),
    Example("residual_after_norm", "x + LayerNorm(Sublayer(x)) instead of LayerNorm(x + Sublayer(x)): loses the two "
            "normalisation checks (2) and, training far slower, the accuracy (5)",
            _edited(("encoder_block", "z = self.norm1(x + self.dropout1(attended, training=training))",
                     "z = x + self.norm1(self.dropout1(attended, training=training))"),
                    ("encoder_block", "return self.norm2(z + self.dropout2(self.ffn(z), training=training))",
                     "return z + self.norm2(self.dropout2(self.ffn(z), training=training))"))),
    Example("mask_ignored", "never passes the padding mask to scaled_dot_product_attention: loses the block's and the "
            "model's padding checks (2); it still learns to reverse",
            _edited(("multi_head_attention", "scaled_dot_product_attention(query, key, value, mask=mask)",
                     "scaled_dot_product_attention(query, key, value)"))),
    Example("keras_attention", "keras.layers.MultiHeadAttention in place of their own: loses the 5 points of the "
            "multi-head attention part and keeps the others", _keras_attention),
)
