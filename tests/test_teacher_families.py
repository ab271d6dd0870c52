"""Every common encoder family as a teacher: tiny random models built offline from configs.

Each family gets a tokenizer of its own kind built with ``tokenizers`` (WordPiece, byte-level
BPE, SentencePiece-style Unigram) with its own special tokens and pad id, then runs
encode → train a few steps → load the student → encode. Left padding, absent
``token_type_ids`` and relative positions are covered by comparing a padded batch with each text
encoded alone, through the plain and the oneDNN-packed model. Each family also encodes in bf16
on the CPU, and a family whose bf16 model fails falls back to fp32 under ``--precision auto``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from data import precision as data_precision
from data import shards
from stage1_encode import teacher as teacher_module
from stage1_encode.onednn import to_bfloat16
from stage1_encode.teacher import Teacher
from stage2_train import Student
from stage3_eval.encoders import load_encoder
from tests.cli_helpers import refused
from tests.conftest import WORDS, tiny_corpus_lines
from tests.stage2_helpers import run_cli, train_cli

HIDDEN = 32
# Weights drawn 10x wider than transformers' default 0.02: at 0.02 these 2-layer models' attention
# and feed-forward branches add almost nothing to the embeddings, so bf16 rounding in them moves
# the vectors by under 1e-7 in cosine and a bf16 test could not tell bf16 from float32. At 0.2
# the branches carry the residual stream as in a trained model (bf16 vs float32: 1 - cosine
# 1e-5 to 4e-5 over the families, like the real MPNet's).
LIVELY_INIT = 0.2
# bf16 vs float32, per text. 25x the worst bf16 rounding measured at LIVELY_INIT (0.99996), and
# far above what a wrong computation gives: attending to the padding drops it to 0.96 or lower.
BF16_COSINE = 0.999
SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
MPNET_SPECIALS = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]


def wordpiece(specials: list[str]) -> Any:
    """A BERT-style WordPiece tokenizer over the tiny vocabulary plus single-letter pieces."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    pieces = [
        *WORDS,
        *"abcdefghijklmnopqrstuvwxyz",
        *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
    ]
    vocab = {token: i for i, token in enumerate([*specials, *pieces])}
    tokenizer = Tokenizer(
        models.WordPiece(vocab, unk_token=specials[3 if specials[0] == "<s>" else 1])
    )
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def byte_bpe(specials: list[str]) -> Any:
    """A byte-level BPE tokenizer (GPT-2 / RoBERTa / ModernBERT kind) trained on the corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(tiny_corpus_lines(200), trainer)
    return tokenizer


def unigram(specials: list[str]) -> Any:
    """A SentencePiece-style Unigram tokenizer (DeBERTa-v2 kind) trained on the corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=150, special_tokens=specials, unk_token=specials[1], show_progress=False
    )
    tokenizer.train_from_iterator(tiny_corpus_lines(200), trainer)
    return tokenizer


