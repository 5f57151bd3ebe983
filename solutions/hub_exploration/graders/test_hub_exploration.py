"""Hidden graders of hub_exploration's autograded part (5 points); the written answers are graded by hand."""

import pytest

SENTENCE = "Fine-tuning BERT isn't magic, it's gradient descent."  # the notebook's sentence


def _reported(facts: dict, key: str):
    assert key in facts, f"checkpoint_facts.json has no {key!r}; keep the cell that writes it as it is"
    return facts[key]


def _exact_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@pytest.mark.points(1, cell="check_parameters")
def test_parameter_count(facts, backbone):
    """The backbone's parameter count"""
    found, expected = _reported(facts, "n_parameters"), int(backbone.count_params())
    assert _exact_int(found) == expected, f"expected the backbone's parameter count ({expected:,}), found {found!r}"


@pytest.mark.points(1, cell="check_vocabulary")
def test_vocabulary_size(facts, tokenizer):
    """The tokenizer's vocabulary size"""
    found, expected = _reported(facts, "vocabulary_size"), int(tokenizer.vocabulary_size())
    assert _exact_int(found) == expected, f"expected the tokenizer's vocabulary size ({expected:,}), found {found!r}"


@pytest.mark.points(1, cell="check_layers")
def test_layer_count(facts, backbone):
    """The number of Transformer layers"""
    found, expected = _reported(facts, "n_layers"), int(backbone.num_layers)
    assert _exact_int(found) == expected, f"expected {expected} Transformer layers, found {found!r}"


@pytest.mark.points(2, cell="check_tokens")
def test_tokens_of_the_sentence(facts, tokenizer):
    """What the WordPiece tokenizer makes of the sentence"""
    found = _reported(facts, "tokens")
    expected = [tokenizer.id_to_token(int(token_id)) for token_id in tokenizer(SENTENCE)]
    assert isinstance(found, list), f"tokens should be a list of strings, found {type(found).__name__}"
    assert found == expected, (f"expected the {len(expected)} WordPiece tokens of the sentence, found {len(found)}: "
                               f"{found[:20]} (check: tokens as strings, no [CLS]/[SEP], in order)")
