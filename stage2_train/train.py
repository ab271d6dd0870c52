"""The stage-2 run: fit the student to the cached teacher vectors, resumably, on 1..N processes.

The teacher is never loaded: targets, token ids, the tokenizer and the word-piece matrix all come
from the shard directory. Re-running the same command resumes from the newest checkpoint; with the
same seed on CPU the result is bit-identical to an uninterrupted run, because the data order is a
pure function of (seed, epoch) and the checkpoint holds model, optimizer, RNG and data position.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from tqdm import tqdm

from data.cpus import AdaptiveThreads
from data.errors import PipelineError
from data.progress import progress_bar
from data.shards import ShardStore
from data.stream import (
    BatchLoader,
    ShardIndex,
    TrainBatch,
    ValidationSet,
    plan_epoch,
    scan_shards,
    steps_per_epoch,
)
from data.sts import StsPairs, read_sts
from stage2_train.checkpoint import TrainState, resume_latest, save_checkpoint
from stage2_train.config import StudentConfig, TrainConfig
from stage2_train.distributed import DistContext, any_rank, init_distributed, shutdown, together
from stage2_train.evaluate import sts_spearman, validate
from stage2_train.export import model_card
from stage2_train.hub import portable
from stage2_train.layout import METRICS
from stage2_train.losses import LossWeights, distill_loss
from stage2_train.model import Student
from stage2_train.optim import adamw, lr_factor
from stage2_train.rundir import MetricsLog, claimed_run_dir


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
    if weight.ndim != 2 or not weight.is_floating_point() or not torch.isfinite(weight).all():
        raise PipelineError(
            f"{path}: not a finite 2-D word-piece matrix (shape {tuple(weight.shape)}); "
            "re-run `pipeline encode`"
        )
    return weight


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


def loss_weights(cfg: TrainConfig) -> LossWeights:
    """The objective's terms as ``pipeline train``'s options set them."""
    return LossWeights(
        mse=cfg.mse_weight,
        cos=cfg.cos_weight,
        relational=cfg.relational_weight,
        contrastive=cfg.contrastive_weight,
        temperature=cfg.contrastive_temperature,
    )


# --------------------------------------------------------------------------------- the run


def train(cfg: TrainConfig) -> TrainSummary:
    """Train (or resume) a student on the shards in ``cfg.targets``; write it to ``cfg.out``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = init_distributed(torch.device(cfg.device))
    try:
        with contextlib.ExitStack() as held:  # rank 0 holds --out until the run ends
            run = _set_up(cfg, ctx, held)
            with _progress_bar(run) as bar:
                _loop(run, bar)
            return _finish(run)
    finally:
        shutdown(ctx)


# ------------------------------------------------------------------------------- set-up


@dataclass
class _Clock:
    """Training seconds across resumptions, and the time box (``--time-budget``) if any."""

    budget: float | None  # seconds
    before: float  # seconds trained before this process started
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start

    def progress(self, step: int, total: int) -> float:
        """The share of training done as the schedule counts it: steps, or time if further."""
        done = step / total
        return done if self.budget is None else max(done, self.elapsed() / self.budget)


@dataclass
class _Run:
    """Everything the loop works with, built once by ``_set_up``."""

    cfg: TrainConfig
    ctx: DistContext
    store: ShardStore
    index: list[ShardIndex]
    val: ValidationSet
    sts_pairs: StsPairs | None
    plan_args: dict[str, int]
    total_steps: int
    student: Student
    model: torch.nn.Module  # the student, wrapped for DDP when several processes train
    optimizer: torch.optim.Optimizer
    state: TrainState
    log: MetricsLog
    clock: _Clock
    threads: AdaptiveThreads | None  # None: --threads (or the device) fixes the count


