"""Hidden graders of the bert_finetune exercise (10 points). Never released to students.

Thresholds depend on the checkpoint the course fine-tunes (its profile): a tiny random BERT learns from scratch
in a minute on a CPU; pretrained MiniLM and bert-base-cased start from language they already know.
"""

import numpy as np
import pytest
from bert_checkpoint import embedding_tensors

SEQUENCE_LENGTH = 64
EMBEDDING_LAYERS = ("token_embedding", "position_embedding", "segment_embedding")
# (floor, target) of accuracy on the hidden reviews: no points at or below the floor, all points from the target.
# Measured with the notebook's settings, seeds 0, 1, 2 (benchmarks/bench_training.py bert_finetune, 2 CPU cores):
#   tiny: 0.881, 0.855, 0.866 after 6 epochs; with the whole backbone frozen it stays below the floor.
#   minilm: 0.984, 0.970, 0.963 after its one epoch.
#   bert-base-cased: not measured (nothing is downloaded here); set like minilm, since a larger pretrained BERT
#   does at least as well on short English reviews (both exceed 0.9 on SST-2, which is harder than these).
THRESHOLDS = {"tiny": (0.65, 0.78), "minilm": (0.80, 0.90), "bert-base-cased": (0.80, 0.90)}
LONG_REVIEW = "The plot is clever but the ending drags on and on. " * 20


@pytest.mark.points(1, cell="check_model")
def test_two_logits_per_review(classifier):
    """Two outputs per review"""
    texts = np.array(["A delight from start to end.", "It broke after a day.", "Fine."])
    outputs = np.asarray(classifier.predict(texts, verbose=0))
    assert outputs.shape == (3, 2), f"for 3 reviews expected outputs of shape (3, 2), found {outputs.shape}"


@pytest.mark.points(1, cell="check_model")
def test_outputs_are_logits(classifier):
    """The classifier outputs logits (no softmax)"""
    activation = classifier.get_config().get("activation")
    assert activation in (None, "linear"), (
        f"expected logits (activation=None), found activation={activation!r}: keep the default activation and "
        "use a loss with from_logits=True")


@pytest.mark.points(1, cell="check_preprocessing")
def test_sequence_length(classifier):
    """The saved preprocessor's sequence length"""
    found = classifier.preprocessor.sequence_length
    assert found == SEQUENCE_LENGTH, (
        f"expected the preprocessor's sequence_length {SEQUENCE_LENGTH}, found {found}")


@pytest.mark.points(1, cell="check_preprocessing")
def test_long_reviews_are_truncated(classifier):
    """A long review is truncated to the sequence length, a short one padded"""
    tokenizer = classifier.preprocessor.tokenizer
    packed = classifier.preprocessor(np.array([LONG_REVIEW, "Great."]))
    token_ids = np.asarray(packed["token_ids"])
    assert token_ids.shape == (2, SEQUENCE_LENGTH), (
        f"a long and a short review should become 2 rows of {SEQUENCE_LENGTH} token ids, found {token_ids.shape}")
    assert token_ids[0, 0] == tokenizer.start_token_id and token_ids[0, -1] == tokenizer.end_token_id, (
        "the truncated review should still start with [CLS] and end with [SEP]")
    assert token_ids[1, -1] == tokenizer.pad_token_id, "the short review should be padded with [PAD]"


@pytest.mark.points(1, cell="check_frozen")
def test_embeddings_are_the_checkpoints(classifier, checkpoint):
    """The embeddings are the checkpoint's, bit for bit (frozen during fine-tuning)"""
    expected = embedding_tensors(checkpoint.path)
    changed = []
    for name in EMBEDDING_LAYERS:
        found = classifier.backbone.get_layer(name).get_weights()[0]
        assert found.shape == expected[name].shape, (
            f"{name} has shape {found.shape}, the checkpoint's has {expected[name].shape}: load the course's "
            "checkpoint with from_preset")
        if not np.array_equal(found, expected[name].astype(found.dtype)):
            changed.append(name)
    assert not changed, (f"fine-tuning changed {', '.join(changed)}: set trainable = False on the embedding layers "
                         "before you compile and train")


@pytest.mark.points(1, cell="check_frozen")
def test_transformer_layers_were_fine_tuned(classifier, checkpoint):
    """Only the embeddings are frozen: the transformer layers were fine-tuned"""
    import keras_hub

    original = keras_hub.models.BertBackbone.from_preset(str(checkpoint.path))
    unchanged = []
    for i in range(original.num_layers):
        name = f"transformer_layer_{i}"
        found, expected = classifier.backbone.get_layer(name).get_weights(), original.get_layer(name).get_weights()
        if all(np.array_equal(a, b) for a, b in zip(found, expected, strict=True)):
            unchanged.append(name)
    assert not unchanged, (f"{len(unchanged)} of {original.num_layers} transformer layers are exactly the "
                           "checkpoint's: freeze only the three embedding layers, and train the rest")


@pytest.mark.points(4, cell="check_accuracy")
def test_accuracy_on_hidden_reviews(classifier, checkpoint, hidden_reviews, credit):
    """Accuracy on hidden reviews"""
    floor, target = THRESHOLDS[checkpoint.profile]
    logits = np.asarray(classifier.predict(hidden_reviews.texts, batch_size=128, verbose=0))
    # Only one output row per review is needed here: the number of outputs is the check above's (a third class
    # that is never the largest output costs that check, not these points too).
    assert logits.ndim == 2 and logits.shape[0] == len(hidden_reviews), (
        f"expected one row of outputs per review, ({len(hidden_reviews)}, 2), found {logits.shape}")
    accuracy = float((logits.argmax(axis=-1) == hidden_reviews.labels).mean())
    credit.threshold(metric="accuracy", measured=accuracy, target=target, floor=floor,
                     about=f"on {len(hidden_reviews)} hidden reviews")
    assert credit.fraction > 0, credit.message
