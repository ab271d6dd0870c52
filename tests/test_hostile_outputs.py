"""Hostile outputs and read-backs: nothing the tool did not write is deleted or overwritten, and
everything read back is checked against what was recorded.

Every refused case runs the real CLI in-process through ``refused``: exit 1, one ``Error:`` line,
no traceback, and the output folder and the input files byte-identical to before. The positive
cases show that the tool's own outputs are still resumed, replaced and read.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data import shards
from data.files import sha256_file
from pipeline.cli import main
from tests.cli_helpers import refused
from tests.conftest import tiny_corpus_lines
from tests.stage2_helpers import TINY_ARCH, copy_shards, make_tiny_shards, train_cli

SHARD = shards.shard_name(1, 4)


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("hostile") / "shards", tiny_teacher_dir)


@pytest.fixture(scope="module")
def student(tmp_path_factory, tiny_shards) -> Path:
    out = tmp_path_factory.mktemp("hostile-student") / "student"
    result = train_cli(tiny_shards, out, "--max-steps", "2", "--val-every", "100")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    root = tmp_path_factory.mktemp("hostile-index")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(40)) + "\n", encoding="utf-8")
    args = ["index", "--model", tiny_teacher_dir, "--corpus", corpus, "--out", root / "index"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return root / "index"


def _corpus_of(shard_dir: Path) -> Path:
    return shard_dir.parent / f"{shard_dir.name}-corpus.txt"


def _run(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def _rewrite(shard_dir: Path, edit: Callable[[h5py.File], None], name: str = SHARD) -> Path:
    """Change one shard in place and re-record its checksum, as a foreign shard that slipped
    past the checksum (recorded by a resumed encode) would look."""
    path = shard_dir / name
    with h5py.File(path, "r+") as handle:
        edit(handle)
    manifest = json.loads((shard_dir / shards.MANIFEST).read_text())
    manifest["shards"][name]["sha256"] = sha256_file(path)
    (shard_dir / shards.MANIFEST).write_text(json.dumps(manifest))
    return path


def _set_teacher_attr(key: str, value) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        teacher = json.loads(handle.attrs["teacher"])
        handle.attrs["teacher"] = json.dumps({**teacher, key: value})

    return edit


# ----------------------------------------------------------------- train / encode / index --out


def test_train_overwrite_refuses_a_shard_folder(tiny_shards, tmp_path) -> None:
    target = copy_shards(tiny_shards, tmp_path / "shards")
    refused(
        ["train", "--targets", tiny_shards, "--out", target, *TINY_ARCH, "--overwrite"],
        "not a training run",
        untouched=[target, tiny_shards],
    )


def test_train_overwrite_refuses_a_hugging_face_model_folder(
    tiny_shards, tiny_teacher_dir, tmp_path
) -> None:
    model = shutil.copytree(tiny_teacher_dir, tmp_path / "hf-model")
    (model / "README.md").write_text("my model card")
    refused(
        ["train", "--targets", tiny_shards, "--out", model, *TINY_ARCH, "--overwrite"],
        "not a training run",
        untouched=[model, tiny_shards],
    )


def test_train_refuses_a_train_config_it_did_not_write(tiny_shards, tmp_path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "train_config.json").write_text('["not", "ours"]')
    (out / "config.json").write_text("{}")
    refused(
        ["train", "--targets", tiny_shards, "--out", out, *TINY_ARCH, "--overwrite"],
        "train_config.json",
        "not a training configuration",
        untouched=[out, tiny_shards],
    )


def test_train_overwrite_replaces_its_own_run_and_says_what(tiny_shards, tmp_path) -> None:
    out = tmp_path / "run"
    assert train_cli(tiny_shards, out, "--max-steps", "2", "--val-every", "100").exit_code == 0
    (out / "notes.txt").write_text("mine")
    again = train_cli(tiny_shards, out, "--max-steps", "2", "--lr", "0.01", "--overwrite")
    assert again.exit_code == 0, again.output
    assert "--overwrite: removing" in again.stderr
    assert "train_config.json" in again.stderr and "checkpoints" in again.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "train_config.json").read_text())["lr"] == 0.01


def test_encode_overwrite_refuses_a_foreign_folder(tiny_shards, tiny_teacher_dir, tmp_path) -> None:
    model = shutil.copytree(tiny_teacher_dir, tmp_path / "hf-model")
    corpus = _corpus_of(tiny_shards)
    args = ["encode", corpus, "--teacher", tiny_teacher_dir, "--device", "cpu", "--overwrite"]
    refused([*args, "--out", model], "not a shard directory", untouched=[model, corpus])


def test_encode_overwrite_refuses_a_manifest_it_did_not_write(
    tiny_shards, tiny_teacher_dir, tmp_path
) -> None:
    web = tmp_path / "webapp"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my app", "icons": []}')
    (web / "shard-00000-of-00001.h5").write_text("not a shard at all")
    (web / "tokenizer").mkdir()
    (web / "tokenizer" / "keep.txt").write_text("mine")
    corpus = _corpus_of(tiny_shards)
    args = ["encode", corpus, "--teacher", tiny_teacher_dir, "--device", "cpu", "--overwrite"]
    refused([*args, "--out", web], "manifest.json", untouched=[web, corpus])


def test_index_overwrite_refuses_a_foreign_folder(index_dir, tiny_teacher_dir, tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    corpus = index_dir.parent / "corpus.txt"
    args = ["index", "--model", tiny_teacher_dir, "--corpus", corpus, "--overwrite"]
    refused([*args, "--out", docs], "not an index directory", untouched=[docs, corpus])
    refused([*args, "--out", docs / "thesis.tex"], "not a directory", untouched=[docs, corpus])


# ------------------------------------------------------------------------------------- embed


def test_embed_refuses_to_overwrite_its_input(student, tmp_path) -> None:
    notes = tmp_path / "notes.npy"
    notes.write_text("the cat runs\na dog walks\n")
    refused(["embed", "--model", student, notes], "is the input", untouched=[notes, student])
    link = tmp_path / "link.npy"
    link.symlink_to(notes)
    refused(
        ["embed", "--model", student, notes, "--out", link],
        "is the input",
        untouched=[notes, tmp_path],
    )


def test_embed_refuses_an_existing_file_that_is_not_an_array(student, tmp_path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\na dog walks\n")
    precious = tmp_path / "precious.npy"
    precious.write_text("my notes, not vectors")
    refused(
        ["embed", "--model", student, texts, "--out", precious],
        "not a .npy array file",
        untouched=[precious, texts],
    )


def test_embed_replaces_its_own_earlier_vectors(student, tmp_path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\na dog walks\n")
    out = tmp_path / "vectors.npy"
    np.save(out, np.zeros((1, 3), dtype=np.float32))
    result = _run("embed", "--model", student, texts, "--out", out)
    assert result.exit_code == 0, result.output
    assert np.load(out).shape[0] == 2
    assert not list(tmp_path.glob(".*tmp*"))


# -------------------------------------------------------------------------------------- glue


def test_glue_save_finetuned_to_a_file_is_refused_before_training(student, tmp_path) -> None:
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    for split in ("train", "dev"):
        (glue / f"{split}.tsv").write_text("sentence\tlabel\nthe cat runs\t1\na sad dog\t0\n")
    target = tmp_path / "finetuned"
    target.write_text("a file")
    args = ["eval", "glue", "--model", student, "--tasks", "sst2", "--data-dir", glue.parent]
    refused(
        [*args, "--out", tmp_path / "out", "--save-finetuned", target],
        "is a file",
        untouched=[target, tmp_path / "out", glue],
    )


# ------------------------------------------------------------------------------------ report


@pytest.mark.parametrize("value", ["0.8", None])
def test_report_refuses_a_value_that_is_not_a_number(tmp_path, value) -> None:
    run = tmp_path / "run"
    run.mkdir()
    good = {"task": "sts:x", "metric": "spearman", "model": "teacher", "data": "d", "value": 0.9}
    metrics = "".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in (1, 2, 3))
    (run / "metrics.jsonl").write_text(metrics)
    (run / "results.json").write_text(json.dumps([good, {**good, "model": "s", "value": value}]))
    refused(["report", run], "results.json", "entry 2", "not a number", untouched=run)


def test_report_never_replaces_a_png_it_did_not_make(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    photo = tmp_path / "out" / "training.png"
    photo.parent.mkdir()
    photo.write_bytes(b"\x89PNG holiday photo")
    refused(["report", run, "--out", photo.parent / "r.html"], "training.png", untouched=[photo])
    first = _run("report", run, "--out", tmp_path / "mine" / "r.html")
    assert first.exit_code == 0, first.output
    again = _run("report", run, "--out", tmp_path / "mine" / "r.html")  # its own: replaced
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["r.html", "training.png"]


# ---------------------------------------------------- shards: every recorded field is checked


def test_a_shard_encoded_with_another_pooling_is_refused_everywhere(
    tiny_shards, tiny_teacher_dir, student, tmp_path
) -> None:
    """The real path: a shard of a cls-pooled encoding copied in where one was missing. A
    resumed encode refuses to record it; recorded by hand (its checksum is then the
    manifest's), every reader refuses it."""
    from stage1_encode.encode import EncodeConfig, run_encode
    from stage1_encode.teacher import Teacher

    corpus = _corpus_of(tiny_shards)
    cls_dir = tmp_path / "cls"
    teacher = Teacher(str(tiny_teacher_dir), pooling="cls", normalize=True)
    run_encode([corpus], teacher, EncodeConfig(out=cls_dir, shard_size=40, progress=False))
    mixed = copy_shards(tiny_shards, tmp_path / "mixed")
    manifest = json.loads((mixed / shards.MANIFEST).read_text())
    del manifest["shards"][SHARD]
    (mixed / shards.MANIFEST).write_text(json.dumps(manifest))
    shutil.copy(cls_dir / SHARD, mixed / SHARD)
    # as make_tiny_shards encoded (fp32: auto may pick bf16 on this CPU)
    resume = ["encode", corpus, "--out", mixed, "--teacher", tiny_teacher_dir, "--device", "cpu",
              "--shard-size", "40", "--normalize", "--precision", "fp32"]  # fmt: skip
    refused(resume, SHARD, "not recorded", "teacher.pooling", untouched=[mixed, corpus])
    cls_records = json.loads((cls_dir / shards.MANIFEST).read_text())["shards"]
    manifest["shards"][SHARD] = cls_records[SHARD]
    (mixed / shards.MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "o"
    for args in (
        ["shards", "verify", mixed],
        ["train", "--targets", mixed, "--out", out, *TINY_ARCH],
        ["eval", "probe", "--model", student, "--targets", mixed, "--out", out],
    ):
        refused(args, SHARD, "teacher.pooling", untouched=[mixed, out])


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set_teacher_attr("normalize", False), "teacher.normalize"),
        (_set_teacher_attr("max_length", 64), "teacher.max_length"),
        (_set_teacher_attr("vocab_size", 7), "teacher.vocab_size"),
        (lambda h: h.attrs.__setitem__("tokenizer", json.dumps({"sha256": "0" * 64})), "tokenizer"),
        (lambda h: h.attrs.__setitem__("dtype", "float32"), "dtype"),
        (lambda h: h.attrs.__delitem__("corpus"), "corpus.sha256"),
    ],
)
def test_each_recorded_field_of_a_shard_is_checked(tiny_shards, tmp_path, edit, field) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    _rewrite(broken, edit)
    out = tmp_path / "o"
    refused(["shards", "verify", broken], SHARD, field, untouched=broken)
    refused(
        ["train", "--targets", broken, "--out", out, *TINY_ARCH], field, untouched=[broken, out]
    )


