"""Checks over saved Keras models, for hidden graders. Runs in the grader process, which never runs student
code: a model is inspected as data (its archive's config.json) before Keras loads it with safe_mode=True."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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


READ_FAILURE = "the saved model could not be read"  # how every refusal of an archive's bytes begins
ARTIFACT_BYTES_ENV = "DLGRADE_ARTIFACT_BYTES"  # the assignment's artifact limit, set for the graders by the host
DEFAULT_ARTIFACT_BYTES = 2**30
MAX_MEMBERS = 10_000  # a tokenizer's assets are a handful of files; a bomb can be millions of empty ones
MAX_CONFIG_BYTES = 16 * 2**20  # a 110 M-parameter classifier's config is a few hundred KiB
MAX_CONFIG_DEPTH = 200  # nested models reach a few dozen levels; json and Keras recurse once per level
MAX_EXPANSION = 100  # Keras stores members uncompressed: an honest archive expands about 1:1
EXPANSION_FLOOR = 2**20  # small members (a compressed config) may expand more without harm
MAX_WEIGHT_OBJECTS = 100_000
WEIGHTS_MEMBER = "model.weights.h5"


def _artifact_bytes() -> int:
    try:
        return max(int(os.environ.get(ARTIFACT_BYTES_ENV, DEFAULT_ARTIFACT_BYTES)), 1)
    except ValueError:
        return DEFAULT_ARTIFACT_BYTES


def _unreadable(path: Path, why: str) -> AssertionError:
    return AssertionError(f"{READ_FAILURE}: {path.name} {why}; save it again with model.save(...)")


def json_depth(text: str | bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, counted without recursion (and without parsing).

    Brackets inside strings do not count; an unbalanced text counts as deep as it gets."""
    import re

    import numpy as np

    data = text.encode() if isinstance(text, str) else text
    # Strings first (escapes included), so that a bracket inside a layer's name is not one of the structure's.
    structure = re.sub(rb'"[^"\\]*(?:\\.[^"\\]*)*"', b"", data, flags=re.DOTALL)
    codes = np.frombuffer(structure, dtype=np.uint8)
    steps = np.zeros(codes.shape, dtype=np.int64)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def _member_problem(names: set[str], info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\0" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"holds a file with an absolute or foreign path ({name[:80]!r})"
    if any(part == ".." for part in name.split("/")):
        return f"holds a file whose path leaves the archive ({name[:80]!r})"
    if name in names:
        return f"holds {name[:80]!r} twice"
    if info.file_size > EXPANSION_FLOOR and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        return (f"holds {name[:80]!r}, which would expand from {info.compress_size / 2**20:.1f} MiB to "
                f"{info.file_size / 2**20:.0f} MiB (a decompression bomb)")
    return None


def _weights_problem(archive: zipfile.ZipFile, max_bytes: int) -> str | None:
    """What is wrong with the shapes the weights file declares (before any array is read), if anything.

    A weights file can declare a dataset of any shape without holding its data; reading it would allocate it."""
    import h5py

    try:
        with archive.open(WEIGHTS_MEMBER) as member, h5py.File(member, "r") as weights:
            pending, seen, declared = [weights], 0, 0
            while pending:  # by hand, not visititems: a deep tree of groups costs nothing here
                group = pending.pop()
                for key in group:
                    seen += 1
                    if seen > MAX_WEIGHT_OBJECTS:
                        return f"has more than {MAX_WEIGHT_OBJECTS} objects in {WEIGHTS_MEMBER}"
                    item = group.get(key, getlink=False)
                    if isinstance(item, h5py.Group):
                        pending.append(item)
                    elif isinstance(item, h5py.Dataset):
                        declared += int(item.size) * int(item.dtype.itemsize)
                        if declared > max_bytes:
                            return (f"declares weights of more than {max_bytes / 2**20:.0f} MiB in {WEIGHTS_MEMBER} "
                                    "(more than the file holds or the limit allows)")
    except Exception as exc:  # h5py raises many types for a damaged file
        return f"has a damaged {WEIGHTS_MEMBER} ({type(exc).__name__})"
    return None


def check_keras_archive(path: Path, *, max_bytes: int | None = None) -> dict:
    """The model config of a `.keras` file, after checking the archive as untrusted data; else AssertionError
    beginning "the saved model could not be read: ...".

    Checked before anything is decompressed or parsed: the member count, member names (no absolute path, no
    `..`), the declared sizes against `max_bytes` (default: the assignment's artifact limit, from the
    environment) and against their compressed sizes, config.json's size and nesting depth, and the sizes the
    weights file declares."""
    limit = max_bytes or _artifact_bytes()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        raise _unreadable(path, "is not a model saved by model.save(...) in the .keras format") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _unreadable(path, f"holds {len(infos)} files (a .keras archive holds a few)")
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise _unreadable(path, f"would expand to {total / 2**20:.0f} MiB, more than the "
                              f"{limit / 2**20:.0f} MiB allowed")
        names: set[str] = set()
        for info in infos:
            problem = _member_problem(names, info)
            if problem:
                raise _unreadable(path, problem)
            names.add(info.filename)
        if "config.json" not in names:
            raise _unreadable(path, "is not a model saved by model.save(...) in the .keras format (no config.json)")
        if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
            raise _unreadable(path, f"has a config.json of more than {MAX_CONFIG_BYTES / 2**20:.0f} MiB")
        try:
            text = archive.read("config.json")
        except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
            raise _unreadable(path, f"has a damaged config.json ({type(exc).__name__})") from None
        if json_depth(text) > MAX_CONFIG_DEPTH:
            raise _unreadable(path, f"has a config.json nested more than {MAX_CONFIG_DEPTH} levels deep")
        try:
            config = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise _unreadable(path, "has a config.json that is not valid JSON") from None
        if WEIGHTS_MEMBER in names:
            problem = _weights_problem(archive, limit)
            if problem:
                raise _unreadable(path, problem)
    return config


def inspect_keras_archive(path: Path, *, max_bytes: int | None = None) -> dict:
    """The model config of a `.keras` file, or AssertionError naming what makes it unsafe or unreadable."""
    config = check_keras_archive(path, max_bytes=max_bytes)
    if not isinstance(config, dict):
        raise _unreadable(path, "has a config.json that is not a model's")
    for obj in _named_objects(config):
        module = str(obj.get("module") or "keras")
        name = str(obj.get("class_name"))
        if name in REFUSED_CLASSES or module.split(".")[0] not in TRUSTED_MODULES:
            raise AssertionError(f"the saved model uses {module}.{name}, which grading does not load: build the "
                                 "model from standard keras.layers only (no Lambda or custom layers)")
    return config


def load_model(path: Path, *, max_bytes: int | None = None):
    """Load a student's `.keras` file without running any of its code (inspected first, then safe_mode).

    Whatever Keras raises on the archive (a weights file that lies about its shapes, say) becomes an
    AssertionError beginning "the saved model could not be read: ...", so it costs the check, not the run."""
    if not path.exists():
        raise AssertionError(f"the notebook did not save {path.name}; run every cell, including the one that "
                             "saves the model, before you submit")
    inspect_keras_archive(path, max_bytes=max_bytes)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged archive raises many types; the student only needs to know it failed
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise _unreadable(path, f"could not be loaded by Keras ({type(exc).__name__}: {first})") from None


@dataclass(frozen=True)
class LayerRule:
    """What one place of an architecture must hold: a layer class and the settings the hidden checks look at.

    `settings` maps a key of the layer's `get_config()` to the value expected there, e.g.
    `LayerRule("LSTM", {"return_sequences": False})`; settings the exercise leaves free (unit sizes) are not named."""

    kind: str  # Keras class name, e.g. "LSTM"
    settings: Mapping[str, object] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """'LSTM(return_sequences=False)', as the architecture table shows it."""
        return _described(self.kind, tuple((key, _shown(value)) for key, value in self.settings.items()))


SHOWN_SETTINGS = ("units", "output_dim", "n", "rate", "return_sequences", "activation")  # of a layer no rule names
_UNSET = "(unset)"


def _shown(value: object) -> str:
    return str(value)


def _described(kind: str, settings: tuple[tuple[str, str], ...]) -> str:
    return f"{kind}({', '.join(f'{key}={value}' for key, value in settings)})" if settings else kind


def _setting(layer, key: str) -> str:
    try:
        config = layer.get_config()
    except Exception:  # a layer that cannot describe itself is shown by its class alone
        return _UNSET
    return _shown(config[key]) if key in config else _UNSET


def describe(layer, keys: tuple[str, ...] | None = None) -> str:
    """'Dense(units=10, activation=softmax)': a layer's class and its settings `keys` (default: those the
    architecture rules use, where the layer has them)."""
    shown = tuple((key, _setting(layer, key)) for key in (keys if keys is not None else SHOWN_SETTINGS))
    return _described(type(layer).__name__, tuple(pair for pair in shown if keys is not None or pair[1] != _UNSET))


def layer_graph(model) -> list:
    """The layers through which data flows from the model's inputs to its outputs, inputs first (InputLayer and
    `keras.ops` calls left out): the graph Keras built, whatever way the model was written.

    `model.layers` depends on the way: in Keras 3 a Sequential model never lists its InputLayer there, a functional
    one does, and a layer created but never connected may be listed too. A layer used twice appears once."""
    import keras

    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError) as exc:  # a Sequential model that never saw an input has no graph
        raise AssertionError("the model has no inputs or outputs yet: start it with keras.Input(shape=...) "
                             "(or layers.Input) so that Keras builds its graph") from exc
    order: list = []
    done: set[int] = set()
    # Depth first from the outputs, by hand (a deep model would exhaust Python's recursion): a layer is listed once
    # all the layers feeding it are, which puts the inputs first.
    stack = [(tensor._keras_history.operation._inbound_nodes[tensor._keras_history.node_index], False)
             for tensor in reversed(outputs)]
    while stack:
        node, parents_listed = stack.pop()
        if id(node) in done:
            continue
        if not parents_listed:
            stack.append((node, True))
            stack.extend((parent, False) for parent in reversed(node.parent_nodes) if id(parent) not in done)
            continue
        done.add(id(node))
        operation = node.operation
        if (isinstance(operation, keras.layers.Layer) and not isinstance(operation, keras.layers.InputLayer)
                and all(operation is not listed for listed in order)):
            order.append(operation)
    return order


