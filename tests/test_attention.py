"""The attention exercise: its date data, its probe and graders, and one real batch in the sandbox.

Fast tests check the date generator, the probe's inputs, and that each realistic mistake in
`scaled_dot_product_attention` costs exactly one hidden check (the probe is run here on the mistaken function,
then the real graders). The slow test grades the reference, the blank release and realistic wrong submissions in
the sandbox, in one batch; each wrong one loses exactly the points of the check it breaks.
"""

from __future__ import annotations

import copy
import datetime

import nbformat
import numpy as np
import pytest

from autograder.graders import run_graders
from autograder.pipeline import grade
from tests.conftest import REPO, exercise_module, make_course, submit

dates = exercise_module("attention", "dates")

ASSIGNMENT = "attention"
GRADERS = REPO / "solutions" / ASSIGNMENT / "graders"

# The hidden checks, by the first words of their names (the graders' docstrings).
SHAPES, SUMS, MASK, SCALING, WEIGHTED_SUM = ("scaled_dot_product_attention returns", "Each query's weights sum",
                                             "Masked keys", "The scores are", "The output is the weights")
LAYER_SUMS, LAYER_PADDING, ACCURACY, HEATMAP = ("The trained model's attention: each", "The trained model's attention "
                                                "gives", "Exact-sequence accuracy", "attention_heatmap.png is")
ALL_CHECKS = (SHAPES, SUMS, MASK, SCALING, WEIGHTED_SUM, LAYER_SUMS, LAYER_PADDING, ACCURACY, HEATMAP)


def _key(name: str) -> str:
    return next(key for key in ALL_CHECKS if name.startswith(key))


# --- the date data -----------------------------------------------------------------------------------------------

def test_examples_are_deterministic_and_encode_both_ways():
    first, again, other = (dates.date_examples(300, seed=s) for s in (5, 5, 6))
    assert first.texts == again.texts and np.array_equal(first.x, again.x) and first.texts != other.texts
    assert first.x.shape == (300, dates.INPUT_LENGTH) and first.y.shape == (300, dates.OUTPUT_LENGTH)
    assert first.x.dtype == first.y.dtype == np.int32
    for text, target, x, y in zip(first.texts, first.targets, first.x, first.y, strict=True):
        assert dates.decode_input(x) == text and dates.decode_output(y) == target
        assert (x[len(text):] == dates.PAD).all() and (x[:len(text)] != dates.PAD).all()


def test_every_format_fits_and_names_the_same_day():
    longest = max(len(dates.format_date(datetime.date(2049, 9, 24) + datetime.timedelta(days=d), style))
                  for d in range(7) for style in range(len(dates.FORMATS)))
    assert longest <= dates.INPUT_LENGTH
    day = datetime.date(2019, 2, 15)
    texts = {dates.format_date(day, style) for style in range(len(dates.FORMATS))}
    assert {"15 February 2019", "feb 15, 2019", "15/02/2019", "Friday, 15 Feb 2019", "2019-02-15"} <= texts
    assert all("15" in text and "2019" in text for text in texts)


def test_held_out_days_never_appear_in_training_examples():
    training = dates.date_examples(5000, seed=0)
    held = dates.date_examples(500, seed=1, held_out=True)
    training_days = {datetime.date.fromisoformat(t) for t in training.targets}
    held_days = {datetime.date.fromisoformat(t) for t in held.targets}
    assert not training_days & held_days
    assert all(dates.is_held_out(day) for day in list(held_days)[:50])
    assert not any(dates.is_held_out(day) for day in list(training_days)[:50])


# --- the probe and the function's graders ------------------------------------------------------------------------

def _module(name: str):
    """A file of graders/, imported by path under a name of its own (other assignments have files of that name)."""
    return exercise_module("attention", f"graders/{name}")


@pytest.fixture(scope="module")
def probe_module():
    """graders/probe.py: what runs in the probe sandbox."""
    return _module("probe")


@pytest.fixture(scope="module")
def probe_inputs():
    """graders/probe_inputs.py: what the host draws for each submission."""
    return _module("probe_inputs")


@pytest.mark.sandbox
@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_probe_mask_isolates_the_mask_check_from_the_softmax_axis(probe_inputs, seed):
    mask = probe_inputs.function_inputs(seed)["mask"]
    assert (mask.max(axis=-1) == 1).all() and (mask.min(axis=-1) == 0).all()  # each query sees some, misses some
    assert (mask.max(axis=-2) == 1).all()  # each key is seen by some query: a softmax over queries stays finite
    assert len({probe_inputs.N_QUERIES, probe_inputs.N_KEYS, probe_inputs.D_K, probe_inputs.D_V}) == 4


@pytest.mark.sandbox
def test_the_probe_sandbox_gets_no_label(probe_inputs):
    inputs = probe_inputs.make_inputs(7)
    dates = probe_inputs.held_out_dates(7)
    assert np.array_equal(inputs["dates_x"], dates.x)
    assert not any(np.array_equal(array, dates.y) for array in inputs.values() if array.shape == dates.y.shape)


