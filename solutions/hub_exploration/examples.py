"""Example submissions of the hub_exploration exercise: `make demo` grades them and the tests use them (see
autograder/examples.py). Never released (nbgrader_config.py ignores this file)."""

from autograder.examples import Example, replace_in

EXAMPLES = (
    Example("reference", "the instructor's solution: full marks (written answers wait for formgrader)",
            lambda reference, release: reference),
    Example("blank", "the release as handed out: zero, written answers marked 'No response'",
            lambda reference, release: release),
    Example("keras_layers", "counts Keras layers, not Transformer layers: loses the 1 point of the layer check",
            lambda reference, release: replace_in(reference, "facts", "int(backbone.num_layers)",
                                                   "len(backbone.layers)")),
    Example("whitespace_tokens", "splits the sentence at spaces instead of WordPiece: loses the 2 token points",
            lambda reference, release: replace_in(
                reference, "facts", "[tokenizer.id_to_token(int(token_id)) for token_id in tokenizer(SENTENCE)]",
                "SENTENCE.split()")),
    Example("millions", "reports parameters in millions (1.2): loses the 1 point of the parameter check",
            lambda reference, release: replace_in(reference, "facts", "int(backbone.count_params())",
                                                   "round(backbone.count_params() / 1e6, 1)")),
    Example("weight_arrays", "counts weight arrays, len(backbone.weights): loses the 1 point of the parameter check",
            lambda reference, release: replace_in(reference, "facts", "int(backbone.count_params())",
                                                   "len(backbone.weights)")),
    Example("cls_and_sep", "keeps [CLS] and [SEP] in the transformers tokens: loses 1 point of the transformers check",
            lambda reference, release: replace_in(
                reference, "hf_facts", "hf_tokenizer.tokenize(SENTENCE)",
                'hf_tokenizer.convert_ids_to_tokens(hf_tokenizer(SENTENCE)["input_ids"])')),
)