def wrap(tokenizer: Any, specials: list[str], roles: dict[str, str], **extra: Any) -> Any:
    """Add the family's special-token template and wrap it as a transformers tokenizer."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    cls, sep = roles["cls_token"], roles["sep_token"]
    ids = {token: tokenizer.token_to_id(token) for token in specials}
    if cls == "<s>":
        tokenizer.post_processor = processors.RobertaProcessing((sep, ids[sep]), (cls, ids[cls]))
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, ids[cls]), (sep, ids[sep])],
        )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **roles, **extra)


BERT_ROLES = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
BERT_ROLES.update(unk_token="[UNK]", mask_token="[MASK]")
ROBERTA_ROLES = {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>"}
ROBERTA_ROLES.update(unk_token="<unk>", mask_token="<mask>", bos_token="<s>", eos_token="</s>")
MPNET_ROLES = {**ROBERTA_ROLES, "unk_token": "[UNK]"}


@dataclass(frozen=True)
class Family:
    name: str
    specials: list[str]
    roles: dict[str, str]
    build_tokenizer: Any
    poolings: tuple[str, ...]
    padding_side: str = "right"
    token_type_ids: bool = True


FAMILIES = [
    Family("bert", BERT_SPECIALS, BERT_ROLES, wordpiece, ("cls", "mean", "pooler")),
    Family(
        "roberta",
        ROBERTA_SPECIALS,
        ROBERTA_ROLES,
        byte_bpe,
        ("cls", "mean", "pooler"),
        token_type_ids=False,
    ),
    Family(
        "distilbert", BERT_SPECIALS, BERT_ROLES, wordpiece, ("cls", "mean"), token_type_ids=False
    ),
    Family(
        "mpnet",
        MPNET_SPECIALS,
        MPNET_ROLES,
        wordpiece,
        ("cls", "mean", "pooler"),
        token_type_ids=False,
    ),
    Family("electra", BERT_SPECIALS, BERT_ROLES, wordpiece, ("cls", "mean"), "left"),
    Family("deberta-v2", BERT_SPECIALS, BERT_ROLES, unigram, ("cls", "mean")),
    Family(
        "modernbert", BERT_SPECIALS, BERT_ROLES, byte_bpe, ("cls", "mean"), token_type_ids=False
    ),
]
BY_NAME = {family.name: family for family in FAMILIES}


def model_config(family: str, vocab_size: int, pad_id: int, init: float = 0.02) -> Any:
    """A 2-layer, 32-wide config of the family (ELECTRA with a narrower 16-d embedding), its
    weights drawn with standard deviation ``init``."""
    import transformers as hf

    common = {"vocab_size": vocab_size, "pad_token_id": pad_id, "max_position_embeddings": 130}
    common["initializer_range"] = init
    if family == "distilbert":
        return hf.DistilBertConfig(dim=HIDDEN, n_layers=2, n_heads=2, hidden_dim=64, **common)
    if family == "modernbert":
        if not hasattr(hf, "ModernBertConfig"):
            pytest.skip("this transformers has no ModernBERT")
        return hf.ModernBertConfig(
            hidden_size=HIDDEN, global_attn_every_n_layers=2, local_attention=16, **SMALL, **common
        )
    if family == "deberta-v2":
        return hf.DebertaV2Config(
            hidden_size=HIDDEN,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            **SMALL,
            **common,
        )
    if family == "electra":
        return hf.ElectraConfig(hidden_size=HIDDEN, embedding_size=16, **SMALL, **common)
    configs = {"bert": hf.BertConfig, "roberta": hf.RobertaConfig, "mpnet": hf.MPNetConfig}
    return configs[family](hidden_size=HIDDEN, **SMALL, **common)


def build_teacher(folder: Path, family: Family, init: float = 0.02) -> Path:
    """Save a randomly initialised model and its tokenizer the way a hub folder holds them."""
    from transformers import AutoModel

    tokenizer = wrap(family.build_tokenizer(family.specials), family.specials, family.roles)
    tokenizer.padding_side = family.padding_side
    if not family.token_type_ids:
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = model_config(family.name, len(tokenizer), tokenizer.pad_token_id, init)
    AutoModel.from_config(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module", params=[f.name for f in FAMILIES])
def family_dir(request, tmp_path_factory) -> tuple[Family, Path]:
    family = BY_NAME[request.param]
    return family, build_teacher(tmp_path_factory.mktemp(family.name), family)


@pytest.fixture(scope="module", params=[f.name for f in FAMILIES])
def lively_dir(request, tmp_path_factory) -> tuple[Family, Path]:
    family = BY_NAME[request.param]
    folder = tmp_path_factory.mktemp(f"{family.name}-lively")
    return family, build_teacher(folder, family, LIVELY_INIT)


@pytest.fixture
def has_bf16(monkeypatch) -> None:
    """Let ``--precision bf16`` run whatever this CPU's flags (oneDNN emulates it if need be)."""
    monkeypatch.setattr(data_precision, "cpu_has_native_bf16", lambda: True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(tiny_corpus_lines(80)) + "\n", encoding="utf-8")
    return path


