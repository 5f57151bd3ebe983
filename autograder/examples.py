"""Example submissions built from an assignment's notebooks: honest, mistaken, broken and hostile.

`make demo` grades them and the tests use them, so a grader is always proven on the same notebooks a
newcomer sees. Each factory takes the reference (solution) and release notebooks and returns a submission.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import Course


def _cell(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def _replace_in(notebook: nbformat.NotebookNode, grade_id: str, old: str, new: str) -> nbformat.NotebookNode:
    changed = copy.deepcopy(notebook)
    cell = _cell(changed, grade_id)
    if old not in cell.source:
        raise ValueError(f"{old!r} not in cell {grade_id}")
    cell.source = cell.source.replace(old, new)
    return changed


def _first_unlocked_code(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.cell_type == "code" and "nbgrader" not in c.get("metadata", {}))


@dataclass(frozen=True)
class Example:
    """An example submission: who it is, what it shows, and how to build it from (reference, release)."""

    student: str
    shows: str
    build: Callable[[nbformat.NotebookNode, nbformat.NotebookNode], nbformat.NotebookNode | bytes]


def _extra_dropout(reference, release):
    return _replace_in(reference, "build_model", 'x = layers.RepeatVector(',
                       'x = layers.Dropout(0.1)(x)\n    x = layers.RepeatVector(')


def _crash(reference, release):
    return _replace_in(reference, "build_model", "layers.LSTM(encoder_units", "layers.LTSM(encoder_units")


def _timeout(reference, release):
    changed = copy.deepcopy(reference)
    cell = _first_unlocked_code(changed)
    cell.source = "import time\nwhile True:  # forgot to stop\n    time.sleep(1)\n" + cell.source
    return changed


HONEST = (  # every assignment's first two examples
    Example("reference", "the instructor's solution: full marks", lambda reference, release: reference),
    Example("blank", "the release as handed out: zero", lambda reference, release: release),
)

SEQ2SEQ_EXAMPLES = (
    *HONEST,
    Example("extra_layer", "an extra Dropout layer: loses the 2 points of the layer order check", _extra_dropout),
    Example("crash", "a typo (layers.LTSM) raises in build_model: zero, with the error", _crash),
    Example("endless_loop", "an endless loop before training: stopped at the time limit", _timeout),
    Example("not_json", "a file that is not a notebook: rejected", lambda reference, release: b"this is not JSON"),
)

HUB_EXAMPLES = (
    Example("reference", "the instructor's solution: full marks (written answers wait for formgrader)",
            lambda reference, release: reference),
    Example("blank", "the release as handed out: zero, written answers marked 'No response'",
            lambda reference, release: release),
    Example("keras_layers", "counts Keras layers, not Transformer layers: loses the 1 point of the layer check",
            lambda reference, release: _replace_in(reference, "facts", "int(backbone.num_layers)",
                                                   "len(backbone.layers)")),
    Example("whitespace_tokens", "splits the sentence at spaces instead of WordPiece: loses the 2 token points",
            lambda reference, release: _replace_in(
                reference, "facts", "[tokenizer.id_to_token(int(token_id)) for token_id in tokenizer(SENTENCE)]",
                "SENTENCE.split()")),
    Example("millions", "reports parameters in millions (1.2): loses the 1 point of the parameter check",
            lambda reference, release: _replace_in(reference, "facts", "int(backbone.count_params())",
                                                   "round(backbone.count_params() / 1e6, 1)")),
    Example("weight_arrays", "counts weight arrays, len(backbone.weights): loses the 1 point of the parameter check",
            lambda reference, release: _replace_in(reference, "facts", "int(backbone.count_params())",
                                                   "len(backbone.weights)")),
    Example("cls_and_sep", "keeps [CLS] and [SEP] in the transformers tokens: loses 1 point of the transformers check",
            lambda reference, release: _replace_in(
                reference, "hf_facts", "hf_tokenizer.tokenize(SENTENCE)",
                'hf_tokenizer.convert_ids_to_tokens(hf_tokenizer(SENTENCE)["input_ids"])')),
)

TRANSFER_EXAMPLES = (
    *HONEST,
    Example("no_inference_mode", "calls the base without training=False: loses the 1 point of the inference check",
            lambda reference, release: _replace_in(reference, "build_transfer_model",
                                                   "base_model(inputs, training=False)", "base_model(inputs)")),
)

ATTENTION_EXAMPLES = (
    *HONEST,
    Example("no_sqrt", "forgets to divide the scores by sqrt(d_k): loses the 1 point of the scaling check",
            lambda reference, release: _replace_in(reference, "scaled_dot_product_attention", " / ops.sqrt(d_k)",
                                                   "")),
)

BERT_EXAMPLES = (
    *HONEST,
    Example("short_sequences", "sequence length 48 instead of 64: loses the 2 preprocessing points",
            lambda reference, release: _replace_in(reference, "build_classifier",
                                                   "classifier.preprocessor.sequence_length = SEQUENCE_LENGTH",
                                                   "classifier.preprocessor.sequence_length = 48")),
)

EXAMPLES = {"seq2seq": SEQ2SEQ_EXAMPLES, "attention": ATTENTION_EXAMPLES, "transfer_learning": TRANSFER_EXAMPLES,
            "bert_finetune": BERT_EXAMPLES, "hub_exploration": HUB_EXAMPLES}


def write_examples(course: Course, assignment: str) -> list[Example]:
    """Write every example submission of `assignment` into submitted/<student>/<assignment>/."""
    config = course.config(assignment)
    reference = nbformat.read(course.solutions / assignment / config.notebook_name, as_version=4)
    release = nbformat.read(course.releases / assignment / config.notebook_name, as_version=4)
    examples = list(EXAMPLES.get(assignment, ()))
    for example in examples:
        target: Path = course.submitted / example.student / assignment / config.notebook_name
        target.parent.mkdir(parents=True, exist_ok=True)
        built = example.build(reference, release)
        if isinstance(built, bytes):
            target.write_bytes(built)
        else:
            nbformat.write(built, target)
    return examples
