"""``pipeline train`` (stage 2) and ``pipeline embed`` (vectors from a trained student)."""

from __future__ import annotations

from pathlib import Path

import click

from data.errors import PipelineError
from pipeline.options import FiniteRange, device_option, precision_option
from pipeline.runtime import resolve_device, resolve_precision


@click.command()
@click.option(
    "--targets",
    required=True,
    type=click.Path(path_type=Path),
    help="Shard dir written by `pipeline encode`.",
)
@click.option(
    "--out",
    "-o",
    default=Path("runs/student"),
    type=click.Path(path_type=Path),
    help="Student dir (Contract 2); re-running resumes from its last checkpoint.",
)
@click.option("--hidden-size", default=256, type=click.IntRange(8), help="LSTM units/direction.")
@click.option("--layers", default=1, type=click.IntRange(1, 8), help="BiLSTM layers.")
@click.option(
    "--connection",
    type=click.Choice(["residual", "dense"]),
    default="residual",
    help="Between layers, when --layers > 1.",
)
@click.option(
    "--pooling", type=click.Choice(["max", "mean", "max_mean", "attention"]), default="max_mean"
)
@click.option(
    "--head",
    type=click.Choice(["linear", "mlp"]),
    default="linear",
    help="Projection to the teacher's dimension.",
)
@click.option(
    "--embed-proj",
    default=128,
    type=click.IntRange(0),
    help="Low-rank projection of the word-piece embeddings (0: none).",
)
@click.option("--dropout", default=0.0, type=FiniteRange(0, 0.9))
@click.option("--batch-size", default=128, type=click.IntRange(1), help="Sentences per step.")
@click.option("--max-tokens", default=16384, type=click.IntRange(64), help="Padded tokens/step.")
@click.option("--lr", default=2e-3, type=FiniteRange(0, min_open=True), help="Peak LR.")
@click.option("--weight-decay", default=0.01, type=FiniteRange(0))
@click.option("--warmup", default=0.05, type=FiniteRange(0, 1), help="Warmup fraction.")
@click.option("--clip", default=1.0, type=FiniteRange(0), help="Grad-norm clip (0: off).")
@click.option("--mse-weight", default=1.0, type=FiniteRange(0))
@click.option("--cos-weight", default=1.0, type=FiniteRange(0))
@click.option("--epochs", default=3, type=click.IntRange(1))
@click.option("--max-steps", default=None, type=click.IntRange(1), help="Overrides --epochs.")
@click.option(
    "--time-budget",
    default=None,
    type=FiniteRange(0, min_open=True),
    help="Minutes of training; the LR decays to zero as it runs out.",
)
@click.option(
    "--val-fraction",
    default=0.01,
    type=FiniteRange(0, 0.5),
    help="Held-out share of the corpus lines.",
)
@click.option("--val-rows", default=2000, type=click.IntRange(0), help="Max validation rows.")
@click.option("--val-every", default=500, type=click.IntRange(1), help="Steps between evals.")
@click.option(
    "--sts-dev",
    default=None,
    type=click.Path(path_type=Path),
    help="GLUE STS-B dev.tsv: log zero-shot Spearman at each evaluation.",
)
@click.option("--checkpoint-every", default=500, type=click.IntRange(1))
@click.option("--keep-checkpoints", default=2, type=click.IntRange(1))
@click.option("--seed", default=0, type=click.IntRange(0))
@device_option
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    help="bf16: forward pass under bf16 autocast (weights, optimizer and loss stay float32); "
    "needs native bf16. See docs/student.md for the measured trade.",
)
@click.option("--threads", default=None, type=click.IntRange(1), help="torch CPU threads.")
@click.option("--overwrite", is_flag=True, help="Replace a run of another configuration in --out.")
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Show progress: a bar in a terminal, a plain line every 30 s otherwise.",
)
def train(
    targets,
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
    from stage2_train import StudentConfig
    from stage2_train.train import TrainConfig
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


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(path_type=Path),
    help="Student dir written by `pipeline train`.",
)
@click.option(
    "--out",
    "-o",
    default=None,
    type=click.Path(path_type=Path),
    help="Output .npy [default: FILE with suffix .npy]",
)
@click.option("--batch-size", default=256, type=click.IntRange(1))
@click.option(
    "--int8/--fp32",
    default=False,
    help="int8 dynamic quantization (4× smaller LSTM and linear weights, cosine ~0.999 to "
    "float32), or exact float32 [default], which is as fast on CPUs with oneDNN's fused LSTM.",
)
@precision_option
@click.option("--threads", default=None, type=click.IntRange(1), help="torch CPU threads.")
def embed(file, model, out, batch_size, int8, precision, threads) -> None:
    """Write the student's vectors for FILE (one text per line, .txt or .txt.gz) as .npy.

    Row i of the output is the vector of the i-th non-blank line.
    """
    import numpy as np
    import torch

    from data.corpus import iter_lines, resolve_corpus
    from stage2_train import Student
    from stage3_eval.encoders import student_precision

    files = resolve_corpus([file])
    out = out or file.with_name(file.name.removesuffix(".gz").rsplit(".", 1)[0] + ".npy")
    if out.suffix != ".npy":
        raise PipelineError(f"{out}: the output must end in .npy")
    if int8 and precision == "bf16":
        raise PipelineError("--int8 and --precision bf16 exclude each other; choose one")
    precision = "fp32" if int8 else resolve_precision(precision, torch.device("cpu"), "student")
    if threads:
        torch.set_num_threads(threads)
    student = Student.from_pretrained(model)
    if int8:
        student = student.quantized()
    texts = [text for _, text in iter_lines(files)]
    if not texts:
        raise PipelineError(f"{file}: no non-blank line to embed")
    with student_precision(precision, "cpu"):
        vectors = student.encode(texts, batch_size=batch_size)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(out)
    kind = "int8" if int8 else precision
    click.echo(
        f"embedded {len(texts)} texts ({kind}) -> {out} ({vectors.shape[0]}×{vectors.shape[1]})"
    )
