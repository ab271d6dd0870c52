"""``pipeline eval glue`` end to end on synthetic GLUE folders with a tiny teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.test_glue_data import single_thread, write_glue_dir  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")

QUICK = ["--epochs", "1", "--batch-size", "8", "--hidden", "16", "--lr", "1e-3", "--device", "cpu"]


def run(*args: str):
    return CliRunner().invoke(main, ["eval", "glue", *args])


def _entries(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


def test_all_tasks_results_table_and_submissions(tmp_path, tiny_teacher_dir):
    root = write_glue_dir(tmp_path / "glue", rows=16)
    out = tmp_path / "out"
    result = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--name",
        "tiny",
        *QUICK,
    )
    assert result.exit_code == 0, result.output
    entries = _entries(out)
    found = {(e["task"], e["metric"]) for e in entries}
    assert found == {
        ("cola", "matthews"),
        ("sst2", "accuracy"),
        ("mrpc", "f1"),
        ("mrpc", "accuracy"),
        ("stsb", "pearson"),
        ("stsb", "spearman"),
        ("qqp", "f1"),
        ("qqp", "accuracy"),
        ("mnli-m", "accuracy"),
        ("mnli-mm", "accuracy"),
        ("qnli", "accuracy"),
        ("rte", "accuracy"),
        ("wnli", "accuracy"),
        ("glue", "score"),
    }
    cola = next(e for e in entries if e["task"] == "cola")
    assert cola["model"] == "tiny" and cola["seed"] == 0
    assert cola["extra"]["train_size"] == 16 and cola["extra"]["eval_size"] == 16
    assert next(e for e in entries if e["task"] == "glue")["extra"]["tasks"] == sorted(
        ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    )
    submission = out / "submission" / "tiny" / "seed-0"
    names = sorted(p.name for p in submission.iterdir())
    assert names == [
        "CoLA.tsv",
        "MNLI-m.tsv",
        "MNLI-mm.tsv",
        "MRPC.tsv",
        "QNLI.tsv",
        "QQP.tsv",
        "RTE.tsv",
        "SST-2.tsv",
        "WNLI.tsv",
    ]
    rte = (submission / "RTE.tsv").read_text().splitlines()
    assert rte[0] == "index\tprediction" and len(rte) == 9
    assert {line.split("\t")[1] for line in rte[1:]} <= {"entailment", "not_entailment"}
    table = (out / "glue.md").read_text()
    assert "| mnli-mm | accuracy |" in table and "| glue | score |" in table
    assert "| glue | score |" in result.output

    again = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--name",
        "tiny",
        "--tasks",
        "rte",
        *QUICK,
    )
    assert again.exit_code == 0, again.output
    assert "rte seed 0: already in" in again.output
    assert {e["time"] for e in _entries(out) if e["task"] == "rte"} == {
        e["time"] for e in entries if e["task"] == "rte"
    }


def test_missing_tasks_are_skipped_unless_named(tmp_path, tiny_teacher_dir):
    root = write_glue_dir(
        tmp_path / "glue",
        rows=8,
        skip=("qqp", "mnli", "cola", "sst2", "mrpc", "stsb", "qnli", "rte"),
    )
    out = tmp_path / "out"
    result = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--no-predict-test",
        *QUICK,
    )
    assert result.exit_code == 0, result.output
    assert "skip qqp: missing" in result.output and "QQP/train.tsv" in result.output
    assert {e["task"] for e in _entries(out)} == {"wnli", "glue"}
    named = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--tasks",
        "wnli,mnli",
        *QUICK,
    )
    assert named.exit_code == 1
    assert "Error: GLUE task mnli: missing" in named.output and "Traceback" not in named.output


def test_bad_file_is_one_line_error(tmp_path, tiny_teacher_dir):
    root = write_glue_dir(tmp_path / "glue", rows=8, skip=("qqp",))
    (root / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tonly two\n")
    result = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(tmp_path / "out"),
        "--tasks",
        "rte",
        *QUICK,
    )
    assert result.exit_code == 1
    assert "RTE/dev.tsv:2: expected 4 tab-separated columns, found 2" in result.output
    assert not (tmp_path / "out" / "results.json").exists()


def test_option_errors(tmp_path, tiny_teacher_dir):
    root = write_glue_dir(tmp_path / "glue", rows=8)
    base = ["--model", str(tiny_teacher_dir), "--data-dir", str(root), "--out", str(tmp_path)]
    assert "needs --kd-teacher" in run(*base, "--augment", "2").output
    assert "no such folder" in run(*base, "--kd-teacher", str(tmp_path / "nope")).output
    assert "unknown GLUE task 'squad'" in run(*base, "--tasks", "squad").output
    missing = run(
        "--model", str(tmp_path / "no-model"), "--data-dir", str(root), "--out", str(tmp_path)
    )
    assert missing.exit_code == 1 and "no such directory" in missing.output


def test_task_specific_kd_from_a_finetuned_teacher(tmp_path, tiny_teacher_dir):
    root = write_glue_dir(tmp_path / "glue", rows=16)
    out, kd = tmp_path / "out", tmp_path / "kd"
    teacher = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--tasks",
        "sst2,stsb",
        "--save-finetuned",
        str(kd),
        "--name",
        "teacher",
        "--no-predict-test",
        *QUICK,
    )
    assert teacher.exit_code == 0, teacher.output
    assert (kd / "sst2" / "glue.json").is_file() and (kd / "stsb" / "head.safetensors").is_file()
    student = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--tasks",
        "sst2,stsb",
        "--kd-teacher",
        str(kd),
        "--augment",
        "3",
        "--p-pos",
        "0",  # no tagger needed; tests/test_glue_augment.py covers POS replacement
        "--no-predict-test",
        *QUICK,
    )
    assert student.exit_code == 0, student.output
    kd_entries = [e for e in _entries(out) if e["model"].endswith("+kd")]
    assert {e["task"] for e in kd_entries} == {"sst2", "stsb", "glue"}
    sst2 = next(e for e in kd_entries if e["task"] == "sst2")
    assert sst2["extra"]["kd"] and sst2["extra"]["train_size"] > 16  # augmented rows added
    assert (sst2["extra"]["p_mask"], sst2["extra"]["p_pos"]) == (0.1, 0.0)
    assert "| sst2 | accuracy | teacher |" not in (out / "glue.md").read_text()
    header = (out / "glue.md").read_text().splitlines()[0]
    assert "teacher" in header and "+kd" in header
    assert sorted(p.name.split("-")[0] for p in (out / "kd-targets").iterdir()) == ["sst2", "stsb"]


def test_kd_targets_are_cached_for_the_next_row(tmp_path, tiny_teacher_dir, monkeypatch):
    """A second KD row (or sitting) reuses the teacher's outputs without loading the teacher;
    a damaged cache is redone."""
    import stage3_eval.glue.kd as kd_module

    root = write_glue_dir(tmp_path / "glue", rows=16)
    out, kd = tmp_path / "out", tmp_path / "kd"
    common = ["--data-dir", str(root), "--out", str(out), "--tasks", "sst2", "--no-predict-test"]
    teacher = run("--model", str(tiny_teacher_dir), "--save-finetuned", str(kd), *common, *QUICK)
    assert teacher.exit_code == 0, teacher.output
    calls, loads = [], []
    predict, load = kd_module.predict, kd_module.load_finetuned
    monkeypatch.setattr(kd_module, "predict", lambda *a, **k: calls.append(1) or predict(*a, **k))
    monkeypatch.setattr(kd_module, "load_finetuned", lambda *a: loads.append(1) or load(*a))

    def kd_row(name: str) -> dict:
        args = ["--model", str(tiny_teacher_dir), "--kd-teacher", str(kd), "--name", name]
        result = run(*args, "--augment", "2", "--p-pos", "0", *common, *QUICK)
        assert result.exit_code == 0, result.output
        return next(e for e in _entries(out) if e["model"] == name and e["task"] == "sst2")

    first = kd_row("a+kd")
    assert len(calls) == len(loads) == 1
    second = kd_row("b+kd")
    assert len(calls) == len(loads) == 1
    assert second["extra"]["train_size"] == first["extra"]["train_size"]
    (cache,) = (out / "kd-targets").iterdir()
    cache.write_bytes(b"not an array")
    kd_row("c+kd")
    assert len(calls) == len(loads) == 2


@pytest.mark.slow
def test_real_glue_files_run(glue_dir, tiny_teacher_dir, tmp_path):
    """The real TSVs (MRPC's BOM, CoLA without header, RTE's labels) through the whole command."""
    out = tmp_path / "out"
    result = run(
        "--model",
        str(tiny_teacher_dir),
        "--data-dir",
        str(glue_dir),
        "--out",
        str(out),
        "--tasks",
        "cola,mrpc,rte",
        "--max-train-examples",
        "32",
        "--max-eval-examples",
        "32",
        "--no-predict-test",
        *QUICK,
    )
    assert result.exit_code == 0, result.output
    assert {e["task"] for e in _entries(out)} == {"cola", "mrpc", "rte", "glue"}
    assert all(e["extra"].get("eval_size", 32) == 32 for e in _entries(out))


@pytest.fixture
def tiny_student_dir(tmp_path, tiny_teacher_dir) -> Path:
    """An untrained tiny student saved as a Contract-2 directory (stands in for a trained one)."""
    from stage1_encode.teacher import Teacher
    from stage2_train import Student, StudentConfig

    embeddings = Teacher(str(tiny_teacher_dir)).input_embeddings()
    config = StudentConfig(hidden_size=8, output_dim=32)
    student = Student.untrained(config, tiny_teacher_dir, embeddings)
    student.save_pretrained(tmp_path / "student")
    return tmp_path / "student"


def test_student_and_scratch_baseline(tmp_path, tiny_teacher_dir, tiny_student_dir):
    from stage3_eval.glue.model import load_finetuned

    root = write_glue_dir(tmp_path / "glue", rows=16)
    out = tmp_path / "out"
    common = [
        "--data-dir",
        str(root),
        "--out",
        str(out),
        "--tasks",
        "sst2,mrpc",
        "--no-predict-test",
        *QUICK,
    ]
    student = run(
        "--model", str(tiny_student_dir), "--save-finetuned", str(tmp_path / "ft"), *common
    )
    assert student.exit_code == 0, student.output
    scratch = run(
        "--model",
        "scratch",
        "--teacher",
        str(tiny_teacher_dir),
        "--student-config",
        str(tiny_student_dir),
        *common,
    )
    assert scratch.exit_code == 0, scratch.output
    models = {e["model"] for e in _entries(out)}
    assert models == {"student", "scratch"}
    loaded, meta = load_finetuned(tmp_path / "ft" / "mrpc")
    assert meta["encoder"]["kind"] == "student" and loaded.encoder.config.hidden_size == 8
    assert "| mrpc | f1 |" in (out / "glue.md").read_text()


def test_scratch_word_pieces_from_a_shard_dir(tmp_path, tiny_teacher_dir):
    """A stage-1 shard dir holds tokenizer/ and the teacher's matrix: no teacher load needed."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from data.shards import INPUT_EMBEDDINGS, TOKENIZER_DIR
    from stage3_eval.glue.encoders import EncoderFactory

    shards = tmp_path / "shards"
    shutil.copytree(tiny_teacher_dir, shards / TOKENIZER_DIR)
    matrix = torch.randn(70, 32)
    save_file({"weight": matrix}, str(shards / INPUT_EMBEDDINGS))
    factory = EncoderFactory("scratch", teacher=str(shards))
    first, second = factory.build(), factory.build()
    assert factory.kind == "scratch" and factory.label == "scratch"
    assert torch.equal(first.embed.weight, matrix)
    assert first.embed.weight.data_ptr() != second.embed.weight.data_ptr()


