"""``pipeline eval``: stage-3 evaluations — zero-shot STS, the kNN probe and GLUE fine-tuning."""

from __future__ import annotations

from pathlib import Path

import click

from data.errors import PipelineError
from data.glue import TASKS
from pipeline.options import (
    MAX_LENGTH_LIMIT,
    FiniteRange,
    config_defaults,
    device_option,
    encode_batch_option,
    first_shards_option,
    precision_option,
    results_out_option,
)
from pipeline.runtime import load_encoder_as, resolve_device
from stage3_eval.glue import AugmentConfig, EncoderFactory, FineTuneConfig, GlueRunConfig
from stage3_eval.glue.encoders import BILSTM_LR, TRANSFORMER_LR
from stage3_eval.glue.run import describe_default_epochs
from stage3_eval.knn import DEFAULT_INDEX_KIND, INDEX_KINDS
from stage3_eval.probe import DEFAULT_KS

MODEL_HELP = (
    "Student dir, its ONNX export, a student's Hub id, 'teacher' (embedded) or an HF encoder; "
    "repeat to compare."
)
FINE_TUNE = config_defaults(FineTuneConfig)
GLUE_RUN = config_defaults(GlueRunConfig)
AUGMENT = config_defaults(AugmentConfig)
ENCODER = config_defaults(EncoderFactory)


def _rate(value: float) -> str:
    """A learning rate as people write it: ``2e-5``, not ``2e-05``."""
    return f"{value:.0e}".replace("e-0", "e-")


@click.group("eval")
def eval_group() -> None:
    """Stage 3: evaluate students and teachers; every command writes OUT/results.json."""


def _load(specs: tuple[str, ...], device: str, batch_size: int, precision: str):
    for spec in specs:
        yield load_encoder_as(spec, device, batch_size, precision)


@eval_group.command("sts")
@click.option("--model", "models", multiple=True, required=True, help=MODEL_HELP)
@click.option(
    "--data",
    "files",
    multiple=True,
    required=True,
    help="STS-B dev.tsv layout, sentence1<TAB>sentence2<TAB>score, or a `datasets` source "
    "(parquet, JSON lines, CSV, save_to_disk folder, Hub name) with sentence1, sentence2 and "
    "score/label columns; repeatable.",
)
@click.option("--split", default="validation", help="The split of a `datasets` --data.")
@results_out_option
@encode_batch_option
@device_option
@precision_option
def sts_cmd(models, files, split, out, batch_size, device, precision) -> None:
    """Zero-shot cosine Pearson and Spearman (x100 in the table) on STS files."""
    from data.sts import read_sts_source
    from stage3_eval.results import check_results_folder, write_results
    from stage3_eval.sts import evaluate_sts, sts_results

    check_results_folder(out)  # fail on bad input before loading any model
    datasets = [read_sts_source(f, split) for f in files]
    rows, entries = [], []
    for encoder in _load(models, device, batch_size, precision):
        for pairs in datasets:
            score = evaluate_sts(encoder, pairs)
            entries += sts_results(encoder, pairs.name, score)
            rows.append(
                f"{encoder.label:<40} {pairs.name:<16} {100 * score.pearson:8.2f} "
                f"{100 * score.spearman:9.2f} {score.sentences_per_second:9.0f}"
            )
    path = write_results(out, entries)
    click.echo(f"{'model':<40} {'data':<16} {'pearson':>8} {'spearman':>9} {'sent/s':>9}")
    click.echo("\n".join(rows))
    click.echo(f"results -> {path}")


@eval_group.command("probe")
@click.option("--model", "models", multiple=True, required=True, help=MODEL_HELP)
@click.option(
    "--targets",
    required=True,
    type=click.Path(path_type=Path),
    help="Shard dir of teacher vectors (stage 1); its validation rows are probed.",
)
@first_shards_option
@click.option(
    "--validation-fraction",
    default=None,
    type=FiniteRange(0, 1, min_open=True),
    help="Held-out share of rows [default: the student's own, else stage 2's]",
)
@click.option("--max-rows", default=None, type=click.IntRange(2), help="Cap the probed rows.")
@click.option(
    "-k",
    "ks",
    multiple=True,
    default=DEFAULT_KS,
    type=click.IntRange(1),
    help="Neighbour counts to report recall at; repeatable.",
)
@click.option(
    "--index",
    "index_kind",
    type=click.Choice(INDEX_KINDS),
    default=DEFAULT_INDEX_KIND,
    help="faiss search; ivf/hnsw are approximate, for large sets.",
)
@results_out_option
@encode_batch_option
@device_option
@precision_option
def probe_cmd(
    models,
    targets,
    first_shards,
    validation_fraction,
    max_rows,
    ks,
    index_kind,
    out,
    batch_size,
    device,
    precision,
) -> None:
    """kNN recall@k of the teacher's neighbours and mean cosine on held-out shard rows."""
    from data.shards import ShardStore
    from stage3_eval.probe import held_out_rows, probe_results, resolve_fraction, run_probe
    from stage3_eval.results import check_results_folder, write_results

    check_results_folder(out)
    store = ShardStore(targets, first_shards=first_shards)
    rows, entries = [], []
    for encoder in _load(models, device, batch_size, precision):
        fraction = resolve_fraction(validation_fraction, encoder)
        held = held_out_rows(store, fraction, max_rows)
        score = run_probe(encoder, held, tuple(sorted(set(ks))), index_kind)
        entries += probe_results(encoder, store, score, fraction, index_kind)
        recalls = "  ".join(f"R@{k} {v:.3f}" for k, v in score.recall.items())
        trivial = [k for k in score.recall if k >= score.rows - 1]
        if trivial:  # every other row is among the k neighbours: recall is 1 by construction
            recalls += f"  (R@{','.join(map(str, trivial))}: k ≥ rows − 1, trivially 1)"
        cosine = "n/a" if score.mean_cosine is None else f"{score.mean_cosine:.4f}"
        rows.append(
            f"{encoder.label}: {score.rows} rows  {recalls}  cos {cosine}  "
            f"{score.sentences_per_second:.0f} sent/s"
        )
    path = write_results(out, entries)
    click.echo("\n".join(rows))
    click.echo(f"results -> {path}")


