"""Every correct way the lecture teaches earns what the reference earns; each realistic mistake loses exactly the
points of the check it breaks (issue 12).

Per assignment, one table of IDIOMS (edits of the reference that are still correct: Sequential as a list or with
`add`, `keras.Input` or `layers.Input`, the Functional API, free unit sizes, more epochs, freezing the base or each
of its layers) and one of MISTAKES (edits, and the hidden checks each one breaks). Fast tests build every
variant's model in this process from its edited cells, run the release's public check cells on it, and call the
hidden graders' structure checks on it directly (no sandbox, no training). The slow tests grade the whole table
in one sandboxed batch per assignment, training included.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path

import nbformat
import pytest

from autograder.pytest_plugin import Credit
from tests.batches import BATCHES, in_batch
from tests.conftest import REPO, exercise_module

pytestmark = pytest.mark.sandbox  # every test here runs sandboxes, kernels or Keras

# The cells and the graders import the helpers released beside each notebook, as in the sandbox, where the
# notebook's folder is the working directory (their names differ from exercise to exercise).
sys.path[:0] = [str(REPO / "solutions" / name) for name in ("seq2seq", "transfer_learning", "bert_finetune")]

Edit = tuple[str | None, str, str]  # (grade_id of the cell, None: the training cell; old text; new text)


def edited(notebook: nbformat.NotebookNode, edits: list[Edit]) -> nbformat.NotebookNode:
    """A copy of `notebook` with each edit applied (each `old` must be in its cell)."""
    changed = copy.deepcopy(notebook)
    for cell_id, old, new in edits:
        cell = next(each for each in changed.cells if (
            each.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id if cell_id else
            (each.cell_type == "code" and "nbgrader" not in each.get("metadata", {}) and ".fit(" in each.source)))
        assert old in cell.source, (cell_id, old)
        cell.source = cell.source.replace(old, new)
    return changed


def reference(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)


def cell_source(notebook: nbformat.NotebookNode, grade_id: str) -> str:
    return next(cell.source for cell in notebook.cells
                if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


@functools.cache
def graders(assignment: str):
    """The hidden graders' module of `assignment`, imported by path (graders/ is no package)."""
    path = REPO / "solutions" / assignment / "graders" / f"test_{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"idiom_graders_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # the points marker belongs to the graders' plugin, not loaded here
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        spec.loader.exec_module(module)
    return module


def check_name(function) -> str:
    return (function.__doc__ or function.__name__).strip().splitlines()[0]


def run_checks(assignment: str, names: set[str], *, credits: dict | None = None, **fixtures) -> dict[str, str]:
    """Call the hidden checks of `assignment` named (by their first docstring line) in `names` with `fixtures`;
    {name: "" when it passed, else its message}. `credits`, when given, gets each check's `credit` fixture."""
    module = graders(assignment)
    outcome = {}
    for function in (getattr(module, name) for name in dir(module) if name.startswith("test_")):
        if check_name(function) not in names:
            continue
        wanted = inspect.signature(function).parameters
        arguments = {key: (Credit() if key == "credit" else fixtures[key]) for key in wanted}
        if credits is not None and "credit" in arguments:
            credits[check_name(function)] = arguments["credit"]
        try:
            function(**arguments)
            outcome[check_name(function)] = ""
        except AssertionError as exc:
            outcome[check_name(function)] = str(exc) or "failed"
    assert set(outcome) == names, set(outcome) ^ names
    return outcome


