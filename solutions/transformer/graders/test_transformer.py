"""Hidden graders of the transformer exercise (20 points). Never released to students.

The probe (probe.py) ran the student's definitions in a fresh sandbox on inputs drawn for this submission
(probe_inputs.py): the function on random tensors, fresh layers on random inputs, the trained model on held-out
sequences. The references are computed here, with numpy (reference.py), from the same inputs and from the
projection weights the probe read off the student's fresh layer. Each check tests one property of a Transformer,
so that one mistake (no scaling, no positional encoding, heads merged wrongly, the residual after the
normalisation, the mask ignored) costs its own checks and no others.
"""

import struct

import numpy as np
import pytest
import reference
from probe_inputs import (
    ATTENTION_BATCH,
    ATTENTION_D_MODEL,
    ATTENTION_HEADS,
    ATTENTION_LENGTH,
    BLOCK_D_MODEL,
    BLOCK_LENGTHS,
    EMBEDDING_BATCH,
    EMBEDDING_D_MODEL,
    F_BATCH,
    F_D_K,
    F_D_V,
    F_HEADS,
    F_KEYS,
    F_QUERIES,
    N_ATTENTION_SEQUENCES,
    N_SEQUENCES,
    PE_D_MODEL,
    PE_LENGTH,
)
from transformer_data import MAX_LENGTH, PAD, VOCAB_SIZE, sequence_accuracy

WEIGHTS_SHAPE, OUTPUT_SHAPE = (F_BATCH, F_HEADS, F_QUERIES, F_KEYS), (F_BATCH, F_HEADS, F_QUERIES, F_D_V)
ATTENTION_OUTPUT = (ATTENTION_BATCH, ATTENTION_LENGTH, ATTENTION_D_MODEL)
ATTENTION_WEIGHTS = (ATTENTION_BATCH, ATTENTION_HEADS, ATTENTION_LENGTH, ATTENTION_LENGTH)
BLOCK_SHAPE = (len(BLOCK_LENGTHS), max(BLOCK_LENGTHS), BLOCK_D_MODEL)
PROJECTIONS = ("w_query", "w_key", "w_value", "w_output")
SUM_TOLERANCE = 1e-4  # float32 softmax rows sum to 1 within ~1e-6
MASKED_WEIGHT_LIMIT = 1e-6  # a masked key's weight must be 0; exp(-1e9) is
LOGIT_TOLERANCE = 2e-3  # on log-weights of order 1, computed in float32
RELATIVE_TOLERANCE = 1e-4  # float32 outputs against float64 references, relative to the largest value
NORM_TOLERANCE = 2e-2  # LayerNorm's epsilon (Keras 1e-3, the student's may differ) moves a variance of ~1 this much
ACCURACY_FLOOR, ACCURACY_TARGET = 0.5, 0.9  # calibrated: the reference reverses all 1000 on 3 seeds
PLOT = "attention_heads.png"
PLOT_PIXELS = (100, 5000)  # each side of a sensible plot, in pixels


def _close(found: np.ndarray, expected: np.ndarray) -> tuple[bool, float]:
    worst = float(np.abs(found - expected).max())
    return worst <= RELATIVE_TOLERANCE * max(1.0, float(np.abs(expected).max())), worst


def _projections(probed) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """w_query ... w_output of the fresh MultiHeadSelfAttention, as (kernel, bias), each checked for its shape."""
    found = {}
    for name in PROJECTIONS:
        if f"{name}_kernel" not in probed.arrays:
            probed.raw("attention_output", part="attention")  # says why, when the layer failed altogether
            raise AssertionError(f"MultiHeadSelfAttention has no layers.Dense called self.{name}: the release names "
                                 "the four projections w_query, w_key, w_value and w_output")
        kernel, bias = probed.raw(f"{name}_kernel", part="attention"), probed.raw(f"{name}_bias", part="attention")
        expected = (ATTENTION_D_MODEL, ATTENTION_D_MODEL)
        assert kernel.shape == expected and bias.shape == (ATTENTION_D_MODEL,), (
            f"self.{name} maps {kernel.shape[0]} to {kernel.shape[-1]} features, expected d_model to d_model "
            f"({ATTENTION_D_MODEL} to {ATTENTION_D_MODEL}): layers.Dense(d_model)")
        found[name] = (kernel, bias)
    return found


