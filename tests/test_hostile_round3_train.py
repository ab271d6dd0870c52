"""Issue 32, stage 2: what `pipeline train` trusts in its --out, its checkpoints, its metrics
log and its environment, and how several processes fail.

Refusals run the real CLI through ``refused`` (exit 1, one ``Error:`` line, no traceback, the
named paths byte-identical); the torchrun cases run two gloo processes and count the lines.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stage2_train.layout import CHECKPOINTS, CONFIG_FILE, METRICS, TRAIN_CONFIG, WEIGHTS_FILE
from stage2_train.rundir import RUN_LOCK
from tests.cli_helpers import refused
from tests.stage2_helpers import TINY_ARCH, make_tiny_shards, train_cli

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
RUN = ("--max-steps", "4", "--checkpoint-every", "2", "--val-every", "1")


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, tiny_teacher_dir) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("round3-train") / "shards", tiny_teacher_dir)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_shards) -> Path:
    """A finished run of ``RUN``: checkpoints at steps 2 and 4, a metrics line per step."""
    out = tmp_path_factory.mktemp("round3-run") / "run"
    result = train_cli(tiny_shards, out, *RUN)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    return shutil.copytree(finished, tmp_path / "run")


def _train_args(shards: Path, out: Path, *extra: str) -> list:
    return ["train", "--targets", shards, "--out", out, *TINY_ARCH, *RUN, *extra]


def _model_folder(path: Path) -> Path:
    """A user's model folder: weights, a Hugging Face config.json, a card."""
    path.mkdir()
    save_file({"weight": torch.ones(3, 2)}, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text('{"model_type": "bert"}')
    (path / "README.md").write_text("my model")
    return path


# ------------------------------------------------------- case 2: --overwrite proves the run


def test_overwrite_refuses_a_train_config_that_only_has_a_student_key(
    tiny_shards, tmp_path
) -> None:
    model = _model_folder(tmp_path / "model")
    (model / TRAIN_CONFIG).write_text('{"student": {"hidden_size": 16}, "lr": 0.1}')
    refused(
        _train_args(tiny_shards, model, "--overwrite"),
        "train_config.json",
        "not a training configuration written by `pipeline train`",
        untouched=[model, tiny_shards],
    )


def test_overwrite_refuses_a_real_train_config_copied_beside_a_model(
    tiny_shards, finished, tmp_path
) -> None:
    model = _model_folder(tmp_path / "model")
    shutil.copy(finished / TRAIN_CONFIG, model / TRAIN_CONFIG)
    for extra in ([], ["--overwrite"]):  # a resume would replace it at its end
        refused(
            _train_args(tiny_shards, model, *extra),
            "not written by `pipeline train`",
            str(model / CONFIG_FILE),
            untouched=[model, tiny_shards],
        )


def test_a_run_killed_while_saving_its_student_still_resumes(tiny_shards, run_copy) -> None:
    """The student is written after the final checkpoint, config.json last but one: weights
    with a checkpoint and no config.json yet are the run's own."""
    (run_copy / CONFIG_FILE).unlink()
    result = train_cli(tiny_shards, run_copy, *RUN)
    assert result.exit_code == 0, result.output
    assert json.loads((run_copy / CONFIG_FILE).read_text())["training"]["steps"] == 4


# ------------------------------------------------------------ case 9: one run at a time


def test_a_second_train_into_a_held_run_is_refused(tiny_shards, run_copy) -> None:
    with (run_copy / RUN_LOCK).open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # what a running `pipeline train` holds
        refused(
            _train_args(tiny_shards, run_copy, "--overwrite"),
            str(run_copy),
            "another `pipeline train` is training into this folder",
            untouched=[run_copy],
        )


@pytest.mark.slow
def test_two_trains_started_together_into_one_folder(tiny_shards, tmp_path) -> None:
    out = tmp_path / "run"
    command = [str(BIN / "pipeline"), *map(str, _train_args(tiny_shards, out))]
    command[command.index("4")] = "60"  # --max-steps: long enough to overlap
    runs = [subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outcomes = sorted((run.wait(timeout=300), run.stderr.read()) for run in runs)
    assert [code for code, _ in outcomes] == [0, 1], outcomes
    errors = [line for line in outcomes[1][1].splitlines() if "Error" in line]
    assert errors == [f"Error: {out}: another `pipeline train` is training into this folder; "
                      "wait for it to end or use another --out"]  # fmt: skip
    steps = [json.loads(line)["step"] for line in (out / METRICS).read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 60


# ------------------------------------------------------- case 10: a checkpoint proves itself


def _edit_state(checkpoint: Path, **values) -> None:
    path = checkpoint / "state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


@pytest.mark.parametrize(
    "values",
    [
        {"step": -5},
        {"step": 10**9},
        {"step": "4"},
        {"step": 2},  # in the folder of step 4
        {"epoch": 3.5},
        {"batch_in_epoch": -1},
        {"sentences_seen": None},
        {"train_seconds": math.nan},
        {"surprise": 1},
    ],
)
def test_a_checkpoint_state_that_does_not_fit_the_run_is_not_resumed(
    tiny_shards, run_copy, values
) -> None:
    shutil.rmtree(run_copy / CHECKPOINTS / "step-00000002")
    _edit_state(run_copy / CHECKPOINTS / "step-00000004", **values)
    refused(
        _train_args(tiny_shards, run_copy),
        "none of the 1 checkpoint(s) loads",
        untouched=[run_copy],
    )


def _nan_weights(checkpoint: Path) -> None:
    path = checkpoint / WEIGHTS_FILE
    weights = load_file(str(path))
    name = next(iter(weights))
    weights[name][0] = math.nan
    save_file(weights, str(path))


def _edit_trainer(edit) -> object:
    def damage(checkpoint: Path) -> None:
        trainer = torch.load(checkpoint / "trainer.pt", weights_only=True)
        edit(trainer["optimizer"])
        torch.save(trainer, checkpoint / "trainer.pt")

    return damage


def _wrong_moment_shape(optimizer: dict) -> None:
    state = next(iter(optimizer["state"].values()))
    state["exp_avg"] = torch.zeros(7)


def _other_weight_decay(optimizer: dict) -> None:
    optimizer["param_groups"][0]["weight_decay"] = math.nan


@pytest.mark.parametrize(
    "damage",
    [_nan_weights, _edit_trainer(_wrong_moment_shape), _edit_trainer(_other_weight_decay)],
)
def test_checkpoint_weights_and_optimizer_are_checked_before_training_on(
    tiny_shards, run_copy, damage
) -> None:
    """Resumed from step 2, a run trains: a wrong moment crashed the step with a traceback."""
    shutil.rmtree(run_copy / CHECKPOINTS / "step-00000004")
    damage(run_copy / CHECKPOINTS / "step-00000002")
    refused(
        _train_args(tiny_shards, run_copy),
        "none of the 1 checkpoint(s) loads",
        untouched=[run_copy],
    )


# ------------------------------------------------------------- a garbage metrics line


def test_a_garbage_metrics_line_is_dropped_with_a_warning_on_resume(tiny_shards, run_copy) -> None:
    path = run_copy / METRICS
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], '{"step": ', "[1, 2]", *lines[1:]]) + "\n")
    result = train_cli(tiny_shards, run_copy, *RUN)
    assert result.exit_code == 0, result.output
    assert f"warning: {path}: line(s) 2, 3 not a metrics record; dropped" in result.output
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


