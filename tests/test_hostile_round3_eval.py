"""Issue 32, evaluation, serving and the Python API: a file the tool did not write is never
replaced, and every file read back (weights, tokenizer, export description, results, STS and
GLUE files) is checked where it enters.

Refusals run the real CLI in-process through ``refused``: exit 1, one ``Error:`` line, no
traceback, and the named paths byte-identical to before. Where a refusal must come before the
work, loading a model is made to fail the test.
"""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from data.errors import PipelineError
from pipeline.cli import main
from stage2_train import Student
from stage2_train.onnx_encoder import OnnxEncoder
from stage2_train.onnx_export import export_onnx
from tests.cli_helpers import refused
from tests.conftest import tiny_corpus_lines
from tests.stage2_helpers import make_tiny_shards, train_cli

DiskUsage = namedtuple("DiskUsage", "total used free")
STS_LINES = [
    "the cat runs\ta cat runs\t4.5",
    "a dog walks\tthe sun is red\t0.5",
    "big red car\ta small blue car\t2.0",
    "the bird ate\tthe fish ate\t3.0",
]


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("round3") / "shards", tiny_teacher_dir)


@pytest.fixture(scope="module")
def student(tmp_path_factory, tiny_shards) -> Path:
    out = tmp_path_factory.mktemp("round3-student") / "student"
    result = train_cli(tiny_shards, out, "--max-steps", "2", "--val-every", "100")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, student) -> Path:
    out = tmp_path_factory.mktemp("round3-onnx") / "export"
    export_onnx(student, out)
    return out