def test_frozen_vectors_are_computed_once_per_task_for_a_trained_encoder(
    tmp_path, tiny_teacher_dir, tiny_student_dir, monkeypatch
):
    """Every seed of a frozen trained encoder gets the same vectors (one pass per task), and the
    same scores as computing them per seed; a scratch encoder, drawn anew per seed, one per seed."""
    import stage3_eval.glue.run as run_module

    root = write_glue_dir(tmp_path / "glue", rows=16)
    real, calls = run_module.frozen_vectors, []
    monkeypatch.setattr(
        run_module, "frozen_vectors", lambda *a, **k: calls.append(1) or real(*a, **k)
    )

    def probe(out: str, *model: str) -> list[dict]:
        args = ["--data-dir", str(root), "--out", str(tmp_path / out), "--tasks", "sst2,mrpc"]
        result = run(*model, "--freeze-encoder", "--seeds", "3", *args, "--no-predict-test", *QUICK)
        assert result.exit_code == 0, result.output
        return [(e["task"], e["metric"], e["seed"], e["value"]) for e in _entries(tmp_path / out)]

    shared = probe("student", "--model", str(tiny_student_dir))
    assert len(calls) == 2  # sst2 and mrpc, once each for 3 seeds
    calls.clear()
    runner = run_module.GlueRunner
    monkeypatch.setattr(runner, "_frozen_train", lambda self, task, model, data: real(model, data))
    assert probe("per-seed", "--model", str(tiny_student_dir)) == shared
    scratch = ["--model", "scratch", "--teacher", str(tiny_teacher_dir)]
    monkeypatch.undo()
    monkeypatch.setattr(
        run_module, "frozen_vectors", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    probe("scratch", *scratch, "--student-config", str(tiny_student_dir))
    assert len(calls) == 6
