"""``pipeline export onnx``: the student as an ONNX graph for ONNX Runtime serving."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("export")
def export_group() -> None:
    """Write a trained student in another runtime's format."""


@export_group.command("onnx")
@click.option(
    "--model",
    "-m",
    required=True,
    help="Student folder written by `pipeline train`, or its Hub id (org/name).",
)
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of --model.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Export folder.")
@click.option(
    "--int8",
    is_flag=True,
    help="Also write model_int8.onnx, ONNX Runtime's dynamic int8 quantisation of the graph.",
)
def onnx_cmd(model: str, revision: str | None, out: Path, int8: bool) -> None:
    """Export the student to OUT/model.onnx (pooling and normalisation inside the graph, any
    batch size and length) with its tokenizer; serve it with `pipeline embed --model OUT`.

    The export is checked with onnx.checker and against torch before it is written.
    """
    from stage2_train.onnx_export import export_onnx

    description = export_onnx(model, out, int8=int8, revision=revision)
    parity = description["parity"]
    extra = (
        f", int8 min cosine {parity['int8_min_cosine']:.4f}" if "int8_min_cosine" in parity else ""
    )
    click.echo(
        f"exported {model} -> {out} (float32 max abs diff to torch "
        f"{parity['float32_max_abs']:.1e}{extra})"
    )
