"""Streaming readers for plain-text corpora (``.txt`` / ``.txt.gz``, one text per line).

Line numbers are global across the files of a corpus (files in the order given, a directory's
files sorted by name) and count blank lines too, so that a line number identifies a text whatever
else is skipped; stage 1 derives each line's shard from it.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data.errors import PipelineError
from data.files import describe_os_error

TEXT_SUFFIXES = (".txt", ".txt.gz")
_SNIFF_BYTES = 8192


@dataclass
class LineStats:
    """What the reader dropped or repaired, reported in the shard manifest."""

    blank: int = 0
    invalid_utf8: int = 0

    def add(self, other: LineStats) -> None:
        self.blank += other.blank
        self.invalid_utf8 += other.invalid_utf8


@dataclass(frozen=True)
class CorpusFingerprint:
    """Identity of a corpus: its files, the sha256 of their bytes in order, and the line count."""

    paths: list[str] = field(hash=False)
    sha256: str
    lines: int


def resolve_corpus(inputs: list[str | Path]) -> list[Path]:
    """Expand files and directories into the ordered list of text files of a corpus.

    Refuses, before any expensive work starts, paths that do not exist, directories without
    text files, binary files and corpora with no non-blank line.
    """
    if not inputs:
        raise PipelineError("no corpus given")
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_text_name(p))
            if not found:
                raise PipelineError(f"{path}: directory holds no .txt or .txt.gz files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise PipelineError(
                f"{path}: not a regular file (a device, pipe or socket); the corpus is read more "
                "than once, so give a .txt or .txt.gz file or a directory of them"
            )
        else:
            raise PipelineError(f"{path}: no such file or directory")
    for path in files:
        _check_not_binary(path)
    if next(iter_lines(files), None) is None:
        raise PipelineError(f"{', '.join(map(str, files))}: empty corpus (no non-blank line)")
    return files


def _is_text_name(path: Path) -> bool:
    return path.name.endswith(TEXT_SUFFIXES)


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


@contextlib.contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """A file that cannot be read (permissions, a corrupt or truncated gzip stream) is one line.

    A damaged deflate stream raises ``zlib.error``, a cut one ``EOFError``, a bad header or
    checksum ``gzip.BadGzipFile`` (an ``OSError``): all name the file, none is a traceback.
    """
    try:
        yield
    except OSError as exc:
        raise PipelineError(f"cannot read {describe_os_error(exc, path)}") from None
    except (EOFError, zlib.error) as exc:
        reason = str(exc) or "compressed stream ends early"
        raise PipelineError(f"cannot read {path}: corrupt compressed data ({reason})") from None


def _check_not_binary(path: Path) -> None:
    """Refuse files that are not text: NUL bytes in the first block, or a broken gzip stream."""
    with _read_errors(path), _open_bytes(path) as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise PipelineError(f"{path}: looks like a binary file (NUL bytes), not one text per line")


def _check_no_nul(data: bytes, path: Path, lines_before: int) -> None:
    """Refuse a NUL byte past the first block too: no text holds one, and HDF5 cannot store a
    text with one (stage 1 failed after writing its manifest). Named by corpus line."""
    at = data.find(b"\x00")
    if at >= 0:
        line = lines_before + data[:at].count(b"\n") + 1
        raise PipelineError(
            f"{path}: NUL byte at corpus line {line}; not a text file there "
            "(remove NUL bytes, e.g. with tr -d '\\000')"
        )


def iter_lines(
    files: list[Path], *, strict: bool = False, stats: LineStats | None = None
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every non-blank line of the corpus, in order.

    Invalid UTF-8 is replaced (U+FFFD) and counted, or raises with the line number when
    ``strict``. A UTF-8 byte-order mark and CR line ends are removed.
    """
    stats = stats if stats is not None else LineStats()
    number = 0
    for path in files:
        with _read_errors(path), _open_bytes(path) as handle:
            for raw in handle:
                _check_no_nul(raw, path, number)
                text = _decode(raw, path, number, strict, stats)
                if number == 0 or raw.startswith(b"\xef\xbb\xbf"):
                    text = text.lstrip("\ufeff")
                text = text.rstrip("\r\n").strip()
                if text:
                    yield number, text
                else:
                    stats.blank += 1
                number += 1


def _decode(raw: bytes, path: Path, number: int, strict: bool, stats: LineStats) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if strict:
            raise PipelineError(
                f"{path}: invalid UTF-8 at corpus line {number + 1} (byte {exc.start}); "
                "drop --strict to replace it"
            ) from None
        stats.invalid_utf8 += 1
        return raw.decode("utf-8", errors="replace")


def fingerprint(files: list[Path], *, strict: bool = False) -> CorpusFingerprint:
    """Hash the corpus bytes and count its lines in one streaming pass.

    With ``strict`` the same pass checks that every byte is valid UTF-8, so that ``--strict``
    fails before any output is written rather than when the reader reaches the bad line; a NUL
    byte is refused in the same pass, always.
    """
    digest = hashlib.sha256()
    lines = 0
    last = b"\n"
    for path in files:
        decoder = codecs.getincrementaldecoder("utf-8")() if strict else None
        with _read_errors(path), _open_bytes(path) as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                if decoder is not None:
                    _check_utf8(decoder, block, path, lines)
                _check_no_nul(block, path, lines)
                digest.update(block)
                lines += block.count(b"\n")
                last = block[-1:]
        if decoder is not None:
            _check_utf8(decoder, b"", path, lines, final=True)
        if last != b"\n":
            lines += 1  # a final line without newline still counts
            last = b"\n"
    return CorpusFingerprint([str(p) for p in files], digest.hexdigest(), lines)


def _check_utf8(
    decoder: codecs.IncrementalDecoder,
    block: bytes,
    path: Path,
    lines_before: int,
    final: bool = False,
) -> None:
    pending = len(decoder.getstate()[0])  # bytes of a character split across blocks
    try:
        decoder.decode(block, final)
    except UnicodeDecodeError as exc:
        line = lines_before + block[: max(0, exc.start - pending)].count(b"\n") + 1
        raise PipelineError(
            f"{path}: invalid UTF-8 at corpus line {line}; drop --strict to replace it"
        ) from None