@eval_group.command("glue")
@click.option(
    "--model",
    required=True,
    help="Student dir, 'scratch' (student architecture, no distillation), 'teacher' "
    "(embedded) or an HF encoder name/folder.",
)
@click.option(
    "--tasks",
    default="all",
    help=f"'all' or a comma list: {','.join(TASKS)}.",
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
    help=f"Epochs [default: per task, {describe_default_epochs()}]",
)
@click.option("--batch-size", default=FINE_TUNE["batch_size"], type=click.IntRange(1))
@click.option(
    "--lr",
    default=None,
    type=FiniteRange(0, min_open=True),
    help=f"Encoder learning rate [default: {_rate(TRANSFORMER_LR)} for a transformer, "
    f"{_rate(BILSTM_LR)} for a BiLSTM]",
)
@click.option("--head-lr", default=FINE_TUNE["head_lr"], type=FiniteRange(0, min_open=True))
@click.option(
    "--hidden", default=GLUE_RUN["hidden"], type=click.IntRange(1), help="Head MLP hidden units."
)
@click.option("--dropout", default=GLUE_RUN["dropout"], type=FiniteRange(0, 1, max_open=True))
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
    "--max-length",
    default=ENCODER["max_length"],
    type=click.IntRange(8, MAX_LENGTH_LIMIT),
    help="Tokens per sentence.",
)
@click.option(
    "--kd-teacher",
    default=None,
    type=click.Path(path_type=Path),
    help="Task-specific KD from this --save-finetuned folder of fine-tuned teachers.",
)
@click.option(
    "--kd-alpha",
    default=FINE_TUNE["kd_alpha"],
    type=FiniteRange(0, 1),
    help="Weight of the label loss; 1 - alpha goes to the MSE on the teacher's logits.",
)
@click.option(
    "--augment",
    "augment_copies",
    default=None,
    type=click.IntRange(0),
    help="Tang et al. augmented copies per train example for KD "
    f"[default: {AUGMENT['copies']} with --kd-teacher]",
)
@click.option(
    "--p-mask", default=AUGMENT["p_mask"], type=FiniteRange(0, 1), help="Augmentation masking."
)
@click.option(
    "--p-pos",
    default=AUGMENT["p_pos"],
    type=FiniteRange(0, 1),
    help="Augmentation POS-guided word replacement (needs spaCy's tagger: make install).",
)
@click.option(
    "--p-ngram",
    default=AUGMENT["p_ngram"],
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
    default=GLUE_RUN["predict_test"],
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
    p_pos,
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
    from data.files import write_text
    from data.glue import resolve_tasks
    from stage3_eval.glue import SUMMARY_MARK, SUMMARY_MD, GlueRunner, plan_tasks, summary_table
    from stage3_eval.results import check_results_folder, load_results

    check_results_folder(out, {SUMMARY_MD: SUMMARY_MARK})
    if augment_copies and kd_teacher is None:
        raise PipelineError("--augment makes unlabelled examples: it needs --kd-teacher")
    if kd_teacher is not None and not Path(kd_teacher).is_dir():
        raise PipelineError(f"--kd-teacher {kd_teacher}: no such folder")
    augment = AugmentConfig(
        copies=AUGMENT["copies"] if augment_copies is None else augment_copies,
        p_mask=p_mask,
        p_pos=p_pos,
        p_ngram=p_ngram,
    )
    check_augment(augment, kd_teacher)
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
        augment=augment,
        save_finetuned=save_finetuned,
        predict_test=predict_test,
        label=label,
        overwrite=overwrite,
        device=resolve_device(device),
    )
    GlueRunner(factory, config, echo=click.echo).run(runnable)
    table = summary_table(load_results(out))
    write_text(out / SUMMARY_MD, table)
    click.echo("\n" + table + f"\nresults -> {out / 'results.json'}, table -> {out / SUMMARY_MD}")


def check_augment(augment: AugmentConfig, kd_teacher: Path | None) -> None:
    """Refuse augmentation settings that cannot run before any model is trained."""
    if augment.p_mask + augment.p_pos > 1:
        raise PipelineError(
            f"--p-mask {augment.p_mask:g} + --p-pos {augment.p_pos:g} is over 1: they are the "
            "shares of words masked and replaced"
        )
    if kd_teacher is not None and augment.copies and augment.p_pos > 0:
        from stage3_eval.glue.pos import require_tagger

        require_tagger()


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
