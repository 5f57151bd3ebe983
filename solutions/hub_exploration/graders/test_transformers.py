"""Hidden graders of hub_exploration's transformers part (2 points): the checkpoint read with Hugging Face
`transformers` (AutoTokenizer, offline, no PyTorch), the truth computed here from the course's checkpoint."""

import json
from pathlib import Path

import pytest

SENTENCE = "Fine-tuning BERT isn't magic, it's gradient descent."  # the notebook's sentence


@pytest.fixture
def hf_facts(artifacts_dir) -> dict:
    path = artifacts_dir / "transformers_facts.json"
    if not path.exists():
        pytest.fail("the notebook did not save transformers_facts.json: fill in the transformers cell and run every "
                    "cell")
    try:
        found = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        pytest.fail("transformers_facts.json is not valid JSON; keep the cell that writes it as it is")
    if not isinstance(found, dict):
        pytest.fail("transformers_facts.json should hold a JSON object; keep the cell that writes it as it is")
    return found


def _reported(facts: dict, key: str):
    assert key in facts, f"transformers_facts.json has no {key!r}; keep the cell that writes it as it is"
    return facts[key]


@pytest.mark.points(1, cell="check_transformers")
def test_lowercasing(hf_facts, checkpoint):
    """Whether the checkpoint's tokenizer lowercases (do_lower_case)"""
    settings = json.loads((Path(checkpoint) / "tokenizer_config.json").read_text())
    expected = bool(settings.get("do_lower_case", True))  # BERT's tokenizers lowercase unless told not to
    found = _reported(hf_facts, "lowercases")
    assert found is expected, (f"expected lowercases={expected} (do_lower_case of this checkpoint's tokenizer), "
                               f"found {found!r}")


@pytest.mark.points(1, cell="check_transformers")
def test_transformers_tokens(hf_facts, checkpoint):
    """What the transformers tokenizer makes of the sentence"""
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True).tokenize(SENTENCE)
    found = _reported(hf_facts, "hf_tokens")
    assert isinstance(found, list), f"hf_tokens should be a list of strings, found {type(found).__name__}"
    assert found == expected, (f"expected the {len(expected)} tokens hf_tokenizer.tokenize(SENTENCE) gives, found "
                               f"{len(found)}: {found[:20]}")
