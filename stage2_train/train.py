"""The stage-2 run: fit the student to the cached teacher vectors, resumably, on 1..N processes.

The teacher is never loaded: targets, token ids, the tokenizer and the word-piece matrix all come
from the shard directory. Re-running the same command resumes from the newest checkpoint; with the
same seed on CPU the result is bit-identical to an uninterrupted run, because the data order is a
pure function of (seed, epoch) and the checkpoint holds model, optimizer, RNG and data position.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from tqdm import tqdm

from data.errors import PipelineError
from data.progress import progress_bar
from data.shards import ShardStore
from data.stream import BatchLoader, ValidationSet, plan_epoch, scan_shards, steps_per_epoch
from pipeline.runtime import adamw
from stage2_train.checkpoint import (
    CHECKPOINTS,
    TrainState,
    resume_latest,
    save_checkpoint,
)
from stage2_train.config import StudentConfig
from stage2_train.distributed import DistContext, any_rank, barrier, init_distributed, shutdown
from stage2_train.export import model_card, write_file_atomic
from stage2_train.model import CARD_FILE, CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE, Student

TRAIN_CONFIG = "train_config.json"
METRICS = "metrics.jsonl"
# Options that may change between a run and its resumption without changing the weights.
_VOLATILE = (
    "out",
    "targets",
    "progress",
    "threads",
    "overwrite",
    "device",
    "precision",
    "val_every",
    "sts_dev",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
)


@dataclass
class TrainConfig:
    targets: Path
    out: Path
    student: StudentConfig = field(default_factory=StudentConfig)
    batch_size: int = 128
    max_tokens: int = 16384
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of training spent warming up
    clip: float = 1.0
    mse_weight: float = 1.0
    cos_weight: float = 1.0
    epochs: int = 3
    max_steps: int | None = None
    time_budget: float | None = None  # minutes; the LR decays to zero as the budget runs out
    val_fraction: float = 0.01
    val_rows: int = 2000
    val_every: int = 500
    sts_dev: Path | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 20
    window_shards: int = 2
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # bf16: forward pass under bf16 autocast; weights stay float32
    threads: int | None = None
    overwrite: bool = False
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """The options that define the run; a resumed run must agree on all of them."""
        values = asdict(self)
        for key in _VOLATILE:
            values.pop(key)
        return json.loads(json.dumps(values, default=str))


@dataclass
class TrainSummary:
    out: Path
    steps: int
    summary: dict[str, Any]


# ------------------------------------------------------------------------------ preparation


def _check_embeddings(store: ShardStore) -> torch.Tensor:
    path = store.input_embeddings_path
    if not path.is_file():
        raise PipelineError(f"{store.directory}: no {path.name}; re-run `pipeline encode`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            weight = handle.get_tensor("weight")
    except Exception as exc:  # safetensors raises its own error types
        raise PipelineError(f"{path}: unreadable word-piece matrix ({exc})") from None
    expected = store.manifest["teacher"].get("weights_sha256")
    if meta.get("weights_sha256") and meta["weights_sha256"] != expected:
        raise PipelineError(f"{path}: word-piece matrix of another teacher than the manifest's")
    return weight


def _prepare_out(cfg: TrainConfig, ctx: DistContext) -> None:
    """Refuse an output dir of another run; with --overwrite, clear only this tool's files.

    Rank 0 alone checks and writes; the other ranks wait at a barrier after it.
    """
    if not ctx.is_main:
        return
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise PipelineError(f"{out}: exists and is not a directory")
    own = [TRAIN_CONFIG, METRICS, CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, TOKENIZER_DIR, CHECKPOINTS]
    recorded = out / TRAIN_CONFIG
    if recorded.is_file() and not cfg.overwrite:
        previous = json.loads(recorded.read_text(encoding="utf-8"))
        mismatch = _first_difference(previous, cfg.identity())
        if mismatch:
            raise PipelineError(
                f"{out} holds a run with another configuration ({mismatch}); "
                "use --overwrite or another --out"
            )
    elif out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise PipelineError(f"{out}: not empty and not a training run; use another --out")
    if cfg.overwrite:
        for name in own:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    write_file_atomic(recorded, json.dumps(cfg.identity(), indent=2, sort_keys=True) + "\n")


def _first_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str | None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} before, {b!r} now"
    return None


def _optimizer(student: Student, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases or on the teacher-initialised word-piece matrix."""
    decay, no_decay = [], []
    for name, param in student.named_parameters():
        (decay if param.ndim >= 2 and not name.startswith("embed.") else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return adamw(groups, lr=cfg.lr)


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warmup over the first ``warmup`` of training, then linear decay to zero."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    return max(0.0, (1.0 - progress) / max(1e-12, 1.0 - warmup))


def distill_loss(
    pred: torch.Tensor, target: torch.Tensor, mse_weight: float, cos_weight: float
) -> torch.Tensor:
    loss = pred.new_zeros(())
    if mse_weight:
        loss = loss + mse_weight * F.mse_loss(pred, target)
    if cos_weight:
        loss = loss + cos_weight * (1.0 - F.cosine_similarity(pred, target, dim=1)).mean()
    return loss


# ------------------------------------------------------------------------------- evaluation


def validate(student: Student, val: ValidationSet) -> dict[str, float]:
    """MSE and mean cosine of the student's vectors to the teacher's on held-out rows."""
    if len(val) == 0:
        return {}
    pred = student.embed_ids(val.input_ids)
    target = val.targets
    cos = (pred * target).sum(1) / (
        np.linalg.norm(pred, axis=1) * np.linalg.norm(target, axis=1) + 1e-12
    )
    return {"mse": float(((pred - target) ** 2).mean()), "cosine": float(cos.mean())}


def sts_spearman(student: Student, pairs: Any) -> float:
    """Zero-shot STS: Spearman correlation of cosine(student(s1), student(s2)) with gold scores."""
    from scipy.stats import spearmanr

    first, second = student.encode(pairs.sentence1), student.encode(pairs.sentence2)
    cos = (first * second).sum(1) / (
        np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1) + 1e-12
    )
    return float(spearmanr(cos, pairs.scores).statistic)


