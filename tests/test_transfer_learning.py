"""The transfer-learning exercise: its data module, its released base model and its calibration.

Fast tests check the generated data, the committed base model and the grader helpers. The slow one trains: the
calibration shows over three seeds that the frozen base beats the same model trained from scratch (the figures the
hidden graders' thresholds rest on). The graded batch (reference, blank, idioms, mistakes) is in test_idioms.py.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import re
import warnings

import nbformat
import numpy as np
import pytest

from autograder.keras_checks import (
    find_nested_model,
    inspect_keras_archive,
    layer_call_kwargs,
    parameter_count,
    weight_differences,
)
from tests.conftest import REPO, exercise_module

transfer_data = exercise_module("transfer_learning", "transfer_data")
FEATURES, MAGAZINES, SENTENCE_LENGTH, TOPICS, VOCAB_SIZE, WORDS = (
    transfer_data.FEATURES, transfer_data.MAGAZINES, transfer_data.SENTENCE_LENGTH, transfer_data.TOPICS,
    transfer_data.VOCAB_SIZE, transfer_data.WORDS)
domain_emails, general_corpus = transfer_data.domain_emails, transfer_data.general_corpus

ASSIGNMENT = "transfer_learning"
SOURCE = REPO / "solutions" / ASSIGNMENT
BASE_FILE = SOURCE / "base_model.keras"


@functools.cache
def _graders_module():
    """The hidden graders' module, for its thresholds and check names (imported by path: graders/ is no package)."""
    spec = importlib.util.spec_from_file_location("transfer_graders", SOURCE / "graders" / "test_transfer_learning.py")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # its points marker belongs to the graders' plugin, not loaded here
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        spec.loader.exec_module(module)
    return module


# --- the data module -------------------------------------------------------------------------------------------

def test_data_sets_are_deterministic_balanced_and_in_the_vocabulary():
    first, again, other = domain_emails(200, seed=3), domain_emails(200, seed=3), domain_emails(200, seed=4)
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert not np.array_equal(first.x, other.x)
    assert first.x.shape == (200, SENTENCE_LENGTH) and first.x.dtype == np.int32 and first.y.dtype == np.int32
    assert np.bincount(first.y).tolist() == [50] * len(MAGAZINES) and first.labels == tuple(MAGAZINES)
    corpus = general_corpus(1200, seed=0)
    assert np.bincount(corpus.y).tolist() == [100] * len(TOPICS) and corpus.labels == TOPICS
    for data in (first, corpus):
        assert data.x.min() >= 1 and data.x.max() < VOCAB_SIZE  # id 0 is padding, never drawn


def test_language_is_fixed_and_topic_words_partition_the_vocabulary():
    topic_ids, filler_ids = transfer_data._TOPIC_IDS, transfer_data._FILLER_IDS
    everything = np.concatenate([topic_ids.ravel(), filler_ids])
    assert sorted(everything.tolist()) == list(range(1, VOCAB_SIZE))
    assert len(set(WORDS)) == VOCAB_SIZE and WORDS[0] == "<pad>"
    assert transfer_data._language()[0] == WORDS  # no dependence on hash seeds or call order
    assert transfer_data.decode(np.array([topic_ids[0, 0], filler_ids[0]])).count(" ") == 1


def test_emails_are_mostly_about_their_magazines_topics():
    emails = domain_emails(400, seed=0)
    topic_of = np.full(VOCAB_SIZE, -1)
    for topic, ids in enumerate(transfer_data._TOPIC_IDS):
        topic_of[ids] = topic
    covered = [[TOPICS.index(t) for t in topics] for topics in MAGAZINES.values()]
    own = [np.isin(topic_of[row], covered[label]).sum() for row, label in zip(emails.x, emails.y, strict=True)]
    assert 4 <= np.mean(own) <= 6.5  # 25 % of 20 tokens from the e-mail's topic (plus digressions into a sibling)


