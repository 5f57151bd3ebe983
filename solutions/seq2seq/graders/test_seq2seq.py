"""Hidden graders of the seq2seq exercise (10 points). Never released to students.

Structure is read from the layer graph Keras built (`keras_checks.layer_graph`: input to output), so a Sequential
model (a list or `add`, with `keras.Input` or `layers.Input`) and a functional one are graded alike. Each setting
has one check: the layer classes and their order, the recurrent layers' `return_sequences`, the repeat length and
the softmax, the number of output units. Unit sizes and the embedding size are the student's choice.
"""

import numpy as np
import pytest
from seq2seq_data import BITS, DIGITS, encode_numbers

from autograder.keras_checks import (
    LayerRule,
    architecture_rows,
    describe,
    layer_graph,
)

N_OUTPUT_SYMBOLS = 10
HIDDEN_SAMPLE_SEED = 7_193  # private: which numbers the accuracy check asks the model about
HIDDEN_SAMPLE_SIZE = 1024
ACCURACY_FLOOR, ACCURACY_TARGET = 0.05, 0.15  # bench_training.py: reference 0.52, 0.37, 0.27 (seeds 0-2)

# The settings each row shows are the ones a hidden check grades (see each check below), no more.
RULES = [
    LayerRule("Embedding"),
    LayerRule("LSTM", {"return_sequences": False}),
    LayerRule("RepeatVector", {"n": DIGITS}),
    LayerRule("LSTM", {"return_sequences": True}),
    LayerRule("Dense", {"units": N_OUTPUT_SYMBOLS, "activation": "softmax"}),
]


def _recurrent(layer) -> bool:
    return hasattr(layer, "return_sequences")  # LSTM, GRU, SimpleRNN, Bidirectional


def _encoder_and_decoder(layers: list):
    """The recurrent layers on either side of the RepeatVector (else the first and the last recurrent layer)."""
    recurrent = [index for index, layer in enumerate(layers) if _recurrent(layer)]
    repeat = next((index for index, layer in enumerate(layers) if type(layer).__name__ == "RepeatVector"), None)
    before = [index for index in recurrent if repeat is None or index < repeat]
    after = [index for index in recurrent if repeat is None or index > repeat]
    if repeat is None and len(recurrent) >= 2:
        before, after = recurrent[:1], recurrent[-1:]
    return (layers[before[-1]] if before else None), (layers[after[0]] if after else None)


@pytest.mark.points(2, cell="check_architecture")
def test_layer_types_and_order(model, credit):
    """Layers: Embedding -> LSTM -> RepeatVector -> LSTM -> Dense, no more, no fewer"""
    rows = architecture_rows(model, RULES)
    credit.layer_table(rows)
    wrong = [row for row in rows if row.change in ("class", "missing", "extra")]
    assert not wrong, ("the layers differ from Embedding -> LSTM -> RepeatVector -> LSTM -> Dense (this check looks "
                       "at the classes and their order; the settings have checks of their own)")


@pytest.mark.points(1, cell="check_architecture")
def test_encoder_and_decoder_sequences(model):
    """The encoder LSTM returns only its last output; the decoder LSTM returns sequences"""
    encoder, decoder = _encoder_and_decoder(layer_graph(model))
    assert encoder is not None and decoder is not None, (
        "expected a recurrent encoder before the RepeatVector and a recurrent decoder after it")
    assert not encoder.return_sequences, (
        f"the encoder {describe(encoder, ('return_sequences',))} must not return sequences (return_sequences=False)")
    assert decoder.return_sequences, (
        f"the decoder {describe(decoder, ('return_sequences',))} must return sequences (return_sequences=True)")


def _is_softmax(layer) -> bool:
    if type(layer).__name__ == "Softmax":
        return True
    return str(layer.get_config().get("activation")) == "softmax"


@pytest.mark.points(1, cell="check_architecture")
def test_repeat_and_softmax(model):
    """RepeatVector repeats the encoding once per output digit; the output is a softmax"""
    graph = layer_graph(model)
    repeats = [layer for layer in graph if type(layer).__name__ == "RepeatVector"]
    assert len(repeats) == 1, f"expected one RepeatVector layer, found {len(repeats)}"
    assert repeats[0].n == DIGITS, (
        f"RepeatVector must repeat {DIGITS} times (once per output digit), found {repeats[0].n}")
    assert graph and _is_softmax(graph[-1]), (
        f"the last layer must be Dense(..., activation='softmax'), found {describe(graph[-1]) if graph else 'none'}")


@pytest.mark.points(1, cell="check_output_shape")
def test_output_shape(model):
    """One output unit per digit: output shape (None, steps, 10)"""
    found = tuple(model.output_shape)
    assert found[-1:] == (N_OUTPUT_SYMBOLS,), (
        f"expected {N_OUTPUT_SYMBOLS} outputs per step (one per digit 0-9), output shape (None, {DIGITS}, "
        f"{N_OUTPUT_SYMBOLS}); found {found}: the last Dense layer needs {N_OUTPUT_SYMBOLS} units")


@pytest.mark.points(5, cell="check_accuracy")
def test_exact_sequence_accuracy(model, credit):
    """Exact-sequence accuracy on a hidden sample of numbers (all four digits right)"""
    data = encode_numbers(np.random.default_rng(HIDDEN_SAMPLE_SEED).choice(2**BITS, HIDDEN_SAMPLE_SIZE,
                                                                            replace=False))
    assert tuple(model.input_shape) == (None, BITS), f"expected input shape (None, {BITS}), found {model.input_shape}"
    predicted = np.asarray(model.predict(data.x, batch_size=256, verbose=0)).argmax(axis=-1)
    assert predicted.shape == data.y.shape, f"predictions have shape {predicted.shape}, expected {data.y.shape}"
    accuracy = float((predicted == data.y).all(axis=1).mean())
    credit.threshold(metric="exact-sequence accuracy", measured=accuracy, target=ACCURACY_TARGET,
                     floor=ACCURACY_FLOOR, about=f"on {HIDDEN_SAMPLE_SIZE} hidden numbers")
    assert credit.fraction > 0, credit.message
