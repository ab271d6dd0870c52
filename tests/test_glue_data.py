"""GLUE readers: every task's layout (synthetic files written exactly like GLUE's), errors, hub."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from data.errors import PipelineError
from data.glue import TASKS, load_task, read_tsv, resolve_tasks, split_from_hf

MNLI_LABELS = ("entailment", "neutral", "contradiction")
PAIR = ("sentence1", "sentence2")
MNLI_HEAD = (
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
)
STSB_HEAD = (
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
)


def sentence(i: int, positive: bool) -> str:
    """A short sentence whose sentiment word decides the synthetic label."""
    from tests.conftest import WORDS

    word = "good" if positive else "bad"
    filler = " ".join(WORDS[(i * 7 + j) % 30] for j in range(2 + i % 4))
    return f"the {word} {filler}"


def _write(path: Path, rows: list[list[str]], bom: bool = False, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("\ufeff" if bom else "") + "\n".join("\t".join(r) for r in rows) + "\n"
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def write_glue_dir(root: Path, rows: int = 24, skip: tuple[str, ...] = ()) -> Path:
    """All nine tasks in the layout of download_glue_data.py (MNLI train gzipped).

    The label is learnable: 1 (or entailment, or a high score) when the sentence says "good".
    """

    def pairs(split: str):
        for i in range(rows):
            positive = i % 2 == 0
            yield (
                i,
                sentence(i + (split == "dev") * 100, positive),
                sentence(i + 50, True),
                positive,
            )

    def test_rows():
        for i in range(rows // 2):
            yield i, sentence(i + 200, i % 3 == 0), sentence(i + 250, True)

    for split in ("train", "dev"):
        if "cola" not in skip:
            _write(
                root / "CoLA" / f"{split}.tsv",
                [["gj04", str(int(p)), "" if p else "*", a] for _, a, _, p in pairs(split)],
            )
        if "sst2" not in skip:
            _write(
                root / "SST-2" / f"{split}.tsv",
                [["sentence", "label"], *([a + " ", str(int(p))] for _, a, _, p in pairs(split))],
            )
        if "mrpc" not in skip:
            _write(
                root / "MRPC" / f"{split}.tsv",
                [
                    ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                    *(
                        [str(int(p)), str(1000 + i), str(2000 + i), a, b]
                        for i, a, b, p in pairs(split)
                    ),
                ],
                bom=True,
            )
        if "stsb" not in skip:
            _write(
                root / "STS-B" / f"{split}.tsv",
                [
                    [*STSB_HEAD, "score"],
                    *(
                        [
                            str(i),
                            "main-news",
                            "MSRvid",
                            "2012",
                            f"{i:04d}",
                            "none",
                            "none",
                            a,
                            b,
                            f"{4.5 if p else 0.5 + i % 3 * 0.25:.3f}",
                        ]
                        for i, a, b, p in pairs(split)
                    ),
                ],
            )
        if "qqp" not in skip:
            _write(
                root / "QQP" / f"{split}.tsv",
                [
                    ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                    *(
                        [str(i), str(2 * i), str(2 * i + 1), a, b, str(int(p))]
                        for i, a, b, p in pairs(split)
                    ),
                ],
            )
        for folder, head in (
            ("QNLI", ("index", "question", "sentence")),
            ("RTE", ("index", "sentence1", "sentence2")),
            ("WNLI", ("index", "sentence1", "sentence2")),
        ):
            if folder.lower() in skip:
                continue
            yes, no = ("1", "0") if folder == "WNLI" else ("entailment", "not_entailment")
            _write(
                root / folder / f"{split}.tsv",
                [
                    [*head, "label"],
                    *([str(i), a, b, yes if p else no] for i, a, b, p in pairs(split)),
                ],
            )
    if "mnli" not in skip:
        _write(
            root / "MNLI" / "train.tsv",
            [
                [*MNLI_HEAD, "label1", "gold_label"],
                *(
                    [
                        str(i),
                        "1",
                        f"{i}e",
                        "fiction",
                        "(",
                        "(",
                        "(",
                        "(",
                        a,
                        b,
                        MNLI_LABELS[i % 3],
                        MNLI_LABELS[i % 3],
                    ]
                    for i, a, b, _ in pairs("train")
                ),
            ],
            gz=True,
        )
        for stem in ("dev_matched", "dev_mismatched"):
            _write(
                root / "MNLI" / f"{stem}.tsv",
                [
                    [*MNLI_HEAD, *(f"label{k}" for k in range(1, 6)), "gold_label"],
                    *(
                        [
                            str(i),
                            "1",
                            f"{i}e",
                            "fiction",
                            "(",
                            "(",
                            "(",
                            "(",
                            a,
                            b,
                            *[MNLI_LABELS[i % 3]] * 5,
                            MNLI_LABELS[i % 3],
                        ]
                        for i, a, b, _ in pairs("dev")
                    ),
                ],
            )
            _write(
                root / "MNLI" / f"{stem.replace('dev', 'test')}.tsv",
                [
                    list(MNLI_HEAD),
                    *(
                        [str(i), "1", f"{i}e", "fiction", "(", "(", "(", "(", a, b]
                        for i, a, b in test_rows()
                    ),
                ],
            )
    tests = {
        "CoLA": ("index", "sentence"),
        "SST-2": ("index", "sentence"),
        "MRPC": ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        "QQP": ("id", "question1", "question2"),
        "QNLI": ("index", "question", "sentence"),
        "RTE": ("index", *PAIR),
        "WNLI": ("index", *PAIR),
    }
    for folder, head in tests.items():
        if folder.lower().replace("-", "") in skip:
            continue
        rows_out = []
        for i, a, b in test_rows():
            values = {"index": str(i), "id": str(i), "#1 ID": "1", "#2 ID": "2"}
            texts = iter((a, b))
            rows_out.append([values.get(c) or next(texts) for c in head])
        _write(root / folder / "test.tsv", [list(head), *rows_out])
    return root


@pytest.fixture
def single_thread():
    """Tiny models run ~100x faster on one thread when the shared CPU is oversubscribed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def glue_root(tmp_path: Path) -> Path:
    return write_glue_dir(tmp_path / "glue")


