"""Example submissions of the attention exercise: `make demo` grades them and the tests use them (see
autograder/examples.py). Never released (nbgrader_config.py ignores this file)."""

from autograder.examples import HONEST, Example, replace_in

EXAMPLES = (
    *HONEST,
    Example("no_sqrt", "forgets to divide the scores by sqrt(d_k): loses the 1 point of the scaling check",
            lambda reference, release: replace_in(reference, "scaled_dot_product_attention", " / ops.sqrt(d_k)",
                                                   "")),
)