@dataclass(frozen=True)
class LayerDiffRow:
    """One row of an aligned architecture: an expected layer and the layer found in its place, or one of them
    alone (a missing layer, an extra one). Both sides show the same settings: the ones the rule names."""

    change: str  # "same", "settings" (same class, a setting differs), "class", "missing" or "extra"
    expected: tuple[str, tuple[tuple[str, str], ...]] | None  # (class, ((setting, value), ...)); None: extra
    found: tuple[str, tuple[tuple[str, str], ...]] | None  # None: missing
    differs: tuple[str, ...] = ()  # the settings that differ ("class" when the class does)

    @property
    def ok(self) -> bool:
        return self.change == "same"

    @property
    def expected_text(self) -> str:
        return _described(*self.expected) if self.expected else ""

    @property
    def found_text(self) -> str:
        return _described(*self.found) if self.found else ""

    @property
    def note(self) -> str:
        """What differs, in words: 'return_sequences differs', 'extra layer', ..."""
        return {"same": "", "missing": "missing layer", "extra": "extra layer",
                "class": f"{self.found[0] if self.found else '?'} instead of "
                         f"{self.expected[0] if self.expected else '?'}"}.get(
            self.change, f"{', '.join(self.differs)} differ{'s' if len(self.differs) == 1 else ''}")

    def as_detail(self) -> dict:
        """The row as results.json's `details` hold it (pytest_plugin.Credit.layer_table): its two sides as text,
        "" for the side a missing or extra layer lacks. Both show the same settings, so the page marks what differs
        by comparing them (feedback.aligned_row)."""
        return {"expected": self.expected_text, "found": self.found_text, "ok": self.ok}


