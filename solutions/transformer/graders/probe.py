"""Probe of the transformer exercise, run in a fresh sandbox after the notebook (autograder/probe_runner.py).

The runner has executed the student's definition cells (`scaled_dot_product_attention`, `positional_encoding`
and `PositionalEmbedding`, `MultiHeadSelfAttention`, `EncoderBlock`, `build_models`) in `namespace(inputs)`;
`run` calls them on the inputs the host drew for this submission: the function on random tensors, fresh layers
(random weights) on random inputs, and a model built by the student's `build_models()` with the weights the
notebook saved after training on held-out sequences. It returns plain arrays (the layers' own projection weights
among them, so the graders can compute what the layer should have given), and for each part that raised an
`error_<part>` string. It holds no expected output and no label: the graders compute those, outside any sandbox.
"""

import keras
import numpy as np

# Taken before any student code runs: a definition that rebinds them cannot change what the probe calls or sees.
MODEL_CLASS, PREDICT, LOAD_WEIGHTS = keras.Model, keras.Model.predict, keras.Model.load_weights
LAYER_CLASS, KERAS_ATTENTION = keras.layers.Layer, keras.layers.MultiHeadAttention
LAYER_NORMALIZATION = keras.layers.LayerNormalization
FLATTEN_LAYERS = keras.layers.Layer._flatten_layers
WEIGHTS_FILE = "transformer.weights.h5"
PROJECTIONS = ("w_query", "w_key", "w_value", "w_output")  # MultiHeadSelfAttention's Dense layers, by the release


def namespace(inputs: dict) -> dict:
    """The globals the release's setup cell gives the definitions: its imports and the data's constants."""
    from keras import layers, ops

    constants = {name: int(inputs[name]) for name in ("MIN_LENGTH", "MAX_LENGTH", "N_DIGITS", "PAD", "VOCAB_SIZE")}
    return {"keras": keras, "layers": layers, "ops": ops, "np": np, **constants}


def _as_array(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)