def _set_up(cfg: TrainConfig, ctx: DistContext, held: contextlib.ExitStack) -> _Run:
    """Check and index the shards, plan the steps, claim ``--out``, build or resume the student.

    Each part that can be refused runs ``together``: every rank stops if any rank does.
    """
    plan_args = {
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "max_tokens": cfg.max_tokens,
        "window_shards": cfg.window_shards,
    }
    store, embeddings, index, val, sts_pairs, total_steps = together(
        ctx, lambda: _inputs(cfg, ctx, plan_args)
    )
    together(ctx, lambda: held.enter_context(claimed_run_dir(cfg)), main_only=True)
    student, optimizer, state, log = together(
        ctx, lambda: _restore(cfg, ctx, store, embeddings, total_steps)
    )
    model = torch.nn.parallel.DistributedDataParallel(student) if ctx.active else student
    budget = cfg.time_budget * 60 if cfg.time_budget else None
    return _Run(
        cfg, ctx, store, index, val, sts_pairs, plan_args, total_steps, student, model,
        optimizer, state, log, _Clock(budget, state.train_seconds), _thread_policy(cfg, ctx),
    )  # fmt: skip


def _thread_policy(cfg: TrainConfig, ctx: DistContext) -> AdaptiveThreads | None:
    """``--threads`` fixes torch's thread count; without it a CPU run re-chooses it as the
    machine's load moves (``AdaptiveThreads``)."""
    if cfg.threads or ctx.device.type != "cpu":
        return None
    return AdaptiveThreads.for_cpu()


def _inputs(cfg: TrainConfig, ctx: DistContext, plan_args: dict[str, int]) -> tuple:
    """The checked shards, word-piece matrix, row index, validation set, STS pairs, steps."""
    store = ShardStore(cfg.targets, first_shards=cfg.first_shards)
    embeddings = _check_embeddings(store)
    index, val = scan_shards(store, cfg.val_fraction, cfg.val_rows)
    sts_pairs = None if cfg.sts_dev is None else read_sts(cfg.sts_dev)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch(
        index, ctx.world, epoch=0, **plan_args
    )
    return store, embeddings, index, val, sts_pairs, total_steps


def _restore(
    cfg: TrainConfig, ctx: DistContext, store: ShardStore, embeddings: torch.Tensor, total: int
) -> tuple[Student, torch.optim.Optimizer, TrainState, MetricsLog]:
    """The student and its optimizer, resumed from ``--out``'s newest checkpoint if any, and
    the metrics log cut back to the resumed step."""
    student = _build_student(cfg, store, embeddings).to(ctx.device)
    optimizer = _optimizer(student, cfg)
    state = _resume(cfg, ctx, student, optimizer, total)
    return student, optimizer, state, MetricsLog(Path(cfg.out) / METRICS, ctx.is_main, state.step)


def _build_student(cfg: TrainConfig, store: ShardStore, embeddings: torch.Tensor) -> Student:
    """An untrained student shaped like the teacher: its vector width, normalisation, length."""
    torch.manual_seed(cfg.seed)
    teacher = store.manifest["teacher"]
    model_cfg = StudentConfig.from_dict(
        {
            **cfg.student.to_dict(),
            "output_dim": store.dim,
            "normalize": store.normalized,
            "max_length": int(teacher["max_length"]),
            "teacher": teacher,
        }
    )
    return Student.untrained(model_cfg, store.tokenizer_dir, embeddings)


def _resume(
    cfg: TrainConfig,
    ctx: DistContext,
    student: Student,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
) -> TrainState:
    """Restore the newest checkpoint in ``--out`` into student and optimizer, if there is one."""
    state, resume_from = resume_latest(cfg.out, student, optimizer, total_steps)
    if ctx.is_main and resume_from is not None:
        tqdm.write(
            f"resuming from {resume_from.name} (step {state.step} of {total_steps})",
            file=sys.stderr,
        )
    return state


# ------------------------------------------------------------------------------------ loop


class _Window:
    """What happened since the last log line: loss, sentences, and the time spent on data."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.start, self.sentences, self.wait = time.perf_counter(), 0, 0.0
        self.loss, self.n = 0.0, 0

    def add(self, sentences: int, loss: float) -> None:
        self.sentences += sentences
        self.loss += loss
        self.n += 1

    def record(self, lr: float) -> dict[str, Any]:
        """The window's averages as a metrics record; the window starts over."""
        seconds = max(time.perf_counter() - self.start, 1e-9)
        record = {
            "loss": self.loss / max(self.n, 1),
            "lr": lr,
            "sentences_per_s": self.sentences / seconds,
            "data_wait_share": self.wait / seconds,
        }
        self.reset()
        return record


