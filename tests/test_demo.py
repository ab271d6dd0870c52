"""`make demo` end to end on a small slice: every stage runs, the report and summary appear,
and a second run resumes instead of redoing the work.

Both corpus sources are covered explicitly: a ``.txt.gz`` file through ``CORPUS=`` (runs
wherever the shared corpus is), and the default WordNet extract (where WordNet is installed), so
the outcome never depends on what the machine happens to have."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.wordnet import WORDNET_DIR

ROOT = Path(__file__).resolve().parents[1]


def run_demo(run: Path, corpus: Path | None) -> None:
    """Run the demo twice on 300 rows and check the summary, then that the second run resumes."""
    env = {
        **os.environ,
        "RUN": str(run),
        "DEMO_ROWS": "300",
        "TRAIN_MINUTES": "0.2",
        "VAL_FRACTION": "0.1",
        "PIPELINE": str(Path(sys.executable).with_name("pipeline")),
        "GLUE_DIR": "none",  # the GLUE steps have their own tests; keep this one short
    }
    env.pop("CORPUS", None)
    if corpus is not None:
        env["CORPUS"] = str(corpus)
    command = ["bash", str(ROOT / "examples" / "demo.sh")]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "stage 1: encoding 300 texts" in first.stdout
    lines = first.stdout.splitlines()
    report = run / "report.html"
    assert report.is_file() and f"report -> {report.resolve()}" in lines
    summary = lines[lines.index(f"report -> {report.resolve()}") - 5 :][:5]
    assert summary[0].startswith("rows encoded: 300")
    assert summary[3].startswith("kNN recall@10: 0.")
    assert "GLUE_DIR not set" in first.stdout

    second = subprocess.run(command, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 shard(s) written, 1 already complete" in second.stdout
    assert "kNN probe" not in second.stdout  # finished evaluations are not redone


@pytest.mark.slow
def test_demo_on_a_gzip_corpus(tmp_path, embedded_teacher_dir, corpus_dir):
    corpus = corpus_dir / "nltk_inaugural.txt.gz"
    run_demo(tmp_path / "demo", corpus)
    sample = (tmp_path / "demo" / "corpus-300.txt").read_text(encoding="utf-8")
    assert len(sample.splitlines()) == 300 and "\0" not in sample  # decompressed, not gzip bytes


@pytest.mark.slow
@pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(),
    reason=f"WordNet not installed at {WORDNET_DIR} (apt-get install wordnet-base)",
)
def test_demo_on_wordnet(tmp_path, embedded_teacher_dir):
    run_demo(tmp_path / "demo", None)
    assert (tmp_path / "demo" / "wordnet.txt").is_file()
