"""report.html from fixture results: every plot present, referenced and a valid PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from stage3_eval.report import gather, summary_lines, write_report
from stage3_eval.results import Result, write_results

STUDENT = "runs/x/student"


def speed(model: str, kind: str, value: float) -> Result:
    return Result(
        "encode-speed",
        "sentences_per_second",
        value,
        model,
        "sts",
        None,
        extra={"kind": kind, "sentences": 3000, "parameters": 2_000_000},
    )


def make_run(root: Path) -> Path:
    run = root / "run"
    student = run / "student"
    (student / "tokenizer").mkdir(parents=True)
    (student / "model.safetensors").write_bytes(b"")
    config = {
        "num_layers": 1,
        "hidden_size": 256,
        "output_dim": 384,
        "training": {"parameters": 3_500_000},
    }
    (student / "config.json").write_text(json.dumps(config))
    (student / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "step": s,
                    "loss": 1 / s,
                    "val_cosine": 0.5 + s / 400,
                    "sts_spearman": 0.6 + s / 1000,
                }
                if s % 100 == 0
                else {"step": s, "loss": 1 / s}
            )
            + "\n"
            for s in range(20, 220, 20)
        )
    )
    shards = run / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(
        json.dumps(
            {
                "teacher": {"name_or_path": "/x/all-MiniLM-L6-v2"},
                "shards": {"a": {"rows": 1500}, "b": {"rows": 500}},
            }
        )
    )
    results = [
        Result("sts:STS-B-dev", "spearman", 0.80, STUDENT, "dev.tsv", extra={"kind": "student"}),
        Result("sts:STS-B-dev", "spearman", 0.867, "teacher", "dev.tsv", extra={"kind": "teacher"}),
        speed(STUDENT, "student", 9000.0),
        speed("teacher", "teacher", 300.0),
        Result("knn-probe", "recall@1", 0.61, STUDENT, "shards", extra={"kind": "student"}),
        Result("knn-probe", "recall@10", 0.72, STUDENT, "shards", extra={"kind": "student"}),
        Result("knn-probe", "mean_cosine", 0.93, STUDENT, "shards", extra={"kind": "student"}),
        Result("knn-probe", "recall@10", 0.99, "teacher", "shards", extra={"kind": "teacher"}),
    ]
    write_results(run / "eval", results)
    glue = [
        Result(
            task,
            metric,
            value + 0.01 * seed,
            model,
            "glue",
            seed,
            extra={"benchmark": "glue", "glue_task": task},
        )
        for task, metric, value in (
            ("sst2", "accuracy", 0.88),
            ("mrpc", "f1", 0.8),
            ("mrpc", "accuracy", 0.7),
        )
        for model in (STUDENT, "scratch", "teacher")
        for seed in (1, 2)
    ]
    write_results(run / "glue", glue)
    return run


def test_report_references_every_png_and_each_is_an_image(tmp_path):
    run = make_run(tmp_path)
    path, _ = write_report([run], run / "report.html")
    page = path.read_text(encoding="utf-8")
    pngs = sorted(p.name for p in run.glob("*.png"))
    assert pngs == ["glue.png", "knn.png", "speed_quality.png", "sts.png", "training.png"]
    assert sorted(re.findall(r"src='([^']+\.png)'", page)) == pngs
    for name in pngs:
        image = matplotlib.image.imread(run / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert "http" not in page  # nothing fetched: opens offline
    assert page.count("<tr>") == 1 + len(gather([run]).results)


def test_summary_lines_state_the_numbers(tmp_path):
    lines = summary_lines(gather([make_run(tmp_path)]))
    assert len(lines) == 5
    assert lines[0] == "rows encoded: 2,000 (teacher x/all-MiniLM-L6-v2)"
    assert lines[1].startswith("student size: 3.50M parameters")
    assert lines[2].startswith("speed-up over the teacher: 30.0x (9,000 vs 300 sentences/s)")
    assert lines[3] == "kNN recall@10: 0.720 (recall@1 0.610), mean cosine to the teacher 0.930"
    assert lines[4] == "STS: STS-B-dev Spearman 0.800, 92% of the teacher's 0.867"


def test_glue_scores_average_metrics_then_seeds(tmp_path):
    from stage3_eval.report import glue_scores

    scores = glue_scores(gather([make_run(tmp_path)]))
    assert scores["sst2"]["teacher"] == pytest.approx(0.895)
    assert scores["mrpc"]["scratch"] == pytest.approx(0.765)


def test_partial_runs_get_only_the_plots_they_have_data_for(tmp_path):
    write_results(tmp_path / "r", [speed("teacher", "teacher", 300.0)])
    _, summary = write_report([tmp_path / "r"], tmp_path / "out" / "report.html")
    assert not list((tmp_path / "out").glob("*.png"))
    assert summary[3] == "kNN recall@10: n/a (run pipeline eval probe)"
    assert summary[4] == "STS: not run"


def test_cli_report_and_its_errors(tmp_path):
    run = make_run(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"report -> {(run / 'report.html').resolve()}"
    empty = runner.invoke(main, ["report", str(tmp_path / "run" / "student" / "tokenizer")])
    assert empty.exit_code == 1 and "no results.json" in empty.output
    missing = runner.invoke(main, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such run directory" in missing.output
    (run / "eval" / "results.json").write_text("{broken")
    broken = runner.invoke(main, ["report", str(run)])
    assert broken.exit_code == 1 and "results.json" in broken.output
