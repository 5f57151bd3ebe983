"""Hidden graders of the transfer-learning exercise (10 points). Never released to students.

The base must reach the saved model untouched (bit for bit) and frozen (one real optimizer step moves only the
head), be called in inference mode, and the trained head must beat what the same model reaches from scratch.
"""

import numpy as np
import pytest
from transfer_data import MAGAZINES, SENTENCE_LENGTH

from autograder.keras_checks import (
    find_nested_model,
    layer_call_kwargs,
    one_sgd_step,
    parameter_count,
    weight_differences,
)

N_MAGAZINES = len(MAGAZINES)
ACCURACY_TARGET = 0.85  # the reference: 0.93 on every seed (benchmarks/bench_training.py transfer_learning)
SCRATCH_ACCURACY = 0.50  # the reference's model with a fresh, trainable base on the same 120 e-mails and budget:
#                          0.39-0.45 over seeds 0-2 (measured by tests/test_transfer_learning.py), rounded up
STEP_BATCH = 64


@pytest.mark.points(2, cell="check_base_frozen")
def test_base_weights_are_the_released_ones(base, released_base):
    """The base inside the saved model is bit-identical to base_model.keras"""
    changed = weight_differences(base.weights, released_base.weights)
    assert not changed, (
        f"the base's weights differ from base_model.keras in {len(changed)} of {len(released_base.weights)} "
        f"arrays: {', '.join(changed[:3])}; freeze the base (base_model.trainable = False) before you compile "
        "and train, so that training moves only the new head")


@pytest.mark.points(2, cell="check_base_frozen")
def test_one_training_step_moves_only_the_head(model, base, fresh_model, released_base, hidden_emails):
    """One optimizer step on the saved model changes the new head and leaves the base as it is"""
    stepped_base = find_nested_model(fresh_model, released_base)
    x = hidden_emails.x[:STEP_BATCH]
    y = np.eye(N_MAGAZINES, dtype="float32")[hidden_emails.y[:STEP_BATCH]]
    try:
        one_sgd_step(fresh_model, x, y)
    except Exception as exc:  # Keras raises many types for a model that does not fit the data
        raise AssertionError(f"one training step on your saved model failed ({type(exc).__name__}): it must take "
                             f"(None, {SENTENCE_LENGTH}) token ids and give (None, {N_MAGAZINES})") from None
    moved = weight_differences(stepped_base.weights, base.weights)
    assert not moved, (f"one optimizer step on your saved model changed its base ({', '.join(moved[:3])}): the base "
                       "is saved trainable; set base_model.trainable = False and keep it frozen")
    head = [(stepped, saved) for stepped, saved in zip(fresh_model.layers, model.layers, strict=True)
            if stepped.weights and stepped is not stepped_base]
    assert head, "your model has no layer with weights besides the base: add the new head, a Dense layer"
    changed = [stepped.name for stepped, saved in head if weight_differences(stepped.weights, saved.weights)]
    assert changed, (f"one optimizer step changed none of the head's layers ({', '.join(s.name for s, _ in head)}): "
                     "they are frozen too; freeze only the base")


@pytest.mark.points(1, cell="check_new_model")
def test_only_the_head_is_trainable(model, released_base):
    """Trainable parameters: only the new head's, Dense(4) on the base's 64 features"""
    features = released_base.output_shape[-1]
    expected = features * N_MAGAZINES + N_MAGAZINES
    found = parameter_count(model.trainable_weights)
    trainable = [f"{layer.name} ({parameter_count(layer.trainable_weights)})" for layer in model.layers
                 if layer.trainable_weights]
    assert found == expected, (
        f"expected {expected} trainable parameters (the head: Dense({N_MAGAZINES}) on the base's {features} "
        f"features), found {found} in {', '.join(trainable) or 'no layer'}: freeze the base and add only the "
        "head described in the notebook")


@pytest.mark.points(1, cell="check_new_model")
def test_base_is_called_in_inference_mode(config, base):
    """The base is called as a layer in inference mode: base_model(inputs, training=False)"""
    assert config.get("class_name") != "Sequential", (
        "your model is a Sequential model, which cannot call the base with training=False: build a functional "
        "model, x = base_model(inputs, training=False)")
    calls = layer_call_kwargs(config, base.name)
    assert calls, f"the saved model records no call of the base {base.name!r}: call it as base_model(inputs, ...)"
    found = [call.get("training", "(not given)") for call in calls]
    assert all(value is False for value in found), (
        f"expected the base to be called with training=False, found training={found[0]}: call it as "
        "base_model(inputs, training=False) so that it runs in inference mode")


@pytest.mark.points(4, cell="check_accuracy")
def test_accuracy_on_hidden_emails(model, hidden_emails, credit):
    """Accuracy on hidden e-mails of the target domain, above a model trained from scratch"""
    assert tuple(model.input_shape) == (None, SENTENCE_LENGTH), (
        f"expected input shape (None, {SENTENCE_LENGTH}), found {model.input_shape}")
    assert tuple(model.output_shape) == (None, N_MAGAZINES), (
        f"expected output shape (None, {N_MAGAZINES}), found {model.output_shape}")
    predicted = np.asarray(model.predict(hidden_emails.x, batch_size=500, verbose=0)).argmax(axis=-1)
    accuracy = float((predicted == hidden_emails.y).mean())
    credit.threshold(metric="accuracy", measured=accuracy, target=ACCURACY_TARGET, floor=SCRATCH_ACCURACY,
                     about=f"on {len(hidden_emails.y)} hidden e-mails")
    credit.message += (f"; {SCRATCH_ACCURACY} is about what the same model reaches when it learns from scratch on "
                       "the 120 e-mails")
    assert credit.fraction > 0, credit.message
