"""Hidden graders of the attention exercise (14 points). Never released to students.

The probe (probe.py) ran the student's function and models in a fresh sandbox on inputs drawn for this
submission (probe_inputs.py); the references are computed here, with numpy, from the same inputs. The five checks
of the function each test one property, so that one mistake (no scaling, the mask ignored, the softmax over the
queries) costs one check: together they pin the function down to the reference.
"""

import struct

import numpy as np
import pytest
from dates import INPUT_LENGTH, N_OUTPUT_SYMBOLS, OUTPUT_LENGTH, PAD, exact_match
from probe_inputs import BATCH, D_K, D_V, N_ATTENTION_DATES, N_DATES, N_KEYS, N_QUERIES

WEIGHTS_SHAPE = (BATCH, N_QUERIES, N_KEYS)
OUTPUT_SHAPE = (BATCH, N_QUERIES, D_V)
SUM_TOLERANCE = 1e-4  # float32 softmax rows sum to 1 within ~1e-6
MASKED_WEIGHT_LIMIT = 1e-6  # a masked key's weight must be 0; exp(-1e9) is
LOGIT_TOLERANCE = 2e-3  # on log-weights of order 1, computed in float32
ACCURACY_FLOOR, ACCURACY_TARGET = 0.5, 0.9  # calibrated: benchmarks/bench_training.py attention
HEATMAP = "attention_heatmap.png"
HEATMAP_PIXELS = (100, 5000)  # each side of a sensible plot, in pixels


def _double_centred(matrix: np.ndarray) -> np.ndarray:
    """`matrix` minus its row means and column means (over the last two axes): what is left of log-weights after
    any per-query or per-key normalisation, so it compares scores whichever axis a softmax ran over."""
    return (matrix - matrix.mean(axis=-1, keepdims=True) - matrix.mean(axis=-2, keepdims=True)
            + matrix.mean(axis=(-2, -1), keepdims=True))


@pytest.mark.points(1, cell="check_attention_function")
def test_function_shapes(probed):
    """scaled_dot_product_attention returns output (batch, Tq, d_v) and weights (batch, Tq, Tk)"""
    output, weights = (probed.raw(name, part="function") for name in ("plain_output", "plain_weights"))
    assert (output.shape, weights.shape) == (OUTPUT_SHAPE, WEIGHTS_SHAPE), (
        f"for query {(BATCH, N_QUERIES, D_K)}, key {(BATCH, N_KEYS, D_K)} and "
        f"value {(BATCH, N_KEYS, D_V)}: expected output {OUTPUT_SHAPE} and weights "
        f"{WEIGHTS_SHAPE}, found output {output.shape} and weights {weights.shape}")


@pytest.mark.points(1, cell="check_attention_function")
def test_weights_sum_to_one_over_the_keys(probed):
    """Each query's weights sum to 1 over the keys, with and without a mask"""
    for case, part in (("plain", "function"), ("masked", "masked")):
        sums = probed.array(f"{case}_weights", part=part, shape=WEIGHTS_SHAPE).sum(axis=-1)
        worst = float(np.abs(sums - 1).max())
        assert worst <= SUM_TOLERANCE, (
            f"{'with' if case == 'masked' else 'without'} a mask, the weights of a query sum to "
            f"{sums.flat[np.abs(sums - 1).argmax()]:.4f} over the keys, expected 1: take the softmax over the keys "
            "(the last axis), after masking")


@pytest.mark.points(1, cell="check_attention_function")
def test_masked_keys_get_no_weight(probed, function_inputs):
    """Masked keys (mask == 0) get a weight of 0"""
    weights = probed.array("masked_weights", part="masked", shape=WEIGHTS_SHAPE)
    masked = function_inputs["mask"] == 0
    heaviest = float(np.abs(weights[masked]).max())
    assert heaviest <= MASKED_WEIGHT_LIMIT, (
        f"a masked key got a weight of {heaviest:.3g}, expected 0: where mask is 0, set the score to a large "
        "negative number (e.g. -1e9) before the softmax")


@pytest.mark.points(1, cell="check_attention_function")
def test_scores_are_scaled_by_the_square_root_of_d_k(probed, function_inputs):
    """The scores are Q K^T / sqrt(d_k)"""
    weights = probed.array("plain_weights", part="function", shape=WEIGHTS_SHAPE)
    assert (weights > 0).all(), "without a mask, every weight must be positive (a softmax of the scores)"
    scores = function_inputs["query"] @ np.swapaxes(function_inputs["key"], -1, -2)
    expected = _double_centred(scores) / np.sqrt(D_K)
    found = _double_centred(np.log(weights))
    if float(np.abs(found - expected).max()) <= LOGIT_TOLERANCE:
        return
    scale = float((_double_centred(scores) ** 2).sum() / (_double_centred(scores) * found).sum())
    fits = float(np.abs(found - _double_centred(scores) / scale).max()) <= 10 * LOGIT_TOLERANCE
    assert not fits, (f"your weights are a softmax of Q K^T / {scale:.2f}, expected Q K^T / sqrt(d_k) = "
                      f"Q K^T / {np.sqrt(D_K):.2f} (d_k = {D_K}, the last axis of query and key)")
    raise AssertionError("your weights are not a softmax of Q K^T / sqrt(d_k): compute the scores as "
                         "query @ key^T (key's last two axes swapped) divided by sqrt(d_k)")