# ----------------------------------------------------------------------- the environment


@pytest.mark.parametrize(
    ("world", "fragments"),
    [
        ("2", ("WORLD_SIZE=2 is set but RANK, MASTER_ADDR, MASTER_PORT not", "torchrun")),
        ("two", ("WORLD_SIZE='two' must be a whole number",)),
        ("0", ("WORLD_SIZE='0' must be a whole number, 1 or more",)),
    ],
)
def test_world_size_without_torchrun_is_one_line(tiny_shards, tmp_path, world, fragments) -> None:
    env = {"WORLD_SIZE": world, "RANK": None, "MASTER_ADDR": None, "MASTER_PORT": None}
    out = tmp_path / "run"
    refused(_train_args(tiny_shards, out), *fragments, untouched=[out], env=env)


def _torchrun(*args: str | Path) -> subprocess.CompletedProcess:
    command = [str(BIN / "torchrun"), "--nproc_per_node=2", "--no-python", str(BIN / "pipeline")]
    return subprocess.run(
        [*command, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("who", ["rank 0 refuses --out", "every rank refuses --targets"])
def test_a_refusal_under_torchrun_is_one_line_from_one_rank(tiny_shards, tmp_path, who) -> None:
    """The other rank used to die in its barrier with an 80-line gloo traceback; now it
    exits quietly and only torchrun's own summary follows the one line."""
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    targets = tiny_shards if who.startswith("rank 0") else tmp_path / "absent"
    done = _torchrun(*_train_args(targets, out))
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "[rank" not in done.stderr and "gloo" not in done.stderr, done.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
