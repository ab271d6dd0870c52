"""The model card (``README.md``) of a student directory, rendered from the config it saves.

Its examples load ``hub.MODEL_ID_PLACEHOLDER``, which ``hub.push_folder`` replaces with the
repository id. Without a training summary (a student saved before any training) the card says
what the config says and leaves out the training and results sections.
"""

from __future__ import annotations

from typing import Any

from data.manifest import TeacherDescription
from stage2_train.hub import MODEL_ID_PLACEHOLDER

WU_2020_BIBTEX = """@inproceedings{wu2020towards,
  title = {Towards Non-task-specific Distillation of {BERT} via Sentence Representation
           Approximation},
  author = {Wu, Bowen and Zhang, Huan and Li, Mengyuan and Wang, Zongsheng and Feng, Qihang and
            Huang, Junhong and Wang, Baoxun},
  booktitle = {Proceedings of the 1st Conference of the Asia-Pacific Chapter of the Association
               for Computational Linguistics and the 10th International Joint Conference on
               Natural Language Processing (AACL-IJCNLP)},
  year = {2020},
  eprint = {2004.03097},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/2004.03097}
}"""
SBERT_BIBTEX = """@inproceedings{reimers2019sentence,
  title = {Sentence-{BERT}: Sentence Embeddings using {S}iamese {BERT}-Networks},
  author = {Reimers, Nils and Gurevych, Iryna},
  booktitle = {Proceedings of the 2019 Conference on Empirical Methods in Natural Language
               Processing and the 9th International Joint Conference on Natural Language
               Processing (EMNLP-IJCNLP)},
  year = {2019},
  eprint = {1908.10084},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/1908.10084}
}"""


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def model_card(config: dict[str, Any], summary: dict[str, Any]) -> str:
    """A human-readable card: usage, architecture, size, provenance, data, time, measured
    results and citations; ``config`` is the portable ``config.json`` payload."""
    sections = [_usage(config), _architecture(config, summary), _provenance(config, summary)]
    if summary:
        sections += [_training(summary), _results(summary)]
    sections.append(_citation(config))
    return "\n".join(line for section in sections for line in section) + "\n"


def _usage(config: dict[str, Any]) -> list[str]:
    model_id = MODEL_ID_PLACEHOLDER
    return [
        "# SRA-Distill student",
        "",
        "A BiLSTM sentence encoder distilled from a BERT-family teacher by sentence-representation "
        "approximation (Wu et al. 2020): it reproduces the teacher's sentence vectors.",
        "",
        "## Usage",
        "",
        "```bash",
        "pip install sra-distill  # 'sra-distill[sentence-transformers]' for sentence-transformers",
        "```",
        "",
        "```python",
        "from stage2_train import Student",
        "",
        f'student = Student.from_pretrained("{model_id}")  # the Hub id or a local folder',
        f'vectors = student.encode(["A sentence.", "Another one."])  # float32 [2, '
        f"{config['output_dim']}]",
        "```",
        "",
        "With sentence-transformers (version 6 asks for `trust_remote_code` to import the module "
        "class that sra-distill installs; the repository holds no code):",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{model_id}", trust_remote_code=True)',
        "sentences = [",
        '    "The weather is lovely today.",',
        '    "It\'s so sunny outside!",',
        '    "He drove to the stadium.",',
        "]",
        "embeddings = model.encode(sentences)",
        "similarities = model.similarity(embeddings, embeddings)  # cosine, [3, 3]",
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
    lines = ["## Teacher and data", "", _teacher_line(config.get("teacher") or {})]
    if summary:
        lines.append(
            f"- corpus: {summary.get('corpus_rows', 'n/a')} texts in "
            f"`{summary.get('targets', 'n/a')}` (corpus sha256 "
            f"`{str(summary.get('corpus_sha256', 'n/a'))[:16]}…`); "
            f"{summary.get('validation_rows', 'n/a')} held out for validation"
        )
    return [*lines, ""]


def _teacher_line(record: dict[str, Any]) -> str:
    """The card's teacher: the shard manifest's record, which training copies into the config
    (a config built by hand, without one, says n/a)."""
    try:
        teacher = TeacherDescription.from_dict(record)
    except TypeError:
        return "- teacher: n/a"
    return (
        f"- teacher: `{teacher.name_or_path}` (weights sha256 `{teacher.weights_sha256[:16]}…`, "
        f"{teacher.pooling} pooling, normalize={teacher.normalize})"
    )


def _training(summary: dict[str, Any]) -> list[str]:
    return [
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
    return [*lines, ""]


def is_sentence_transformers_teacher(teacher: dict[str, Any]) -> bool:
    """The teacher's card says sentence-transformers, or its Hub id lies in that organisation."""
    name = str(teacher.get("name_or_path") or "")
    return teacher.get("library_name") == "sentence-transformers" or name.startswith(
        "sentence-transformers/"
    )


def _citation(config: dict[str, Any]) -> list[str]:
    teacher = config.get("teacher", {})
    lines = ["## Citation", "", "The method (Wu et al. 2020):", "", "```bibtex", WU_2020_BIBTEX]
    lines.append("```")
    if is_sentence_transformers_teacher(teacher):
        lines += ["", "The teacher, a sentence-transformers model (Sentence-BERT):", ""]
        lines += ["```bibtex", SBERT_BIBTEX, "```"]
    return lines
