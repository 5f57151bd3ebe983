"""Dates written in many formats and their ISO form: the data of the attention exercise, generated in code.

    "15 February 2019", "feb 15, 2019", "15/02/2019", "Friday, 15 Feb 2019"  ->  "2019-02-15"

Every example is drawn by seed, so a notebook and a grader that ask for the same seed see the same examples.
The days of the calendar range are split once, by a fixed public permutation, into training days and held-out
days (one in ten): `date_examples(..., held_out=False)` never returns a held-out day, so a model graded on
held-out days is graded on dates it has never seen, written in formats it has seen.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FIRST_DAY = datetime.date(1950, 1, 1)
LAST_DAY = datetime.date(2049, 12, 31)
INPUT_LENGTH = 32  # characters; longer than the longest format ("Wednesday, September 30, 2049": 29)
OUTPUT_LENGTH = 10  # "YYYY-MM-DD"
PAD = 0  # input id of the padding after the text; never a character
INPUT_CHARS = " ,-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ids 1.. (0 is padding)
OUTPUT_CHARS = "0123456789-"
N_INPUT_SYMBOLS = len(INPUT_CHARS) + 1  # with the padding id
N_OUTPUT_SYMBOLS = len(OUTPUT_CHARS)
HELD_OUT_FRACTION = 0.1
_SPLIT_SEED = 20_150_101  # fixed and public: which days are held out must never change

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _parts(day: datetime.date) -> dict[str, str]:
    month, weekday = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    return {"d": str(day.day), "dd": f"{day.day:02d}", "m": str(day.month), "mm": f"{day.month:02d}",
            "Y": f"{day.year:04d}", "Month": month, "month": month.lower(), "Mon": month[:3],
            "mon": month[:3].lower(), "MON": month[:3].upper(), "Weekday": weekday, "wkd": weekday[:3].lower()}


FORMATS: tuple[str, ...] = (
    "{d} {Month} {Y}",  # 15 February 2019
    "{Month} {d}, {Y}",  # February 15, 2019
    "{mon} {d}, {Y}",  # feb 15, 2019
    "{d} {Mon} {Y}",  # 15 Feb 2019
    "{dd}/{mm}/{Y}",  # 15/02/2019 (day first, as in most of the world)
    "{d}/{m}/{Y}",  # 15/2/2019
    "{dd}.{mm}.{Y}",  # 15.02.2019
    "{Y}-{mm}-{dd}",  # 2019-02-15 (already ISO)
    "{Weekday}, {d} {Mon} {Y}",  # Friday, 15 Feb 2019
    "{Weekday}, {Month} {d}, {Y}",  # Friday, February 15, 2019
    "{dd}-{mon}-{Y}",  # 15-feb-2019
    "{MON} {dd} {Y}",  # FEB 15 2019
    "{month} {d} {Y}",  # february 15 2019
    "{wkd} {d} {month} {Y}",  # fri 15 february 2019
)


def format_date(day: datetime.date, style: int) -> str:
    """`day` written in `FORMATS[style]`."""
    return FORMATS[style].format(**_parts(day))


def iso_date(day: datetime.date) -> str:
    """'2019-02-15'."""
    return day.isoformat()


@dataclass(frozen=True)
class DateData:
    """Examples of the exercise: the texts, their ISO dates, and both encoded as ids for a model."""

    texts: tuple[str, ...]  # "Friday, 15 Feb 2019"
    targets: tuple[str, ...]  # "2019-02-15"
    x: np.ndarray  # (n, INPUT_LENGTH) int32 input ids, padded with PAD after the text
    y: np.ndarray  # (n, OUTPUT_LENGTH) int32 output ids


_INPUT_IDS = {char: index + 1 for index, char in enumerate(INPUT_CHARS)}
_OUTPUT_IDS = {char: index for index, char in enumerate(OUTPUT_CHARS)}


def encode_inputs(texts: Sequence[str]) -> np.ndarray:
    """(n, INPUT_LENGTH) int32 ids of `texts`, each padded with PAD after its last character."""
    x = np.full((len(texts), INPUT_LENGTH), PAD, dtype=np.int32)
    for row, text in enumerate(texts):
        if len(text) > INPUT_LENGTH:
            raise ValueError(f"{text!r} is longer than {INPUT_LENGTH} characters")
        try:
            x[row, :len(text)] = [_INPUT_IDS[char] for char in text]
        except KeyError as exc:
            raise ValueError(f"{text!r} has a character outside INPUT_CHARS: {exc.args[0]!r}") from None
    return x


def encode_outputs(targets: Sequence[str]) -> np.ndarray:
    """(n, OUTPUT_LENGTH) int32 ids of ISO dates."""
    if any(len(target) != OUTPUT_LENGTH for target in targets):
        raise ValueError(f"ISO dates have {OUTPUT_LENGTH} characters")
    return np.array([[_OUTPUT_IDS[char] for char in target] for target in targets], dtype=np.int32).reshape(
        len(targets), OUTPUT_LENGTH)


def decode_input(ids: np.ndarray) -> str:
    """The text of one row of input ids (padding dropped)."""
    return "".join(INPUT_CHARS[int(i) - 1] for i in ids if int(i) != PAD)


def decode_output(ids: np.ndarray) -> str:
    """The date string of one row of output ids, e.g. '2019-02-15'."""
    return "".join(OUTPUT_CHARS[int(i)] for i in ids)


@functools.cache
def _split_days() -> tuple[np.ndarray, np.ndarray]:
    """(training days, held-out days) as sorted ordinals; the caller must not modify them."""
    days = np.random.default_rng(_SPLIT_SEED).permutation(np.arange(FIRST_DAY.toordinal(), LAST_DAY.toordinal() + 1))
    cut = int(len(days) * HELD_OUT_FRACTION)
    return np.sort(days[cut:]), np.sort(days[:cut])


def is_held_out(day: datetime.date) -> bool:
    """Whether `day` is one of the held-out days that `date_examples(..., held_out=False)` never returns."""
    held = _split_days()[1]
    index = int(np.searchsorted(held, day.toordinal()))
    return index < len(held) and int(held[index]) == day.toordinal()


def date_examples(n: int, *, seed: int, held_out: bool = False) -> DateData:
    """`n` examples: days drawn at random from the training days (or the held-out days), each written in a
    format drawn at random from FORMATS. The same arguments give the same examples."""
    rng = np.random.default_rng(seed)
    training, held = _split_days()
    ordinals = rng.choice(held if held_out else training, size=n)
    chosen = rng.integers(len(FORMATS), size=n)
    days = [datetime.date.fromordinal(int(o)) for o in ordinals]
    texts = tuple(format_date(day, int(style)) for day, style in zip(days, chosen, strict=True))
    targets = tuple(iso_date(day) for day in days)
    return DateData(texts=texts, targets=targets, x=encode_inputs(texts), y=encode_outputs(targets))


def exact_match(predicted: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose every output id is right (exact-sequence accuracy)."""
    predicted, y = np.asarray(predicted), np.asarray(y)
    if predicted.shape != y.shape:
        raise ValueError(f"predictions have shape {predicted.shape}, expected {y.shape}")
    return float((predicted == y).all(axis=1).mean()) if len(y) else 0.0