# --- Part 1: scaled dot-product attention -----------------------------------------------------------------------

@pytest.mark.points(1, cell="check_attention_function")
def test_scores_are_scaled_by_the_square_root_of_d_k(probed, inputs):
    """The weights are a softmax over the keys of Q K^T / sqrt(d_k), on (batch, heads, T, d_k) tensors"""
    weights = probed.array("plain_weights", part="function", shape=WEIGHTS_SHAPE)
    probed.array("plain_output", part="function", shape=OUTPUT_SHAPE)
    assert (weights > 0).all(), "without a mask, every weight must be positive (a softmax of the scores)"
    scores = inputs["query"].astype(np.float64) @ np.swapaxes(inputs["key"], -1, -2)
    scale, left = reference.fitted_scale(np.log(weights), scores)
    if abs(scale * np.sqrt(F_D_K) - 1) <= 1e-3 and left <= LOGIT_TOLERANCE:
        return
    assert left > 10 * LOGIT_TOLERANCE, (f"your weights are a softmax of Q K^T / {1 / scale:.2f}, expected Q K^T / "
                                         f"sqrt(d_k) = Q K^T / {np.sqrt(F_D_K):.2f} (d_k = {F_D_K}, the last axis "
                                         "of query and key)")
    raise AssertionError("your weights are not a softmax of Q K^T / sqrt(d_k) over the keys: compute the scores as "
                         "query @ key^T (key's last two axes swapped) divided by sqrt(d_k)")


@pytest.mark.points(1, cell="check_attention_function")
def test_masked_keys_get_no_weight(probed, inputs):
    """With a padding mask (batch, 1, 1, Tk), masked keys get no weight and each query's weights sum to 1"""
    weights = probed.array("masked_weights", part="masked", shape=WEIGHTS_SHAPE)
    masked = np.broadcast_to(~inputs["key_mask"], WEIGHTS_SHAPE)
    heaviest = float(np.abs(weights[masked]).max())
    assert heaviest <= MASKED_WEIGHT_LIMIT, (
        f"a masked key got a weight of {heaviest:.3g}, expected 0: where mask is 0, set the score to a large "
        "negative number (e.g. -1e9) before the softmax")
    sums = weights.sum(axis=-1)
    worst = float(np.abs(sums - 1).max())
    assert worst <= SUM_TOLERANCE, (f"with a mask, a query's weights sum to {sums.flat[np.abs(sums - 1).argmax()]:.4f}"
                                    " over the keys, expected 1: mask the scores, then take the softmax")


# --- Part 2: positional encoding -------------------------------------------------------------------------------

def _layout(encoding: np.ndarray, length: int, d_model: int) -> str | None:
    """Which accepted layout of the paper's encoding `encoding` is, if any."""
    for name, expected in reference.positional_encodings(length, d_model).items():
        if encoding.shape == expected.shape and float(np.abs(encoding - expected).max()) <= 1e-4:
            return name
    return None


@pytest.mark.points(1, cell="check_positional_encoding")
def test_positional_encoding_is_the_papers(probed):
    """positional_encoding(length, d_model) is the paper's sines and cosines"""
    encoding = probed.array("encoding", part="encoding", shape=(PE_LENGTH, PE_D_MODEL))
    assert _layout(encoding, PE_LENGTH, PE_D_MODEL), (
        f"positional_encoding({PE_LENGTH}, {PE_D_MODEL}) is not PE(pos, 2i) = sin(pos / 10000^(2i / d_model)), "
        "PE(pos, 2i + 1) = cos(...) (interleaved, or all sines first): check the exponent 2i / d_model, which is "
        "the same for the pair of columns 2i and 2i + 1")


