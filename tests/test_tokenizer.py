"""The student's tokenizer: `tokenizers` alone where it gives transformers' ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data.errors import PipelineError
from stage2_train.tokenizer import WordPieceTokenizer, load_tokenizer, load_transformers_tokenizer
from tests.conftest import tiny_corpus_lines

HARD_TEXTS = [
    "",
    " ",
    "Héllo Wörld ÇA va",
    "日本語のテキスト and 中文",
    "word " * 300,
    "[CLS] [SEP] [PAD] inside",
    "Don't stop—it's 3.14!",
    "\t\ttabs\nnew line",
    "café naïve résumé",
    "ＦＵＬＬ width",
]


def same_ids(folder: Path, texts: list[str]) -> None:
    fast, reference = load_tokenizer(folder), load_transformers_tokenizer(folder)
    assert isinstance(fast, WordPieceTokenizer)
    for max_length in (8, 128):
        got = fast(texts, truncation=True, max_length=max_length)["input_ids"]
        want = reference(texts, truncation=True, max_length=max_length, verbose=False)
        assert got == want["input_ids"]
    for role in ("pad_token_id", "cls_token_id", "sep_token_id", "unk_token_id"):
        assert getattr(fast, role) == getattr(reference, role)
    assert len(fast) == len(reference)


def copy_tokenizer(source: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)
    return folder


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}), encoding="utf-8")


def test_embedded_teacher_ids_match_transformers(embedded_teacher_dir: str) -> None:
    same_ids(Path(embedded_teacher_dir), HARD_TEXTS + tiny_corpus_lines(200))


def test_tiny_teacher_ids_match_transformers(tiny_teacher_dir: Path) -> None:
    same_ids(tiny_teacher_dir, HARD_TEXTS + tiny_corpus_lines(200))


def test_saved_copy_loads_to_the_same_ids(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    load_tokenizer(tiny_teacher_dir).save_pretrained(tmp_path)
    same_ids(tmp_path, tiny_corpus_lines(50))


def test_transformers_only_attributes_are_answered(tiny_teacher_dir: Path) -> None:
    fast = load_tokenizer(tiny_teacher_dir)
    assert fast.convert_tokens_to_ids("[SEP]") == fast.sep_token_id
    with pytest.raises(AttributeError):
        fast.__not_a_tokenizer_attribute__  # noqa: B018 (the lookup is the test)


@pytest.mark.parametrize(
    "changes",
    [
        {"do_lower_case": False},  # transformers rewrites the file's normaliser on load
        {"tokenizer_class": "RobertaTokenizer"},  # a class with fix-ups of its own
        {"truncation_side": "left"},
        {"added_tokens_decoder": {"999": {"content": "<new>"}}},  # a token the file lacks
    ],
)
def test_other_settings_go_through_transformers(
    tiny_teacher_dir: Path, tmp_path: Path, changes: dict
) -> None:
    folder = copy_tokenizer(tiny_teacher_dir, tmp_path / "tok")
    edit_config(folder, **changes)
    assert not isinstance(load_tokenizer(folder), WordPieceTokenizer)


def test_lowercase_setting_changes_ids_as_transformers_does(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    """The fall-back is needed: the same file gives other ids once the config says cased."""
    folder = copy_tokenizer(tiny_teacher_dir, tmp_path / "tok")
    edit_config(folder, do_lower_case=False)
    cased = load_tokenizer(folder)(["The Cat"], max_length=16)["input_ids"]
    uncased = load_tokenizer(tiny_teacher_dir)(["The Cat"], max_length=16)["input_ids"]
    assert cased != uncased


def test_no_tokenizer_json_goes_through_transformers(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    folder = copy_tokenizer(tiny_teacher_dir, tmp_path / "tok")
    shutil.copyfile(tiny_teacher_dir / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer.json").unlink()
    tokenizer = load_tokenizer(folder)
    assert not isinstance(tokenizer, WordPieceTokenizer)
    assert tokenizer(["the"], truncation=True, max_length=8)["input_ids"][0][0] == 2


def test_damaged_tokenizer_json_is_one_line(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    folder = copy_tokenizer(tiny_teacher_dir, tmp_path / "tok")
    (folder / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PipelineError, match="damaged tokenizer file"):
        load_tokenizer(folder)


def test_student_encode_does_not_import_transformers(tiny_teacher_dir: Path) -> None:
    """Cold start: loading a student and tokenizing must not pay transformers' import."""
    script = (
        "import sys\n"
        "from stage2_train.tokenizer import load_tokenizer\n"
        f"load_tokenizer({str(tiny_teacher_dir)!r})(['the cat'], max_length=8)\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True)


def test_without_max_length_the_config_limit_applies(embedded_teacher_dir: str) -> None:
    folder = Path(embedded_teacher_dir)
    fast, reference = load_tokenizer(folder), load_transformers_tokenizer(folder)
    texts = ["word " * 700]
    assert fast(texts)["input_ids"] == reference(texts, truncation=True)["input_ids"]
    assert len(fast(texts)["input_ids"][0]) == 512