def _matched(rule: LayerRule, layer) -> LayerDiffRow:
    keys = tuple(rule.settings)
    expected = (rule.kind, tuple((key, _shown(value)) for key, value in rule.settings.items()))
    found = (type(layer).__name__, tuple((key, _setting(layer, key)) for key in keys))
    if found[0] != rule.kind:
        return LayerDiffRow("class", expected, found, ("class",))
    differs = tuple(key for (key, want), (_, have) in zip(expected[1], found[1], strict=True) if want != have)
    return LayerDiffRow("settings" if differs else "same", expected, found, differs)


def _extra(layer) -> LayerDiffRow:
    keys = tuple(key for key in SHOWN_SETTINGS if _setting(layer, key) != _UNSET)
    return LayerDiffRow("extra", None, (type(layer).__name__, tuple((key, _setting(layer, key)) for key in keys)))


def _missing(rule: LayerRule) -> LayerDiffRow:
    return LayerDiffRow("missing", (rule.kind, tuple((k, _shown(v)) for k, v in rule.settings.items())), None)


def architecture_rows(model_or_layers, rules: list[LayerRule]) -> list[LayerDiffRow]:
    """Expected and found layers aligned as a diff aligns lines (difflib on the class names, over the layer graph
    from input to output): an extra layer is one inserted row, a missing one one deleted row, a layer of another
    class in the place of an expected one a "class" row; matched layers compare the settings the rule names."""
    import difflib

    found = layer_graph(model_or_layers) if hasattr(model_or_layers, "outputs") else list(model_or_layers)
    matcher = difflib.SequenceMatcher(None, [rule.kind for rule in rules], [type(layer).__name__ for layer in found],
                                      autojunk=False)
    rows: list[LayerDiffRow] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [_matched(rule, layer) for rule, layer in zip(rules[i1:i2], found[j1:j2], strict=True)]
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0  # a GRU where an LSTM was expected: one row
        rows += [_matched(rule, layer) for rule, layer in zip(rules[i1:i1 + paired], found[j1:j1 + paired],
                                                              strict=True)]
        rows += [_missing(rule) for rule in rules[i1 + paired:i2]]
        rows += [_extra(layer) for layer in found[j1 + paired:j2]]
    return rows


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