def _loop(run: _Run, bar: Any) -> None:
    """Train from the resumed position, epoch by epoch, until the steps or the time box run out."""
    state, world, window = run.state, run.ctx.world, _Window()
    run.student.train()
    while not _finished(run):
        per_epoch = steps_per_epoch(run.index, world, epoch=state.epoch, **run.plan_args)
        if state.batch_in_epoch >= per_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            continue
        plan = plan_epoch(
            run.index, epoch=state.epoch, rank=run.ctx.rank, world=world, **run.plan_args
        )
        loader = BatchLoader(
            run.index,
            plan[state.batch_in_epoch : per_epoch],
            run.student.pad_id,
            cache_shards=run.cfg.window_shards,
        )
        batches = iter(loader)
        while state.batch_in_epoch < per_epoch and not _finished(run):
            waited = time.perf_counter()
            batch = next(batches)
            window.wait += time.perf_counter() - waited
            loss = _timed_step(run, batch)
            state.step += 1
            state.batch_in_epoch += 1
            state.sentences_seen += len(batch) * world
            window.add(len(batch) * world, loss)
            bar.update(_bar_position(run) - bar.n)
            _after_step(run, window, bar)
        del batches  # stops the loader's reading thread


def _finished(run: _Run) -> bool:
    budget = run.clock.budget
    out_of_time = budget is not None and run.clock.elapsed() >= budget
    return run.state.step >= run.total_steps or any_rank(run.ctx, out_of_time)


def _timed_step(run: _Run, batch: TrainBatch) -> float:
    """``_step`` at the thread count the policy picks, its time reported back to the policy."""
    if run.threads is None:
        return _step(run, batch)
    run.threads.next_threads()
    started = time.perf_counter()
    loss = _step(run, batch)
    run.threads.record(batch.input_ids.numel(), time.perf_counter() - started)
    return loss


def _step(run: _Run, batch: TrainBatch) -> float:
    """One optimizer step at the scheduled learning rate; returns the batch's loss."""
    cfg, device = run.cfg, run.ctx.device
    factor = lr_factor(run.clock.progress(run.state.step, run.total_steps), cfg.warmup)
    for group in run.optimizer.param_groups:
        group["lr"] = cfg.lr * factor
    bf16 = cfg.precision == "bf16"  # autocast only: weights, optimiser and loss stay float32
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = run.model(batch.input_ids.to(device), batch.attention_mask.to(device))
    loss = distill_loss(pred.float(), batch.targets.to(device), loss_weights(cfg))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip > 0:
        torch.nn.utils.clip_grad_norm_(run.student.parameters(), cfg.clip)
    run.optimizer.step()
    return float(loss.detach())


def _after_step(run: _Run, window: _Window, bar: Any) -> None:
    """Log every ``log_every`` steps, evaluate every ``val_every``, checkpoint every
    ``checkpoint_every``."""
    cfg, step = run.cfg, run.state.step
    record: dict[str, Any] = {}
    if step % cfg.log_every == 0 or step == run.total_steps:
        record = {
            **window.record(run.optimizer.param_groups[0]["lr"]),
            "threads": torch.get_num_threads(),
        }
        steps = {} if run.clock.budget is None else {"step": step}
        rate = record["sentences_per_s"]
        bar.set_postfix(**steps, loss=f"{record['loss']:.4f}", sent_s=f"{rate:.0f}")
    evaluate = step % cfg.val_every == 0
    if record or evaluate:
        together(run.ctx, lambda: _log(run, record, evaluate), main_only=True)
    if step % cfg.checkpoint_every == 0:
        _checkpoint(run, run.clock.elapsed())


def _log(run: _Run, record: dict[str, Any], evaluate: bool) -> None:
    """Rank 0: the step's metrics line, with the evaluation when one is due."""
    if evaluate:
        record = {**record, **_evaluate(run)}
        run.student.train()
    run.log.write({"step": run.state.step, "epoch": run.state.epoch, **record})