def _probed(probe_module, probe_inputs, namespace: dict, folder, seed: int = 5) -> None:
    """What the pipeline does after the notebook: the probe on this seed's inputs, arrays and seed for the graders."""
    from autograder.probe import ProbeRun, write_for_graders

    arrays = probe_module.run({**probe_module.namespace(probe_inputs.make_inputs(seed)), **namespace},
                              probe_inputs.make_inputs(seed), folder)
    write_for_graders(ProbeRun(seed=seed, arrays=arrays, problems=(), run=None), folder)


def _attention(*, scaled=True, masked=True, axis=-1, mask_after_softmax=False):
    """scaled_dot_product_attention, with one of the mistakes students make."""
    from keras import ops

    def attention(query, key, value, mask=None):
        scores = ops.matmul(query, ops.swapaxes(key, -1, -2))
        if scaled:
            scores = scores / ops.sqrt(ops.cast(ops.shape(key)[-1], "float32"))
        if mask is not None and masked and not mask_after_softmax:
            scores = ops.where(ops.cast(mask, "bool"), scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=axis)
        if mask is not None and mask_after_softmax:
            weights = weights * mask
        return ops.matmul(weights, value), weights

    return attention


@pytest.mark.parametrize(("mistake", "breaks"), [
    ({}, None), ({"scaled": False}, SCALING), ({"masked": False}, MASK), ({"axis": 1}, SUMS),
    ({"mask_after_softmax": True}, SUMS)])
@pytest.mark.sandbox
def test_each_mistake_in_the_function_costs_one_check(probe_module, probe_inputs, tmp_path, mistake, breaks):
    _probed(probe_module, probe_inputs, {"scaled_dot_product_attention": _attention(**mistake)}, tmp_path)
    checks, log = run_graders(graders_dir=GRADERS, artifacts_dir=tmp_path, timeout=120)
    function = {_key(c.name): c for c in checks if c.cell == "check_attention_function"}
    assert set(function) == {SHAPES, SUMS, MASK, SCALING, WEIGHTED_SUM}, log
    assert {key for key, c in function.items() if c.score < c.max_score} == ({breaks} if breaks else set()), log
    assert all("attention_model.predict(...)" in c.output and "attention.weights.h5 was not saved" in c.output
               for c in checks if c.cell == "check_attention_layer"), log
    if breaks == SCALING:
        assert "Q K^T / 1.00, expected Q K^T / sqrt(d_k) = Q K^T / 4.00" in function[SCALING].output


@pytest.mark.sandbox
def test_a_model_that_is_not_keras_earns_nothing(probe_module, probe_inputs, tmp_path):
    """An object with a `predict` of its own (a hand-written date parser) is not a trained model."""

    class Parser:
        def predict(self, x, **_kwargs):
            raise AssertionError("the probe must not call a predict that is not Keras's")

    (tmp_path / "attention.weights.h5").write_bytes(b"")
    _probed(probe_module, probe_inputs, {"scaled_dot_product_attention": _attention(),
                                         "build_models": lambda: (Parser(), Parser())}, tmp_path)
    saved = np.load(tmp_path / "probe.npz")
    assert str(saved["error_model"]) == "TypeError: model is a Parser, not a Keras model"
    assert "date_outputs" not in saved and "date_attention" not in saved


# --- one real batch ----------------------------------------------------------------------------------------------

def _edited(notebook, cell: str | None, old: str, new: str):
    """A copy of `notebook` with `old` replaced in the cell `cell` (a grade_id; None: the training cell)."""
    changed = copy.deepcopy(notebook)
    for each in changed.cells:
        grade_id = each.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id == cell if cell else (grade_id is None and "model.fit(" in each.source):
            assert old in each.source, (cell, old)
            each.source = each.source.replace(old, new)
            return changed
    raise KeyError(cell)


ONE_EPOCH = ("epochs=2", "epochs=1")  # the mistakes train one epoch to keep the test cheap: it clears the target
MISTAKES = {  # student -> (edits, the one check it breaks)
    "no_sqrt": ([("scaled_dot_product_attention", " / ops.sqrt(d_k)", "")], SCALING),
    "mask_ignored": ([("scaled_dot_product_attention", "if mask is not None:", "if False:  # mask: later")], MASK),
    "softmax_over_queries": ([("scaled_dot_product_attention", "ops.softmax(scores, axis=-1)",
                               "ops.softmax(scores, axis=1)")], SUMS),
    "heatmap_not_saved": ([("plot_attention", '    fig.savefig(path, dpi=100, bbox_inches="tight")\n', "")], HEATMAP),
    "untrained": ([(None, "model.fit(data.x, data.y, epochs=2,", "model.fit(data.x[:256], data.y[:256], epochs=1,")],
                  ACCURACY),
}