def encode(corpus: Path, out: Path, teacher: Path, *extra: str, precision: str = "fp32") -> Any:
    """`pipeline encode`, by default in float32: most tests compare with the float32 model
    (``--precision auto`` picks bf16 on a CPU with native bf16)."""
    common = ("--out", out, "--teacher", teacher, "--device", "cpu", "--precision", precision)
    return run_cli("encode", corpus, *common, *extra)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def stored(out: Path) -> tuple[np.ndarray, list[list[int]], list[str]]:
    vectors, ids, texts = [], [], []
    for path in shards.list_shard_files(out):
        with h5py.File(path, "r") as handle:
            vectors.append(handle["embedding"][()].astype(np.float32))
            ids += [row.tolist() for row in handle["input_ids"][()]]
            texts += [t.decode() for t in handle["text"][()]]
    return np.concatenate(vectors), ids, texts


def test_encode_train_load_encode(family_dir, corpus, tmp_path) -> None:
    family, teacher_dir = family_dir
    out = tmp_path / "shards"
    result = encode(corpus, out, teacher_dir, "--shard-size", "40", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    vectors, ids, texts = stored(out)
    assert vectors.shape == (80, HIDDEN) and np.isfinite(vectors).all()

    teacher = Teacher(str(teacher_dir))
    cls_id = teacher.tokenizer.convert_tokens_to_ids(family.roles["cls_token"])
    sep_id = teacher.tokenizer.convert_tokens_to_ids(family.roles["sep_token"])
    assert all(row[0] == cls_id and row[-1] == sep_id for row in ids), family.name
    np.testing.assert_allclose(vectors, teacher.encode(texts), atol=1e-5)

    student_dir = tmp_path / "student"
    result = train_cli(out, student_dir, "--max-steps", "3", "--val-every", "3")
    assert result.exit_code == 0, result.output
    student = Student.from_pretrained(student_dir)
    assert student.tokenize(texts) == ids  # the student sees the teacher's special tokens
    got = student.encode(texts[:7])
    assert got.shape == (7, HIDDEN) and np.isfinite(got).all()


def test_word_piece_initialisation_is_the_teachers_matrix(family_dir, corpus, tmp_path) -> None:
    from safetensors.torch import load_file

    from stage2_train.config import StudentConfig

    _, teacher_dir = family_dir
    out = tmp_path / "shards"
    assert encode(corpus, out, teacher_dir, "--shard-size", "80").exit_code == 0
    matrix = load_file(str(out / shards.INPUT_EMBEDDINGS))["weight"]
    teacher = Teacher(str(teacher_dir))
    assert torch.equal(matrix, teacher.model.get_input_embeddings().weight.detach())
    student = Student.untrained(StudentConfig(output_dim=HIDDEN), out / "tokenizer", matrix)
    assert torch.equal(student.embed.weight.detach(), matrix)
    assert student.pad_id == teacher.pad_id == teacher.tokenizer.pad_token_id


def test_batch_equals_each_text_alone_plain_and_packed(family_dir) -> None:
    family, teacher_dir = family_dir
    texts = tiny_corpus_lines(12)
    teacher = Teacher(str(teacher_dir))
    alone = np.concatenate([teacher.encode([t]) for t in texts])
    np.testing.assert_allclose(teacher.encode(texts), alone, atol=1e-5)
    assert teacher.pack_for_inference() > 0, f"{family.name}: oneDNN packing did not apply"
    np.testing.assert_allclose(teacher.encode(texts), alone, atol=1e-5)


def test_bf16_stays_within_cosine_of_float32(lively_dir, corpus, tmp_path, has_bf16) -> None:
    from safetensors.torch import load_file

    family, teacher_dir = lively_dir
    out = tmp_path / "shards"
    result = encode(corpus, out, teacher_dir, "--dtype", "float32", precision="bf16")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["teacher"]["precision"] == "bf16"
    got, _, texts = stored(out)
    float32 = Teacher(str(teacher_dir))
    want = float32.encode(texts)
    assert not np.array_equal(got, want), f"{family.name}: no bf16 arithmetic ran"
    assert cosines(got, want).min() >= BF16_COSINE, family.name
    # the embeddings stay float32 and are never rounded through bf16
    matrix = load_file(str(out / shards.INPUT_EMBEDDINGS))["weight"]
    assert torch.equal(matrix, float32.model.get_input_embeddings().weight.detach())


def without_autocast(monkeypatch) -> str:
    """MPNet's bf16 model without autocast: its float32 attention mask promotes the scores, which
    then meet bf16 values (the reported crash)."""
    monkeypatch.setattr(Teacher, "_autocast", lambda self: contextlib.nullcontext())
    return "same dtype"


def garbled(monkeypatch) -> str:
    """A bf16 cast that runs but shifts every token to its neighbour's embedding."""

    def cast(model: torch.nn.Module) -> None:
        to_bfloat16(model)
        embeddings = model.get_input_embeddings()
        embeddings.weight.data = embeddings.weight.data.roll(1, 0)

    monkeypatch.setattr(teacher_module, "to_bfloat16", cast)
    return "cosine"


@pytest.mark.parametrize(("name", "breakage"), [("mpnet", without_autocast), ("bert", garbled)])
def test_bf16_that_fails_its_probe(name, breakage, corpus, tmp_path, has_bf16, monkeypatch):
    """Refused in one line when bf16 was asked for; under auto, fp32 with a note."""
    teacher_dir = build_teacher(tmp_path / name, BY_NAME[name])
    symptom = breakage(monkeypatch)
    out = tmp_path / "shards"
    args = ["encode", corpus, "--out", out, "--teacher", teacher_dir, "--device", "cpu"]
    args += ["--dtype", "float32"]
    refused([*args, "--precision", "bf16"], name, "bf16 fails", symptom, "fp32", untouched=out)

    result = run_cli(*args)  # --precision auto: bf16 on this (patched) CPU, but not this model
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and name in notes[0] and symptom in notes[0], result.output
    assert json.loads((out / "manifest.json").read_text())["teacher"]["precision"] == "fp32"
    vectors, _, texts = stored(out)
    np.testing.assert_allclose(vectors, Teacher(str(teacher_dir)).encode(texts), atol=1e-5)
    # stage 3 loads teachers the same way and records what they run in
    assert load_encoder(str(teacher_dir), precision="bf16").describe()["precision"] == "fp32"


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_pooling_where_the_family_has_it(family_dir, corpus, tmp_path, pooling) -> None:
    family, teacher_dir = family_dir
    out = tmp_path / "shards"
    if pooling not in family.poolings:
        refused(
            ["encode", corpus, "--out", out, "--teacher", teacher_dir, "--pooling", pooling],
            family.name,
            "pooler",
            untouched=out,
        )
        return
    result = encode(corpus, out, teacher_dir, "--pooling", pooling, "--dtype", "float32")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["teacher"]["pooling"] == pooling
    vectors, ids, _ = stored(out)
    model = Teacher(str(teacher_dir)).model
    with torch.inference_mode():
        output = model(input_ids=torch.tensor([ids[5]]))
    hidden = output.last_hidden_state[0]
    expected = {"cls": hidden[0], "mean": hidden.mean(0)}.get(pooling)
    expected = output.pooler_output[0] if pooling == "pooler" else expected
    np.testing.assert_allclose(vectors[5], expected.numpy(), atol=1e-5)


def tiny_gpt2(folder: Path, tokenizer_source: Path) -> Path:
    """A decoder-only model with a working tokenizer: only its architecture is wrong."""
    from transformers import AutoTokenizer, GPT2Config, GPT2Model

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    tokenizer.save_pretrained(str(folder))
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=1, n_head=2)
    config.bos_token_id = config.eos_token_id = tokenizer.cls_token_id
    GPT2Model(config).save_pretrained(str(folder))
    return folder


