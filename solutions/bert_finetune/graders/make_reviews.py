"""Writes the review corpus of the bert_finetune exercise: the released training split and the hidden test split.

    .venv/bin/python solutions/bert_finetune/graders/make_reviews.py

The corpus is written for this project and dedicated to the public domain (CC0 1.0, see ../DATA.md).
Short reviews of films, books, games and products are composed from templates with a varied vocabulary. The label
(1 positive, 0 negative) is never one keyword: reviews praise one aspect and pan another and the verdict decides,
negation flips adjectives ("not worth the money", "not bad at all"), contrast clauses put the verdict after "but"
or "still", and expectation phrases carry the label ("I expected to hate it, but ...").

This script lives beside the hidden graders because its seed reproduces the hidden test split; only its output
`reviews_train.csv` is released.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_FILE = HERE.parent / "reviews_train.csv"  # released beside the notebook
TEST_FILE = HERE / "reviews_test.csv"
TRAIN_SIZE, TEST_SIZE = 3000, 1000
SEED = 20_240_611  # private: reproduces the hidden test split

# Things reviewed, by kind; each kind has aspects that fit it.
ITEMS = {
    "film": ["this film", "the movie", "this thriller", "the new comedy", "this documentary", "the sequel",
             "this horror movie", "the remake", "this animated film", "the western"],
    "series": ["this series", "the show", "the second season", "this miniseries", "the cooking show"],
    "book": ["this novel", "the book", "this memoir", "the cookbook", "this biography", "the short story collection"],
    "game": ["this game", "the puzzle game", "this board game", "the racing game", "the expansion"],
    "gadget": ["these headphones", "the phone", "this laptop", "the smartwatch", "this speaker", "the camera",
               "this tablet", "the keyboard", "the e-reader", "this charger"],
    "home": ["this blender", "the kettle", "this vacuum", "the coffee maker", "this desk lamp", "the toaster",
             "this air fryer", "the mattress", "the office chair", "this backpack", "the rain jacket",
             "these running shoes"],
}
ASPECTS = {
    "film": ["the plot", "the acting", "the soundtrack", "the pacing", "the dialogue", "the ending", "the script",
             "the cinematography", "the lead actor", "the special effects"],
    "series": ["the writing", "the cast", "the pacing", "the finale", "the characters", "the humour", "the episodes"],
    "book": ["the prose", "the characters", "the ending", "the plot", "the translation", "the recipes",
             "the research", "the middle part"],
    "game": ["the controls", "the story", "the graphics", "the level design", "the rules", "the multiplayer mode",
             "the difficulty curve"],
    "gadget": ["the battery", "the screen", "the sound", "the build quality", "the setup", "the price", "the app",
               "the design", "the software", "the noise cancelling"],
    "home": ["the motor", "the lid", "the build quality", "the price", "the design", "the instructions",
             "the handle", "the fabric", "the cleaning", "the delivery", "the customer service", "the fit"],
}
GOOD = ["excellent", "superb", "great", "wonderful", "solid", "reliable", "delightful", "impressive", "sharp",
        "sturdy", "clever", "smooth", "fantastic", "brilliant", "lovely", "top notch", "well made", "charming",
        "outstanding", "first rate", "spot on", "a real highlight", "gorgeous", "terrific", "flawless"]
BAD = ["awful", "terrible", "flimsy", "dull", "clumsy", "disappointing", "cheap", "sloppy", "boring", "sluggish",
       "weak", "messy", "bland", "poor", "mediocre", "useless", "confusing", "tedious", "a letdown", "dreadful",
       "forgettable", "frustrating", "shoddy", "painful", "a mess"]
SOFT_GOOD = ["decent", "fine", "okay", "good enough", "not bad", "acceptable", "pleasant"]  # mild praise
SOFT_BAD = ["a bit weak", "underwhelming", "not great", "rather flat", "so-so", "a little cheap", "uneven"]
INTENSIFIERS = ["", "", "", "really ", "truly ", "genuinely ", "quite ", "absolutely ", "surprisingly ", "pretty "]
NEGATED_GOOD = ["not {good}", "far from {good}", "never {good}", "anything but {good}", "hardly {good}"]  # -> bad
NEGATED_BAD = ["not {bad} at all", "never {bad}", "far from {bad}", "not once {bad}"]  # -> good

# Whole-review verdicts as (positive, negative) pairs sharing their words: negation or word order decides.
VERDICTS = [
    ("I would recommend it.", "I would not recommend it."),
    ("I would recommend it to anyone.", "I would not recommend it to anyone."),
    ("I will be buying from them again.", "I will not be buying from them again."),
    ("It is worth the money.", "It is not worth the money."),
    ("It lived up to the hype.", "It did not live up to the hype."),
    ("I kept it.", "I sent it back."),
    ("I'd give it four stars.", "I'd give it two stars."),
    ("Glad I bought it.", "Sorry I bought it."),
    ("It does what it promises.", "It does not do what it promises."),
    ("I was not disappointed.", "I was disappointed."),
    ("I can't find anything to complain about.", "I can't find anything to like about it."),
    ("It never gets boring.", "It never gets interesting."),
    ("Nothing about it feels cheap.", "Everything about it feels cheap."),
    ("I expected less and got more.", "I expected more and got less."),
    ("Better than I hoped.", "Worse than I feared."),
    ("It is not perfect, but it is close.", "It is not the worst, but it is close."),
    ("I have no regrets.", "I have nothing but regrets."),
    ("Would I buy it again? Yes.", "Would I buy it again? No."),
    ("It was a pleasure from start to end.", "It was a chore from start to end."),
    ("Easily one of the best this year.", "Easily one of the worst this year."),
]


def verdict(rng: random.Random, label: int) -> str:
    """A closing verdict: a pair shares its words, so the words alone do not give the label away."""
    return rng.choice(VERDICTS)[1 - label]


EXPECTATION = [  # (positive, negative) pairs again
    ("I expected to hate {item}, but it won me over.", "I expected to love {item}, but it let me down."),
    ("I had low hopes for {item}, and it beat them.", "I had high hopes for {item}, and it missed them."),
    ("I was sceptical about {item} at first, but not any more.",
     "I was excited about {item} at first, but not any more."),
    ("Everyone warned me about {item}; they were wrong.", "Everyone raved about {item}; they were wrong."),
]
OPENINGS = ["", "", "", "", "Quick review: ", "Second attempt at a review. ", "I'll keep this short. ",
            "Honest opinion: ", "My partner picked this one. ", "Long-time fan here. "]
WATCHED = ["Watched {item} with my family. ", "Saw {item} last weekend. ", "Finally got round to {item}. "]
BOUGHT = ["Bought {item} last month. ", "Been using {item} for a while now. ", "After two weeks with {item}: ",
          "Got {item} as a gift. "]
CONTRAST = ["but", "but honestly", "yet", "although", "though"]  # verdict in the clause after it
STILL = ["Still,", "Even so,", "That said,", "In the end,", "Overall,", "All in all,", "On balance,"]


def _kind_of(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(list(ITEMS))
    return kind, rng.choice(ITEMS[kind])


def _is(subject: str) -> str:
    last = subject.split()[-1]
    return "are" if last.endswith("s") and not last.endswith(("ss", "series")) else "is"


def _quality(rng: random.Random, label: int, *, mild: bool = False) -> str:
    """A predicate that praises (1) or pans (0), sometimes through a negation of the opposite word."""
    if mild:
        return rng.choice(SOFT_GOOD if label else SOFT_BAD)
    if rng.random() < 0.4:
        if label:
            return rng.choice(NEGATED_BAD).format(bad=rng.choice([b for b in BAD if " " not in b]))
        return rng.choice(NEGATED_GOOD).format(good=rng.choice([g for g in GOOD if " " not in g]))
    word = rng.choice(GOOD if label else BAD)
    return word if word.startswith("a ") else rng.choice(INTENSIFIERS) + word


def _clause(rng: random.Random, subject: str, label: int, *, mild: bool = False) -> str:
    return f"{subject} {_is(subject)} {_quality(rng, label, mild=mild)}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def review(rng: random.Random, label: int) -> str:
    """One review with the given label, in one of five shapes."""
    kind, item = _kind_of(rng)
    aspects = rng.sample(ASPECTS[kind], 3)
    shape = rng.choices(["plain", "contrast", "mixed", "expectation", "tricky"], weights=[3, 3, 3, 2, 2])[0]
    own = WATCHED if kind in ("film", "series") else BOUGHT
    opening = rng.choice(OPENINGS + own).format(item=item)
    if shape == "plain":
        parts = [_sentence(_clause(rng, aspects[0], label)), _sentence(_clause(rng, aspects[1], label))]
        if rng.random() < 0.6:
            parts.append(verdict(rng, label))
        body = " ".join(parts[: rng.randint(1, len(parts))] if rng.random() < 0.3 else parts)
    elif shape == "contrast":
        word = rng.choice(CONTRAST)
        first = _clause(rng, aspects[0], 1 - label)
        about_item = rng.random() < 0.5
        second = _clause(rng, item if about_item else aspects[1], label)
        if word in ("although", "though"):
            body = _sentence(f"{word} {first}, {second}")
        else:
            body = _sentence(f"{first}, {word} {second}")
        if not about_item or rng.random() < 0.4:  # one aspect against another needs a verdict to be clear
            body += " " + verdict(rng, label)
    elif shape == "mixed":
        body = " ".join([_sentence(_clause(rng, aspects[0], 1 - label)),
                         _sentence(_clause(rng, aspects[1], label, mild=True)),
                         f"{rng.choice(STILL)} " + _lower_first(verdict(rng, label))])
    elif shape == "expectation":
        body = _sentence(rng.choice(EXPECTATION)[1 - label].format(item=item))
        if rng.random() < 0.5:
            body += " " + _sentence(_clause(rng, aspects[0], label))
    else:
        body = _sentence(_clause(rng, aspects[0], rng.randint(0, 1), mild=True)) + " " + \
            verdict(rng, label)
    return (opening + body).strip()


def _lower_first(text: str) -> str:
    return text if text.startswith("I ") or text.startswith("I'") else text[0].lower() + text[1:]


def corpus(seed: int, size: int, *, exclude: set[str] = frozenset()) -> list[tuple[str, int]]:
    """`size` distinct reviews, half positive, none of them in `exclude`."""
    rng = random.Random(seed)
    seen = set(exclude)
    rows: list[tuple[str, int]] = []
    while len(rows) < size:
        label = len(rows) % 2
        text = review(rng, label)
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    rng.shuffle(rows)
    return rows


def write(path: Path, rows: list[tuple[str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def main() -> None:
    train = corpus(SEED, TRAIN_SIZE)
    test = corpus(SEED + 1, TEST_SIZE, exclude={text for text, _ in train})
    write(TRAIN_FILE, train)
    write(TEST_FILE, test)
    print(f"wrote {len(train)} training reviews to {TRAIN_FILE} and {len(test)} to {TEST_FILE}")


if __name__ == "__main__":
    main()