@pytest.fixture
def texts(tmp_path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(tiny_corpus_lines(5)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sts_file(tmp_path) -> Path:
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(STS_LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def glue_dir(tmp_path) -> Path:
    task = tmp_path / "glue" / "SST-2"
    task.mkdir(parents=True)
    rows = "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(tiny_corpus_lines(8)))
    for split in ("train", "dev"):
        (task / f"{split}.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return task.parent


@pytest.fixture
def no_model_loads(monkeypatch) -> None:
    """Loading any model fails the test: the refusal must come before the encoding work."""

    def fail(*_args, **_kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("pipeline.eval_cmd.load_encoder_as", fail)
    monkeypatch.setattr("stage3_eval.glue.run.GlueRunner.run_one", fail)


def _run(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def _eval_args(command: str, student: Path, out: Path, sts: Path, shards: Path, glue: Path):
    return {
        "sts": ["eval", "sts", "--model", student, "--data", sts, "--out", out],
        "probe": ["eval", "probe", "--model", student, "--targets", shards, "--out", out],
        "glue": ["eval", "glue", "--model", student, "--tasks", "sst2", "--data-dir", glue,
                 "--out", out, "--no-predict-test"],
    }[command]  # fmt: skip


# ------------------------------------------------ case 4: files the tool did not write


@pytest.mark.parametrize(
    ("command", "name"),
    [("sts", "results.md"), ("probe", "results.md"), ("glue", "results.md"), ("glue", "glue.md")],
)
def test_eval_never_replaces_a_table_it_did_not_write(
    student, tiny_shards, sts_file, glue_dir, tmp_path, no_model_loads, command, name
) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / name).write_text("# My results\n\nweeks of notes\n")
    args = _eval_args(command, student, out, sts_file, tiny_shards, glue_dir)
    refused(args, str(out / name), "not written by", untouched=[out, sts_file, glue_dir])


def test_eval_replaces_its_own_tables(student, sts_file, tmp_path) -> None:
    out = tmp_path / "results"
    for _ in range(2):
        result = _run("eval", "sts", "--model", student, "--data", sts_file, "--out", out)
        assert result.exit_code == 0, result.output
    assert "| sts:pairs | pearson |" in (out / "results.md").read_text()


def test_export_never_deletes_the_other_files_of_an_export(student, export_dir, tmp_path):
    out = shutil.copytree(export_dir, tmp_path / "export")
    (out / "Dockerfile").write_text("FROM python:3.12\n")
    refused(["export", "onnx", "--model", student, "--out", out], "Dockerfile",
            "not replaced", untouched=[out, student])  # fmt: skip
    (out / "Dockerfile").unlink()
    assert _run("export", "onnx", "--model", student, "--out", out).exit_code == 0


def test_export_never_replaces_a_folder_with_a_forged_description(student, tmp_path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "onnx_export.json").write_text('{"name": "my web app"}')
    (out / "index.html").write_text("<p>mine</p>")
    refused(["export", "onnx", "--model", student, "--out", out], "not an ONNX export",
            untouched=[out, student])  # fmt: skip


def _wordnet(folder: Path) -> Path:
    folder.mkdir()
    data = {
        "noun": '02084071 05 n 01 dog 0 000 | a member of the genus Canis; "the dog barked"  \n',
        "verb": "00022686 29 v 01 stimulate 0 000 | cause to be alert and energetic  \n",
        "adj": "00002730 00 a 01 acroscopic 0 000 | facing or on the side toward the apex  \n",
        "adv": '00001740 02 r 01 barely 0 000 | only just; "we barely made it"  \n',
    }
    for pos, line in data.items():
        (folder / f"data.{pos}").write_text("  1 licence header  \n" + line, encoding="utf-8")
    return folder


def test_data_wordnet_never_replaces_an_unrelated_file(tmp_path) -> None:
    wordnet = _wordnet(tmp_path / "wordnet")
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("a member of the genus Canis\nyears of my own writing\n")
    args = ["data", "wordnet", "--wordnet-dir", wordnet]
    refused([*args, "--out", thesis], "thesis.txt", "not overwritten", untouched=thesis)
    corpus = tmp_path / "corpus.txt"  # an earlier extraction, of another kind, is replaced
    assert _run(*args, "--out", corpus, "--kind", "glosses").exit_code == 0
    assert _run(*args, "--out", corpus).exit_code == 0
    assert "we barely made it" in corpus.read_text()


# ------------------------------------------------------ case 6: weights holding NaN


def _with_nan_weight(student: Path, target: Path) -> Path:
    shutil.copytree(student, target)
    weights = target / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["head.weight"][0, 0] = float("nan")
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return target


def test_a_student_with_nan_weights_is_refused_at_load(student, texts, sts_file, tmp_path):
    broken = _with_nan_weight(student, tmp_path / "broken")
    out = tmp_path / "out"
    for args in (
        ["embed", texts, "--model", broken, "--out", out / "v.npy"],
        ["eval", "sts", "--model", broken, "--data", sts_file, "--out", out],
        ["export", "onnx", "--model", broken, "--out", out / "export"],
    ):
        refused(args, "model.safetensors", "head.weight", "NaN", untouched=[out, broken])
    with pytest.raises(PipelineError, match=r"head\.weight holds NaN"):
        Student.from_pretrained(broken)


def test_an_onnx_export_with_nan_weights_is_refused(export_dir, texts, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    broken = shutil.copytree(export_dir, tmp_path / "export")
    model = onnx.load(str(broken / "model.onnx"))
    weight = next(t for t in model.graph.initializer if numpy_helper.to_array(t).ndim == 2)
    array = numpy_helper.to_array(weight).copy()
    array[0, 0] = np.nan
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(broken / "model.onnx"))
    out = tmp_path / "v.npy"
    refused(["embed", texts, "--model", broken, "--out", out], "model.onnx", "NaN",
            untouched=[out, broken])  # fmt: skip


# ------------------------------------------- case 7 and one pair: STS that cannot correlate


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        (["the cat runs\ta cat runs\t4.5"], "only one sentence pair"),
        (["the cat runs\ta cat runs\t3", "a dog walks\tthe sun is red\t3.0"], "every gold score"),
    ],
)
def test_sts_gold_scores_that_cannot_correlate_are_refused(
    student, tmp_path, no_model_loads, lines, fragment
) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "results"
    args = ["eval", "sts", "--model", student, "--data", data, "--out", out]
    refused(args, "pairs.tsv", fragment, untouched=[out, data])


def test_sts_pairs_that_all_get_one_cosine_are_refused(student, tmp_path) -> None:
    data = tmp_path / "same.tsv"
    data.write_text("the cat runs\tthe cat runs\t4.5\na dog walks\ta dog walks\t1.0\n")
    out = tmp_path / "results"
    args = ["eval", "sts", "--model", student, "--data", data, "--out", out]
    refused(args, "same.tsv", "same cosine", untouched=[out, data])


# --------------------------------------------------- case 11: encode() takes only text


@pytest.mark.parametrize("bad", [None, b"the cat", 3, ["the cat", None], {"the cat"}])
def test_encode_refuses_what_is_not_text(student, export_dir, bad) -> None:
    for encoder in (Student.from_pretrained(student), OnnxEncoder.from_export(export_dir)):
        with pytest.raises(TypeError, match="str"):
            encoder.encode(bad)


def test_encode_takes_an_array_of_strings(student) -> None:
    model = Student.from_pretrained(student)
    texts = ["the cat runs", "a dog walks"]
    np.testing.assert_array_equal(model.encode(np.array(texts)), model.encode(texts))
    np.testing.assert_array_equal(model.encode(np.array(texts[0])), model.encode(texts[0]))


# ------------------------------------------------------ tracebacks where one line is due


def _garble(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_text(path.read_text()[:300])
    elif how == "null":
        path.write_text("null")
    else:  # an added token without its id: transformers raised a bare KeyError
        content = json.loads(path.read_text())
        content["added_tokens"] = [{"content": "[PAD]"}]
        path.write_text(json.dumps(content))


@pytest.mark.parametrize("how", ["truncated", "null", "added_token_without_id"])
def test_a_garbled_tokenizer_json_is_one_line_naming_it(
    student, export_dir, texts, tmp_path, how
) -> None:
    broken = shutil.copytree(student, tmp_path / "student")
    _garble(broken / "tokenizer" / "tokenizer.json", how)
    exported = shutil.copytree(export_dir, tmp_path / "export")
    _garble(exported / "tokenizer" / "tokenizer.json", how)
    out = tmp_path / "v.npy"
    for model in (broken, exported):
        refused(["embed", texts, "--model", model, "--out", out], "tokenizer/tokenizer.json",
                untouched=[out, model])  # fmt: skip
    with pytest.raises(PipelineError, match=r"tokenizer\.json"):
        Student.from_pretrained(broken)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("dim", 7, "computes 32-wide vectors"),
        ("dim", "32", "not an integer"),
        ("pad_id", 10_000_000, "the tokenizer pads with id 0"),
        ("pad_id", -7, "not an integer in"),
        ("max_length", 0, "not an integer in"),
        ("max_length", 10**9, "not an integer in"),
        ("format", "something-else", "not an ONNX export description"),
    ],
)
def test_an_edited_export_description_is_refused(
    export_dir, texts, tmp_path, key, value, fragment
) -> None:
    broken = shutil.copytree(export_dir, tmp_path / "export")
    described = broken / "onnx_export.json"
    described.write_text(json.dumps({**json.loads(described.read_text()), key: value}))
    out = tmp_path / "v.npy"
    refused(["embed", texts, "--model", broken, "--out", out], "onnx_export.json", fragment,
            untouched=[out, broken])  # fmt: skip


def test_a_student_config_padding_past_the_vocabulary_is_refused(student, texts, tmp_path):
    broken = shutil.copytree(student, tmp_path / "student")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "pad_id": config["vocab_size"]}))
    out = tmp_path / "v.npy"
    refused(["embed", texts, "--model", broken, "--out", out], "config.json", "pad_id",
            untouched=[out, broken])  # fmt: skip


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        '{"name": "my app", "icons": []}',
        '[{"x": 1}]',
        "[1, 2]",
        '[{"task": "t", "metric": "m", "model": "a", "data": "d", "value": NaN}]',
    ],
)
def test_a_foreign_results_json_is_refused_before_any_model_loads(
    student, sts_file, tmp_path, no_model_loads, content
) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text(content)
    args = ["eval", "sts", "--model", student, "--data", sts_file, "--out", out]
    refused(args, "results.json", untouched=[out, sts_file])