def test_vectors_stored_in_another_dtype_are_refused(tiny_shards, tmp_path) -> None:
    def as_float32(handle: h5py.File) -> None:
        data = handle["embedding"][()].astype(np.float32)
        del handle["embedding"]
        handle.create_dataset("embedding", data=data)

    broken = copy_shards(tiny_shards, tmp_path / "broken")
    _rewrite(broken, as_float32)
    refused(["shards", "verify", broken], SHARD, "float32", untouched=broken)


def test_a_tokenizer_folder_that_changed_is_refused(tiny_shards, tmp_path) -> None:
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    config = broken / "tokenizer" / "tokenizer_config.json"
    config.write_text(config.read_text() + "\n")
    out = tmp_path / "o"
    refused(["shards", "verify", broken], "tokenizer/", untouched=broken)
    refused(["train", "--targets", broken, "--out", out, *TINY_ARCH], "tokenizer/", untouched=out)


@pytest.mark.parametrize(
    ("path", "command"),
    [
        (("teacher", "pooling"), "verify"),
        (("dtype",), "info"),
        (("teacher", "weights_sha256"), "info"),
        (("corpus", "sha256"), "train"),
        (("shards", SHARD, "rows"), "probe"),
    ],
)
def test_a_manifest_missing_a_key_is_one_line(tiny_shards, student, tmp_path, path, command):
    broken = copy_shards(tiny_shards, tmp_path / "broken")
    manifest = json.loads((broken / shards.MANIFEST).read_text())
    holder = manifest
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    (broken / shards.MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "o"
    args = {
        "verify": ["shards", "verify", broken],
        "info": ["shards", "info", broken],
        "train": ["train", "--targets", broken, "--out", out, *TINY_ARCH],
        "probe": ["eval", "probe", "--model", student, "--targets", broken, "--out", out],
    }[command]
    fragment = SHARD if path[0] == "shards" else path[-1]
    refused(args, "manifest.json", fragment, untouched=[broken, out])


def test_a_shard_dir_written_before_the_tokenizer_hash_is_still_read(tiny_shards, tmp_path):
    """Manifests and shards from before ``tokenizer.sha256`` was recorded stay readable."""
    legacy = copy_shards(tiny_shards, tmp_path / "legacy")
    manifest = json.loads((legacy / shards.MANIFEST).read_text())
    del manifest["tokenizer"]["sha256"]
    (legacy / shards.MANIFEST).write_text(json.dumps(manifest))
    for name in list(manifest["shards"]):
        _rewrite(legacy, lambda h: h.attrs.__delitem__("tokenizer"), name)
    assert shards.verify(legacy).ok
    result = train_cli(legacy, tmp_path / "o", "--max-steps", "1", "--val-every", "100")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------- search: the text store


def test_an_index_whose_texts_lost_lines_is_refused(index_dir, tmp_path) -> None:
    broken = shutil.copytree(index_dir, tmp_path / "index")
    texts = broken / "texts.txt"
    texts.write_text("".join(texts.read_text().splitlines(keepends=True)[3:]))
    refused(["search", "--index", broken, "the cat"], "texts.txt", "--overwrite", untouched=broken)


def test_an_index_whose_texts_changed_in_place_is_refused(index_dir, tmp_path) -> None:
    broken = shutil.copytree(index_dir, tmp_path / "index")
    texts = broken / "texts.txt"
    texts.write_text(texts.read_text().replace("cat", "dog"))  # same length, other words
    refused(["search", "--index", broken, "the cat"], "texts.txt", "checksum", untouched=broken)


@pytest.mark.parametrize("key", ["texts", "rows", "model"])
def test_an_index_meta_missing_a_key_is_one_line(index_dir, tmp_path, key) -> None:
    broken = shutil.copytree(index_dir, tmp_path / "index")
    meta = json.loads((broken / "meta.json").read_text())
    del meta[key]
    (broken / "meta.json").write_text(json.dumps(meta))
    refused(["search", "--index", broken, "the cat"], "meta.json", key, untouched=broken)


def test_rebuilding_over_a_damaged_index_does_not_call_it_complete(
    index_dir, tiny_teacher_dir, tmp_path
) -> None:
    broken = shutil.copytree(index_dir, tmp_path / "index")
    texts = broken / "texts.txt"
    texts.write_text(texts.read_text()[:-20])
    corpus = index_dir.parent / "corpus.txt"
    args = ["index", "--model", tiny_teacher_dir, "--corpus", corpus, "--out", broken]
    refused(args, "texts.txt", "--overwrite", untouched=[broken, corpus])
    assert _run(*args, "--overwrite").exit_code == 0
    assert _run("search", "--index", broken, "the cat").exit_code == 0