# ------------------------------------------------------------------------------------ loop


class MetricsLog:
    """Append-only JSONL; on resume, lines from beyond the checkpoint are dropped first."""

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path = path
        self.enabled = enabled
        if enabled and path.is_file():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            write_file_atomic(path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def merge(self, record: dict[str, Any]) -> None:
        """Add the final evaluation to the last step's line, or append it: one line per step."""
        if not self.enabled:
            return
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else []
        if lines and json.loads(lines[-1]).get("step") == record["step"]:
            record = {**json.loads(lines.pop()), **record}
        lines.append(json.dumps(record))
        write_file_atomic(self.path, "".join(f"{line}\n" for line in lines))


def train(cfg: TrainConfig) -> TrainSummary:
    """Train (or resume) a student on the shards in ``cfg.targets``; write it to ``cfg.out``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = init_distributed(torch.device(cfg.device))
    try:
        return _train(cfg, ctx)
    finally:
        shutdown(ctx)


def _train(cfg: TrainConfig, ctx: DistContext) -> TrainSummary:
    store = ShardStore(cfg.targets)
    embeddings = _check_embeddings(store)
    index, val = scan_shards(store, cfg.val_fraction, cfg.val_rows)
    sts_pairs = None
    if cfg.sts_dev is not None:
        from data.sts import read_sts

        sts_pairs = read_sts(cfg.sts_dev)
    plan_args = {
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "max_tokens": cfg.max_tokens,
        "window_shards": cfg.window_shards,
    }
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch(
        index, ctx.world, epoch=0, **plan_args
    )
    _prepare_out(cfg, ctx)
    barrier(ctx)

    torch.manual_seed(cfg.seed)
    teacher = store.manifest["teacher"]
    model_cfg = StudentConfig.from_dict(
        {
            **cfg.student.to_dict(),
            "output_dim": store.dim,
            "normalize": store.normalized,
            "max_length": int(teacher.get("max_length", 128)),
            "teacher": teacher,
        }
    )
    student = Student.untrained(model_cfg, store.tokenizer_dir, embeddings).to(ctx.device)
    optimizer = _optimizer(student, cfg)
    state, resume_from = resume_latest(cfg.out, student, optimizer)
    model: torch.nn.Module = student
    if ctx.active:
        model = torch.nn.parallel.DistributedDataParallel(student)

    log = MetricsLog(Path(cfg.out) / METRICS, ctx.is_main, state.step)
    if ctx.is_main and resume_from is not None:
        tqdm.write(
            f"resuming from {resume_from.name} (step {state.step} of {total_steps})",
            file=sys.stderr,
        )
    window = {"start": time.perf_counter(), "sentences": 0, "wait": 0.0, "loss": 0.0, "n": 0}
    budget = cfg.time_budget * 60 if cfg.time_budget else None
    run_start, seconds_before = time.perf_counter(), state.train_seconds

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - run_start

    def bar_position() -> int:
        """Steps done; under a time box, the seconds of the box used, or the share of the steps
        done if they end the run first (as the LR schedule counts progress)."""
        if budget is None:
            return state.step
        return math.ceil(budget * min(1.0, max(state.step / total_steps, elapsed() / budget)))

    bar = progress_bar(
        total=total_steps if budget is None else math.ceil(budget),
        initial=bar_position(),
        unit="step",
        desc="train",
        enabled=cfg.progress and ctx.is_main,
        seconds=budget is not None,
    )

    def finished() -> bool:
        out_of_time = budget is not None and elapsed() >= budget
        return state.step >= total_steps or any_rank(ctx, out_of_time)

    def evaluate() -> dict[str, Any]:
        metrics: dict[str, Any] = {f"val_{k}": v for k, v in validate(student, val).items()}
        if sts_pairs is not None:
            metrics["sts_spearman"] = sts_spearman(student, sts_pairs)
        return metrics

    student.train()
    while not finished():
        per_epoch = steps_per_epoch(index, ctx.world, epoch=state.epoch, **plan_args)
        if state.batch_in_epoch >= per_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            continue
        plan = plan_epoch(index, epoch=state.epoch, rank=ctx.rank, world=ctx.world, **plan_args)
        loader = BatchLoader(
            index,
            plan[state.batch_in_epoch : per_epoch],
            student.pad_id,
            cache_shards=cfg.window_shards,
        )
        batches = iter(loader)
        while state.batch_in_epoch < per_epoch and not finished():
            waited = time.perf_counter()
            batch = next(batches)
            window["wait"] += time.perf_counter() - waited
            progress = state.step / total_steps
            if budget is not None:
                progress = max(progress, elapsed() / budget)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(progress, cfg.warmup)
            bf16 = cfg.precision == "bf16"
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = model(batch.input_ids.to(ctx.device), batch.attention_mask.to(ctx.device))
            target = batch.targets.to(ctx.device)
            loss = distill_loss(pred.float(), target, cfg.mse_weight, cfg.cos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.clip)
            optimizer.step()
            state.step += 1
            state.batch_in_epoch += 1
            state.sentences_seen += len(batch) * ctx.world
            window["sentences"] += len(batch) * ctx.world
            window["loss"] += float(loss.detach())
            window["n"] += 1
            bar.update(bar_position() - bar.n)
            record: dict[str, Any] = {}
            if state.step % cfg.log_every == 0 or state.step == total_steps:
                record = _window_record(window, optimizer.param_groups[0]["lr"])
                rate = record["sentences_per_s"]
                steps = {} if budget is None else {"step": state.step}
                bar.set_postfix(**steps, loss=f"{record['loss']:.4f}", sent_s=f"{rate:.0f}")
            if ctx.is_main and (state.step % cfg.val_every == 0):
                record.update(evaluate())
                student.train()
            if record:
                log.write({"step": state.step, "epoch": state.epoch, **record})
            if state.step % cfg.checkpoint_every == 0:
                _checkpoint(cfg, ctx, student, optimizer, state, elapsed())
        del batches
    bar.close()

    state.train_seconds = elapsed()
    _checkpoint(cfg, ctx, student, optimizer, state, state.train_seconds)
    summary: dict[str, Any] = {}
    if ctx.is_main:
        final = evaluate()
        log.merge({"step": state.step, "epoch": state.epoch, **final})
        summary = _summary(cfg, ctx, store, student, state, val, final, sts_pairs)
        card = model_card(student.config.to_dict(), summary)
        student.save_pretrained(cfg.out, summary=summary, card=card)
    barrier(ctx)
    return TrainSummary(Path(cfg.out), state.step, summary)


def _window_record(window: dict[str, Any], lr: float) -> dict[str, Any]:
    seconds = max(time.perf_counter() - window["start"], 1e-9)
    record = {
        "loss": window["loss"] / max(window["n"], 1),
        "lr": lr,
        "sentences_per_s": window["sentences"] / seconds,
        "data_wait_share": window["wait"] / seconds,
    }
    window.update(start=time.perf_counter(), sentences=0, wait=0.0, loss=0.0, n=0)
    return record


def _checkpoint(
    cfg: TrainConfig,
    ctx: DistContext,
    student: Student,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    seconds: float,
) -> None:
    state.train_seconds = seconds
    if ctx.is_main:
        save_checkpoint(cfg.out, student, optimizer, state, cfg.keep_checkpoints)
    barrier(ctx)


def _summary(
    cfg: TrainConfig,
    ctx: DistContext,
    store: ShardStore,
    student: Student,
    state: TrainState,
    val: ValidationSet,
    final: dict[str, Any],
    sts_pairs: Any,
) -> dict[str, Any]:
    seconds = state.train_seconds
    summary: dict[str, Any] = {
        "targets": str(store.directory),
        "corpus_rows": store.rows,
        "corpus_sha256": store.manifest["corpus"]["sha256"],
        "validation_rows": len(val),
        "parameters": student.num_parameters(),
        "steps": state.step,
        "epochs_started": state.epoch + 1,
        "sentences_seen": state.sentences_seen,
        "train_seconds": seconds,
        "sentences_per_second": state.sentences_seen / seconds if seconds > 0 else None,
        "world_size": ctx.world,
        "loss_spec": f"{cfg.mse_weight} × MSE + {cfg.cos_weight} × (1 − cosine)",
        "optimizer": f"AdamW lr {cfg.lr}, weight decay {cfg.weight_decay}, warmup "
        f"{cfg.warmup:.0%}, linear decay, clip {cfg.clip}, batch {cfg.batch_size}",
        "seed": cfg.seed,
        "validation": {k.removeprefix("val_"): v for k, v in final.items() if k.startswith("val_")},
    }
    if sts_pairs is not None and "sts_spearman" in final:
        summary["sts_dev"] = {
            "name": sts_pairs.name,
            "path": str(sts_pairs.path),
            "spearman": final["sts_spearman"],
        }
    if math.isnan(summary["validation"].get("cosine", 0.0)):
        raise PipelineError("training diverged: validation cosine is NaN; lower --lr")
    return summary
