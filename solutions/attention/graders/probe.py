"""Probe of the attention exercise: appended as the last cell of a submission, run in the student's kernel in
the sandbox after all the student's cells (also when some raised).

It calls what the notebook defined (`scaled_dot_product_attention`, `model`, `attention_model`) on inputs it
makes itself from fixed seeds and saves what comes back to attention_probe.npz: plain arrays, and for each part
that raised, an `error_<part>` string. It holds no expected output: the hidden graders import this module for
the same inputs and compute the reference outputs themselves, outside the sandbox. Importing it runs nothing.
"""

import numpy as np

PROBE_FILE = "attention_probe.npz"
FUNCTION_SEED = 31_337  # the random queries, keys, values and mask given to scaled_dot_product_attention
DATES_SEED = 2_718  # which held-out days, in which formats, the trained model is asked about
N_DATES = 1_000
N_ATTENTION_DATES = 64  # of those, how many the attention weights are saved for
BATCH, N_QUERIES, N_KEYS, D_K, D_V = 3, 5, 7, 16, 3  # all different, so a mixed-up axis shows


def function_inputs() -> dict[str, np.ndarray]:
    """Random query, key, value and a 0/1 mask of shape (batch, Tq, Tk) in which every query sees at least one
    key and misses at least one, and every key is seen by at least one query (so a softmax over the wrong axis
    still gives masked keys no weight: that mistake is graded by another check)."""
    rng = np.random.default_rng(FUNCTION_SEED)
    query = rng.standard_normal((BATCH, N_QUERIES, D_K)).astype(np.float32)
    key = rng.standard_normal((BATCH, N_KEYS, D_K)).astype(np.float32)
    value = rng.standard_normal((BATCH, N_KEYS, D_V)).astype(np.float32)
    mask = (rng.random((BATCH, N_QUERIES, N_KEYS)) < 0.5).astype(np.float32)
    for k in range(N_KEYS):
        mask[:, k % N_QUERIES, k] = 1.0
    for q in range(N_QUERIES):
        mask[:, q, (q + 1) % N_QUERIES] = 0.0
    return {"query": query, "key": key, "value": value, "mask": mask}


def held_out_dates():
    """The held-out dates the trained model is asked about (`autograder.dates.DateData`)."""
    from autograder.dates import date_examples

    return date_examples(N_DATES, seed=DATES_SEED, held_out=True)


def run_probe(namespace: dict) -> None:
    """Call the notebook's function and models in `namespace`; write PROBE_FILE whatever happens."""
    import keras

    found: dict[str, np.ndarray] = {}

    def as_array(value) -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)

    def attempt(part: str, step) -> None:
        try:
            found.update(step())
        except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises is recorded, not fatal
            found[f"error_{part}"] = np.array(f"{type(exc).__name__}: {str(exc)[:500]}")

    def call_function(query, key, value, **mask) -> tuple[np.ndarray, np.ndarray]:
        tensors = [keras.ops.convert_to_tensor(array) for array in (query, key, value)]
        mask = {name: keras.ops.convert_to_tensor(array) for name, array in mask.items()}
        returned = namespace["scaled_dot_product_attention"](*tensors, **mask)
        if not isinstance(returned, tuple | list) or len(returned) != 2:
            raise TypeError(f"expected the pair (output, weights), found {type(returned).__name__}")
        return as_array(returned[0]), as_array(returned[1])

    inputs = function_inputs()
    plain = {name: inputs[name] for name in ("query", "key", "value")}
    attempt("function", lambda: dict(zip(("plain_output", "plain_weights"), call_function(**plain), strict=True)))
    attempt("masked", lambda: dict(zip(("masked_output", "masked_weights"),
                                       call_function(**plain, mask=inputs["mask"]), strict=True)))
    def keras_model(name: str):
        """`namespace[name]`, which must be a Keras model (not some object with a `predict` of its own)."""
        found_model = namespace[name]
        if not isinstance(found_model, keras.Model):
            raise TypeError(f"{name} is a {type(found_model).__name__}, not a Keras model")
        return found_model

    dates = held_out_dates()  # Keras's own predict, whatever the class defines
    attempt("model", lambda: {"date_outputs": as_array(keras.Model.predict(keras_model("model"), dates.x,
                                                                           batch_size=250, verbose=0))})
    attempt("attention_model", lambda: {"date_attention": as_array(keras.Model.predict(
        keras_model("attention_model"), dates.x[:N_ATTENTION_DATES], verbose=0))})
    np.savez(PROBE_FILE, **found)
    print(f"probe: saved {', '.join(sorted(found))} to {PROBE_FILE}")
    history = namespace.get("history")
    if history is not None and isinstance(getattr(history, "history", None), dict):  # curves for the feedback page
        import json

        try:
            curves = {str(key): [float(value) for value in values] for key, values in history.history.items()}
            with open("history.json", "w") as handle:
                json.dump(curves, handle)
        except (TypeError, ValueError):
            pass


if __name__ == "__main__":  # as the notebook's last cell; an import by the graders runs nothing
    run_probe(globals())
