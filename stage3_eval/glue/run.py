"""``pipeline eval glue``: fine-tune one encoder on each GLUE task and seed, report dev metrics.

Every (task, seed) is written to ``OUT/results.json`` as soon as it finishes, so an interrupted
run resumes where it stopped (finished pairs are skipped unless ``overwrite``). All models of a
comparison see the same training subset (``max_train_examples`` draws it with a fixed seed),
the same head and the same fixed hyper-parameters.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from data import report
from data.errors import PipelineError
from data.glue import TASKS, GlueSplit, GlueTask, TaskData, load_task
from stage2_train.optim import seed_everything
from stage3_eval.encoders import SCRATCH
from stage3_eval.glue.augment import AugmentConfig
from stage3_eval.glue.encoders import EncoderFactory
from stage3_eval.glue.metrics import glue_score, task_metrics
from stage3_eval.glue.model import (
    HEAD_DROPOUT,
    HEAD_HIDDEN,
    GlueHead,
    GlueModel,
    save_finetuned,
)
from stage3_eval.glue.report import BENCHMARK, stored_scores
from stage3_eval.glue.submit import write_submission
from stage3_eval.glue.train import (
    FineTuneConfig,
    FrozenVectors,
    Tokenized,
    fine_tune,
    frozen_vectors,
    predict,
    tokenize,
)
from stage3_eval.results import Result, load_results, write_results


def describe_default_epochs() -> str:
    """The tasks' ``epochs`` in words for ``--help``: the usual count last, exceptions first."""
    counts = [t.epochs for t in TASKS.values()]
    usual = max(counts, key=counts.count)
    exceptions = [
        f"{epochs} on " + "/".join(t.folder for t in TASKS.values() if t.epochs == epochs)
        for epochs in sorted(set(counts) - {usual})
    ]
    return ", ".join([*exceptions, f"else {usual}"])


@dataclass
class GlueRunConfig:
    data_dir: str
    out: Path
    seeds: list[int] = field(default_factory=lambda: [0])
    train: FineTuneConfig = field(default_factory=FineTuneConfig)
    epochs: int | None = None  # None: each task's own (GlueTask.epochs)
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    freeze_encoder: bool = False
    hidden: int = HEAD_HIDDEN
    dropout: float = HEAD_DROPOUT
    kd_teacher: Path | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    save_finetuned: Path | None = None
    predict_test: bool = True
    label: str = "model"
    overwrite: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def plan_tasks(
    tasks: list[GlueTask], data_dir: str, explicit: bool, echo: report.Report
) -> list[TaskData]:
    """Load each task's files; skip those without train + dev (an error if asked for by name)."""
    runnable = []
    for task in tasks:
        data = load_task(task, data_dir)
        if data.runnable:
            runnable.append(data)
            continue
        problem = f"missing {', '.join(data.missing)}" if data.missing else "no labelled split"
        if explicit:
            raise PipelineError(f"GLUE task {task.name}: {problem}")
        echo(f"skip {task.name}: {problem}")
    if not runnable:
        raise PipelineError(f"no GLUE task has its train and dev files under {data_dir}")
    return runnable


def check_scorable(data: TaskData, max_eval_examples: int | None) -> None:
    """Refuse, before any training, a regression dev split whose correlations are undefined:
    fewer than two rows (after ``--max-eval-examples``) or one gold score for every row."""
    if not data.task.is_regression:
        return
    for split in data.evals:
        labels = split.sample(max_eval_examples).labels
        if labels is None or len(labels) < 2 or np.ptp(labels) == 0:
            used = 0 if labels is None else len(labels)
            raise PipelineError(
                f"{split.source}: {split.name} correlations need at least two dev rows whose "
                f"scores differ ({used} rows used; see --max-eval-examples)"
            )


@dataclass
class TaskRun:
    """What one (task, seed) fine-tuning produced."""

    scores: dict[str, dict[str, float]]  # {split: {metric: value}}
    seconds: float
    train_size: int
    eval_sizes: dict[str, int]
    losses: list[float]


