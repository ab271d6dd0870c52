"""`make demo` end to end on a small slice: every stage runs, the report and summary appear,
and a second run resumes instead of redoing the work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.wordnet import WORDNET_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_on_a_small_slice(tmp_path, embedded_teacher_dir, corpus_dir):
    env = {
        **os.environ,
        "RUN": str(tmp_path / "demo"),
        "DEMO_ROWS": "300",
        "TRAIN_MINUTES": "0.2",
        "VAL_FRACTION": "0.1",
        "PIPELINE": str(Path(sys.executable).with_name("pipeline")),
    }
    env["GLUE_DIR"] = "none"  # the GLUE steps have their own tests; keep this one short
    if not (WORDNET_DIR / "data.noun").is_file():
        env["CORPUS"] = str(corpus_dir / "nltk_inaugural.txt.gz")
    command = ["bash", str(ROOT / "examples" / "demo.sh")]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    lines = first.stdout.splitlines()
    report = tmp_path / "demo" / "report.html"
    assert report.is_file() and f"report -> {report.resolve()}" in lines
    summary = lines[lines.index(f"report -> {report.resolve()}") - 5 :][:5]
    assert summary[0].startswith("rows encoded: 300")
    assert summary[3].startswith("kNN recall@10: 0.")
    assert "GLUE_DIR not set" in first.stdout

    second = subprocess.run(command, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 shard(s) written, 1 already complete" in second.stdout
    assert "kNN probe" not in second.stdout  # finished evaluations are not redone