def test_every_task_reads_train_dev_and_test(glue_root: Path):
    for task in TASKS.values():
        data = load_task(task, glue_root)
        assert data.runnable, task.name
        assert len(data.train) == 24
        assert [s.name for s in data.evals] == [e.name for e in task.evals]
        assert all(len(s) == 24 and s.labels is not None for s in data.evals)
        assert (data.train.text_b is not None) == task.is_pair
        if task.name != "stsb":  # GLUE hides STS-B's test file; the synthetic dir has none
            assert [len(s) for s in data.tests] == [12] * len(task.tests)
            assert all(s.labels is None for s in data.tests)


def test_labels_are_mapped_by_name_and_position(glue_root: Path):
    cola = load_task(TASKS["cola"], glue_root).train  # header-less: label in column 2
    assert cola.labels.tolist()[:4] == [1, 0, 1, 0]
    assert cola.text_a[0].startswith("the good")
    mrpc = load_task(TASKS["mrpc"], glue_root).train  # header starts with a byte-order mark
    assert mrpc.labels.tolist()[:2] == [1, 0]
    mnli = load_task(TASKS["mnli"], glue_root)  # train gzipped, 12 columns; dev 16 columns
    assert mnli.train.source.endswith("train.tsv.gz")
    assert mnli.train.labels.tolist()[:3] == [0, 1, 2]
    assert mnli.evals[1].labels.tolist()[:3] == [0, 1, 2]
    rte = load_task(TASKS["rte"], glue_root).train
    assert rte.labels.tolist()[:2] == [0, 1]  # entailment is id 0, as on the hub
    wnli = load_task(TASKS["wnli"], glue_root).train
    assert wnli.labels.tolist()[:2] == [1, 0]
    stsb = load_task(TASKS["stsb"], glue_root).train
    assert stsb.labels.dtype == np.float32 and stsb.labels[0] == pytest.approx(4.5)
    qqp_test = load_task(TASKS["qqp"], glue_root).tests[0]
    assert qqp_test.index[:3] == ["0", "1", "2"]  # QQP's test ids are in column "id"


