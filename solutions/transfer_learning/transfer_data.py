"""Generated text for the transfer-learning exercise, and the recipe that trained its released base model.

Two data sets share one made-up language (pseudo-words such as "noleto"):

- the **general corpus**: many short articles, each about one of 12 topics. The base model learns there what the
  words mean (which topic each word belongs to), by classifying articles by topic;
- the **domain**: readers' e-mails to a publisher with 4 magazines, each magazine covering 3 topics. Only a few
  e-mails are labelled, far too few to meet most of the 2,160 topic words even once, so a model trained on them
  alone has to guess on every word it never saw, while the frozen base already knows them all.

E-mails differ from articles (the domain shift): fewer topic words, and other frequent filler words (an e-mail's
"dear" and "thanks" are rare in articles). Everything is generated from seeds, without downloads; hidden
graders draw their held-out e-mails with a seed of their own.

    python transfer_data.py build-base base_model.keras   # in solutions/transfer_learning/
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENTENCE_LENGTH = 20  # tokens per article or e-mail, no padding
TOPICS = ("sport", "cooking", "music", "travel", "health", "finance",
          "science", "gardening", "film", "law", "weather", "computing")
MAGAZINES = {  # the domain's labels: each magazine answers the e-mails about its three topics
    "Outdoors": ("sport", "travel", "weather"),
    "Home": ("cooking", "gardening", "health"),
    "Culture": ("music", "film", "law"),
    "Tech & Money": ("finance", "science", "computing"),
}
WORDS_PER_TOPIC = 180
FILLER_WORDS = 839  # words of no topic ("the", "dear", ...): the other ids of the vocabulary
VOCAB_SIZE = 1 + len(TOPICS) * WORDS_PER_TOPIC + FILLER_WORDS  # 3000; id 0 is reserved for padding, never drawn
EMBEDDING_DIM = 32
FEATURES = 64  # the base model's output: one 64-number description of a text
GENERAL_CORPUS_SIZE = 24_000
BASE_EPOCHS = 3

_LANGUAGE_SEED = 20_240_917  # fixes the made-up language: spellings, topic of each word, filler frequencies


@dataclass(frozen=True)
class TextData:
    """Token ids `x` (n, SENTENCE_LENGTH) int32 and integer labels `y` (n,) int32, named by `labels`."""

    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True)
class _Register:
    """How one kind of text mixes its words: the share of tokens from the text's own topic, from one other topic
    (the same one throughout a text: a digression), and how often each filler word makes up the rest."""

    own_topic: float
    other_topic: float
    filler_weights: np.ndarray  # probability of each filler word


def _language() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(spelling of each id, ids of each topic's words (12, WORDS_PER_TOPIC), filler ids), the same on every call."""
    rng = np.random.default_rng(_LANGUAGE_SEED)
    onsets, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in onsets for v in vowels]
    spellings: set[str] = set()
    while len(spellings) < VOCAB_SIZE - 1:
        spellings.add("".join(rng.choice(syllables, size=rng.integers(2, 4))))
    words = ("<pad>", *sorted(spellings))  # sorted: a set's order changes with PYTHONHASHSEED
    ids = 1 + rng.permutation(VOCAB_SIZE - 1)  # topic words are scattered over the ids, not in blocks
    n_topic_words = len(TOPICS) * WORDS_PER_TOPIC
    topic_ids = np.sort(ids[:n_topic_words].reshape(len(TOPICS), WORDS_PER_TOPIC), axis=1)
    return words, topic_ids, np.sort(ids[n_topic_words:])


WORDS, _TOPIC_IDS, _FILLER_IDS = _language()


def _zipf(n: int, order_seed: int) -> np.ndarray:
    """Word frequencies that fall off like a natural language's, over a seeded ordering of the words."""
    weights = 1.0 / np.arange(1, n + 1)
    weights = weights[np.random.default_rng(order_seed).permutation(n)]
    return weights / weights.sum()