def test_bad_teachers_are_refused_and_nothing_is_written(
    tmp_path, corpus, tiny_teacher_dir
) -> None:
    import shutil

    from tests.conftest import build_tiny_teacher

    out = tmp_path / "shards"
    args = ["encode", corpus, "--out", out, "--device", "cpu", "--teacher"]
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "README.md").write_text("just notes\n", encoding="utf-8")
    refused([*args, not_a_model], "not a model folder", untouched=out)

    no_tokenizer = tmp_path / "weights-only"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_teacher_dir / name, no_tokenizer / name)
    refused([*args, no_tokenizer], "bert", "no tokenizer files", untouched=out)

    gpt2 = tiny_gpt2(tmp_path / "gpt2", tiny_teacher_dir)
    refused([*args, gpt2], "gpt2", "decoder-only", untouched=out)

    t5 = shutil.copytree(tiny_teacher_dir, tmp_path / "t5")
    (t5 / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": HIDDEN}))
    refused([*args, t5], "t5", "encoder-decoder", untouched=out)

    assert run_cli(*args, tiny_teacher_dir).exit_code == 0
    wider = build_tiny_teacher(tmp_path / "wider", hidden=48)
    refused([*args, wider], "hidden_size", "32 here, 48", untouched=out)


def test_pooler_without_trained_weights_is_refused(tmp_path, corpus, tiny_teacher_dir) -> None:
    import shutil

    from transformers import BertModel

    headless = tmp_path / "headless"
    shutil.copytree(tiny_teacher_dir, headless)
    model = BertModel.from_pretrained(str(tiny_teacher_dir), add_pooling_layer=False)
    model.save_pretrained(str(headless))  # as a masked-LM checkpoint is saved: no pooler
    out = tmp_path / "shards"
    args = ["encode", corpus, "--out", out, "--teacher", headless, "--device", "cpu"]
    refused([*args, "--pooling", "pooler"], "bert", "no pooler weights", untouched=out)
    assert run_cli(*args, "--pooling", "cls").exit_code == 0


def test_tokenizer_of_another_model_is_refused(tmp_path, corpus, tiny_teacher_dir) -> None:
    import shutil

    mismatched = tmp_path / "mismatched"
    shutil.copytree(tiny_teacher_dir, mismatched)
    # a 400-token byte-level BPE beside a BERT whose embedding has 76 rows
    tokenizer = wrap(byte_bpe(ROBERTA_SPECIALS), ROBERTA_SPECIALS, ROBERTA_ROLES)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (mismatched / name).unlink(missing_ok=True)
    tokenizer.save_pretrained(str(mismatched))
    out = tmp_path / "shards"
    args = ["encode", corpus, "--out", out, "--teacher", mismatched, "--device", "cpu"]
    refused(args, "bert", "embeds only", untouched=out)


@pytest.mark.slow
def test_mpnet_stage1_equals_sentence_transformers(tmp_path, corpus_dir, has_bf16) -> None:
    """all-mpnet-base-v2 (``make mpnet``): stage 1, oneDNN-packed, gives the library's vectors;
    in bf16 (which once crashed on MPNet's float32 attention mask) within cosine 0.9999."""
    from bench.fetch_mpnet import FOLDER

    if not (FOLDER / "model.safetensors").is_file():
        pytest.skip(f"{FOLDER} absent (make mpnet fetches it)")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    with gzip.open(corpus_dir / "nltk_brown.txt.gz", "rt", encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip()][:200]
    text = tmp_path / "lines.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "shards"
    result = encode(text, out, FOLDER, "--dtype", "float32", "--max-length", "384")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())["teacher"]
    assert (manifest["pooling"], manifest["normalize"], manifest["hidden_size"]) == (
        "mean",
        True,
        768,
    )
    assert Teacher(str(FOLDER)).pack_for_inference() == 73  # every linear layer runs on oneDNN
    ours, _, texts = stored(out)
    reference = sentence_transformers.SentenceTransformer(str(FOLDER), device="cpu")
    theirs = reference.encode(texts, batch_size=32)
    cosine = cosines(ours, theirs)
    assert len(texts) == 200 and cosine.min() >= 0.9999, cosine.min()

    bf16_out = tmp_path / "bf16"
    args = ("--dtype", "float32", "--max-length", "384")
    result = encode(text, bf16_out, FOLDER, *args, precision="bf16")
    assert result.exit_code == 0, result.output
    assert json.loads((bf16_out / "manifest.json").read_text())["teacher"]["precision"] == "bf16"
    bf16, _, _ = stored(bf16_out)
    assert cosines(bf16, ours).min() >= 0.9999, cosines(bf16, ours).min()