def run_cells(notebook: nbformat.NotebookNode, grade_ids: list[str], namespace: dict, workdir: Path) -> dict:
    """Execute the cells `grade_ids` of `notebook` in `namespace`, in `workdir` (as the kernel would)."""
    import os

    here = os.getcwd()
    os.chdir(workdir)
    try:
        for grade_id in grade_ids:
            exec(compile(cell_source(notebook, grade_id), grade_id, "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(here)
    return namespace


def share_table(assignment: str, variants: dict[str, list[Edit]]) -> None:
    """Add the reference, the blank release and every variant to the session's batch of `assignment`."""
    BATCHES.add_honest(assignment)
    for student, edits in variants.items():
        BATCHES.add(assignment, student, functools.partial(_variant_file, assignment, edits))


def _variant_file(assignment: str, edits: list[Edit], course) -> bytes:
    source = nbformat.read(course.solutions / assignment / course.config(assignment).notebook_name, as_version=4)
    return nbformat.writes(edited(source, edits)).encode()


def lost_checks(result) -> dict[str, float]:
    return {test.name: test.max_score - test.score for test in result.tests if test.score < test.max_score}


# ------------------------------------------------------------------------------- the structure check, in small

def _chain(style: str):
    """The same Embedding -> LSTM -> Dense model, written three ways (and a functional one with a stray layer)."""
    import keras
    from keras import layers

    parts = [layers.Embedding(2, 4), layers.LSTM(3), layers.Dense(2, activation="softmax")]
    if style == "add":
        model = keras.Sequential()
        model.add(layers.Input(shape=(5,), dtype="int32"))
        for part in parts:
            model.add(part)
        return model
    if style == "list":
        return keras.Sequential([keras.Input(shape=(5,), dtype="int32"), *parts])
    inputs = keras.Input(shape=(5,), dtype="int32")
    layers.Dense(7)  # created, never connected: no part of the graph
    x = inputs
    for part in parts:
        x = part(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("style", ["add", "list", "functional"])
def test_layer_graph_is_the_same_whichever_way_the_model_is_written(style):
    from autograder.keras_checks import layer_graph

    assert [type(layer).__name__ for layer in layer_graph(_chain(style))] == ["Embedding", "LSTM", "Dense"]


def test_architecture_rows_align_like_a_diff():
    from autograder.keras_checks import LayerRule, architecture_rows

    rules = [LayerRule("Embedding"), LayerRule("GRU", {"units": 3}), LayerRule("Dropout"),
             LayerRule("Dense", {"units": 2, "activation": "relu"})]
    rows = architecture_rows(_chain("functional"), rules)
    assert [(row.change, row.differs) for row in rows] == [
        ("same", ()), ("class", ("class",)), ("missing", ()), ("settings", ("activation",))]
    assert (rows[1].expected_text, rows[1].found_text) == ("GRU(units=3)", "LSTM(units=3)")  # the same settings
    extra = architecture_rows(_chain("list"), [LayerRule("Embedding"), LayerRule("Dense")])
    assert [(row.change, row.found_text) for row in extra] == [
        ("same", "Embedding"), ("extra", "LSTM(units=3, return_sequences=False, activation=tanh)"), ("same", "Dense")]


# ------------------------------------------------------------------------------------------------------ seq2seq

S2S_LAYERS, S2S_SEQUENCES, S2S_REPEAT, S2S_OUTPUT, S2S_ACCURACY = (
    "Layers: Embedding -> LSTM -> RepeatVector -> LSTM -> Dense, no more, no fewer",
    "The encoder LSTM returns only its last output; the decoder LSTM returns sequences",
    "RepeatVector repeats the encoding once per output digit; the output is a softmax",
    "One output unit per digit: output shape (None, steps, 10)",
    "Exact-sequence accuracy on a hidden sample of numbers (all four digits right)")
S2S_STRUCTURE = {S2S_LAYERS, S2S_SEQUENCES, S2S_REPEAT, S2S_OUTPUT}

_FUNCTIONAL = '''    inputs = keras.Input(shape=(INPUT_LENGTH,), dtype="int32", name="bits")
    x = layers.Embedding(N_INPUT_SYMBOLS, embedding_dim, name="embedding")(inputs)
    x = layers.LSTM(encoder_units, name="encoder")(x)
    x = layers.RepeatVector(OUTPUT_LENGTH, name="repeat")(x)
    x = layers.LSTM(decoder_units, return_sequences=True, name="decoder")(x)
    outputs = layers.Dense(N_OUTPUT_SYMBOLS, activation="softmax", name="digits")(x)
    model = keras.Model(inputs, outputs, name="seq2seq")
'''
_SEQUENTIAL_ADD = '''    model = keras.Sequential(name="seq2seq")  # as in the lecture
    model.add(layers.Input(shape=(INPUT_LENGTH,), dtype="int32"))
    model.add(layers.Embedding(N_INPUT_SYMBOLS, embedding_dim))
    model.add(layers.LSTM(encoder_units))
    model.add(layers.RepeatVector(OUTPUT_LENGTH))
    model.add(layers.LSTM(decoder_units, return_sequences=True))
    model.add(layers.Dense(N_OUTPUT_SYMBOLS, activation="softmax"))
'''
_SEQUENTIAL_LIST = '''    model = keras.Sequential([
        keras.Input(shape=(INPUT_LENGTH,), dtype="int32"),
        layers.Embedding(N_INPUT_SYMBOLS, embedding_dim),
        layers.LSTM(encoder_units),
        layers.RepeatVector(OUTPUT_LENGTH),
        layers.LSTM(decoder_units, return_sequences=True),
        layers.Dense(N_OUTPUT_SYMBOLS, activation="softmax"),
    ])
'''


def _s2s(old: str, new: str) -> Edit:
    return ("build_model", old, new)


S2S_IDIOMS: dict[str, list[Edit]] = {
    "sequential_add": [_s2s(_FUNCTIONAL, _SEQUENTIAL_ADD)],
    "sequential_list": [_s2s(_FUNCTIONAL, _SEQUENTIAL_LIST)],
    "free_sizes": [_s2s("embedding_dim=16, encoder_units=128, decoder_units=128",
                        "embedding_dim=24, encoder_units=160, decoder_units=160")],
    "more_epochs": [(None, "epochs=35", "epochs=40")],
}
S2S_MISTAKES: dict[str, tuple[list[Edit], set[str]]] = {  # student -> (edits, the hidden checks it breaks)
    "extra_dropout": ([_s2s("    x = layers.RepeatVector(",
                             "    x = layers.Dropout(0.1)(x)\n    x = layers.RepeatVector(")],
                      {S2S_LAYERS}),
    "gru_decoder": ([_s2s("layers.LSTM(decoder_units,", "layers.GRU(decoder_units,")], {S2S_LAYERS}),
    "no_softmax": ([_s2s('activation="softmax", ', ""),
                    _s2s('loss="sparse_categorical_crossentropy"',
                         "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)")], {S2S_REPEAT}),
    # Ten output units no digit ever asks for still take their share of the softmax: the same training reaches
    # 0.13 instead of 0.27 on the training numbers (seed 0), so part of the accuracy points go too.
    "twice_the_units": ([_s2s("layers.Dense(N_OUTPUT_SYMBOLS,", "layers.Dense(2 * N_OUTPUT_SYMBOLS,")],
                        {S2S_OUTPUT, S2S_ACCURACY}),
    # Neither of these two can be trained on 4-digit targets (fit raises), so the model saved is untrained.
    "repeat_five": ([_s2s("layers.RepeatVector(OUTPUT_LENGTH,", "layers.RepeatVector(OUTPUT_LENGTH + 1,")],
                    {S2S_REPEAT, S2S_ACCURACY}),
    "decoder_no_sequences": ([_s2s("decoder_units, return_sequences=True,", "decoder_units,")],
                             {S2S_SEQUENCES, S2S_ACCURACY}),
}
S2S_ACCURACY_PARTLY = {"twice_the_units"}  # keeps some or all of the accuracy points (measured: some on TensorFlow,
#                                             all on JAX), never none
S2S_PUBLIC = ["check_architecture", "check_output_shape"]
S2S_PUBLIC_FAILS = {"extra_dropout": "check_architecture", "gru_decoder": "check_architecture",
                    "twice_the_units": "check_output_shape", "repeat_five": "check_output_shape",
                    "decoder_no_sequences": "check_output_shape"}


def _seq2seq_namespace(notebook, workdir: Path) -> dict:
    return run_cells(notebook, ["setup", "build_model"], {}, workdir)


@pytest.mark.parametrize("student", ["reference", *S2S_IDIOMS])
def test_seq2seq_idiom_passes_every_public_check_and_every_structure_check(student, tmp_path):
    notebook = edited(reference("seq2seq"), S2S_IDIOMS.get(student, []))
    namespace = run_cells(notebook, S2S_PUBLIC, _seq2seq_namespace(notebook, tmp_path), tmp_path)
    namespace["model"].save(tmp_path / "seq2seq_model.keras")
    from autograder.keras_checks import load_model

    saved = load_model(tmp_path / "seq2seq_model.keras")
    assert run_checks("seq2seq", S2S_STRUCTURE, model=saved) == dict.fromkeys(S2S_STRUCTURE, "")


@pytest.mark.parametrize("student", list(S2S_MISTAKES))
def test_seq2seq_mistake_breaks_exactly_its_structure_check(student, tmp_path):
    edits, breaks = S2S_MISTAKES[student]
    notebook = edited(reference("seq2seq"), edits)
    namespace = _seq2seq_namespace(notebook, tmp_path)
    for grade_id in S2S_PUBLIC:
        if S2S_PUBLIC_FAILS.get(student) == grade_id:
            with pytest.raises(AssertionError):
                run_cells(notebook, [grade_id], namespace, tmp_path)
        else:
            run_cells(notebook, [grade_id], namespace, tmp_path)
    namespace["model"].save(tmp_path / "seq2seq_model.keras")
    from autograder.keras_checks import load_model

    credits = {}
    outcome = run_checks("seq2seq", S2S_STRUCTURE, credits=credits,
                         model=load_model(tmp_path / "seq2seq_model.keras"))
    assert {name for name, message in outcome.items() if message} == breaks - {S2S_ACCURACY}, outcome
    if S2S_LAYERS in breaks:  # the table travels as structure: exactly one row differs
        rows = credits[S2S_LAYERS].details["rows"]
        assert sum(not row["ok"] for row in rows) == 1, rows


share_table("seq2seq", {**S2S_IDIOMS, **{student: edits for student, (edits, _) in S2S_MISTAKES.items()}})


@pytest.fixture(scope="module")
def seq2seq_graded(shared_batch):
    return shared_batch("seq2seq").results


@pytest.mark.slow
@in_batch("seq2seq")
def test_seq2seq_reference_full_blank_zero(seq2seq_graded):
    reference_result = seq2seq_graded["reference"]
    assert reference_result.score == reference_result.max_score == 10, lost_checks(reference_result)
    assert seq2seq_graded["blank"].score == 0


@pytest.mark.slow
@in_batch("seq2seq")
@pytest.mark.parametrize("student", list(S2S_IDIOMS))
def test_seq2seq_idiom_earns_full_marks_in_the_batch(seq2seq_graded, student):
    result = seq2seq_graded[student]
    assert (result.score, lost_checks(result), result.reason) == (10, {}, "")


@pytest.mark.slow
@in_batch("seq2seq")
@pytest.mark.parametrize("student", list(S2S_MISTAKES))
def test_seq2seq_mistake_loses_exactly_its_checks_in_the_batch(seq2seq_graded, student):
    result, breaks = seq2seq_graded[student], S2S_MISTAKES[student][1]
    # a partly wrong output layer still trains: how much accuracy it keeps depends on the backend's training, so
    # its accuracy points may be lost in part or not at all, never all of them
    required = breaks - ({S2S_ACCURACY} if student in S2S_ACCURACY_PARTLY else set())
    assert result.status == "graded" and required <= set(lost_checks(result)) <= breaks, lost_checks(result)
    assert all(test.score == 0 for test in result.tests if test.name in required)
    assert all(test.score > 0 for test in result.tests if test.name == S2S_ACCURACY and student in S2S_ACCURACY_PARTLY)


# -------------------------------------------------------------------------------------------- transfer_learning

TL_WEIGHTS, TL_STEP, TL_HEAD, TL_INFERENCE, TL_ACCURACY = (
    "The base inside the saved model is bit-identical to base_model.keras",
    "One optimizer step on the saved model changes the new head and leaves the base as it is",
    "Trainable parameters: only the new head's, Dense(4) on the base's 64 features",
    "The base is called as a layer in inference mode: base_model(inputs, training=False)",
    "Accuracy on hidden e-mails of the target domain, above a model trained from scratch")
TL_STRUCTURE = {TL_WEIGHTS, TL_STEP, TL_HEAD, TL_INFERENCE}
TL_FREEZING = {TL_WEIGHTS, TL_STEP, TL_HEAD}  # a base that training can change fails all three ways of looking
_TL_FUNCTIONAL = '''    inputs = keras.Input(shape=(SENTENCE_LENGTH,), dtype="int32", name="tokens")
    x = base_model(inputs, training=False)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(N_MAGAZINES, activation="softmax", name="magazine")(x)
    model = keras.Model(inputs, outputs, name="transfer_model")
'''
_TL_SEQUENTIAL = '''    model = keras.Sequential([keras.Input(shape=(SENTENCE_LENGTH,), dtype="int32"), base_model,
                              layers.Dropout(dropout), layers.Dense(N_MAGAZINES, activation="softmax")])
'''
_TL_FREEZE = "    base_model.trainable = False\n"

TL_IDIOMS: dict[str, list[Edit]] = {
    "layers_input": [("build_transfer_model", "keras.Input(", "layers.Input(")],
    "freeze_each_layer": [("load_frozen_base", _TL_FREEZE,
                           "    for layer in base_model.layers:\n        layer.trainable = False\n")],
    "free_settings": [("build_transfer_model", "dropout=0.2", "dropout=0.3")],
    "more_epochs": [(None, "epochs=20,", "epochs=30,")],
}
TL_MISTAKES: dict[str, tuple[list[Edit], set[str]]] = {
    # Fine-tuning the whole base on 120 e-mails also costs accuracy points (partly: see test_transfer_learning.py).
    "not_frozen": ([("load_frozen_base", _TL_FREEZE, "")], TL_FREEZING | {TL_ACCURACY}),
    # The embedding frozen, the rest trainable: the base changes, but it keeps what the embedding knew, so the
    # accuracy holds (measured: full points).
    "partly_frozen": ([("load_frozen_base", _TL_FREEZE,
                        "    for layer in base_model.layers[:2]:  # the input and the embedding only\n"
                        "        layer.trainable = False\n")], TL_FREEZING),
    "no_inference_mode": ([("build_transfer_model", "base_model(inputs, training=False)", "base_model(inputs)")],
                          {TL_INFERENCE}),
    "sequential": ([("build_transfer_model", _TL_FUNCTIONAL, _TL_SEQUENTIAL)], {TL_INFERENCE}),
    "bigger_head": ([("build_transfer_model", "    outputs = layers.Dense(N_MAGAZINES",
                      '    x = layers.Dense(32, activation="relu")(x)\n    outputs = layers.Dense(N_MAGAZINES')],
                    {TL_HEAD}),
    # One epoch at Adam's default learning rate: everything as built, too little trained (all accuracy points).
    "too_little": ([("build_transfer_model", "learning_rate=0.01", "learning_rate=0.001"),
                    (None, "epochs=20, batch_size=16, validation_data", "epochs=1, batch_size=16, validation_data")],
                   {TL_ACCURACY}),
    # A base built afresh instead of loaded is frozen, but knows nothing: its weights and the accuracy fail.
    "rebuilt_base": ([("load_frozen_base", "keras.saving.load_model(path)", "build_base()")],
                     {TL_WEIGHTS, TL_ACCURACY}),
}
TL_PUBLIC_FAILS = {"not_frozen", "partly_frozen", "no_inference_mode", "sequential", "bigger_head"}  # check_new_model
TL_ACCURACY_PARTLY = {"not_frozen"}  # loses some of the accuracy points, not all


def _transfer_fixtures(notebook, workdir: Path, *, public_fails: bool) -> dict:
    import shutil

    import keras

    from autograder.keras_checks import find_nested_model, inspect_keras_archive, load_model
    domain_emails = exercise_module("transfer_learning", "transfer_data").domain_emails

    base_file = REPO / "solutions" / "transfer_learning" / "base_model.keras"
    shutil.copy2(base_file, workdir / "base_model.keras")
    namespace = run_cells(notebook, ["setup", "load_frozen_base", "build_transfer_model", "make_model"], {}, workdir)
    if public_fails:
        with pytest.raises(AssertionError):
            run_cells(notebook, ["check_new_model"], namespace, workdir)
    else:
        run_cells(notebook, ["check_new_model"], namespace, workdir)
    namespace["model"].save(workdir / "transfer_model.keras")
    saved = workdir / "transfer_model.keras"
    model = load_model(saved)
    released = keras.saving.load_model(base_file, compile=False, safe_mode=True)
    return {"model": model, "config": inspect_keras_archive(saved), "fresh_model": load_model(saved),
            "released_base": released, "base": find_nested_model(model, released),
            "hidden_emails": domain_emails(200, seed=91)}


@pytest.mark.parametrize("student", ["reference", *(s for s in TL_IDIOMS if s != "more_epochs")])
def test_transfer_idiom_passes_every_public_check_and_every_structure_check(student, tmp_path):
    notebook = edited(reference("transfer_learning"), TL_IDIOMS.get(student, []))
    fixtures = _transfer_fixtures(notebook, tmp_path, public_fails=False)
    assert run_checks("transfer_learning", TL_STRUCTURE, **fixtures) == dict.fromkeys(TL_STRUCTURE, "")


@pytest.mark.parametrize("student", list(TL_MISTAKES))
def test_transfer_mistake_breaks_exactly_its_structure_checks(student, tmp_path):
    edits, breaks = TL_MISTAKES[student]
    notebook = edited(reference("transfer_learning"), edits)
    fixtures = _transfer_fixtures(notebook, tmp_path, public_fails=student in TL_PUBLIC_FAILS)
    if student in {"not_frozen", "partly_frozen"}:  # untrained here: train one step so that the base changes
        import numpy as np

        from autograder.keras_checks import find_nested_model, load_model, one_sgd_step

        emails = fixtures["hidden_emails"]
        one_sgd_step(fixtures["model"], emails.x[:64], np.eye(4, dtype="float32")[emails.y[:64]])
        fixtures["model"].save(tmp_path / "trained.keras")
        fixtures["model"] = load_model(tmp_path / "trained.keras")
        fixtures["fresh_model"] = load_model(tmp_path / "trained.keras")
        fixtures["base"] = find_nested_model(fixtures["model"], fixtures["released_base"])
    outcome = run_checks("transfer_learning", TL_STRUCTURE, **fixtures)
    assert {name for name, message in outcome.items() if message} == breaks - {TL_ACCURACY}, outcome


share_table("transfer_learning", {**TL_IDIOMS, **{student: edits for student, (edits, _) in TL_MISTAKES.items()}})


@pytest.fixture(scope="module")
def transfer_graded(shared_batch):
    return shared_batch("transfer_learning").results


@pytest.mark.slow
@in_batch("transfer_learning")
def test_transfer_reference_full_blank_zero(transfer_graded):
    reference_result = transfer_graded["reference"]
    assert reference_result.score == reference_result.max_score == 10, lost_checks(reference_result)
    assert transfer_graded["blank"].score == 0


@pytest.mark.slow
@in_batch("transfer_learning")
@pytest.mark.parametrize("student", list(TL_IDIOMS))
def test_transfer_idiom_earns_full_marks_in_the_batch(transfer_graded, student):
    result = transfer_graded[student]
    assert (result.score, lost_checks(result), result.reason) == (10, {}, "")


@pytest.mark.slow
@in_batch("transfer_learning")
@pytest.mark.parametrize("student", list(TL_MISTAKES))
def test_transfer_mistake_loses_exactly_its_checks_in_the_batch(transfer_graded, student):
    result, breaks = transfer_graded[student], TL_MISTAKES[student][1]
    assert result.status == "graded" and set(lost_checks(result)) == breaks, lost_checks(result)
    assert all(test.score == 0 for test in result.tests
               if test.name in breaks and not (test.name == TL_ACCURACY and student in TL_ACCURACY_PARTLY))


def test_seq2seq_layer_table_travels_through_the_grader_process(tmp_path):
    """The real grader process (sandboxed, its reply checked against the CheckResult schema) on an untrained model
    with an extra layer: the aligned table reaches the result as structured details, one inserted row."""
    from autograder.graders import run_graders

    notebook = edited(reference("seq2seq"), S2S_MISTAKES["extra_dropout"][0])
    _seq2seq_namespace(notebook, tmp_path)["build_model"]().save(tmp_path / "seq2seq_model.keras")
    checks, log = run_graders(graders_dir=REPO / "solutions" / "seq2seq" / "graders", artifacts_dir=tmp_path,
                              timeout=300)
    layers = next(check for check in checks if check.name == S2S_LAYERS)
    assert layers.score == 0 and layers.details, log
    assert [(row["expected"], row["found"]) for row in layers.details["rows"] if not row["ok"]] == [
        ("", "Dropout(rate=0.1)")]
    assert {check.name for check in checks if check.score < check.max_score} == {S2S_LAYERS, S2S_ACCURACY}