def test_the_notebooks_recipe_is_the_code_that_built_the_base():
    notebook = nbformat.read(SOURCE / f"{ASSIGNMENT}.ipynb", as_version=4)
    text = next(c.source for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "step-1-text")
    listing = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    code = "".join(inspect.getsource(transfer_data.train_base).split())
    for statement in re.split(r"\n(?=\S)", listing.strip()):
        assert "".join(statement.split()) in code, f"the notebook shows code train_base does not run: {statement}"


# --- the released base model ------------------------------------------------------------------------------------

@pytest.mark.sandbox
def test_committed_base_is_a_safe_feature_extractor_and_released_unchanged():
    import keras

    assert (REPO / "assignments" / ASSIGNMENT / "base_model.keras").read_bytes() == BASE_FILE.read_bytes(), (
        "assignments/transfer_learning/base_model.keras differs from solutions/: run `dlgrade generate "
        "transfer_learning`")
    inspect_keras_archive(BASE_FILE)
    base = keras.saving.load_model(BASE_FILE, safe_mode=True)
    assert base.input_shape == (None, SENTENCE_LENGTH) and base.output_shape == (None, FEATURES)
    assert any(type(layer).__name__ == "BatchNormalization" for layer in base.layers)


# --- grader helpers on tiny models -----------------------------------------------------------------------------

def _stacked(base, **call):
    import keras

    inputs = keras.Input(shape=(3,))
    return keras.Model(inputs, keras.layers.Dense(2)(base(inputs, **call)))


@pytest.mark.sandbox
def test_grader_helpers_find_the_base_its_call_and_its_changes(tmp_path):
    import keras

    inputs = keras.Input(shape=(3,))
    base = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs)), name="base")
    base.trainable = False
    model = _stacked(base, training=False)
    model.save(tmp_path / "m.keras")
    config = inspect_keras_archive(tmp_path / "m.keras")
    assert layer_call_kwargs(config, "base") == [{"training": False, "mask": None}]
    assert find_nested_model(model, base) is base
    assert parameter_count(model.trainable_weights) == 4 * 2 + 2
    twin = keras.models.clone_model(base)
    twin.set_weights(base.get_weights())
    assert weight_differences(twin.weights, base.weights) == []
    twin.weights[0].assign(twin.weights[0] + 1.0)
    assert len(weight_differences(twin.weights, base.weights)) == 1
    sequential = keras.Sequential([keras.Input(shape=(3,)), base])
    sequential.save(tmp_path / "s.keras")
    assert layer_call_kwargs(inspect_keras_archive(tmp_path / "s.keras"), "base") == []
    with pytest.raises(AssertionError, match="found no model used as a layer"):
        find_nested_model(keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)]), base)


# --- calibration: transfer beats learning from scratch, over seeds ----------------------------------------------

def _reference_recipe(base, *, seed: int, train) -> float:
    """The reference notebook's steps 3-4 on `base`: accuracy on 2,000 e-mails no grader uses."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(SENTENCE_LENGTH,), dtype="int32")
    x = keras.layers.Dropout(0.2)(base(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(len(MAGAZINES), activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(train.x, train.y, epochs=20, batch_size=16, verbose=0)
    test = domain_emails(2000, seed=1_000)
    return float((model.predict(test.x, verbose=0).argmax(axis=-1) == test.y).mean())


@pytest.mark.slow
def test_frozen_base_beats_the_same_model_from_scratch_on_every_seed():
    import keras

    graders = _graders_module()
    transfer, scratch = [], []
    for seed in (0, 1, 2):
        train = domain_emails(120, seed=seed)
        base = keras.saving.load_model(BASE_FILE)
        base.trainable = False
        transfer.append(_reference_recipe(base, seed=seed, train=train))
        keras.utils.set_random_seed(seed)
        scratch.append(_reference_recipe(transfer_data.build_base(), seed=seed, train=train))
    print(f"transfer {transfer}, scratch {scratch}")
    assert min(transfer) >= graders.ACCURACY_TARGET + 0.05, transfer
    assert max(scratch) <= graders.SCRATCH_ACCURACY - 0.03, scratch


# The reference, the blank release, every correct idiom and every realistic mistake are graded in one real batch
# in tests/test_idioms.py (transfer_graded).
