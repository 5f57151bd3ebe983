"""The transformer exercise: its data, its probe and graders, and one real batch of its examples in the sandbox.

Fast tests check the data module, the probe's inputs and the graders' numpy references. Sandbox tests run the probe
here, on each example's definitions with untrained weights, and then the real graders: each mistake costs exactly
the structural checks it breaks. The slow test grades every example of solutions/transformer/examples.py in the
sandbox, in one batch: the reference earns full marks, the blank release zero, and each mistake loses exactly its
checks (the accuracy included, where the mistake keeps the model from learning).
"""

from __future__ import annotations

import itertools

import nbformat
import numpy as np
import pytest

from tests.conftest import REPO, exercise_module, make_course

ASSIGNMENT = "transformer"
GRADERS = REPO / "solutions" / ASSIGNMENT / "graders"
PROBE_CELLS = ("scaled_dot_product_attention", "positional_embedding", "multi_head_attention", "encoder_block",
               "build_models")
POINTS = 20

# The hidden checks, by the first words of their names (the graders' docstrings).
SCALING, MASKED = "The weights are a softmax over the keys", "With a padding mask"
ENCODING, EMBEDDING = "positional_encoding(length, d_model) is", "PositionalEmbedding adds"
SHAPES, PARAMETERS, SLICES, MERGED, EQUIVARIANT = ("MultiHeadSelfAttention returns", "MultiHeadSelfAttention has",
                                                   "Each head's weights", "The heads' outputs",
                                                   "Without positional encoding")
PADDING, NORMALISED, RESIDUAL = "Padding changes nothing", "The block ends with", "The residual path"
MODEL_SHAPES, MODEL_PADDING = "The model gives", "The trained model's attention"
ACCURACY, PLOT = "Exact-sequence accuracy", "attention_heads.png is"
ALL_CHECKS = (SCALING, MASKED, ENCODING, EMBEDDING, SHAPES, PARAMETERS, SLICES, MERGED, EQUIVARIANT, PADDING,
              NORMALISED, RESIDUAL, MODEL_SHAPES, MODEL_PADDING, ACCURACY, PLOT)
OWN_ATTENTION = {SHAPES, PARAMETERS, SLICES, MERGED, EQUIVARIANT}

# example -> the checks it loses (solutions/transformer/examples.py); ACCURACY only where it cannot learn in time
LOSES = {
    "reference": set(),
    "no_scaling": {SCALING},
    "no_positional_encoding": {EMBEDDING, ACCURACY},
    "heads_not_merged": {MERGED, EQUIVARIANT, PADDING},
    "residual_after_norm": {NORMALISED, RESIDUAL, ACCURACY},
    "mask_ignored": {PADDING, MODEL_PADDING},
    "keras_attention": OWN_ATTENTION,
}


def _key(name: str) -> str:
    return next(key for key in ALL_CHECKS if name.startswith(key))


@pytest.fixture(scope="module")
def data():
    """solutions/transformer/transformer_data.py, the module released beside the notebook."""
    return exercise_module(ASSIGNMENT, "transformer_data")


@pytest.fixture(scope="module")
def probe_inputs():
    return exercise_module(ASSIGNMENT, "graders/probe_inputs")


@pytest.fixture(scope="module")
def reference():
    return exercise_module(ASSIGNMENT, "graders/reference")


# --- the data ---------------------------------------------------------------------------------------------------

def test_examples_are_deterministic_padded_and_reversed(data):
    first, again, other = (data.reversal_examples(500, seed=s) for s in (3, 3, 4))
    assert np.array_equal(first.x, again.x) and not np.array_equal(first.x, other.x)
    assert first.x.shape == first.y.shape == (500, data.MAX_LENGTH) and first.x.dtype == first.y.dtype == np.int32
    assert set(np.unique(first.lengths)) == set(range(data.MIN_LENGTH, data.MAX_LENGTH + 1))
    for x, y, length in zip(first.x, first.y, first.lengths, strict=True):
        assert (x[length:] == data.PAD).all() and (x[:length] != data.PAD).all()
        assert data.decode(y) == data.decode(x)[::-1] and (y[length:] == data.PAD).all()


def test_held_out_sequences_never_appear_in_training(data):
    training, held = data.reversal_examples(20_000, seed=0), data.reversal_examples(2_000, seed=1, held_out=True)
    assert not {tuple(row) for row in training.x} & {tuple(row) for row in held.x}
    assert data.is_held_out(held.x).all() and not data.is_held_out(training.x).any()
    share = data.is_held_out(data._draw(np.random.default_rng(0), 50_000).x).mean()
    assert 0.08 < share < 0.12, f"about one sequence in {data.HELD_OUT_EVERY} is held out, found {share:.3f}"


