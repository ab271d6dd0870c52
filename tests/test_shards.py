"""The shard store: atomic writes, verification, deterministic validation rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data import manifest, shards
from data.errors import PipelineError


def _data(rows: int, dim: int = 4, first_line: int = 0) -> shards.ShardData:
    """``rows`` rows of every other corpus line from ``first_line`` (within one shard of 10)."""
    rng = np.random.default_rng(0)
    return shards.ShardData(
        embedding=rng.standard_normal((rows, dim)).astype(np.float32),
        input_ids=[np.arange(2 + i % 5, dtype=np.int32) for i in range(rows)],
        text=[f"text ü {i}" for i in range(rows)],
        line=first_line + np.arange(rows, dtype=np.int64) * 2,
    )


def _manifest(count: int = 2) -> dict:
    return {
        "format_version": manifest.FORMAT_VERSION,
        "teacher": {
            "name_or_path": "t",
            "weights_sha256": "w",
            "hidden_size": 4,
            "pooling": "mean",
            "normalize": False,
            "max_length": 16,
        },
        "corpus": {"paths": ["c"], "sha256": "x", "lines": 20},
        "dtype": "float16",
        "shard_size": 10,
        "num_shards": count,
        "dedup": False,
    }


def _write(directory: Path, index: int, rows: int = 5) -> Path:
    name = shards.shard_name(index, 2)
    attrs = manifest.shard_attrs(_manifest())
    data = _data(rows, first_line=index * _manifest()["shard_size"])
    record = shards.write_shard(directory, name, data, attrs, "float16")
    manifest.record_shard(directory, record)
    return directory / name


def test_round_trip_and_no_temporaries(tmp_path: Path) -> None:
    manifest.init_manifest(tmp_path, _manifest())
    path = _write(tmp_path, 0)
    back = shards.read_shard(path)
    original = _data(5)
    np.testing.assert_array_equal(back.embedding, original.embedding.astype(np.float16))
    assert back.text == original.text
    assert [list(x) for x in back.input_ids] == [list(x) for x in original.input_ids]
    np.testing.assert_array_equal(back.line, original.line)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_verify_reports_missing_then_ok(tmp_path: Path) -> None:
    manifest.init_manifest(tmp_path, _manifest())
    _write(tmp_path, 0)
    report = shards.verify(tmp_path)
    assert report.missing == ["shard-00001-of-00002.h5"] and not report.ok
    _write(tmp_path, 1, rows=3)
    report = shards.verify(tmp_path)
    assert report.ok and report.rows == 8


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_verify_and_store_detect_damage(tmp_path: Path, damage: str) -> None:
    manifest.init_manifest(tmp_path, _manifest())
    path = _write(tmp_path, 0)
    _write(tmp_path, 1)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    report = shards.verify(tmp_path)
    assert not report.ok and "checksum" in report.bad[0]
    with pytest.raises(PipelineError, match="checksum"):
        shards.ShardStore(tmp_path)


def test_other_run_is_refused_with_the_field_named(tmp_path: Path) -> None:
    manifest.init_manifest(tmp_path, _manifest())
    other = _manifest()
    other["teacher"] = {**other["teacher"], "name_or_path": "other-teacher"}
    with pytest.raises(PipelineError, match=r"teacher\.name_or_path"):
        manifest.init_manifest(tmp_path, other)
    manifest.init_manifest(tmp_path, _manifest())  # the same run is welcome


def test_validation_rows_are_deterministic_and_near_fraction() -> None:
    lines = np.arange(200_000)
    held = shards.is_validation(lines, 0.01)
    assert 0.008 < held.mean() < 0.012
    np.testing.assert_array_equal(held[5000:6000], shards.is_validation(lines[5000:6000], 0.01))
    assert not shards.is_validation(lines, 0.0).any()


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not a shard directory"):
        shards.ShardStore(tmp_path)


def test_first_shards_reads_a_finished_prefix_only(tmp_path: Path) -> None:
    manifest.init_manifest(tmp_path, _manifest())
    _write(tmp_path, 0)  # shard 1 is still being encoded
    with pytest.raises(PipelineError, match="1 shard"):
        shards.ShardStore(tmp_path)
    store = shards.ShardStore(tmp_path, first_shards=1)
    assert [p.name for p in store.paths] == ["shard-00000-of-00002.h5"]
    assert (store.rows, store.total_shards) == (5, 2)
    with pytest.raises(PipelineError, match="lower --first-shards"):
        shards.ShardStore(tmp_path, first_shards=2)
    with pytest.raises(PipelineError, match=r"out of range 1\.\.2"):
        shards.ShardStore(tmp_path, first_shards=3)
    _write(tmp_path, 1, rows=3)  # stage 1 finishing changes neither the prefix nor its rows
    assert shards.ShardStore(tmp_path, first_shards=1).rows == 5
    assert shards.ShardStore(tmp_path).rows == 8