class GlueRunner:
    def __init__(
        self, factory: EncoderFactory, config: GlueRunConfig, echo: report.Report = report.info
    ):
        self.factory = factory
        self.config = config
        self.echo = echo
        self._kd_sets: dict[str, tuple[GlueSplit, np.ndarray]] = {}
        self._frozen: tuple[str, FrozenVectors] | None = None  # the last task's, for its seeds

    def run(self, tasks: list[TaskData]) -> list[Result]:
        """Fine-tune on every task and seed; returns this run's results (also on disk)."""
        cfg = self.config
        for data in tasks:
            check_scorable(data, cfg.max_eval_examples)
        done = load_results(cfg.out)
        produced: list[Result] = []
        for data in tasks:
            for seed in cfg.seeds:
                stored = stored_scores(done, data.task, cfg.label, seed)
                if stored is not None and not cfg.overwrite:
                    self.echo(
                        f"{data.task.name} seed {seed}: already in {cfg.out} (skipped; "
                        "--overwrite to redo)"
                    )
                    continue
                entries = self._results(data, seed, self.run_one(data, seed))
                write_results(cfg.out, entries)
                produced += entries
        produced += self._glue_scores()
        return produced

    def _frozen_train(self, task: GlueTask, model: GlueModel, data: Tokenized) -> FrozenVectors:
        """The training split's frozen vectors. A trained encoder gives every seed the same
        ones, so they are computed once per task; a scratch encoder is drawn anew per seed."""
        if self.factory.kind == SCRATCH:
            return frozen_vectors(model, data)
        if self._frozen is None or self._frozen[0] != task.name:
            self._frozen = (task.name, frozen_vectors(model, data))
        return self._frozen[1]

    def _train_config(self, task: GlueTask) -> FineTuneConfig:
        return replace(self.config.train, epochs=self.config.epochs or task.epochs)

    def run_one(self, data: TaskData, seed: int) -> TaskRun:
        cfg, task = self.config, data.task
        start = time.perf_counter()
        seed_everything(seed)
        encoder = self.factory.build()
        head = GlueHead(int(encoder.dim), task.num_outputs, task.is_pair, cfg.hidden, cfg.dropout)
        train = data.train.sample(cfg.max_train_examples)  # type: ignore[union-attr]
        if task.is_regression:
            head.start_at(float(np.mean(train.labels)))
        model = GlueModel(encoder, head, cfg.freeze_encoder).to(cfg.device)
        labels, targets = train.labels, None
        if cfg.kd_teacher is not None:
            train, targets = self._distillation_set(train, encoder)
            labels = train.labels
        train_config = self._train_config(task)
        train_data: Tokenized | FrozenVectors = tokenize(encoder, train.text_a, train.text_b)
        if cfg.freeze_encoder:  # the encoder's vectors do not change: compute them once
            train_data = self._frozen_train(task, model, train_data)
        losses = fine_tune(
            model,
            train_data,
            labels,
            train_config,
            regression=task.is_regression,
            seed=seed,
            targets=targets,
            desc=f"{task.name} seed {seed}",
        )
        scores, sizes = {}, {}
        for split in data.evals:
            split = split.sample(cfg.max_eval_examples)
            outputs = predict(
                model, tokenize(encoder, split.text_a, split.text_b), desc=f"{split.name} dev"
            )
            scores[split.name] = task_metrics(task, split.labels, outputs)
            sizes[split.name] = len(split)
        seconds = time.perf_counter() - start
        if cfg.predict_test:
            self._write_test_predictions(model, data.tests, seed)
        if cfg.save_finetuned is not None and seed == cfg.seeds[0]:
            save_finetuned(
                model,
                cfg.save_finetuned / task.name,
                {
                    "task": task.name,
                    "seed": seed,
                    "model": cfg.label,
                    "scores": scores,
                    "train_size": len(train),
                    "train": asdict(train_config),
                },
            )
        run = TaskRun(scores, seconds, len(train), sizes, losses)
        self.echo(self._describe(task, seed, run, train_config))
        return run

    def _distillation_set(self, train: GlueSplit, encoder) -> tuple[GlueSplit, np.ndarray]:
        from stage3_eval.glue.kd import KD_TARGETS, distillation_set

        name = train.task.name
        if name not in self._kd_sets:
            mask = getattr(getattr(encoder, "tokenizer", None), "mask_token", None)
            augment = replace(self.config.augment, mask_token=mask or "[MASK]")
            self._kd_sets[name] = distillation_set(
                train,
                self.config.kd_teacher,
                augment,
                self.config.device,
                cache_dir=self.config.out / KD_TARGETS,
            )
        return self._kd_sets[name]

    def _write_test_predictions(self, model: GlueModel, tests: list[GlueSplit], seed: int) -> None:
        folder = self.config.out / "submission" / self.config.label / f"seed-{seed}"
        for split in tests:
            outputs = predict(
                model,
                tokenize(model.encoder, split.text_a, split.text_b),
                desc=f"{split.name} test",
            )
            write_submission(folder, split, outputs)

    def _describe(self, task: GlueTask, seed: int, run: TaskRun, train: FineTuneConfig) -> str:
        metrics = "  ".join(
            f"{split} {metric} {100 * value:.2f}"
            for split, values in run.scores.items()
            for metric, value in values.items()
        )
        rate = run.train_size * train.epochs / max(run.seconds, 1e-9)
        return (
            f"{task.name} seed {seed}: {metrics}  ({run.train_size} train rows x "
            f"{train.epochs} epochs, {run.seconds:.1f}s, {rate:.0f} ex/s)"
        )

    def _results(self, data: TaskData, seed: int, run: TaskRun) -> list[Result]:
        cfg = self.config
        train_config = self._train_config(data.task)
        extra = {
            "benchmark": BENCHMARK,
            "glue_task": data.task.name,
            "train_size": run.train_size,
            "epochs": train_config.epochs,
            "batch_size": train_config.batch_size,
            "lr": train_config.lr,
            "head_lr": train_config.head_lr,
            "frozen_encoder": cfg.freeze_encoder,
            **self._kd_settings(),
            "final_loss": run.losses[-1] if run.losses else None,
        }
        sources = {s.name: s.source for s in data.evals}
        return [
            Result(
                task=split,
                metric=metric,
                value=value,
                model=cfg.label,
                data=sources[split],
                seed=seed,
                seconds=run.seconds,
                extra={**extra, "eval_size": run.eval_sizes[split]},
            )
            for split, values in run.scores.items()
            for metric, value in values.items()
        ]

    def _kd_settings(self) -> dict[str, object]:
        """Whether KD ran and, if so, the augmentation it trained on (copies 0 without KD)."""
        augment = self.config.augment
        if self.config.kd_teacher is None:
            return {"kd": False, "augment_copies": 0}
        return {
            "kd": True,
            "augment_copies": augment.copies,
            "p_mask": augment.p_mask,
            "p_pos": augment.p_pos,
            "p_ngram": augment.p_ngram,
        }

    def _glue_scores(self) -> list[Result]:
        """The GLUE macro-average per seed over every task with results in ``out``."""
        cfg = self.config
        done = load_results(cfg.out)
        entries = []
        for seed in cfg.seeds:
            per_task = {
                t.name: s
                for t in TASKS.values()
                if (s := stored_scores(done, t, cfg.label, seed)) is not None
            }
            if not per_task:
                continue
            entries.append(
                Result(
                    task="glue",
                    metric="score",
                    value=glue_score(per_task),
                    model=cfg.label,
                    data=str(cfg.data_dir),
                    seed=seed,
                    extra={"benchmark": BENCHMARK, "tasks": sorted(per_task)},
                )
            )
        if entries:
            write_results(cfg.out, entries)
        return entries