def _progress_bar(run: _Run) -> Any:
    """Steps done; under a time box, the seconds of the box used."""
    budget = run.clock.budget
    return progress_bar(
        total=run.total_steps if budget is None else math.ceil(budget),
        initial=_bar_position(run),
        unit="step",
        desc="train",
        enabled=run.cfg.progress and run.ctx.is_main,
        seconds=budget is not None,
    )


def _bar_position(run: _Run) -> int:
    """Steps done; under a time box, the seconds of the box used, or the share of the steps
    done if they end the run first (as the LR schedule counts progress)."""
    budget = run.clock.budget
    if budget is None:
        return run.state.step
    return math.ceil(budget * min(1.0, run.clock.progress(run.state.step, run.total_steps)))


def _evaluate(run: _Run) -> dict[str, Any]:
    metrics: dict[str, Any] = {f"val_{k}": v for k, v in validate(run.student, run.val).items()}
    if run.sts_pairs is not None:
        metrics["sts_spearman"] = sts_spearman(run.student, run.sts_pairs)
    return metrics


def _checkpoint(run: _Run, seconds: float) -> None:
    run.state.train_seconds = seconds
    cfg = run.cfg
    together(
        run.ctx,
        lambda: save_checkpoint(
            cfg.out, run.student, run.optimizer, run.state, cfg.keep_checkpoints
        ),
        main_only=True,
    )


# ------------------------------------------------------------------------------- finishing


def _finish(run: _Run) -> TrainSummary:
    """Checkpoint, evaluate, and save the student with its training summary and model card."""
    _checkpoint(run, run.clock.elapsed())
    summary = together(run.ctx, lambda: _publish(run), main_only=True)
    return TrainSummary(Path(run.cfg.out), run.state.step, summary or {})


def _publish(run: _Run) -> dict[str, Any]:
    """Rank 0: the final evaluation, logged, and the student saved with its summary and card."""
    state = run.state
    final = _evaluate(run)
    run.log.merge({"step": state.step, "epoch": state.epoch, **final})
    summary = _summary(run, final)
    public = portable({**run.student.config.to_dict(), "training": summary})  # no local paths
    card = model_card(public, public["training"])
    run.student.save_pretrained(run.cfg.out, summary=summary, card=card)
    return summary


def _summary(run: _Run, final: dict[str, Any]) -> dict[str, Any]:
    cfg, store, state = run.cfg, run.store, run.state
    seconds = state.train_seconds
    summary: dict[str, Any] = {
        "targets": str(store.directory),
        "corpus_rows": store.rows,
        "shards_used": len(store.paths),  # of shards_total: --first-shards
        "shards_total": store.total_shards,
        "corpus_sha256": store.manifest["corpus"]["sha256"],
        "corpus_dataset": store.manifest["corpus"].get("dataset"),  # encode --dataset
        "validation_rows": len(run.val),
        "parameters": run.student.num_parameters(),
        "steps": state.step,
        "epochs_started": state.epoch + 1,
        "sentences_seen": state.sentences_seen,
        "train_seconds": seconds,
        "sentences_per_second": state.sentences_seen / seconds if seconds > 0 else None,
        "world_size": run.ctx.world,
        "loss_spec": loss_weights(cfg).spec(),
        "optimizer": f"AdamW lr {cfg.lr}, weight decay {cfg.weight_decay}, warmup "
        f"{cfg.warmup:.0%}, linear decay, clip {cfg.clip}, batch {cfg.batch_size}",
        "seed": cfg.seed,
        "validation": {k.removeprefix("val_"): v for k, v in final.items() if k.startswith("val_")},
    }
    if run.sts_pairs is not None and "sts_spearman" in final:
        summary["sts_dev"] = {
            "name": run.sts_pairs.name,
            "path": str(run.sts_pairs.path),
            "spearman": final["sts_spearman"],
        }
    if math.isnan(summary["validation"].get("cosine", 0.0)):
        raise PipelineError("training diverged: validation cosine is NaN; lower --lr")
    return summary
