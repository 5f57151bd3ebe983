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
import warnings
from pathlib import Path

import nbformat
import pytest

from autograder.pytest_plugin import Credit
from tests.conftest import REPO, make_course, submit

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


def run_checks(assignment: str, names: set[str], **fixtures) -> dict[str, str]:
    """Call the hidden checks of `assignment` named (by their first docstring line) in `names` with `fixtures`;
    {name: "" when it passed, else its message}."""
    module = graders(assignment)
    outcome = {}
    for function in (getattr(module, name) for name in dir(module) if name.startswith("test_")):
        if check_name(function) not in names:
            continue
        wanted = inspect.signature(function).parameters
        arguments = {key: (Credit() if key == "credit" else fixtures[key]) for key in wanted}
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


def grade_table(tmp_path_factory, assignment: str, variants: dict[str, list[Edit]]) -> dict:
    """Grade the reference, the blank release and every variant in one sandboxed batch: {student: result}."""
    from autograder.pipeline import grade

    course = make_course(tmp_path_factory.mktemp("course"), (assignment,))
    name = course.config(assignment).notebook_name
    source = nbformat.read(course.solutions / assignment / name, as_version=4)
    submit(course, "reference", assignment, nbformat.writes(source).encode())
    submit(course, "blank", assignment, (course.releases / assignment / name).read_bytes())
    for student, edits in variants.items():
        submit(course, student, assignment, nbformat.writes(edited(source, edits)).encode())
    batch = grade(course=course, assignment=assignment, jobs=2)
    return {result.student: result for result in batch.results}


def lost_checks(result) -> dict[str, float]:
    return {test.name: test.max_score - test.score for test in result.tests if test.score < test.max_score}


def failed_public_checks(result) -> str:
    """The reason of a result, which names every public check cell that raised (empty when none did)."""
    return result.reason if "check" in result.reason else ""


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
    "twice_the_units": ([_s2s("layers.Dense(N_OUTPUT_SYMBOLS,", "layers.Dense(2 * N_OUTPUT_SYMBOLS,")], {S2S_OUTPUT}),
    # Neither of these two can be trained on 4-digit targets (fit raises), so the model saved is untrained.
    "repeat_five": ([_s2s("layers.RepeatVector(OUTPUT_LENGTH,", "layers.RepeatVector(OUTPUT_LENGTH + 1,")],
                    {S2S_REPEAT, S2S_ACCURACY}),
    "decoder_no_sequences": ([_s2s("decoder_units, return_sequences=True,", "decoder_units,")],
                             {S2S_SEQUENCES, S2S_ACCURACY}),
}
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

    outcome = run_checks("seq2seq", S2S_STRUCTURE, model=load_model(tmp_path / "seq2seq_model.keras"))
    assert {name for name, message in outcome.items() if message} == breaks - {S2S_ACCURACY}, outcome
    if S2S_LAYERS in breaks:
        assert "<-- " in outcome[S2S_LAYERS] and outcome[S2S_LAYERS].count("<-- ") == 1, outcome[S2S_LAYERS]


@pytest.fixture(scope="module")
def seq2seq_graded(tmp_path_factory):
    return grade_table(tmp_path_factory, "seq2seq",
                       {**S2S_IDIOMS, **{student: edits for student, (edits, _) in S2S_MISTAKES.items()}})


@pytest.mark.slow
def test_seq2seq_table_in_one_batch(seq2seq_graded):
    reference_result = seq2seq_graded["reference"]
    assert reference_result.score == reference_result.max_score == 10, lost_checks(reference_result)
    assert seq2seq_graded["blank"].score == 0
    for student in S2S_IDIOMS:
        result = seq2seq_graded[student]
        assert (result.score, lost_checks(result), result.reason) == (10, {}, ""), student
    for student, (_, breaks) in S2S_MISTAKES.items():
        result = seq2seq_graded[student]
        assert result.status == "graded" and set(lost_checks(result)) == breaks, (student, lost_checks(result))
        assert all(test.score == 0 for test in result.tests if test.name in breaks), student