ARTICLES = _Register(own_topic=0.30, other_topic=0.05, filler_weights=_zipf(FILLER_WORDS, 1))
E_MAILS = _Register(own_topic=0.25, other_topic=0.05, filler_weights=_zipf(FILLER_WORDS, 2))


def _texts(topics: np.ndarray, register: _Register, rng: np.random.Generator) -> np.ndarray:
    """One text per entry of `topics`: each token is a word of the text's topic, of one other topic, or filler."""
    n = len(topics)
    draw = rng.random((n, SENTENCE_LENGTH))
    other = (topics[:, None] + rng.integers(1, len(TOPICS), (n, 1))) % len(TOPICS)  # never the own topic
    topic_of_token = np.where(draw < register.own_topic, topics[:, None], other)
    word_in_topic = rng.integers(0, WORDS_PER_TOPIC, (n, SENTENCE_LENGTH))
    topic_words = _TOPIC_IDS[topic_of_token, word_in_topic]
    filler = rng.choice(_FILLER_IDS, size=(n, SENTENCE_LENGTH), p=register.filler_weights)
    on_topic = draw < register.own_topic + register.other_topic
    return np.where(on_topic, topic_words, filler).astype(np.int32)


def general_corpus(n: int = GENERAL_CORPUS_SIZE, *, seed: int = 0) -> TextData:
    """`n` articles labelled with their topic (12 classes, balanced): the large data set of the base model."""
    rng = np.random.default_rng([seed, 1])
    topics = rng.permutation(np.arange(n) % len(TOPICS))
    return TextData(x=_texts(topics, ARTICLES, rng), y=topics.astype(np.int32), labels=TOPICS)


def domain_emails(n: int, *, seed: int) -> TextData:
    """`n` readers' e-mails labelled with the magazine that should answer them (4 classes, balanced)."""
    rng = np.random.default_rng([seed, 2])
    magazines = rng.permutation(np.arange(n) % len(MAGAZINES))
    topic_index = {topic: i for i, topic in enumerate(TOPICS)}
    topics_of = np.array([[topic_index[t] for t in covered] for covered in MAGAZINES.values()])
    topics = topics_of[magazines, rng.integers(0, 3, n)]
    return TextData(x=_texts(topics, E_MAILS, rng), y=magazines.astype(np.int32), labels=tuple(MAGAZINES))


def decode(tokens: np.ndarray) -> str:
    """The words of one text, e.g. 'noleto zoso reto ...'."""
    return " ".join(WORDS[int(t)] for t in tokens)


def build_base():
    """The base model, untrained: token ids -> FEATURES numbers (no classifier on top)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(SENTENCE_LENGTH,), dtype="int32", name="tokens")
    x = layers.Embedding(VOCAB_SIZE, EMBEDDING_DIM, name="embedding")(inputs)
    x = layers.GlobalAveragePooling1D(name="average")(x)
    x = layers.Dense(FEATURES, name="features")(x)
    x = layers.BatchNormalization(name="batch_norm")(x)
    outputs = layers.Activation("relu", name="relu")(x)
    return keras.Model(inputs, outputs, name="base_model")


def train_base(path: Path, *, seed: int = 0):
    """Step 1 of the recipe: train the base with a topic classifier on top, keep (and save) only the base."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":  # the same file on every rebuild (on one machine and build)
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    corpus = general_corpus(seed=seed)
    base_model = build_base()
    classifier = keras.Sequential([base_model, layers.Dense(len(TOPICS), activation="softmax", name="topic")])
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    classifier.fit(corpus.x, corpus.y, epochs=BASE_EPOCHS, batch_size=64, validation_split=0.1, verbose=2)
    base_model.save(path)
    return base_model


def main(argv: list[str]) -> int:
    """`build-base PATH`: train the base model on the general corpus and save it to PATH."""
    if len(argv) != 2 or argv[0] != "build-base":
        print("usage: python transfer_data.py build-base PATH", file=sys.stderr)
        return 2
    train_base(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