def test_encode_decode_and_accuracy_ignore_padding(data):
    ids = data.encode("31415")
    assert ids.shape == (1, data.MAX_LENGTH) and data.decode(ids[0]) == "31415"
    assert data.decode(data.reverse(ids)[0]) == "51413"
    for bad in ("12", "1" * 11, "12a", "١٢٣"):
        with pytest.raises(ValueError):
            data.encode(bad)
    y = data.reverse(np.concatenate([data.encode("123"), data.encode("4567")]))
    predicted = np.where(y == data.PAD, 0, y)  # wrong only at padding
    assert data.sequence_accuracy(predicted, y) == 1.0
    predicted[1, 0] = 9
    assert data.sequence_accuracy(predicted, y) == 0.5


# --- the probe's inputs and the graders' references -------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_probe_inputs_isolate_each_property(probe_inputs, seed):
    inputs = probe_inputs.make_inputs(seed)
    mask = inputs["key_mask"]
    assert mask.shape == (probe_inputs.F_BATCH, 1, 1, probe_inputs.F_KEYS)
    assert mask.any(axis=-1).all() and (~mask).any(axis=-1).all()  # each sequence has keys and padding
    order = inputs["attention_order"]
    assert sorted(order) == list(range(probe_inputs.ATTENTION_LENGTH)) and (order != np.arange(len(order))).all()
    block_mask = inputs["block_mask"]
    assert block_mask.sum(axis=1).tolist() == list(probe_inputs.BLOCK_LENGTHS)
    assert np.array_equal(inputs["block_other"][block_mask], inputs["block_x"][block_mask])
    assert (inputs["block_other"][~block_mask] != inputs["block_x"][~block_mask]).all()
    tokens = inputs["embedding_tokens"]
    assert all((tokens == digit).sum() >= 2 for digit in np.unique(tokens))  # each digit at several positions
    dims = [probe_inputs.ATTENTION_D_MODEL, probe_inputs.BLOCK_D_FF, probe_inputs.PE_LENGTH, 32]
    assert len(set(dims)) == len(dims)  # none is the notebook's d_model (32)


def test_the_probe_sandbox_gets_no_label(probe_inputs):
    inputs, sequences = probe_inputs.make_inputs(7), probe_inputs.held_out_sequences(7)
    assert np.array_equal(inputs["sequences_x"], sequences.x)
    assert not any(np.array_equal(array, sequences.y) for array in inputs.values() if array.shape == sequences.y.shape)
    assert not np.array_equal(sequences.x, probe_inputs.held_out_sequences(8).x)


def test_positional_encoding_references(reference):
    layouts = reference.positional_encodings(50, 16)
    paper = layouts["interleaved"]
    assert np.allclose(paper[:, 0], np.sin(np.arange(50))) and np.allclose(paper[:, 1], np.cos(np.arange(50)))
    assert np.allclose(paper[3, 4], np.sin(3 / 10000 ** (4 / 16)))
    assert np.array_equal(layouts["sines then cosines"], np.concatenate([paper[:, 0::2], paper[:, 1::2]], axis=1))


def _loop_multi_head(x, projections, heads):
    """Multi-head attention written out head by head, the paper's way, to check the vectorised reference."""
    d_k = x.shape[-1] // heads
    project = {name: x @ kernel + bias for name, (kernel, bias) in projections.items() if name != "w_output"}
    outputs, all_weights = [], []
    for head in range(heads):
        part = slice(head * d_k, (head + 1) * d_k)
        scores = project["w_query"][..., part] @ np.swapaxes(project["w_key"][..., part], -1, -2) / np.sqrt(d_k)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        outputs.append(weights @ project["w_value"][..., part])
        all_weights.append(weights)
    kernel, bias = projections["w_output"]
    return np.concatenate(outputs, axis=-1) @ kernel + bias, np.stack(all_weights, axis=1)


def test_multi_head_references_agree_with_the_paper_written_out(reference):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 12))
    projections = {name: (rng.standard_normal((12, 12)) / 3, rng.standard_normal(12))
                   for name in ("w_query", "w_key", "w_value", "w_output")}
    output, weights = _loop_multi_head(x, projections, 3)
    assert np.allclose(reference.merged_output(x, projections, weights), output)
    scale, left = reference.fitted_scale(np.log(weights), reference.head_scores(x, projections, 3))
    assert abs(scale - 1 / 2) < 1e-9 and left < 1e-9  # d_k = 4
    per_head = np.arange(120.0).reshape(2, 3, 5, 4)
    assert np.array_equal(reference.split_heads(reference.merge_heads(per_head), 3), per_head)
    assert np.array_equal(reference.merge_heads(per_head)[1, 2, 4:8], per_head[1, 1, 2])  # head 1's features
    normalised = reference.layer_norm(3 * x + 1)
    assert np.allclose(normalised.mean(-1), 0) and np.allclose(normalised.std(-1), 1, atol=1e-3)


