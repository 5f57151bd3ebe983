"""Labelled texts for the bert_finetune exercise: the review corpus released beside the notebook, and any CSV or
JSON Lines file with a text column and a label column. Released with the notebook; it needs numpy only.

Notebooks load their released training split with `load_texts("reviews_train.csv")`; hidden graders load their
held-out split with the same function, so both read a file the same way.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REVIEWS_TRAIN = Path(__file__).resolve().with_name("reviews_train.csv")  # the released split (CC0, see DATA.md)
LABEL_NAMES = ("negative", "positive")  # label 0 and label 1 of the review corpus


class DataFileError(ValueError):
    """A data file that cannot be read as labelled texts; the message names the file, the row and the problem."""


@dataclass(frozen=True)
class TextData:
    """Texts and their integer labels, in file order: `texts[i]` has label `labels[i]`."""

    texts: np.ndarray  # (n,) str: what keras-hub preprocessors take
    labels: np.ndarray  # (n,) int32, each in range(num_classes)

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, fraction: float, *, seed: int = 0) -> tuple[TextData, TextData]:
        """(rest, held_out): a shuffled `fraction` held out, e.g. for validation during training."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie strictly between 0 and 1, not {fraction}")
        order = np.random.default_rng(seed).permutation(len(self))
        cut = len(self) - max(1, round(len(self) * fraction))
        return self._take(order[:cut]), self._take(order[cut:])

    def _take(self, index: np.ndarray) -> TextData:
        return TextData(texts=self.texts[index], labels=self.labels[index])


def load_texts(path: str | Path, *, text_column: str = "text", label_column: str = "label",
               label_names: Iterable[str] = (), num_classes: int = 2) -> TextData:
    """Read a `.csv` (with a header row) or `.jsonl` file of labelled texts.

    Labels are integers 0..num_classes-1, or, when `label_names` is given, those names (label i is the i-th
    name; integers are accepted too). Raises DataFileError naming the file, the row and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"no data file {path}: keep the data file beside the notebook, or pass its path")
    rows = list(_rows(path))
    if not rows:
        raise DataFileError(f"{path} holds no rows of data")
    names = tuple(label_names)
    texts, labels = [], []
    for where, row in rows:
        missing = [c for c in (text_column, label_column) if c not in row]
        if missing:
            raise DataFileError(f"{path}, {where}: no column {' or '.join(map(repr, missing))}; the columns are "
                              f"{', '.join(map(repr, row))}: pass text_column=... and label_column=...")
        text = row[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataFileError(f"{path}, {where}: the text in column {text_column!r} is empty or not a string")
        texts.append(text)
        labels.append(_label(row[label_column], names=names, num_classes=num_classes, where=f"{path}, {where}"))
    return TextData(texts=np.array(texts, dtype=str), labels=np.array(labels, dtype=np.int32))


def _rows(path: Path) -> Iterable[tuple[str, dict]]:
    """("row N" or "line N" as an editor counts them, the row as a dict), for CSV and JSON Lines."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFileError(f"{path}, line {number}: not a JSON object ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataFileError(f"{path}, line {number}: expected a JSON object with text and label fields")
                yield f"line {number}", row
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for number, row in enumerate(reader, start=2):  # row 1 is the header
                yield f"row {number}", row
    else:
        raise DataFileError(f"{path}: unknown data format {suffix!r}; use .csv (with a header row) or .jsonl")


def _label(value, *, names: tuple[str, ...], num_classes: int, where: str) -> int:
    if isinstance(value, str) and value.strip() in names:
        return names.index(value.strip())
    try:
        label = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        label = None
    if label is None or not 0 <= label < num_classes:
        allowed = ", ".join([str(i) for i in range(num_classes)] + [repr(n) for n in names])
        raise DataFileError(f"{where}: label {value!r} is not one of {allowed}")
    return label


def load_reviews() -> TextData:
    """The public training split of the review corpus released with the exercise (3000 reviews, label 1 positive)."""
    return load_texts(REVIEWS_TRAIN)
