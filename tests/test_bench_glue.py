"""The GLUE benchmark: its table and statistics on synthetic results, the scratch + KD row on a
tiny model, and resuming after a real kill between two (task, seed) pairs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from scipy.stats import ttest_ind

from bench.glue import main as bench_main
from bench.glue import parse_args, row_fingerprints
from bench.glue_table import (
    AVERAGED,
    comparisons,
    majority_share,
    per_seed,
    score_table,
    seed_counts,
    summary,
    targets,
)
from data.glue import TASKS
from stage3_eval.glue.augment import AugmentConfig
from stage3_eval.results import Result
from tests.test_glue_cli import tiny_student_dir  # noqa: F401
from tests.test_glue_data import single_thread, write_glue_dir  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
KD_TARGET = "student+kd > scratch+kd on >= 4 of 5 averaged tasks"
PLAIN_TARGET = "student > scratch on every averaged task, p < 0.05 on >= 4"
TEACHER_TARGET = "student+kd within 2 points of the fine-tuned teacher on SST-2"


def entries(model: str, task: str, values: list[float], seconds: float = 10.0) -> list[Result]:
    """results.json entries of ``eval glue`` for one (model, task): one seed per value (x100),
    every metric of the task's dev split at that value."""
    spec = TASKS[task]
    return [
        Result(
            task=spec.evals[0].name,
            metric=metric,
            value=value / 100,
            model=model,
            data="dev.tsv",
            seed=seed,
            seconds=seconds + seed,
            extra={"benchmark": "glue", "glue_task": task},
        )
        for seed, value in enumerate(values)
        for metric in spec.metrics
    ]


def synthetic(rows: dict[str, dict[str, list[float]]]) -> list[Result]:
    return [r for row, by in rows.items() for task, v in by.items() for r in entries(row, task, v)]


WIN = {
    "student": [60.0, 61.0, 60.5, 61.5, 60.2],
    "scratch": [50.0, 51.0, 50.5, 49.5, 50.2],
}


def test_cells_show_partial_seeds_and_wnli_stays_out_of_the_mean():
    results = synthetic(
        {
            "student": {
                **{t: WIN["student"] for t in AVERAGED if t != "sst2"},
                "sst2": [80.0, 82.0],  # 2 of 3 planned
                "wnli": [8.0, 12.0, 10.0, 9.0, 11.0],  # far below: must not drag the mean
            },
            "teacher": {"sst2": [90.0]},
        }
    )
    scores, timing = per_seed(results)
    table = score_table(scores, ["cola", "sst2", "mrpc", "stsb", "rte", "wnli"], 56.3, None)
    student = next(line for line in table.splitlines() if line.startswith("| student (SRA)"))
    cells = [c.strip() for c in student.split("|")[2:-1]]
    assert cells[0] == "60.6 ± 0.6"  # 5 of 5: no count shown
    assert cells[1] == "81.0 ± 1.4 (2/3)"
    expected_mean = np.mean([np.mean(WIN["student"])] * 4 + [81.0])
    assert cells[5] == f"{expected_mean:.1f}" and cells[6] == "10.0 ± 1.6"
    assert "WNLI (majority class 56.3)" in table.splitlines()[0]
    counts = seed_counts(scores, ["sst2", "wnli"])
    assert counts["student"]["sst2"] == {"done": 2, "planned": 3}
    assert counts["teacher"]["wnli"] == {"done": 0, "planned": 1}
    assert timing["student"]["sst2"] == pytest.approx(10.5)  # seeds 0 and 1: 10 s and 11 s
    done = summary(scores, timing, ["sst2"], None, {"skipped": "test"})
    assert done["complete"] is False and done["seeds"]["scratch"]["sst2"]["planned"] == 3


def test_welch_p_values_and_the_plain_target():
    tied = [63.0, 55.0, 60.0, 66.0, 56.0]
    rows = {"student": dict.fromkeys(AVERAGED, WIN["student"])}
    rows["scratch"] = {**dict.fromkeys(AVERAGED, WIN["scratch"]), "cola": tied}
    scores, _ = per_seed(synthetic(rows))
    compared = comparisons(scores, list(AVERAGED))["student vs scratch"]
    expected = ttest_ind(WIN["student"], WIN["scratch"], equal_var=False).pvalue
    assert compared["mrpc"]["welch_p"] == pytest.approx(expected)
    assert compared["mrpc"]["difference"] == pytest.approx(10.4)
    assert compared["cola"]["welch_p"] > 0.05 and compared["cola"]["scratch_seeds"] == 5
    assert targets(scores)[PLAIN_TARGET] is True  # ahead everywhere, significant on 4 of 5
    scores["scratch"]["rte"] = tied
    assert targets(scores)[PLAIN_TARGET] is False  # significant on 3 only
    scores["scratch"]["rte"] = [70.0, 71.0, 70.5, 69.5, 70.2]
    assert targets(scores)[PLAIN_TARGET] is False  # behind on RTE
    scores["scratch"]["rte"] = [40.0]  # one seed: no p-value, so no verdict
    assert targets(scores)[PLAIN_TARGET] is None
    del scores["scratch"]["stsb"]
    assert targets(scores)[PLAIN_TARGET] is None