@pytest.mark.points(1, cell="check_attention_function")
def test_output_is_the_weighted_sum_of_the_values(probed, function_inputs):
    """The output is the weights applied to the values (weights @ value)"""
    weights = probed.array("plain_weights", part="function", shape=WEIGHTS_SHAPE)
    output = probed.array("plain_output", part="function", shape=OUTPUT_SHAPE)
    expected = weights @ function_inputs["value"]
    worst = float(np.abs(output - expected).max())
    assert worst <= 1e-4 * max(1.0, float(np.abs(expected).max())), (
        f"the output differs from weights @ value by up to {worst:.3g}: multiply the weights by the values")


@pytest.mark.points(1, cell="check_attention_layer")
def test_model_attention_sums_to_one(probed):
    """The trained model's attention: each output character's weights sum to 1 over the input characters"""
    weights = probed.array("date_attention", part="attention_model",
                          shape=(N_ATTENTION_DATES, OUTPUT_LENGTH, INPUT_LENGTH))
    sums = weights.sum(axis=-1)
    worst = float(np.abs(sums - 1).max())
    assert worst <= 1e-3, (f"an output character's attention weights sum to {sums.flat[np.abs(sums - 1).argmax()]:.4f}"
                           " over the input characters, expected 1: take the softmax over the keys (the last axis)")


@pytest.mark.points(1, cell="check_attention_layer")
def test_model_attention_ignores_padding(probed, held_out_dates):
    """The trained model's attention gives the padding after the text no weight"""
    weights = probed.array("date_attention", part="attention_model",
                          shape=(N_ATTENTION_DATES, OUTPUT_LENGTH, INPUT_LENGTH))
    padding = np.broadcast_to((held_out_dates.x[:N_ATTENTION_DATES] == PAD)[:, None, :], weights.shape)
    on_padding = np.where(padding, np.abs(weights), 0.0).sum(axis=-1)
    worst = float(on_padding.max())
    assert worst <= 1e-3, (f"up to {worst:.3f} of an output character's attention goes to padding, expected 0: "
                           "use padding_mask in BahdanauAttention (scores of padding to -1e9 before the softmax)")


@pytest.mark.points(5, cell="check_accuracy")
def test_exact_sequence_accuracy_on_held_out_dates(probed, held_out_dates, credit):
    """Exact-sequence accuracy on hidden held-out dates (all ten characters right)"""
    outputs = probed.array("date_outputs", part="model", shape=(N_DATES, OUTPUT_LENGTH, N_OUTPUT_SYMBOLS))
    accuracy = exact_match(outputs.argmax(axis=-1), held_out_dates.y)
    credit.threshold(metric="exact-sequence accuracy", measured=accuracy, target=ACCURACY_TARGET,
                     floor=ACCURACY_FLOOR, about=f"on {N_DATES} hidden held-out dates")
    assert credit.fraction > 0, credit.message


@pytest.mark.points(2, cell="check_heatmap")
def test_heatmap_is_an_image_of_sensible_size(artifacts_dir):
    """attention_heatmap.png is a PNG image of a sensible size, not blank"""
    path = artifacts_dir / HEATMAP
    assert path.exists(), f"the notebook did not save {HEATMAP}: call fig.savefig('{HEATMAP}') in plot_attention"
    head = path.read_bytes()[:24]
    assert len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", (
        f"{HEATMAP} is not a PNG image: save it with fig.savefig('{HEATMAP}')")
    width, height = struct.unpack(">II", head[16:24])
    low, high = HEATMAP_PIXELS
    assert low <= width <= high and low <= height <= high, (  # checked before decoding: no decompression bombs
        f"{HEATMAP} is {width} x {height} pixels, expected between {low} and {high} on each side")
    from matplotlib import image

    try:
        pixels = np.asarray(image.imread(path), dtype=np.float64)
    except Exception:  # Pillow raises several types on damaged files; the student only needs to know
        raise AssertionError(f"{HEATMAP} could not be decoded as an image: save it again with fig.savefig") from None
    colours = pixels[..., :3] if pixels.ndim == 3 else pixels
    assert float(np.ptp(colours)) > 0.1, f"{HEATMAP} is blank: plot the weights (e.g. ax.imshow) before saving"
