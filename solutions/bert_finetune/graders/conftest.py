"""Fixtures of the hidden bert_finetune graders: the student's saved classifier (loaded with safe_mode, never
running their code), the checkpoint it was fine-tuned from, and the hidden test reviews."""

import os
from pathlib import Path

import pytest
from bert_checkpoint import ENV_PATH, Checkpoint, checkpoint_at  # beside the notebook, on the graders' path
from reviews import TextData, load_texts

from autograder.keras_checks import load_model

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def classifier(request):
    # safe_mode also refuses a tokenizer vocabulary file outside the archive (checked with keras-hub 0.32)
    path = Path(request.config.getoption("--dlgrade-artifacts")) / "bert_classifier.keras"
    return load_model(path)


@pytest.fixture(scope="session")
def checkpoint() -> Checkpoint:
    """The checkpoint the sandbox mounted: $DLGRADE_CHECKPOINT, the course's `bert` resource, set by dlgrade."""
    return checkpoint_at(Path(os.environ[ENV_PATH]))


@pytest.fixture(scope="session")
def hidden_reviews() -> TextData:
    return load_texts(HERE / "reviews_test.csv")