@pytest.mark.points(1, cell="check_positional_encoding")
def test_embedding_adds_the_positional_encoding(probed, inputs):
    """PositionalEmbedding adds the positional encoding: the same digit at positions i and j differs by PE_i - PE_j"""
    embedded = probed.array("embedded", part="embedding", shape=(EMBEDDING_BATCH, MAX_LENGTH, EMBEDDING_D_MODEL))
    tokens = inputs["embedding_tokens"]
    for encoding in reference.positional_encodings(MAX_LENGTH, EMBEDDING_D_MODEL).values():
        token_part = embedded - encoding[None]  # what is left must depend on the digit only
        spread = max(float(np.abs(token_part[tokens == digit] - token_part[tokens == digit][0]).max())
                     for digit in np.unique(tokens))
        if spread <= 1e-4 * max(1.0, float(np.abs(embedded).max())):
            return
    same = max(float(np.abs(embedded[tokens == digit] - embedded[tokens == digit][0]).max())
               for digit in np.unique(tokens))
    assert same > 1e-5, ("the same digit gets the same vector at every position: add the positional encoding "
                              "to the token embeddings, or self-attention cannot tell positions apart")
    raise AssertionError("the same digit at positions i and j should differ by exactly PE_i - PE_j: return the "
                         "token embeddings (times sqrt(d_model)) plus the first T rows of positional_encoding")


# --- Part 3: multi-head self-attention ----------------------------------------------------------------------------

@pytest.mark.points(1, cell="check_multi_head_attention")
def test_attention_shapes(own_attention):
    """MultiHeadSelfAttention returns output (batch, T, d_model) and weights (batch, heads, T, T)"""
    output = own_attention.raw("attention_output", part="attention")
    weights = own_attention.raw("attention_weights", part="attention")
    assert (output.shape, weights.shape) == (ATTENTION_OUTPUT, ATTENTION_WEIGHTS), (
        f"for x {ATTENTION_OUTPUT} and {ATTENTION_HEADS} heads: expected output {ATTENTION_OUTPUT} and weights "
        f"{ATTENTION_WEIGHTS}, found output {output.shape} and weights {weights.shape}")


@pytest.mark.points(1, cell="check_multi_head_attention")
def test_attention_parameter_count(own_attention):
    """MultiHeadSelfAttention has 4 (d_model^2 + d_model) parameters: four projections of d_model features"""
    count = int(own_attention.raw("attention_parameters", part="attention"))
    d = ATTENTION_D_MODEL
    assert count - 4 * d * d in {k * d for k in range(5)}, (
        f"with d_model = {d} and {ATTENTION_HEADS} heads, expected 4 (d_model^2 + d_model) = {4 * (d * d + d)} "
        f"parameters (four layers.Dense(d_model); {4 * d * d} without biases), found {count}: the heads share the "
        "projections, each using d_model / num_heads of their features")


@pytest.mark.points(1, cell="check_multi_head_attention")
def test_each_head_attends_with_its_slice(own_attention, inputs):
    """Each head's weights are a softmax of the scores of its own slice of the queries and keys"""
    weights = own_attention.array("attention_weights", part="attention", shape=ATTENTION_WEIGHTS)
    assert (weights > 0).all(), "without a mask, every weight must be positive (a softmax of the scores)"
    scores = reference.head_scores(inputs["attention_x"].astype(np.float64), _projections(own_attention),
                                   ATTENTION_HEADS)
    scale, left = reference.fitted_scale(np.log(weights), scores)
    assert scale > 0 and left <= LOGIT_TOLERANCE * max(1.0, float(np.abs(scale * scores).max())), (
        "the weights of head i are not a softmax of the scores of head i's slice of the queries and keys: split "
        "w_query(x) and w_key(x) with ops.reshape to (batch, T, heads, d_k), then ops.transpose to "
        "(batch, heads, T, d_k)")


@pytest.mark.points(1, cell="check_multi_head_attention")
def test_heads_are_merged_and_projected(own_attention, inputs):
    """The heads' outputs are concatenated (head i's weights times its slice of the values) and projected by w_output"""
    weights = own_attention.array("attention_weights", part="attention", shape=ATTENTION_WEIGHTS)
    output = own_attention.array("attention_output", part="attention", shape=ATTENTION_OUTPUT)
    expected = reference.merged_output(inputs["attention_x"].astype(np.float64), _projections(own_attention),
                                       weights)
    close, worst = _close(output, expected)
    assert close, (f"the output differs by up to {worst:.3g} from Concat(head_1, ..., head_h) W^O: transpose the "
                   "heads back to (batch, T, heads, d_k) before you reshape them to (batch, T, d_model), then apply "
                   "w_output")


