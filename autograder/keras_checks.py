"""Checks over saved Keras models, for hidden graders. Runs in the grader process, which never runs student
code: a model is inspected as data (its archive's config.json) before Keras loads it with safe_mode=True."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TRUSTED_MODULES = ("keras", "keras_hub")  # modules whose classes a saved model may name
REFUSED_CLASSES = {"Lambda", "TFSMLayer"}  # run arbitrary code or load foreign graphs


def _named_objects(node) -> Iterator[dict]:
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _named_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _named_objects(value)


def inspect_keras_archive(path: Path) -> dict:
    """The model config of a `.keras` file, or AssertionError naming what makes it unsafe or unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError):
        raise AssertionError(f"{path.name} is not a model saved by model.save(...) in the .keras format") from None
    for obj in _named_objects(config):
        module = str(obj.get("module") or "keras")
        name = str(obj.get("class_name"))
        if name in REFUSED_CLASSES or module.split(".")[0] not in TRUSTED_MODULES:
            raise AssertionError(f"the saved model uses {module}.{name}, which grading does not load: build the "
                                 "model from standard keras.layers only (no Lambda or custom layers)")
    return config


def load_model(path: Path):
    """Load a student's `.keras` file without running any of its code (inspected first, then safe_mode)."""
    if not path.exists():
        raise AssertionError(f"the notebook did not save {path.name}; run every cell, including the one that "
                             "saves the model, before you submit")
    inspect_keras_archive(path)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged archive raises many types; the student only needs to know it failed
        raise AssertionError(f"{path.name} could not be loaded ({type(exc).__name__}); save it again with "
                             "model.save(...)") from None


@dataclass(frozen=True)
class LayerRule:
    """What one position of an architecture must hold: a layer class and a test of its configuration."""

    kind: str  # Keras class name, e.g. "LSTM"
    description: str  # shown to students, e.g. "LSTM, return_sequences=False"
    accepts: Callable[[object], bool] = lambda layer: True


def describe(layer) -> str:
    """A one-line description of a layer, in the terms the architecture rules use."""
    config = layer.get_config()
    parts = [type(layer).__name__]
    for key in ("units", "output_dim", "n", "return_sequences", "activation"):
        if key in config:
            parts.append(f"{key}={config[key]}")
    return ", ".join(parts) if len(parts) == 1 else f"{parts[0]}({', '.join(parts[1:])})"


def architecture_rows(model, rules: list[LayerRule]) -> list[tuple[int, str, str, bool]]:
    """Position by position: (index, expected, found, ok); missing or extra layers are rows that fail."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    rows = []
    for index in range(max(len(layers), len(rules))):
        rule = rules[index] if index < len(rules) else None
        layer = layers[index] if index < len(layers) else None
        found = describe(layer) if layer is not None else "(nothing)"
        ok = rule is not None and layer is not None and type(layer).__name__ == rule.kind and rule.accepts(layer)
        rows.append((index + 1, rule.description if rule else "(nothing)", found, ok))
    return rows


def architecture_message(rows: list[tuple[int, str, str, bool]]) -> str:
    """A plain-text table of expected vs found layers, marking the rows that differ."""
    width = max(len(row[1]) for row in rows)
    lines = [f"{'#':>2}  {'expected':<{width}}  found"]
    lines += [f"{i:>2}  {expected:<{width}}  {found}{'' if ok else '   <-- differs'}"
              for i, expected, found, ok in rows]
    return "\n".join(lines)


def partial_credit(value: float, *, floor: float, target: float) -> float:
    """0 at or below `floor`, 1 at or above `target`, linear in between."""
    if value >= target:
        return 1.0
    if value <= floor:
        return 0.0
    return (value - floor) / (target - floor)


def nested_models(model) -> list:
    """The layers of `model` that are models themselves, e.g. a pre-trained base used as one layer."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def weight_differences(found: list, expected: list) -> list[str]:
    """'features/kernel (largest change 0.0123)' for each weight in `found` that is not bit-identical to the
    weight at the same position in `expected`; a different number or shape of weights is a difference too."""
    import numpy as np

    if len(found) != len(expected):
        return [f"{len(found)} weight arrays where {len(expected)} were expected"]
    differences = []
    for mine, theirs in zip(found, expected, strict=True):
        a, b = np.asarray(mine.numpy()), np.asarray(theirs.numpy())
        if a.shape != b.shape:
            differences.append(f"{mine.path} (shape {a.shape}, expected {b.shape})")
        elif a.dtype != b.dtype or not np.array_equal(a, b):
            change = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
            differences.append(f"{mine.path} (largest change {change:.3g})")
    return differences


def layer_call_kwargs(config: dict, layer_name: str) -> list[dict]:
    """The keyword arguments of each call of `layer_name` in a saved functional model's config (`config.json`),
    e.g. [{'training': False, 'mask': None}]; [] for a Sequential model, which records no calls."""
    calls = []
    for layer in config.get("config", {}).get("layers", []):
        if layer.get("name", layer.get("config", {}).get("name")) == layer_name:
            calls += [node.get("kwargs", {}) for node in layer.get("inbound_nodes", []) if isinstance(node, dict)]
    return calls


def parameter_count(weights: list) -> int:
    """How many numbers a list of weights holds, e.g. `parameter_count(model.trainable_weights)`."""
    import numpy as np

    return sum(int(np.prod(weight.shape)) for weight in weights)


def one_sgd_step(model, x, y_one_hot, *, learning_rate: float = 0.1) -> None:
    """Compile `model` with a fresh SGD optimizer and take one real optimizer step on (x, y_one_hot).

    Mean squared error on one-hot targets: its gradient reaches every trainable weight whether the model ends in a
    softmax or in logits, so a weight that does not move is a frozen one."""
    import keras

    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mean_squared_error")
    model.train_on_batch(x, y_one_hot)


def find_nested_model(model, like):
    """The one model used as a layer inside `model` whose weights have the shapes of `like`'s (a released base
    model, say), or AssertionError saying what was found instead."""
    candidates = nested_models(model)
    assert candidates, (f"found no model used as a layer inside your model: load {like.name} and call it as one "
                        f"layer, x = {like.name}(inputs, training=False)")
    shapes = [tuple(weight.shape) for weight in like.weights]
    matching = [c for c in candidates if [tuple(weight.shape) for weight in c.weights] == shapes]
    assert len(matching) == 1, (f"expected one model like {like.name} used as a layer, found {len(matching)} "
                                f"with its weight shapes among the nested models {[c.name for c in candidates]}")
    return matching[0]
