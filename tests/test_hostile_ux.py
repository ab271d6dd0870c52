"""Hostile input at the edges of the CLI: absurd student configs and bad command lines are one
``Error:`` line with exit 1 (no usage block, no traceback), and nothing is read or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from data.errors import PipelineError
from pipeline.cli import main
from tests.cli_helpers import refused
from tests.conftest import tiny_corpus_lines
from tests.stage2_helpers import make_tiny_shards
from tests.test_glue_data import write_glue_dir


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tiny_teacher_dir) -> Path:
    """An untrained tiny student saved as a Contract-2 directory (loading is what is tested)."""
    from stage1_encode.teacher import Teacher
    from stage2_train import Student, StudentConfig

    embeddings = Teacher(str(tiny_teacher_dir)).input_embeddings()
    student = Student.untrained(
        StudentConfig(hidden_size=8, output_dim=32), tiny_teacher_dir, embeddings
    )
    out = tmp_path_factory.mktemp("student") / "student"
    student.save_pretrained(out)
    return out


def hostile_copy(student_dir: Path, target: Path, **values: object) -> Path:
    """A copy of the student whose config.json has ``values`` written over it."""
    import shutil

    shutil.copytree(student_dir, target)
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    (target / "config.json").write_text(json.dumps({**config, **values}), encoding="utf-8")
    return target


@pytest.fixture
def texts(tmp_path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(tiny_corpus_lines(10)) + "\n", encoding="utf-8")
    return path


ABSURD = [
    ({"hidden_size": 10**9}, "hidden_size=1000000000 is out of range 1..16,384"),
    ({"output_dim": -5}, "output_dim=-5 is out of range 1..65,536"),
    ({"num_layers": 0}, "num_layers=0 is out of range"),
    ({"vocab_size": 10**12}, "vocab_size=1000000000000 is out of range"),
    ({"embed_proj": -1}, "embed_proj=-1 is out of range"),
    ({"max_length": 0}, "max_length=0 is out of range"),
    ({"hidden_size": "256"}, "hidden_size must be an integer, not '256'"),
    ({"num_layers": 1.5}, "num_layers must be an integer, not 1.5"),
    ({"pooling": "median"}, "pooling 'median' not in ('max', 'mean', 'max_mean', 'attention')"),
    ({"connection": ["dense"]}, "connection ['dense'] not in"),
    ({"head": None}, "head None not in"),
    ({"dropout": 1.5}, "dropout=1.5 must be a number in [0, 1)"),
    ({"normalize": "yes"}, "normalize must be true or false"),
    ({"pad_id": 10**6}, "pad_id=1000000 is not below vocab_size"),
]


@pytest.mark.parametrize(("values", "message"), ABSURD, ids=[json.dumps(v) for v, _ in ABSURD])
def test_absurd_config_values_are_refused_by_embed(tmp_path, student_dir, texts, values, message):
    student = hostile_copy(student_dir, tmp_path / "student", **values)
    out = tmp_path / "vectors.npy"
    line = refused(
        ["embed", texts, "--model", student, "--out", out],
        f"{student / 'config.json'}: student config: ",
        message,
        untouched=[student, texts, out],
    )
    assert "Traceback" not in line


@pytest.mark.parametrize(
    "content",
    [b"[1, 2, 3]", b"\xff\xfe not utf-8", b'{"hidden_size": '],
    ids=["a list", "not utf-8", "cut json"],
)
def test_a_config_that_is_not_a_json_object_is_refused(tmp_path, student_dir, texts, content):
    import shutil

    student = tmp_path / "student"
    shutil.copytree(student_dir, student)
    (student / "config.json").write_bytes(content)
    refused(["embed", texts, "--model", student], "config.json: ", untouched=[student, texts])


def test_every_command_that_loads_a_student_refuses_it(tmp_path, student_dir, tiny_teacher_dir):
    student = hostile_copy(student_dir, tmp_path / "student", hidden_size=10**9)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(40)) + "\n", encoding="utf-8")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a cat\ta dog\t3.0\nthe sun\tthe moon\t1.0\nred car\tblue car\t2.5\n")
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    glue = write_glue_dir(tmp_path / "glue", rows=8)
    out = tmp_path / "out"
    commands = [
        ["eval", "sts", "--model", student, "--data", pairs, "--out", out],
        ["eval", "probe", "--model", student, "--targets", shards, "--out", out],
        ["index", "--model", student, "--corpus", corpus, "--out", out],
        ["eval", "glue", "--model", student, "--data-dir", glue, "--tasks", "sst2", "--out", out],
        ["eval", "glue", "--model", "scratch", "--teacher", tiny_teacher_dir, "--student-config",
         student, "--data-dir", glue, "--tasks", "sst2", "--out", out],
    ]  # fmt: skip
    for args in commands:
        refused(args, "hidden_size=1000000000", untouched=[student, shards, out])


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("missing", lambda path: path, "no such directory"),
        ("empty", lambda path: path.mkdir() or path, "neither a student dir nor a Hugging Face"),
    ],
)
def test_every_command_resolves_a_model_the_same_way(tmp_path, name, make, message):
    """A --model that names no model is refused by one check, with one message, everywhere."""
    model = make(tmp_path / name)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_corpus_lines(10)) + "\n", encoding="utf-8")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a cat\ta dog\t3.0\nthe sun\tthe moon\t1.0\nred car\tblue car\t2.5\n")
    glue = write_glue_dir(tmp_path / "glue", rows=8)
    out = tmp_path / "out"
    commands = [
        ["eval", "sts", "--model", model, "--data", pairs, "--out", out],
        ["index", "--model", model, "--corpus", corpus, "--out", out],
        ["eval", "glue", "--model", model, "--data-dir", glue, "--tasks", "sst2", "--out", out],
    ]
    for args in commands:
        refused(args, f"{model}", message, untouched=[out])


def test_the_python_api_refuses_the_same_values(tmp_path, student_dir):
    from stage2_train import Student, StudentConfig

    student = hostile_copy(student_dir, tmp_path / "student", output_dim=-5)
    with pytest.raises(PipelineError, match=r"config.json: student config: output_dim=-5"):
        Student.from_pretrained(student)
    with pytest.raises(
        PipelineError, match=r"hidden_size=0 is out of range 1..16,384; pooling 'x' not in"
    ):
        StudentConfig(hidden_size=0, pooling="x")


def test_train_refuses_a_student_size_beyond_the_bounds(tmp_path, tiny_teacher_dir):
    shards = make_tiny_shards(tmp_path / "shards", tiny_teacher_dir)
    out = tmp_path / "student"
    args = ["train", "--targets", shards, "--out", out, "--hidden-size", 10**9]
    refused(args, "student config: hidden_size=1000000000", untouched=[shards, out])


USAGE = [
    (["encode", "corpus.txt", "--shard-size", "0"], "'--shard-size': 0 is not in the range x>=1"),
    (["train", "--targets", "s", "--batch-size", "0"], "'--batch-size': 0 is not in the range"),
    (["train", "--targets", "s", "--lr", "nan"], "'--lr': 'nan' is not a finite number"),
    (["train", "--targets", "s", "--time-budget", "inf"], "'inf' is not a finite number"),
    (["train", "--targets", "s", "--seed", "-1"], "'--seed': -1 is not in the range x>=0"),
    (["train", "--targets", "s", "--pooling", "median"], "'--pooling': 'median' is not one of"),
    (["embed", "texts.txt", "--model", "m", "--batch-size", "0"], "'--batch-size': 0 is not"),
    (["search", "--index", "i", "-k", "0", "q"], "'-k': 0 is not in the range x>=1"),
    (["eval", "probe", "--model", "m", "--targets", "s", "--validation-fraction", "2"], "2"),
    (["eval", "glue", "--model", "m", "--max-length", "100000"], "'--max-length': 100000"),
    (["encode", "corpus.txt", "--bogus"], "No such option '--bogus'"),
    (["--bogus"], "No such option '--bogus'"),
    (["eval", "glue", "--bogus"], "No such option '--bogus'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["shards", "nosuch"], "No such command 'nosuch'"),
    (["encode"], "Missing option '--out'"),  # CORPUS is optional: --dataset may replace it
    (["embed", "--model", "m"], "Missing argument 'FILE'"),
    (["train"], "Missing option '--targets'"),
    (["search", "q"], "Missing option '--index'"),
    (["report"], "Missing argument 'RUN_DIRS...'"),
    (["encode", "corpus.txt", "--shard-size"], "Option '--shard-size' requires an argument"),
]


@pytest.mark.parametrize(("args", "message"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_one_line_with_exit_1(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    Path("corpus.txt").write_text("a text\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, args)
    assert result.output.count("\n") == 1 and "Usage:" not in result.output, result.output
    line = refused(args, message, untouched=[tmp_path / "corpus.txt"])
    assert "--help'." in line  # says where to look
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_bare_group_still_prints_its_help():
    for args in ([], ["eval"], ["shards"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Commands:" in result.output, result.output
