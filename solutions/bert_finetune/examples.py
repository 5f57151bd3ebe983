"""Example submissions of the bert_finetune exercise: `make demo` grades them and the tests use them (see
autograder/examples.py). Never released (nbgrader_config.py ignores this file)."""

from autograder.examples import HONEST, Example, replace_in

EXAMPLES = (
    *HONEST,
    Example("short_sequences", "sequence length 48 instead of 64: loses the 2 preprocessing points",
            lambda reference, release: replace_in(reference, "build_classifier",
                                                   "classifier.preprocessor.sequence_length = SEQUENCE_LENGTH",
                                                   "classifier.preprocessor.sequence_length = 48")),
)