IDIOMS = {  # student -> edits: correct answers written another way; each earns what the reference earns
    "biases_everywhere": [("attention_layer", "layers.Dense(units, use_bias=False)", "layers.Dense(units)"),
                          ("attention_layer", "layers.Dense(1, use_bias=False)", "layers.Dense(1)")],
    "no_biases": [("attention_layer", "self.w_key = layers.Dense(units)",
                   "self.w_key = layers.Dense(units, use_bias=False)")],
    "layers_input": [("build_models", "keras.Input(", "layers.Input(")],
    "einsum": [("scaled_dot_product_attention", "ops.matmul(query, ops.swapaxes(key, -1, -2))",
                'ops.einsum("bqd,bkd->bqk", query, key)')],
}
MISTAKES["padding_ignored"] = ([("attention_layer", "if padding_mask is not None:", "if False:  # padding: later")],
                               LAYER_PADDING)


def _definitions(notebook, inputs) -> dict:
    """The three graded definitions of `notebook`, defined as the probe sandbox defines them."""
    from autograder.examples import cell

    namespace = _module("probe").namespace(inputs)
    for grade_id in ("scaled_dot_product_attention", "attention_layer", "build_models"):
        exec(compile(cell(notebook, grade_id).source, grade_id, "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.sandbox
@pytest.mark.parametrize("student", ["reference", *IDIOMS, "padding_ignored"])
def test_each_idiom_passes_and_the_layer_mistake_costs_one_check(probe_module, probe_inputs, tmp_path, student):
    """Untrained models (the accuracy and the heatmap are the batch's): the function's and the layer's checks."""
    from autograder.probe import ProbeRun, write_for_graders

    reference = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    edits = IDIOMS.get(student) or (MISTAKES[student][0] if student in MISTAKES else [])
    notebook = reference
    for cell, old, new in edits:
        notebook = _edited(notebook, cell, old, new)
    inputs = probe_inputs.make_inputs(5)
    namespace = _definitions(notebook, inputs)
    namespace["build_models"]()[0].save_weights(tmp_path / "attention.weights.h5")
    arrays = probe_module.run(namespace, inputs, tmp_path)
    write_for_graders(ProbeRun(seed=5, arrays=arrays, problems=(), run=None), tmp_path)
    checks, log = run_graders(graders_dir=GRADERS, artifacts_dir=tmp_path, timeout=300)
    lost = {_key(c.name) for c in checks if c.score < c.max_score} - {ACCURACY, HEATMAP}
    assert lost == ({LAYER_PADDING} if student == "padding_ignored" else set()), log


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("course"), (ASSIGNMENT,))
    name = course.config(ASSIGNMENT).notebook_name
    reference = nbformat.read(course.solutions / ASSIGNMENT / name, as_version=4)
    submit(course, "reference", ASSIGNMENT, nbformat.writes(reference).encode())
    submit(course, "blank", ASSIGNMENT, (course.releases / ASSIGNMENT / name).read_bytes())
    for student, edits in [*((s, e) for s, (e, _) in MISTAKES.items()), *IDIOMS.items()]:
        notebook = reference
        for cell, old, new in edits if student == "untrained" else [*edits, (None, *ONE_EPOCH)]:
            notebook = _edited(notebook, cell, old, new)
        submit(course, student, ASSIGNMENT, nbformat.writes(notebook).encode())
    batch = grade(course=course, assignment=ASSIGNMENT, jobs=2)
    return {result.student: result for result in batch.results}


@pytest.mark.slow
def test_reference_earns_full_marks_and_blank_zero(graded):
    reference, blank = graded["reference"], graded["blank"]
    assert reference.status == "graded" and reference.score == reference.max_score == 14, (
        reference.reason, [(t.name, t.output) for t in reference.tests if t.score < t.max_score])
    assert blank.score == 0 and "NotImplementedError" in blank.reason
    assert {_key(t.name) for t in blank.tests} == set(ALL_CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("student", list(MISTAKES))
def test_each_mistake_loses_exactly_its_check(graded, student):
    result = graded[student]
    breaks = MISTAKES[student][1]
    lost = {_key(t.name): t.output for t in result.tests if t.score < t.max_score}
    assert result.status == "graded" and set(lost) == {breaks}, (result.reason, lost)
    kept = {_key(t.name) for t in result.tests if t.score == t.max_score}
    assert kept == set(ALL_CHECKS) - {breaks}



@pytest.mark.slow
@pytest.mark.parametrize("student", list(IDIOMS))
def test_each_idiom_earns_full_marks(graded, student):
    result = graded[student]
    lost = {_key(t.name): t.output for t in result.tests if t.score < t.max_score}
    assert result.status == "graded" and result.score == result.max_score == 14 and not result.reason, (
        result.reason, lost)
