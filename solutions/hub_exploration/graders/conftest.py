"""Fixtures of the hidden hub_exploration graders: the student's reported facts, and the truth, computed here from
the course's checkpoint (the instructor's files, so loading them runs no student code)."""

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def facts(request) -> dict:
    path = Path(request.config.getoption("--dlgrade-artifacts")) / "checkpoint_facts.json"
    if not path.exists():
        pytest.fail("the notebook did not save checkpoint_facts.json: fill in the facts cell and run every cell")
    try:
        found = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        pytest.fail("checkpoint_facts.json is not valid JSON; keep the cell that writes it as it is")
    if not isinstance(found, dict):
        pytest.fail("checkpoint_facts.json should hold a JSON object; keep the cell that writes it as it is")
    return found


@pytest.fixture(scope="session")
def checkpoint() -> str:
    return os.environ["DLGRADE_CHECKPOINT"]


@pytest.fixture(scope="session")
def backbone(checkpoint):
    import keras_hub

    return keras_hub.models.BertBackbone.from_preset(checkpoint)


@pytest.fixture(scope="session")
def tokenizer(checkpoint):
    import keras_hub

    return keras_hub.models.BertTokenizer.from_preset(checkpoint)
