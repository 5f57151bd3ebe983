"""Fixtures of the hidden transfer-learning graders: the student's saved model (loaded without running their
code), the released base model it must contain, and hidden e-mails of the target domain."""

from pathlib import Path

import pytest
from transfer_data import domain_emails

from autograder.keras_checks import find_nested_model, inspect_keras_archive, load_model

RELEASED_BASE = Path(__file__).resolve().parents[1] / "base_model.keras"  # released beside the notebook
HIDDEN_EMAILS_SEED = 52_817  # private: which e-mails the accuracy and one-step checks use
HIDDEN_EMAILS = 2000


def _archive(request) -> Path:
    return Path(request.config.getoption("--dlgrade-artifacts")) / "transfer_model.keras"


@pytest.fixture(scope="session")
def model(request):
    return load_model(_archive(request))


@pytest.fixture(scope="session")
def config(request, model) -> dict:
    """The saved model's config.json, read as data (once `model` has shown that the archive loads)."""
    return inspect_keras_archive(_archive(request))


@pytest.fixture
def fresh_model(request):
    """A copy of the student's model of its own, for checks that train it (the session's `model` stays as saved)."""
    return load_model(_archive(request))


@pytest.fixture(scope="session")
def released_base():
    import keras

    return keras.saving.load_model(RELEASED_BASE, compile=False, safe_mode=True)


@pytest.fixture(scope="session")
def hidden_emails():
    return domain_emails(HIDDEN_EMAILS, seed=HIDDEN_EMAILS_SEED)


@pytest.fixture(scope="session")
def base(model, released_base):
    """The student's base model, as saved (nested inside their model)."""
    return find_nested_model(model, released_base)
