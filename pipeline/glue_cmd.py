"""``pipeline eval glue``: fine-tune an encoder on the GLUE tasks and compare it with baselines."""

from __future__ import annotations

from pathlib import Path

import click

from data.errors import PipelineError
from pipeline.options import FiniteRange, device_option
from pipeline.runtime import resolve_device


@click.command("glue")
@click.option(
    "--model",
    required=True,
    help="Student dir, 'scratch' (student architecture, no distillation), 'teacher' "
    "(embedded) or an HF encoder name/folder.",
)
@click.option(
    "--tasks",
    default="all",
    help="'all' or a comma list: cola,sst2,mrpc,stsb,qqp,mnli,qnli,rte,wnli.",
)
@click.option(
    "--data-dir",
    envvar="GLUE_DIR",
    required=True,
    help="GLUE folder (CoLA/train.tsv, …; .tsv.gz too) or 'hf' for the hub [env: GLUE_DIR]",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="Results folder: results.json, results.md, glue.md, submission/.",
)
@click.option("--seeds", default=1, type=click.IntRange(1), help="Seeds 0..N-1; mean ± std.")
@click.option(
    "--epochs",
    default=None,
    type=click.IntRange(1),
    help="Epochs [default: per task, 2 on SST-2/QQP/MNLI/QNLI, 3 on WNLI, else 4]",
)
@click.option("--batch-size", default=32, type=click.IntRange(1))
@click.option(
    "--lr",
    default=None,
    type=FiniteRange(0, min_open=True),
    help="Encoder learning rate [default: 2e-5 for a transformer, 5e-4 for a BiLSTM]",
)
@click.option("--head-lr", default=1e-3, type=FiniteRange(0, min_open=True))
@click.option("--hidden", default=512, type=click.IntRange(1), help="Head MLP hidden units.")
@click.option("--dropout", default=0.1, type=FiniteRange(0, 1, max_open=True))
@click.option("--freeze-encoder", is_flag=True, help="Train the head only.")
@click.option(
    "--max-train-examples",
    default=None,
    type=click.IntRange(1),
    help="Cap each train set (same rows for every model) for quick runs.",
)
@click.option(
    "--max-eval-examples",
    default=None,
    type=click.IntRange(1),
    help="Cap each dev set; for smoke tests only (scores are then not GLUE's).",
)
@click.option(
    "--teacher",
    default=None,
    help="Teacher for --model teacher, and the word pieces of 'scratch' (a teacher or "
    "a stage-1 shard dir) [default: embedded MiniLM-L6]",
)
@click.option(
    "--student-config",
    default=None,
    type=click.Path(path_type=Path),
    help="Student dir whose architecture 'scratch' copies [default: stage 2 defaults]",
)
@click.option(
    "--max-length", default=128, type=click.IntRange(8, 8192), help="Tokens per sentence."
)
@click.option(
    "--kd-teacher",
    default=None,
    type=click.Path(path_type=Path),
    help="Task-specific KD from this --save-finetuned folder of fine-tuned teachers.",
)
@click.option(
    "--kd-alpha",
    default=0.5,
    type=FiniteRange(0, 1),
    help="Weight of the label loss; 1 - alpha goes to the MSE on the teacher's logits.",
)
@click.option(
    "--augment",
    "augment_copies",
    default=None,
    type=click.IntRange(0),
    help="Tang et al. augmented copies per train example for KD [default: 4 with --kd-teacher]",
)
@click.option("--p-mask", default=0.1, type=FiniteRange(0, 1), help="Augmentation masking.")
@click.option(
    "--p-ngram",
    default=0.25,
    type=FiniteRange(0, 1),
    help="Augmentation n-gram sampling probability.",
)
@click.option(
    "--save-finetuned",
    default=None,
    type=click.Path(path_type=Path),
    help="Save each task's fine-tuned model (first seed) to DIR/<task>/ (for KD).",
)
@click.option(
    "--predict-test/--no-predict-test",
    default=True,
    help="Write GLUE submission files for the test sets that exist.",
)
@click.option("--name", default=None, help="Model label in the results [default: from --model]")
@click.option("--overwrite", is_flag=True, help="Redo (task, seed) pairs already in OUT.")
@device_option
def glue(
    model,
    tasks,
    data_dir,
    out,
    seeds,
    epochs,
    batch_size,
    lr,
    head_lr,
    hidden,
    dropout,
    freeze_encoder,
    max_train_examples,
    max_eval_examples,
    teacher,
    student_config,
    max_length,
    kd_teacher,
    kd_alpha,
    augment_copies,
    p_mask,
    p_ngram,
    save_finetuned,
    predict_test,
    name,
    overwrite,
    device,
) -> None:
    """Fine-tune MODEL on each GLUE task and report dev metrics exactly as GLUE computes them.

    Writes OUT/results.json (one entry per task, metric and seed, resumable: finished pairs
    are skipped), OUT/glue.md (every model in OUT side by side, x100) and GLUE submission
    files. Tasks whose files are missing are skipped with a note unless named in --tasks.
    """
    from data.glue import resolve_tasks
    from stage3_eval.glue import (
        SUMMARY_MD,
        AugmentConfig,
        EncoderFactory,
        FineTuneConfig,
        GlueRunConfig,
        GlueRunner,
        plan_tasks,
        summary_table,
    )
    from stage3_eval.results import load_results

    if augment_copies and kd_teacher is None:
        raise PipelineError("--augment makes unlabelled examples: it needs --kd-teacher")
    if kd_teacher is not None and not Path(kd_teacher).is_dir():
        raise PipelineError(f"--kd-teacher {kd_teacher}: no such folder")
    selected = resolve_tasks(tasks)
    factory = EncoderFactory(
        model,
        teacher=teacher,
        student_config=student_config,
        max_length=max_length,
        workdir=out / ".cache",
    )
    runnable = plan_tasks(
        selected, data_dir, explicit=tasks.strip().lower() != "all", echo=click.echo
    )
    check_save_folder(save_finetuned, [data.task.name for data in runnable])
    label = name or factory.label + ("+kd" if kd_teacher is not None else "")
    config = GlueRunConfig(
        data_dir=data_dir,
        out=out,
        seeds=list(range(seeds)),
        train=FineTuneConfig(
            batch_size=batch_size, lr=lr or factory.default_lr, head_lr=head_lr, kd_alpha=kd_alpha
        ),
        epochs=epochs,
        max_train_examples=max_train_examples,
        max_eval_examples=max_eval_examples,
        freeze_encoder=freeze_encoder,
        hidden=hidden,
        dropout=dropout,
        kd_teacher=kd_teacher,
        augment=AugmentConfig(
            copies=4 if augment_copies is None else augment_copies, p_mask=p_mask, p_ngram=p_ngram
        ),
        save_finetuned=save_finetuned,
        predict_test=predict_test,
        label=label,
        overwrite=overwrite,
        device=resolve_device(device),
    )
    GlueRunner(factory, config, echo=click.echo).run(runnable)
    table = summary_table(load_results(out))
    (out / SUMMARY_MD).write_text(table, encoding="utf-8")
    click.echo("\n" + table + f"\nresults -> {out / 'results.json'}, table -> {out / SUMMARY_MD}")


def check_save_folder(folder: Path | None, task_names: list[str]) -> None:
    """Refuse a --save-finetuned that cannot hold the models before any training starts.

    Each task's model goes to FOLDER/<task>/, which must be absent, empty or an earlier save
    (it holds ``glue.json``): a model saved there replaces only what ``eval glue`` wrote.
    """
    from data.files import require_writable_folder
    from stage3_eval.glue import META_FILE

    if folder is None:
        return
    require_writable_folder(folder)
    for name in task_names:
        target = folder / name
        if target.exists() and not target.is_dir():
            raise PipelineError(f"--save-finetuned {target}: is a file, not a folder")
        if target.is_dir() and any(target.iterdir()) and not (target / META_FILE).is_file():
            raise PipelineError(
                f"--save-finetuned {target}: not empty and not a model saved by eval glue "
                f"(no {META_FILE}); choose another folder"
            )