@pytest.mark.points(1, cell="check_multi_head_attention")
def test_self_attention_is_permutation_equivariant(own_attention, inputs):
    """Without positional encoding, self-attention is permutation-equivariant: a permuted input, permuted outputs"""
    output = own_attention.array("attention_output", part="attention", shape=ATTENTION_OUTPUT)
    permuted = own_attention.array("attention_permuted", part="attention", shape=ATTENTION_OUTPUT)
    close, worst = _close(permuted, output[:, inputs["attention_order"]])
    assert close, (f"the outputs for a permuted input differ by up to {worst:.3g} from the permuted outputs: "
                   "something mixes positions (reshape the heads along the features only, transposing back first)")


# --- Part 4: the encoder block ------------------------------------------------------------------------------------

@pytest.mark.points(1, cell="check_encoder_block")
def test_padding_changes_nothing(probed, inputs):
    """Padding changes nothing: other numbers at the padded positions leave the outputs at the digits' positions"""
    output = probed.array("block_output", part="block", shape=BLOCK_SHAPE)
    other = probed.array("block_other_output", part="block", shape=BLOCK_SHAPE)
    real = inputs["block_mask"]
    close, worst = _close(other[real], output[real])
    assert close, (f"changing the padded positions changed the outputs at the digits' positions by up to "
                   f"{worst:.3g}, expected nothing: pass padding_mask from EncoderBlock to the attention, and on to "
                   "scaled_dot_product_attention as a (batch, 1, 1, T) mask")


@pytest.mark.points(1, cell="check_encoder_block")
def test_block_ends_with_a_layer_normalisation(probed):
    """The block ends with a layer normalisation: a fresh block's output has mean 0 and variance 1 at every position"""
    output = probed.array("block_plain_output", part="block", shape=BLOCK_SHAPE)
    means, stds = output.mean(axis=-1), output.std(axis=-1)
    assert float(np.abs(means).max()) <= NORM_TOLERANCE and float(np.abs(stds - 1).max()) <= NORM_TOLERANCE, (
        f"a fresh block's output has means up to {float(np.abs(means).max()):.3f} and standard deviations from "
        f"{float(stds.min()):.3f} to {float(stds.max()):.3f} over a position's features, expected 0 and 1: the "
        "block is post-norm, output = LayerNorm(z + FFN(z)), the normalisation after the residual sum")


@pytest.mark.points(1, cell="check_encoder_block")
def test_residual_goes_around_each_sublayer_into_the_normalisation(probed, inputs):
    """The residual path goes around each sublayer into the normalisation: LayerNorm(x + Sublayer(x))"""
    silenced = probed.array("block_silenced_output", part="block", shape=BLOCK_SHAPE)
    x = inputs["block_x"].astype(np.float64)
    expected = reference.layer_norm(x)
    worst = float(np.abs(silenced - expected).max())
    if worst <= NORM_TOLERANCE:
        return
    if float(np.abs(silenced).max()) <= 1e-3:
        raise AssertionError("with both sublayers silenced (their weights 0), the block returns 0, expected "
                             "LayerNorm(x): add the sublayer's input x to its output before each normalisation")
    if float(np.abs(silenced - x).max()) <= 1e-3:
        raise AssertionError("with both sublayers silenced (their weights 0), the block returns its input x, "
                             "expected LayerNorm(x): normalise after the residual sum, LayerNorm(x + Sublayer(x)), "
                             "not x + LayerNorm(Sublayer(x)) nor x + Sublayer(LayerNorm(x))")
    raise AssertionError(f"with both sublayers silenced (their weights 0), the block differs from LayerNorm(x) by up "
                         f"to {worst:.3g}: z = LayerNorm(x + attention(x)), output = LayerNorm(z + FFN(z))")


# --- Part 5: the model and its accuracy --------------------------------------------------------------------------