def test_kd_targets_and_missing_rows():
    rows = {
        "student+kd": {**{t: [70.0, 71.0] for t in AVERAGED}, "sst2": [88.5]},
        "scratch+kd": {**{t: [65.0, 66.0] for t in AVERAGED}, "rte": [80.0, 81.0]},
        "teacher": {"sst2": [90.0]},
    }
    scores, _ = per_seed(synthetic(rows))
    checks = targets(scores)
    assert checks[KD_TARGET] is True  # 4 of 5
    assert checks[TEACHER_TARGET] is True  # 1.5 points behind
    assert checks[PLAIN_TARGET] is None  # neither student nor scratch ran
    gains = comparisons(scores, list(AVERAGED))
    assert gains["student+kd vs student"] == {} == gains["scratch+kd vs scratch"]
    scores["student"] = {"cola": [60.0, 62.0]}
    kd_gain = comparisons(scores, ["cola"])["student+kd vs student"]["cola"]
    assert kd_gain["difference"] == pytest.approx(9.5)  # what KD adds to the student: 70.5 - 61
    scores["scratch+kd"]["mrpc"] = [90.0]
    scores["teacher"]["sst2"] = [91.0]
    assert targets(scores)[KD_TARGET] is False and targets(scores)[TEACHER_TARGET] is False
    assert targets({})[TEACHER_TARGET] is None


def test_references_say_dev_or_test_and_majority_share():
    table = score_table({}, ["sst2", "mrpc", "wnli"], None, None)
    assert "| ELMo (published, dev) | 91.5 | 76.5 | 67.2 | 56.3 |" in table
    assert "| BiLSTM_SOFT (Tang et al.) (published, test) | 90.7 | – | – | – |" in table
    assert "WNLI (majority class ?)" in table
    assert "| mean (all 5 tasks) |" in table  # not the mean of the columns shown
    full = score_table({}, ["cola", "sst2", "mrpc", "stsb", "rte"], None, None)
    assert "| RTE | mean |" in full
    assert majority_share(np.array([0, 1, 1, 0, 0])) == pytest.approx(60.0)