def test_missing_task_is_reported_not_read(tmp_path: Path):
    root = write_glue_dir(tmp_path / "glue", skip=("qqp", "mnli"))
    data = load_task(TASKS["qqp"], root)
    assert not data.runnable
    assert any(m.endswith("QQP/train.tsv") for m in data.missing)
    assert load_task(TASKS["sst2"], root).runnable


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sentence\tlabel\nfine movie\t1\nbroken row\n", "train.tsv:3: expected 2 tab-separated"),
        ("sentence\tlabel\nfine movie\t1\nbad\t7\n", "train.tsv:3: label '7' is not one of 0, 1"),
        ("text\tlabel\nfine movie\t1\n", "train.tsv:1: header has no column 'sentence'"),
    ],
)
def test_bad_file_names_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "SST-2" / "train.tsv"
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PipelineError, match=message.replace("(", r"\(")):
        read_tsv(path, TASKS["sst2"], TASKS["sst2"].labelled, "train")


def test_bad_score_and_headerless_width(tmp_path: Path):
    stsb = tmp_path / "dev.tsv"
    stsb.write_text(
        "\t".join([*STSB_HEAD, "score"]) + "\n" + "\t".join(["0"] * 7 + ["a", "b", "high"]) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(PipelineError, match=r"dev.tsv:2: score 'high' is not a number"):
        read_tsv(stsb, TASKS["stsb"], TASKS["stsb"].labelled, "stsb")
    cola = tmp_path / "cola.tsv"
    cola.write_text("gj04\t1\t\tfine\ngj04\t1\tfine\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"cola.tsv:2: expected 4 tab-separated columns"):
        read_tsv(cola, TASKS["cola"], TASKS["cola"].labelled, "cola")


def test_resolve_tasks_aliases_and_errors():
    assert [t.name for t in resolve_tasks("SST-2, sts-b,CoLA,sst2")] == ["sst2", "stsb", "cola"]
    assert len(resolve_tasks("all")) == 9
    with pytest.raises(PipelineError, match="unknown GLUE task 'squad'"):
        resolve_tasks("cola,squad")


def test_hub_splits_convert_like_files():
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_dict(
        {"premise": ["a b", "c d"], "hypothesis": ["e", "f"], "label": [2, 0], "idx": [0, 1]}
    )
    test = datasets.Dataset.from_dict(
        {"premise": ["g"], "hypothesis": ["h"], "label": [-1], "idx": [7]}
    )
    split = split_from_hf(TASKS["mnli"], train, "train", "hf:glue/mnli/train")
    assert split.text_b == ["e", "f"] and split.labels.tolist() == [2, 0]
    assert TASKS["mnli"].labels[2] == "contradiction"  # the hub's id order
    unlabelled = split_from_hf(TASKS["mnli"], test, "mnli-m", "hf:glue/mnli/test_matched")
    assert unlabelled.labels is None and unlabelled.index == ["7"]


def test_sample_is_fixed_and_keeps_order(glue_root: Path):
    train = load_task(TASKS["sst2"], glue_root).train
    first, again = train.sample(10), train.sample(10)
    assert first.text_a == again.text_a and len(first) == 10
    rows = [train.text_a.index(t) for t in first.text_a]
    assert rows == sorted(rows)
    assert train.sample(None) is train


def test_real_glue_files_have_the_official_counts(glue_dir: Path):
    counts = {
        "cola": (8551, [1043]),
        "sst2": (67349, [872]),
        "mrpc": (3668, [408]),
        "stsb": (5749, [1500]),
        "rte": (2490, [277]),
        "wnli": (635, [71]),
    }
    for name, (train, dev) in counts.items():
        data = load_task(TASKS[name], glue_dir)
        assert len(data.train) == train and [len(s) for s in data.evals] == dev, name
    label_counts = {
        "cola": [2528, 6023],
        "sst2": [29780, 37569],
        "mrpc": [1194, 2474],
        "rte": [1249, 1241],
        "wnli": [323, 312],
    }  # SOURCES.md; RTE: entailment first
    for name, counts in label_counts.items():
        assert np.bincount(load_task(TASKS[name], glue_dir).train.labels).tolist() == counts
    qnli = load_task(TASKS["qnli"], glue_dir)
    assert qnli.train is None and len(qnli.evals[0]) == 5463
    assert np.bincount(qnli.evals[0].labels).tolist() == [2702, 2761]