@pytest.mark.points(1, cell="check_model")
def test_model_shapes(probed):
    """The model gives probabilities (batch, MAX_LENGTH, VOCAB_SIZE), its attention (batch, heads, T, T)"""
    outputs = probed.array("sequence_outputs", part="model", shape=(N_SEQUENCES, MAX_LENGTH, VOCAB_SIZE))
    sums = outputs.sum(axis=-1)
    assert float(np.abs(sums - 1).max()) <= 1e-3, (
        f"the model's outputs at a position sum to {sums.flat[np.abs(sums - 1).argmax()]:.4f}, expected 1: end with "
        "layers.Dense(VOCAB_SIZE, activation='softmax')")
    attention = probed.raw("sequence_attention", part="attention_model")
    assert attention.ndim == 4 and attention.shape[0] == N_ATTENTION_SEQUENCES and attention.shape[1] >= 1 and \
        attention.shape[2:] == (MAX_LENGTH, MAX_LENGTH), (
            f"for {N_ATTENTION_SEQUENCES} sequences, attention_model gave shape {attention.shape}, expected "
            f"({N_ATTENTION_SEQUENCES}, heads, {MAX_LENGTH}, {MAX_LENGTH})")


@pytest.mark.points(1, cell="check_model")
def test_model_attention_ignores_padding(probed, held_out_sequences):
    """The trained model's attention gives padding no weight"""
    attention = probed.raw("sequence_attention", part="attention_model")
    if attention.ndim != 4 or attention.shape[0] != N_ATTENTION_SEQUENCES or attention.shape[2:] != (MAX_LENGTH,) * 2:
        raise AssertionError(f"attention_model gave shape {attention.shape}, expected "
                             f"({N_ATTENTION_SEQUENCES}, heads, {MAX_LENGTH}, {MAX_LENGTH})")
    padding = held_out_sequences.x[:N_ATTENTION_SEQUENCES] == PAD
    on_padding = np.where(padding[:, None, None, :], np.abs(attention), 0.0).sum(axis=-1)
    worst = float(on_padding.max())
    assert worst <= 1e-3, (f"up to {worst:.3f} of a position's attention goes to padding, expected 0: compute "
                           "padding_mask = ops.not_equal(tokens, PAD) and pass it to every block")


@pytest.mark.points(5, cell="check_accuracy")
def test_exact_sequence_accuracy_on_held_out_sequences(probed, held_out_sequences, credit):
    """Exact-sequence accuracy on hidden held-out sequences (every digit reversed right)"""
    outputs = probed.array("sequence_outputs", part="model", shape=(N_SEQUENCES, MAX_LENGTH, VOCAB_SIZE))
    accuracy = sequence_accuracy(outputs.argmax(axis=-1), held_out_sequences.y)
    credit.threshold(metric="exact-sequence accuracy", measured=accuracy, target=ACCURACY_TARGET,
                     floor=ACCURACY_FLOOR, about=f"on {N_SEQUENCES} hidden held-out sequences")
    assert credit.fraction > 0, credit.message


# --- Part 6: the plot ----------------------------------------------------------------------------------------------

@pytest.mark.points(1, cell="check_heads_plot")
def test_plot_is_an_image_of_sensible_size(artifacts_dir):
    """attention_heads.png is a PNG image of a sensible size, not blank"""
    path = artifacts_dir / PLOT
    assert path.exists(), f"the notebook did not save {PLOT}: call fig.savefig('{PLOT}') in plot_attention_heads"
    head = path.read_bytes()[:24]
    assert len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", (
        f"{PLOT} is not a PNG image: save it with fig.savefig('{PLOT}')")
    width, height = struct.unpack(">II", head[16:24])
    low, high = PLOT_PIXELS
    assert low <= width <= high and low <= height <= high, (  # checked before decoding: no decompression bombs
        f"{PLOT} is {width} x {height} pixels, expected between {low} and {high} on each side")
    from matplotlib import image

    try:
        pixels = np.asarray(image.imread(path), dtype=np.float64)
    except Exception:  # Pillow raises several types on damaged files; the student only needs to know
        raise AssertionError(f"{PLOT} could not be decoded as an image: save it again with fig.savefig") from None
    colours = pixels[..., :3] if pixels.ndim == 3 else pixels
    assert float(np.ptp(colours)) > 0.1, f"{PLOT} is blank: plot the weights (e.g. ax.imshow) before saving"