def _pair(returned, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(returned, tuple | list) or len(returned) != 2:
        raise TypeError(f"{what} must return the pair (output, weights), found {type(returned).__name__}")
    return _as_array(returned[0]), _as_array(returned[1])


def _layer(namespace: dict, name: str, *args):
    made = namespace[name](*args)
    if not isinstance(made, LAYER_CLASS):
        raise TypeError(f"{name}(...) is a {type(made).__name__}, not a Keras layer")
    return made


def _sublayers(layer) -> list:
    return list(FLATTEN_LAYERS(layer, include_self=True, recursive=True))


def _uses_keras_attention(*layers) -> bool:
    return any(isinstance(each, KERAS_ATTENTION) for layer in layers for each in _sublayers(layer))


def _function(function, inputs: dict, *, masked: bool) -> dict:
    tensors = [keras.ops.convert_to_tensor(inputs[name]) for name in ("query", "key", "value")]
    mask = {"mask": keras.ops.convert_to_tensor(inputs["key_mask"])} if masked else {}
    output, weights = _pair(function(*tensors, **mask), "scaled_dot_product_attention")
    case = "masked" if masked else "plain"
    return {f"{case}_output": output, f"{case}_weights": weights}


def _positional(namespace: dict, inputs: dict) -> dict:
    length, d_model = int(inputs["pe_length"]), int(inputs["pe_d_model"])
    return {"encoding": np.asarray(namespace["positional_encoding"](length, d_model), dtype=np.float32)}


def _embedding(namespace: dict, inputs: dict) -> dict:
    tokens = inputs["embedding_tokens"]
    layer = _layer(namespace, "PositionalEmbedding", int(inputs["VOCAB_SIZE"]), int(inputs["embedding_d_model"]))
    return {"embedded": _as_array(layer(keras.ops.convert_to_tensor(tokens)))}


def _attention(namespace: dict, inputs: dict) -> dict:
    x, order = inputs["attention_x"], inputs["attention_order"]
    layer = _layer(namespace, "MultiHeadSelfAttention", int(inputs["attention_d_model"]),
                   int(inputs["attention_heads"]))
    output, weights = _pair(layer(keras.ops.convert_to_tensor(x)), "MultiHeadSelfAttention")
    permuted, _ = _pair(layer(keras.ops.convert_to_tensor(x[:, order])), "MultiHeadSelfAttention")
    found = {"attention_output": output, "attention_weights": weights, "attention_permuted": permuted,
             "attention_parameters": np.array(layer.count_params()),
             "attention_keras_layer": np.array(_uses_keras_attention(layer))}
    for name in PROJECTIONS:
        dense = getattr(layer, name, None)
        if isinstance(dense, keras.layers.Dense):
            found[f"{name}_kernel"] = _as_array(dense.kernel)
            found[f"{name}_bias"] = _as_array(dense.bias) if dense.use_bias else np.zeros(dense.units, np.float32)
    return found


def _silence(block) -> None:
    """Every weight of the block set to 0 except the layer normalisations': both sublayers then output 0."""
    kept = {id(weight) for each in _sublayers(block) if isinstance(each, LAYER_NORMALIZATION)
            for weight in each.weights}
    for weight in block.weights:
        if id(weight) not in kept:
            weight.assign(np.zeros(tuple(weight.shape), dtype=keras.backend.standardize_dtype(weight.dtype)))


def _block(namespace: dict, inputs: dict) -> dict:
    x, other, mask = (keras.ops.convert_to_tensor(inputs[name]) for name in ("block_x", "block_other", "block_mask"))
    block = _layer(namespace, "EncoderBlock", int(inputs["block_d_model"]), int(inputs["block_heads"]),
                   int(inputs["block_d_ff"]))
    found = {"block_output": _as_array(block(x, padding_mask=mask)),
             "block_other_output": _as_array(block(other, padding_mask=mask)),
             "block_plain_output": _as_array(block(x)),
             "block_keras_layer": np.array(_uses_keras_attention(block))}
    _silence(block)
    found["block_silenced_output"] = _as_array(block(x))
    return found


def _trained_models(namespace: dict, artifacts) -> tuple:
    """(model, attention_model) from the student's build_models(), with the weights saved after training."""
    if keras.Model.predict is not PREDICT or keras.Model is not MODEL_CLASS:
        raise RuntimeError("the definitions replaced parts of Keras; the models cannot be graded")
    weights = artifacts / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{WEIGHTS_FILE} was not saved (did the notebook run to its end?)")
    built = namespace["build_models"]()
    if not isinstance(built, tuple | list) or len(built) != 2:
        raise TypeError(f"build_models() must return (model, attention_model), found {type(built).__name__}")
    for name, model in zip(("model", "attention_model"), built, strict=True):
        if not isinstance(model, MODEL_CLASS):
            raise TypeError(f"{name} is a {type(model).__name__}, not a Keras model")
    try:
        LOAD_WEIGHTS(built[0], str(weights))
    except Exception as exc:
        raise ValueError(f"the saved weights do not fit the model build_models() makes: {exc}") from None
    return built[0], built[1]


def run(namespace: dict, inputs: dict, artifacts) -> dict[str, np.ndarray]:
    """Call the student's definitions; whatever raises is recorded for its part, never fatal."""
    found: dict[str, np.ndarray] = {}

    def attempt(part: str, step, *names: str) -> None:
        missing = [name for name in names if name not in namespace]
        if missing:
            found[f"error_{part}"] = np.array(f"NameError: {missing[0]} is not defined")
            return
        try:
            found.update(step())
        except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises is recorded, not fatal
            found[f"error_{part}"] = np.array(f"{type(exc).__name__}: {str(exc)[:500]}")

    function = namespace.get("scaled_dot_product_attention")
    attempt("function", lambda: _function(function, inputs, masked=False), "scaled_dot_product_attention")
    attempt("masked", lambda: _function(function, inputs, masked=True), "scaled_dot_product_attention")
    attempt("encoding", lambda: _positional(namespace, inputs), "positional_encoding")
    attempt("embedding", lambda: _embedding(namespace, inputs), "PositionalEmbedding")
    attempt("attention", lambda: _attention(namespace, inputs), "MultiHeadSelfAttention")
    attempt("block", lambda: _block(namespace, inputs), "EncoderBlock")
    models: dict = {}

    def build() -> dict:
        models["model"], models["attention_model"] = _trained_models(namespace, artifacts)
        return {"model_keras_layer": np.array(_uses_keras_attention(models["model"]))}

    attempt("model", build, "build_models")
    if models:
        attempt("model", lambda: {"sequence_outputs": _as_array(PREDICT(models["model"], inputs["sequences_x"],
                                                                         batch_size=250, verbose=0))})
        attempt("attention_model", lambda: {"sequence_attention": _as_array(PREDICT(
            models["attention_model"], inputs["attention_sequences_x"], verbose=0))})
    elif "error_model" in found:
        found["error_attention_model"] = found["error_model"]
    return found