# --- the probe and the graders on each example, untrained ---------------------------------------------------------

def _definitions(notebook, namespace: dict) -> dict:
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in PROBE_CELLS:
            exec(compile(cell.source, grade_id, "exec"), namespace)  # noqa: S102 - the course's own examples
    return namespace


@pytest.mark.sandbox
@pytest.mark.parametrize("student", list(LOSES))
def test_each_example_loses_its_structural_checks_untrained(tmp_path, student):
    """The probe on the example's definitions (fresh weights, saved untrained), then the real graders: the checks
    that need no training are lost exactly as in the batch."""
    from autograder.graders import run_graders
    from autograder.probe import ProbeRun, write_for_graders

    probe, inputs_module = exercise_module(ASSIGNMENT, "graders/probe"), exercise_module(ASSIGNMENT,
                                                                                        "graders/probe_inputs")
    reference_notebook = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    example = next(e for e in exercise_module(ASSIGNMENT, "examples").EXAMPLES if e.student == student)
    inputs = inputs_module.make_inputs(5)
    namespace = _definitions(example.build(reference_notebook, None), probe.namespace(inputs))
    namespace["build_models"]()[0].save_weights(tmp_path / "transformer.weights.h5")
    arrays = probe.run(namespace, inputs, tmp_path)
    assert not [name for name in arrays if name.startswith("error_")], arrays
    write_for_graders(ProbeRun(seed=5, arrays=arrays, problems=(), run=None), tmp_path)
    checks, log = run_graders(graders_dir=GRADERS, artifacts_dir=tmp_path, timeout=300)
    assert {_key(c.name) for c in checks} == set(ALL_CHECKS), log
    lost = {_key(c.name) for c in checks if c.score < c.max_score} - {ACCURACY, PLOT}
    assert lost == LOSES[student] - {ACCURACY}, log
    if student == "keras_attention":
        assert all("keras.layers.MultiHeadAttention found in MultiHeadSelfAttention" in c.output
                   for c in checks if _key(c.name) in OWN_ATTENTION)


# --- one real batch ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every example of solutions/transformer/examples.py, graded in the sandbox in one batch of two slots."""
    from autograder.examples import write_examples
    from autograder.pipeline import grade

    course = make_course(tmp_path_factory.mktemp("course"), (ASSIGNMENT,))
    examples = write_examples(course, ASSIGNMENT)
    assert {e.student for e in examples} == {*LOSES, "blank"}
    batch = grade(course=course, assignment=ASSIGNMENT, jobs=2)
    return {result.student: result for result in batch.results}


@pytest.mark.slow
@pytest.mark.sandbox
def test_reference_earns_full_marks_and_blank_zero(graded):
    reference, blank = graded["reference"], graded["blank"]
    assert reference.status == "graded" and reference.score == reference.max_score == POINTS, (
        reference.reason, [(t.name, t.output) for t in reference.tests if t.score < t.max_score])
    assert blank.score == 0 and "NotImplementedError" in blank.reason
    assert {_key(t.name) for t in blank.tests} == set(ALL_CHECKS)


@pytest.mark.slow
@pytest.mark.sandbox
@pytest.mark.parametrize("student", [s for s in LOSES if s != "reference"])
def test_each_mistake_loses_exactly_its_checks(graded, student):
    result = graded[student]
    lost = {_key(t.name): t.output for t in result.tests if t.score < t.max_score}
    assert result.status == "graded" and set(lost) == LOSES[student], (result.reason, lost)
    assert result.score == POINTS - sum(t.max_score for t in result.tests if _key(t.name) in LOSES[student])


@pytest.mark.slow
@pytest.mark.sandbox
def test_the_accuracy_is_a_threshold_and_the_plot_reaches_the_page(graded):
    """The accuracy check hands the feedback page its threshold; the reference's plot is among its artifacts."""
    reference = graded["reference"]
    accuracy = next(t for t in reference.tests if _key(t.name) == ACCURACY)
    assert accuracy.details == {"kind": "threshold", "metric": "exact-sequence accuracy",
                                "measured": accuracy.details["measured"], "target": 0.9, "floor": 0.5}
    assert accuracy.details["measured"] >= 0.9
    heads = [t for t in reference.tests if _key(t.name) == PLOT]
    assert heads and heads[0].score == 1


def test_each_check_is_named_once():
    names = [*ALL_CHECKS]
    assert all(not a.startswith(b) for a, b in itertools.permutations(names, 2))
