"""Example submissions of the seq2seq exercise: `make demo` grades them and the tests use them (see
autograder/examples.py). Never released (nbgrader_config.py ignores this file)."""

import copy

from autograder.examples import HONEST, Example, first_unlocked_code, replace_in


def _extra_dropout(reference, release):
    return replace_in(reference, "build_model", 'x = layers.RepeatVector(',
                       'x = layers.Dropout(0.1)(x)\n    x = layers.RepeatVector(')


def _crash(reference, release):
    return replace_in(reference, "build_model", "layers.LSTM(encoder_units", "layers.LTSM(encoder_units")


def _timeout(reference, release):
    changed = copy.deepcopy(reference)
    cell = first_unlocked_code(changed)
    cell.source = "import time\nwhile True:  # forgot to stop\n    time.sleep(1)\n" + cell.source
    return changed


EXAMPLES = (
    *HONEST,
    Example("extra_layer", "an extra Dropout layer: loses the 2 points of the layer order check", _extra_dropout),
    Example("crash", "a typo (layers.LTSM) raises in build_model: zero, with the error", _crash),
    Example("endless_loop", "an endless loop before training: stopped at the time limit (30 s here)", _timeout,
            time_limit=30),
    Example("not_json", "a file that is not a notebook: rejected", lambda reference, release: b"this is not JSON"),
)
