"""``pipeline train``: stage 2, the student fitted to the teacher vectors cached in shards."""

from __future__ import annotations

from pathlib import Path

import click

from data.precision import RUN_PRECISIONS, resolve_precision
from pipeline.options import FiniteRange, config_defaults, device_option, first_shards_option
from pipeline.runtime import resolve_device
from stage2_train.config import CONNECTIONS, HEADS, STUDENT_POOLINGS, StudentConfig
from stage2_train.train import TrainConfig

TRAIN = config_defaults(TrainConfig)
STUDENT = config_defaults(StudentConfig)


@click.command()
@click.option(
    "--targets",
    required=True,
    type=click.Path(path_type=Path),
    help="Shard dir written by `pipeline encode`.",
)
@first_shards_option
@click.option(
    "--out",
    "-o",
    default=Path("runs/student"),
    type=click.Path(path_type=Path),
    help="Student dir (Contract 2); re-running resumes from its last checkpoint.",
)
@click.option(
    "--hidden-size",
    default=STUDENT["hidden_size"],
    type=click.IntRange(8),
    help="LSTM units/direction.",
)
@click.option(
    "--layers", default=STUDENT["num_layers"], type=click.IntRange(1, 8), help="BiLSTM layers."
)
@click.option(
    "--connection",
    type=click.Choice(CONNECTIONS),
    default=STUDENT["connection"],
    help="Between layers, when --layers > 1.",
)
@click.option("--pooling", type=click.Choice(STUDENT_POOLINGS), default=STUDENT["pooling"])
@click.option(
    "--head",
    type=click.Choice(HEADS),
    default=STUDENT["head"],
    help="Projection to the teacher's dimension.",
)
@click.option(
    "--embed-proj",
    default=STUDENT["embed_proj"],
    type=click.IntRange(0),
    help="Low-rank projection of the word-piece embeddings (0: none).",
)
@click.option("--dropout", default=STUDENT["dropout"], type=FiniteRange(0, 0.9))
@click.option(
    "--batch-size", default=TRAIN["batch_size"], type=click.IntRange(1), help="Sentences per step."
)
@click.option(
    "--max-tokens", default=TRAIN["max_tokens"], type=click.IntRange(64), help="Padded tokens/step."
)
@click.option("--lr", default=TRAIN["lr"], type=FiniteRange(0, min_open=True), help="Peak LR.")
@click.option("--weight-decay", default=TRAIN["weight_decay"], type=FiniteRange(0))
@click.option("--warmup", default=TRAIN["warmup"], type=FiniteRange(0, 1), help="Warmup fraction.")
@click.option("--clip", default=TRAIN["clip"], type=FiniteRange(0), help="Grad-norm clip (0: off).")
@click.option("--mse-weight", default=TRAIN["mse_weight"], type=FiniteRange(0))
@click.option("--cos-weight", default=TRAIN["cos_weight"], type=FiniteRange(0))
@click.option(
    "--relational-weight",
    default=TRAIN["relational_weight"],
    type=FiniteRange(0),
    help="MSE between the student's and the teacher's in-batch cosine matrices (0: off).",
)
@click.option(
    "--contrastive-weight",
    default=TRAIN["contrastive_weight"],
    type=FiniteRange(0),
    help="In-batch InfoNCE: each student vector against the batch's teacher vectors (0: off).",
)
@click.option(
    "--temperature",
    default=TRAIN["contrastive_temperature"],
    type=FiniteRange(0.001, 10),
    help="Softmax temperature of the contrastive term (see docs/student.md).",
)
@click.option("--epochs", default=TRAIN["epochs"], type=click.IntRange(1))
@click.option(
    "--max-steps", default=TRAIN["max_steps"], type=click.IntRange(1), help="Overrides --epochs."
)
@click.option(
    "--time-budget",
    default=TRAIN["time_budget"],
    type=FiniteRange(0, min_open=True),
    help="Minutes of training; the LR decays to zero as it runs out.",
)
@click.option(
    "--val-fraction",
    default=TRAIN["val_fraction"],
    type=FiniteRange(0, 0.5),
    help="Held-out share of the corpus lines.",
)
@click.option(
    "--val-rows", default=TRAIN["val_rows"], type=click.IntRange(0), help="Max validation rows."
)
@click.option(
    "--val-every", default=TRAIN["val_every"], type=click.IntRange(1), help="Steps between evals."
)
@click.option(
    "--sts-dev",
    default=TRAIN["sts_dev"],
    type=click.Path(path_type=Path),
    help="GLUE STS-B dev.tsv: log zero-shot Spearman at each evaluation.",
)
@click.option("--checkpoint-every", default=TRAIN["checkpoint_every"], type=click.IntRange(1))
@click.option("--keep-checkpoints", default=TRAIN["keep_checkpoints"], type=click.IntRange(1))
@click.option("--seed", default=TRAIN["seed"], type=click.IntRange(0))
@device_option
@click.option(
    "--precision",
    type=click.Choice(RUN_PRECISIONS),
    default=TRAIN["precision"],
    help="bf16: forward pass under bf16 autocast (weights, optimizer and loss stay float32); "
    "needs native bf16. See docs/student.md for the measured trade.",
)
@click.option(
    "--threads", default=TRAIN["threads"], type=click.IntRange(1), help="torch CPU threads."
)
@click.option("--overwrite", is_flag=True, help="Replace a run of another configuration in --out.")
@click.option(
    "--progress/--no-progress",
    default=TRAIN["progress"],
    help="Show progress: a bar in a terminal, a plain line every 30 s otherwise.",
)
def train(
    targets,
    first_shards,
    out,
    hidden_size,
    layers,
    connection,
    pooling,
    head,
    embed_proj,
    dropout,
    batch_size,
    max_tokens,
    lr,
    weight_decay,
    warmup,
    clip,
    mse_weight,
    cos_weight,
    relational_weight,
    contrastive_weight,
    temperature,
    epochs,
    max_steps,
    time_budget,
    val_fraction,
    val_rows,
    val_every,
    sts_dev,
    checkpoint_every,
    keep_checkpoints,
    seed,
    device,
    precision,
    threads,
    overwrite,
    progress,
) -> None:
    """Stage 2: train the BiLSTM student on the teacher vectors cached in --targets.

    The teacher is never loaded. Re-running the same command resumes from the newest
    checkpoint in --out. Runs under `torchrun --nproc_per_node=N` unchanged (DDP).
    """
    from stage2_train.train import train as run_train

    student = StudentConfig(
        hidden_size=hidden_size,
        num_layers=layers,
        connection=connection,
        pooling=pooling,
        head=head,
        embed_proj=embed_proj,
        dropout=dropout,
    )
    cfg = TrainConfig(
        targets=targets,
        first_shards=first_shards,
        out=out,
        student=student,
        batch_size=batch_size,
        max_tokens=max_tokens,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        clip=clip,
        mse_weight=mse_weight,
        cos_weight=cos_weight,
        relational_weight=relational_weight,
        contrastive_weight=contrastive_weight,
        contrastive_temperature=temperature,
        epochs=epochs,
        max_steps=max_steps,
        time_budget=time_budget,
        val_fraction=val_fraction,
        val_rows=val_rows,
        val_every=val_every,
        sts_dev=sts_dev,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        seed=seed,
        device=str(resolve_device(device)),
        precision=resolve_precision(precision, resolve_device(device), "student"),
        threads=threads,
        overwrite=overwrite,
        progress=progress,
    )
    result = run_train(cfg)
    if result.summary:
        val = result.summary["validation"]
        sts = result.summary.get("sts_dev")
        extra = f", STS-B Spearman {sts['spearman']:.4f}" if sts else ""
        click.echo(
            f"trained {result.steps} steps; validation cosine {val.get('cosine', float('nan')):.4f}"
            f"{extra} -> {result.out}"
        )
        if time_budget and not max_steps:
            used = result.summary["train_seconds"] / 60
            if used < 0.95 * time_budget:  # the epochs ran out first
                click.echo(
                    f"note: --epochs {epochs} ended the run after {used:.1f} of the "
                    f"{time_budget:g}-minute --time-budget; raise --epochs to use the whole budget"
                )
