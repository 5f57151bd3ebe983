"""Probe of the attention exercise, run in a fresh sandbox after the notebook (autograder/probe_runner.py).

The runner has executed the student's definition cells (`scaled_dot_product_attention`, `BahdanauAttention`,
`build_models`) in `namespace(inputs)`; `run` calls them on the inputs the host drew for this submission: the
function on random tensors, and a model built by the student's `build_models()` with the weights the notebook
saved after training on held-out dates. It returns plain arrays, and for each part that raised an `error_<part>`
string. It holds no expected output and no label: the graders compute those from the seed, outside any sandbox.
"""

import keras
import numpy as np

# Taken before any student code runs: a definition that rebinds them cannot change what the probe calls.
MODEL_CLASS, PREDICT, LOAD_WEIGHTS = keras.Model, keras.Model.predict, keras.Model.load_weights
WEIGHTS_FILE = "attention.weights.h5"


def namespace(inputs: dict) -> dict:
    """The globals the release's setup cell gives the definitions: its imports and the data's constants."""
    from keras import layers, ops

    constants = {name: int(inputs[name]) for name in ("INPUT_LENGTH", "OUTPUT_LENGTH", "N_INPUT_SYMBOLS",
                                                       "N_OUTPUT_SYMBOLS", "PAD")}
    return {"keras": keras, "layers": layers, "ops": ops, "np": np, **constants}


def _as_array(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)


def _call_function(function, query, key, value, **mask) -> tuple[np.ndarray, np.ndarray]:
    tensors = [keras.ops.convert_to_tensor(array) for array in (query, key, value)]
    mask = {name: keras.ops.convert_to_tensor(array) for name, array in mask.items()}
    returned = function(*tensors, **mask)
    if not isinstance(returned, tuple | list) or len(returned) != 2:
        raise TypeError(f"expected the pair (output, weights), found {type(returned).__name__}")
    return _as_array(returned[0]), _as_array(returned[1])


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
    """Call the student's function and trained models; whatever raises is recorded, never fatal."""
    found: dict[str, np.ndarray] = {}

    def attempt(part: str, step) -> None:
        try:
            found.update(step())
        except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises is recorded, not fatal
            found[f"error_{part}"] = np.array(f"{type(exc).__name__}: {str(exc)[:500]}")

    function = namespace.get("scaled_dot_product_attention")
    plain = {name: inputs[name] for name in ("query", "key", "value")}
    if function is None:
        for part in ("function", "masked"):
            found[f"error_{part}"] = np.array("NameError: scaled_dot_product_attention is not defined")
    else:
        attempt("function", lambda: dict(zip(("plain_output", "plain_weights"), _call_function(function, **plain),
                                             strict=True)))
        attempt("masked", lambda: dict(zip(("masked_output", "masked_weights"),
                                           _call_function(function, **plain, mask=inputs["mask"]), strict=True)))
    models: dict = {}

    def build() -> dict:
        models["model"], models["attention_model"] = _trained_models(namespace, artifacts)
        return {}

    attempt("model", build)
    if models:
        attempt("model", lambda: {"date_outputs": _as_array(PREDICT(models["model"], inputs["dates_x"],
                                                                     batch_size=250, verbose=0))})
        attempt("attention_model", lambda: {"date_attention": _as_array(PREDICT(
            models["attention_model"], inputs["attention_dates_x"], verbose=0))})
    elif "error_model" in found:
        found["error_attention_model"] = found["error_model"]
    return found
