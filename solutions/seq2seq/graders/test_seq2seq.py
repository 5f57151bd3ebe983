"""Hidden graders of the seq2seq exercise (10 points). Never released to students."""

import numpy as np
import pytest

from autograder.datasets import BITS, DIGITS, encode_numbers
from autograder.keras_checks import LayerRule, architecture_message, architecture_rows, describe, partial_credit

N_OUTPUT_SYMBOLS = 10
HIDDEN_SAMPLE_SEED = 7_193  # private: which numbers the accuracy check asks the model about
HIDDEN_SAMPLE_SIZE = 1024
ACCURACY_FLOOR, ACCURACY_TARGET = 0.05, 0.15  # bench_training.py: reference 0.52, 0.37, 0.27 (seeds 0-2)

RULES = [
    LayerRule("Embedding", "Embedding(input_dim=2)", lambda layer: layer.input_dim == 2),
    LayerRule("LSTM", "LSTM(return_sequences=False)", lambda layer: not layer.return_sequences),
    LayerRule("RepeatVector", f"RepeatVector(n={DIGITS})", lambda layer: layer.n == DIGITS),
    LayerRule("LSTM", "LSTM(return_sequences=True)", lambda layer: layer.return_sequences),
    LayerRule("Dense", f"Dense(units={N_OUTPUT_SYMBOLS}, activation=softmax)",
              lambda layer: layer.units == N_OUTPUT_SYMBOLS and layer.get_config()["activation"] == "softmax"),
]


def _rows(model):
    return architecture_rows(model, RULES)


@pytest.mark.points(2, cell="check_architecture")
def test_layer_types_and_order(model):
    """Layers: Embedding -> LSTM -> RepeatVector -> LSTM -> Dense, no more, no fewer"""
    rows = _rows(model)
    kinds_ok = len(rows) == len(RULES) and all(found.split("(")[0] == rule.kind
                                               for (_, _, found, _), rule in zip(rows, RULES, strict=True))
    assert kinds_ok, "the layers differ from Embedding -> LSTM -> RepeatVector -> LSTM -> Dense:\n" + \
        architecture_message(rows)


@pytest.mark.points(1, cell="check_architecture")
def test_encoder_and_decoder_sequences(model):
    """The encoder LSTM returns only its last output; the decoder LSTM returns sequences"""
    lstms = [layer for layer in model.layers if type(layer).__name__ == "LSTM"]
    assert len(lstms) == 2, f"expected 2 LSTM layers, found {len(lstms)}"
    assert not lstms[0].return_sequences, "the encoder LSTM must not return sequences (return_sequences=False)"
    assert lstms[1].return_sequences, "the decoder LSTM must return sequences (return_sequences=True)"


@pytest.mark.points(1, cell="check_architecture")
def test_repeat_and_softmax(model):
    """RepeatVector repeats the encoding once per output digit; the output layer is a softmax over 10 digits"""
    repeats = [layer for layer in model.layers if type(layer).__name__ == "RepeatVector"]
    assert len(repeats) == 1, f"expected one RepeatVector layer, found {len(repeats)}"
    assert repeats[0].n == DIGITS, (
        f"RepeatVector must repeat {DIGITS} times (once per output digit), found {repeats[0].n}")
    last = model.layers[-1]
    activation = last.get_config().get("activation")
    assert type(last).__name__ == "Dense" and activation == "softmax", (
        f"the last layer must be Dense(..., activation='softmax'), found {describe(last)}")
    assert last.units == N_OUTPUT_SYMBOLS, f"the last layer must have {N_OUTPUT_SYMBOLS} units, found {last.units}"


@pytest.mark.points(1, cell="check_output_shape")
def test_output_shape(model):
    """Output shape (None, 4, 10)"""
    expected = (None, DIGITS, N_OUTPUT_SYMBOLS)
    found = tuple(model.output_shape)
    assert found == expected, f"expected output shape {expected}, found {found}"


@pytest.mark.points(5, cell="check_accuracy")
def test_exact_sequence_accuracy(model, credit):
    """Exact-sequence accuracy on a hidden sample of numbers (all four digits right)"""
    data = encode_numbers(np.random.default_rng(HIDDEN_SAMPLE_SEED).choice(2**BITS, HIDDEN_SAMPLE_SIZE,
                                                                            replace=False))
    assert tuple(model.input_shape) == (None, BITS), f"expected input shape (None, {BITS}), found {model.input_shape}"
    predicted = np.asarray(model.predict(data.x, batch_size=256, verbose=0)).argmax(axis=-1)
    assert predicted.shape == data.y.shape, f"predictions have shape {predicted.shape}, expected {data.y.shape}"
    accuracy = float((predicted == data.y).all(axis=1).mean())
    credit.fraction = partial_credit(accuracy, floor=ACCURACY_FLOOR, target=ACCURACY_TARGET)
    credit.message = (f"exact-sequence accuracy {accuracy:.3f} on {HIDDEN_SAMPLE_SIZE} hidden numbers "
                      f"(target {ACCURACY_TARGET}, partial credit from {ACCURACY_FLOOR})")
    assert credit.fraction > 0, credit.message
