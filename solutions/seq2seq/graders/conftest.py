"""Fixtures of the hidden seq2seq graders: the student's saved model, loaded once, without running their code."""

from pathlib import Path

import pytest

from autograder.keras_checks import load_model


@pytest.fixture(scope="session")
def model(request):
    return load_model(Path(request.config.getoption("--dlgrade-artifacts")) / "seq2seq_model.keras")