def _results(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


@pytest.mark.usefixtures("single_thread")
def test_scratch_kd_row_on_a_tiny_model(tmp_path, tiny_teacher_dir, tiny_student_dir):  # noqa: F811
    data = write_glue_dir(tmp_path / "glue", rows=16)
    out, report = tmp_path / "bench-glue", tmp_path / "report"
    common = ["--student", str(tiny_student_dir), "--targets", str(tiny_teacher_dir)]
    common += ["--teacher", str(tiny_teacher_dir), "--data-dir", str(data), "--out", str(out)]
    common += ["--results-dir", str(report), "--result-name", "tiny", "--max-seeds", "1"]
    common += ["--epochs", "1", "--device", "cpu", "--augment", "2"]
    common += ["--ledger", str(tmp_path / "ledger.json")]
    bench_main([*common, "--rows", "student,teacher,scratch+kd", "--tasks", "sst2"])
    kd = [e for e in _results(out) if e["model"] == "scratch+kd" and e["task"] == "sst2"]
    assert len(kd) == 1 and kd[0]["extra"]["kd"] and kd[0]["extra"]["augment_copies"] == 2
    assert kd[0]["extra"]["train_size"] > 16  # trained on the teacher's outputs for copies too
    glue = json.loads((report / "tiny.json").read_text())
    assert glue["seeds"]["scratch+kd"]["sst2"] == {"done": 1, "planned": 1}
    assert glue["seconds_per_run"]["scratch+kd"]["sst2"] > 0
    speed = glue["inference_speed"]
    assert speed["split"] == "sst2" and speed["sentences"] == 16
    assert speed["sentences_per_second"]["student"] > 0 and speed["speedup"] > 0
    before = (out / "results.json").read_bytes()
    bench_main([*common, "--rows", "student,teacher,scratch+kd", "--tasks", "sst2"])
    assert (out / "results.json").read_bytes() == before  # nothing finished is redone
    bench_main([*common, "--rows", "scratch+kd", "--tasks", "cola"])
    notes = json.loads((report / "tiny.json").read_text())["notes"]
    assert notes == [f"scratch+kd cola: no fine-tuned teacher in {out / 'teacher-finetuned'}"]


def test_kd_fingerprint_follows_the_augmentation_run_not_how_it_was_spelled(
    tiny_teacher_dir,
    tiny_student_dir,  # noqa: F811
):
    base = ["--student", str(tiny_student_dir), "--targets", str(tiny_teacher_dir)]
    base += ["--teacher", str(tiny_teacher_dir)]

    def fingerprints(*options: str) -> dict[str, str]:
        return row_fingerprints(parse_args([*base, *options]))

    plain = fingerprints()
    defaults = AugmentConfig()
    named = fingerprints("--augment", str(defaults.copies), "--p-pos", str(defaults.p_pos))
    other = fingerprints("--augment", "2")
    assert named == plain  # eval glue's defaults, named or not, are the same runs
    assert other["scratch+kd"] != plain["scratch+kd"] and other["student+kd"] != plain["student+kd"]
    assert {k: other[k] for k in ("scratch", "student", "teacher")} == {
        k: plain[k] for k in ("scratch", "student", "teacher")
    }


def _pairs(out: Path) -> dict[int, dict]:
    if not (out / "results.json").is_file():
        return {}
    return {e["seed"]: e for e in _results(out) if e["model"] == "scratch" and e["task"] == "sst2"}


def test_resume_after_a_kill_between_two_pairs(tmp_path, tiny_teacher_dir, tiny_student_dir):  # noqa: F811
    data = write_glue_dir(tmp_path / "glue", rows=400)
    out = tmp_path / "bench-glue"
    argv = [sys.executable, "-m", "bench.glue", "--rows", "scratch", "--tasks", "sst2"]
    argv += ["--student", str(tiny_student_dir), "--targets", str(tiny_teacher_dir)]
    argv += ["--data-dir", str(data), "--out", str(out), "--results-dir", str(tmp_path / "r")]
    argv += ["--max-seeds", "2", "--epochs", "3", "--device", "cpu"]
    argv += ["--ledger", str(tmp_path / "ledger.json")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not _pairs(out) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    first = _pairs(out)
    assert list(first) == [0], "the kill must land between seed 0 and seed 1"
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "sst2 seed 0: already in" in rerun.stdout
    both = _pairs(out)
    assert sorted(both) == [0, 1]
    assert both[0] == first[0]  # value, seconds and time untouched
    glue = json.loads((tmp_path / "r" / "glue.json").read_text())
    assert glue["seeds"]["scratch"]["sst2"] == {"done": 2, "planned": 2}


def test_a_fresh_machine_restores_finished_runs_of_the_same_inputs_only(
    tmp_path,
    tiny_teacher_dir,
    tiny_student_dir,  # noqa: F811
    capsys,
):
    data = write_glue_dir(tmp_path / "glue", rows=16)
    book = tmp_path / "ledger.json"

    def bench(out: str, student: Path) -> list[dict]:
        argv = ["--student", str(student), "--targets", str(tiny_teacher_dir)]
        argv += ["--teacher", str(tiny_teacher_dir), "--data-dir", str(data)]
        argv += ["--out", str(tmp_path / out), "--results-dir", str(tmp_path / "report")]
        argv += ["--max-seeds", "1", "--epochs", "1", "--device", "cpu", "--ledger", str(book)]
        bench_main([*argv, "--rows", "scratch,student", "--tasks", "rte"])
        found = sorted(_results(tmp_path / out), key=lambda e: (e["model"], e["metric"]))
        for entry in found:  # restored entries keep the fingerprint they were filed under
            entry["extra"].pop("fingerprint", None)
        return found

    first = bench("first", tiny_student_dir)
    assert len({e["extra"]["fingerprint"] for e in json.loads(book.read_text())}) == 2
    again = bench("second", tiny_student_dir)  # a new machine: empty --out, same inputs
    assert again == first  # restored as they were: value, seconds and time
    printed = capsys.readouterr().out
    assert re.search(r"^scratch: \d+ finished result\(s\) restored", printed, re.MULTILINE)

    other = tmp_path / "other-student"  # a retrained student: other weights, same shape
    shutil.copytree(tiny_student_dir, other)
    weights = other / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v + 0.01 for k, v in tensors.items()}, weights)
    third = bench("third", other)
    printed = capsys.readouterr().out
    assert re.search(r"^scratch: \d+ finished result\(s\) restored", printed, re.MULTILINE)
    assert not re.search(r"^student: .* restored", printed, re.MULTILINE)  # trained again
    assert [e for e in third if e["model"] == "scratch"] == [
        e for e in first if e["model"] == "scratch"
    ]
    assert any(e["model"] == "student" for e in third)
