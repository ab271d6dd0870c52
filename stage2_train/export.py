"""The model card (``README.md``) of a trained student directory."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def model_card(config: dict[str, Any], summary: dict[str, Any]) -> str:
    """A human-readable card: architecture, size, provenance, data, time and measured results."""
    sections = (_usage(config), _architecture(config, summary), _provenance(config, summary))
    return "\n".join(line for section in (*sections, _results(summary)) for line in section) + "\n"


def _usage(config: dict[str, Any]) -> list[str]:
    return [
        "# SRA-Distill student",
        "",
        "A BiLSTM sentence encoder distilled from a BERT-family teacher by sentence-representation "
        "approximation (Wu et al. 2020): it reproduces the teacher's sentence vectors.",
        "",
        "```python",
        "from stage2_train import Student",
        "student = Student.from_pretrained('.')",
        f"vectors = student.encode(['A sentence.'])  # float32 [N, {config['output_dim']}]",
        "",
        "# or, with sra-distill installed, through sentence-transformers (6 and later ask for",
        "# trust_remote_code to import the installed module class; this folder holds no code)",
        "from sentence_transformers import SentenceTransformer",
        "model = SentenceTransformer('.', trust_remote_code=True)",
        "```",
        "",
    ]


def _architecture(config: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    layers = config["num_layers"]
    proj = f", low-rank projection to {config['embed_proj']}" if config["embed_proj"] else ""
    parameters = summary.get("parameters")
    return [
        "## Architecture",
        "",
        f"- word-piece embeddings {config['vocab_size']} × {config['embed_dim']}, initialised "
        f"from the teacher's{proj}",
        f"- {layers} bidirectional LSTM layer(s), hidden size {config['hidden_size']}"
        + (f", {config['connection']} connections" if layers > 1 else ""),
        f"- pooling: {config['pooling']}; head: {config['head']} → {config['output_dim']} "
        f"dimensions{', L2-normalised' if config['normalize'] else ''}",
        f"- parameters: {parameters:,}" if isinstance(parameters, int) else "- parameters: n/a",
        f"- max length: {config['max_length']} tokens",
        "",
    ]


def _provenance(config: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    teacher = config.get("teacher", {})
    return [
        "## Teacher and data",
        "",
        f"- teacher: `{teacher.get('name_or_path', 'n/a')}` (weights sha256 "
        f"`{str(teacher.get('weights_sha256', 'n/a'))[:16]}…`, {teacher.get('pooling', '?')} "
        f"pooling, normalize={teacher.get('normalize', '?')})",
        f"- corpus: {summary.get('corpus_rows', 'n/a')} texts in "
        f"`{summary.get('targets', 'n/a')}` (corpus sha256 "
        f"`{str(summary.get('corpus_sha256', 'n/a'))[:16]}…`); "
        f"{summary.get('validation_rows', 'n/a')} held out for validation",
        "",
        "## Training",
        "",
        f"- {summary.get('steps', 'n/a')} steps, {summary.get('sentences_seen', 'n/a')} sentences "
        f"seen, {_fmt(summary.get('train_seconds'), 0)} s on {summary.get('world_size', 1)} "
        f"process(es) ({_fmt(summary.get('sentences_per_second'), 1)} sentences/s)",
        f"- loss: {summary.get('loss_spec', 'n/a')}; optimiser: {summary.get('optimizer', 'n/a')}",
        "",
    ]


def _results(summary: dict[str, Any]) -> list[str]:
    val = summary.get("validation", {})
    lines = [
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
        f"| validation MSE | {_fmt(val.get('mse'), 6)} |",
        f"| validation cosine to teacher | {_fmt(val.get('cosine'))} |",
    ]
    sts = summary.get("sts_dev")
    if sts is not None:
        name = sts.get("name", "STS")
        lines.append(f"| zero-shot Spearman on {name} | {_fmt(sts['spearman'])} |")
    return lines