@pytest.mark.parametrize("command", ["probe", "glue"])
def test_every_eval_checks_results_json_first(
    student, tiny_shards, sts_file, glue_dir, tmp_path, no_model_loads, command
) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text("<html>not results</html>")
    args = _eval_args(command, student, out, sts_file, tiny_shards, glue_dir)
    refused(args, "results.json", "not a results file", untouched=[out, glue_dir])


# ------------------------------------------------------------------- unclear messages


def test_embed_on_a_full_disk_names_the_output(student, texts, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(2**40, 0, 2016))
    out = tmp_path / "vectors" / "v.npy"
    out.parent.mkdir()
    refused(["embed", texts, "--model", student, "--out", out], str(out.parent),
            "no space left on device", "v.npy", untouched=out.parent)  # fmt: skip


def test_a_glue_dev_file_with_only_its_header_is_refused(student, glue_dir, tmp_path) -> None:
    dev = glue_dir / "SST-2" / "dev.tsv"
    dev.write_text("sentence\tlabel\n")
    out = tmp_path / "results"
    args = ["eval", "glue", "--model", student, "--tasks", "sst2", "--data-dir", glue_dir]
    refused([*args, "--out", out], "SST-2/dev.tsv", "a header but no rows", untouched=out)


@pytest.mark.parametrize(
    ("dev_scores", "extra", "fragment"),
    [
        (["1.0", "4.0", "2.5"], ["--max-eval-examples", "1"], "at least two dev rows"),
        (["3.0", "3.0", "3.0"], [], "at least two dev rows"),
        (["3.0", "nan", "1.0"], [], "not a finite number"),
    ],
)
def test_glue_stsb_scores_that_cannot_correlate_are_refused_before_training(
    student, tmp_path, no_model_loads, dev_scores, extra, fragment
) -> None:
    task = tmp_path / "glue" / "STS-B"
    task.mkdir(parents=True)
    head = "index\tsentence1\tsentence2\tscore\n"
    pairs = tiny_corpus_lines(6)
    train = "".join(f"{i}\t{pairs[i]}\t{pairs[i + 1]}\t{i % 5}.0\n" for i in range(4))
    dev = "".join(f"{i}\t{pairs[i]}\t{pairs[i + 2]}\t{s}\n" for i, s in enumerate(dev_scores))
    (task / "train.tsv").write_text(head + train)
    (task / "dev.tsv").write_text(head + dev)
    out = tmp_path / "results"
    args = ["eval", "glue", "--model", student, "--tasks", "stsb", "--data-dir", task.parent]
    refused([*args, "--out", out, *extra], "STS-B/dev.tsv", fragment, untouched=out)
