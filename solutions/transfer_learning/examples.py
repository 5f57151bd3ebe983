"""Example submissions of the transfer_learning exercise: `make demo` grades them and the tests use them (see
autograder/examples.py). Never released (nbgrader_config.py ignores this file)."""

from autograder.examples import HONEST, Example, replace_in

EXAMPLES = (
    *HONEST,
    Example("no_inference_mode", "calls the base without training=False: loses the 1 point of the inference check",
            lambda reference, release: replace_in(reference, "build_transfer_model",
                                                   "base_model(inputs, training=False)", "base_model(inputs)")),
)
