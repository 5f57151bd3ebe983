"""hub_exploration end to end: the autograded facts about the course's checkpoint (the tiny BERT built by the
project), read with keras-hub and with Hugging Face transformers (offline, no PyTorch), each realistic mistake
losing exactly its check, and the written answers left to formgrader."""

from __future__ import annotations

import pytest

from autograder.examples import write_examples
from autograder.pipeline import grade
from tests.conftest import make_course

pytestmark = pytest.mark.slow


IDIOMS = {  # student -> (cell, old, new): the same facts found another way; each earns what the reference earns
    "vocabulary_list": ("facts", "int(tokenizer.vocabulary_size())", "len(tokenizer.get_vocabulary())"),
    "count_by_hand": ("facts", "int(backbone.count_params())", "int(sum(w.numpy().size for w in backbone.weights))"),
    "layers_from_config": ("facts", "int(backbone.num_layers)",
                           'json.load(open(os.path.join(CHECKPOINT, "config.json")))["num_hidden_layers"]'),
    "tokenize_method": ("facts", "for token_id in tokenizer(SENTENCE)]",
                        "for token_id in tokenizer.tokenize(SENTENCE)]"),
    "lowercase_from_file": ("hf_facts", "bool(hf_tokenizer.do_lower_case)",
                            'json.load(open(os.path.join(CHECKPOINT, "tokenizer_config.json")))["do_lower_case"]'),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    import nbformat

    from autograder.examples import replace_in

    course = make_course(tmp_path_factory.mktemp("course"), ("hub_exploration",))
    write_examples(course, "hub_exploration")
    reference = nbformat.read(course.solutions / "hub_exploration" / "hub_exploration.ipynb", as_version=4)
    for student, edit in IDIOMS.items():
        target = course.submitted / student / "hub_exploration" / "hub_exploration.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(replace_in(reference, *edit), target)
    report = grade(course=course, assignment="hub_exploration", jobs=2)
    return course, {r.student: r for r in report.results}


def _lost(result) -> dict[str, float]:
    return {t.cell: t.max_score - t.score for t in result.tests if t.score < t.max_score}


def test_reference_earns_the_autograded_points_and_waits_for_hand_grading(graded):
    reference = graded[1]["reference"]
    assert (reference.score, reference.max_score, reference.status) == (7, 7, "graded"), reference.tests
    assert reference.needs_manual_grade and reference.unanswered == ()


@pytest.mark.parametrize("student", list(IDIOMS))
def test_each_idiom_earns_what_the_reference_earns(graded, student):
    result = graded[1][student]
    assert (result.score, result.reason) == (7, ""), [(t.cell, t.output) for t in result.tests]


def test_blank_earns_zero_and_its_answers_count_as_no_response(graded):
    blank = graded[1]["blank"]
    assert blank.score == 0 and "NotImplementedError" in blank.reason
    assert set(blank.unanswered) == {"q1_answer", "q2_answer", "q3_answer", "q4_answer"}
    assert not blank.needs_manual_grade


@pytest.mark.parametrize(("student", "lost"), [("keras_layers", {"check_layers": 1}),
                                               ("whitespace_tokens", {"check_tokens": 2}),
                                               ("millions", {"check_parameters": 1}),
                                               ("weight_arrays", {"check_parameters": 1}),
                                               ("cls_and_sep", {"check_transformers": 1})])
def test_each_mistake_loses_exactly_its_check(graded, student, lost):
    result = graded[1][student]
    assert _lost(result) == lost, [(t.cell, t.output) for t in result.tests]


def test_gradebook_leaves_written_answers_to_formgrader(graded):
    from nbgrader.api import Gradebook

    course, _ = graded
    with Gradebook(course.db_url) as gradebook:
        reference = gradebook.find_submission("hub_exploration", "reference")
        blank = gradebook.find_submission("hub_exploration", "blank")
        assert reference.needs_manual_grade and not blank.needs_manual_grade
        assert (reference.code_score, blank.code_score) == (7, 0)
        comment = gradebook.find_comment("q1_answer", "hub_exploration", "hub_exploration", "blank")
        assert comment.auto_comment == "No response."
