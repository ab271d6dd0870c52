"""``pipeline embed``: vectors from a trained student for a text file, as ``.npy``."""

from __future__ import annotations

from pathlib import Path

import click

from data.errors import PipelineError
from data.files import atomic_path, require_free_space
from data.precision import resolve_precision
from pipeline.options import device_option, encode_batch_option, precision_option
from pipeline.runtime import resolve_device

NPY_HEADER = 4096  # room for a .npy header, which takes a few hundred bytes
PROGRESS_FROM = 10_000  # texts: below this the whole call takes about a second


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(path_type=Path),
    help="Student dir written by `pipeline train` or its Hub id, or an ONNX export "
    "(`pipeline export onnx`), then run by ONNX Runtime.",
)
@click.option(
    "--out",
    "-o",
    default=None,
    type=click.Path(path_type=Path),
    help="Output .npy [default: FILE with suffix .npy]",
)
@encode_batch_option
@click.option(
    "--int8/--fp32",
    default=False,
    help="int8 dynamic quantization (4× smaller LSTM and linear weights, cosine ~0.999 to "
    "float32), or exact float32 [default], which is as fast on CPUs with oneDNN's fused LSTM. "
    "With an ONNX export: its model_int8.onnx (export --int8).",
)
@device_option
@precision_option
@click.option(
    "--threads", default=None, type=click.IntRange(1), help="CPU threads (batches side by side)."
)
def embed(file, model, out, batch_size, int8, device, precision, threads) -> None:
    """Write the student's vectors for FILE (one text per line, .txt or .txt.gz) as .npy.

    Row i of the output is the vector of the i-th non-blank line.
    """
    import numpy as np
    import torch

    from data.corpus import LineStats, iter_lines, resolve_corpus
    from stage2_train import Student
    from stage2_train.onnx_encoder import OnnxEncoder, is_onnx_export
    from stage3_eval.encoders import student_precision

    files = resolve_corpus([file])
    out = out or file.with_name(file.name.removesuffix(".gz").rsplit(".", 1)[0] + ".npy")
    check_npy_output(out, files)
    if int8 and precision == "bf16":
        raise PipelineError("--int8 and --precision bf16 exclude each other; choose one")
    onnx = is_onnx_export(model)
    where = torch.device("cpu") if int8 or onnx else resolve_device(device)
    if int8 and device == "cuda":
        raise PipelineError("--int8 runs on the CPU (dynamic quantization); drop --device cuda")
    if onnx and (precision == "bf16" or device == "cuda"):
        raise PipelineError(
            f"{model}: an ONNX export runs in float32 on the CPU; drop --precision/--device, "
            "or embed with the student folder it was exported from"
        )
    precision = "fp32" if int8 or onnx else resolve_precision(precision, where, "student")
    if threads:
        torch.set_num_threads(threads)
    if onnx:
        student = OnnxEncoder.from_export(model, int8=int8, threads=threads)
    else:
        student = Student.from_pretrained(model)
        student = student.quantized() if int8 else student.to(where)
    stats = LineStats()
    texts = [text for _, text in iter_lines(files, stats=stats)]
    if not texts:
        raise PipelineError(f"{file}: no non-blank line to embed")
    # Checked before encoding: numpy reports a full disk as "N requested and M written".
    needed = len(texts) * student.dim * np.dtype(np.float32).itemsize + NPY_HEADER
    require_free_space(out.parent, needed, f"the vectors {out.name}")
    with student_precision(precision, where.type):
        long = len(texts) >= PROGRESS_FROM
        vectors = student.encode(texts, batch_size=batch_size, show_progress_bar=long)
    with atomic_path(out) as tmp, tmp.open("wb") as handle:
        np.save(handle, vectors)
    kind = "int8" if int8 else precision
    blanks = (
        f"; {stats.blank} blank line(s) skipped: row i is the i-th non-blank line"
        if stats.blank
        else ""
    )
    click.echo(
        f"embedded {len(texts)} texts ({kind}) -> {out} ({vectors.shape[0]}×{vectors.shape[1]})"
        f"{blanks}"
    )


def check_npy_output(out: Path, inputs: list[Path]) -> None:
    """Refuse an output that is one of the inputs or a file this tool would not have written.

    An existing ``out`` is replaced only when it is itself a NumPy array file (its ``.npy``
    header parses): vectors from an earlier run. Anything else, such as a text file that happens
    to end in ``.npy``, is left alone.
    """
    import numpy as np

    if out.suffix != ".npy":
        raise PipelineError(f"{out}: the output must end in .npy")
    for source in inputs:
        if out.exists() and out.samefile(source):
            raise PipelineError(f"{out}: is the input {source}; choose another --out")
    if out.is_dir():
        raise PipelineError(f"{out}: is a folder; --out must name a .npy file")
    if not out.exists():
        return
    try:
        np.load(out, mmap_mode="r")  # parses the header only; refuses pickled object arrays
    except (OSError, ValueError, EOFError):
        raise PipelineError(
            f"{out}: exists and is not a .npy array file; not overwritten (choose another --out)"
        ) from None
