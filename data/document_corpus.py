"""``pipeline corpus``: documents -> one sentence per line in gzip parts that ``encode`` reads.

The build runs in three streaming passes, so memory stays bounded by one bucket whatever the
corpus size:

1. **split**: each source's documents are cut into sentences (``data.sentences``), normalised
   and filtered; each kept sentence goes to one of ``BUCKETS`` temporary files chosen by its
   key, a seeded 64-bit hash of its folded form.
2. **dedup**: each bucket is sorted by key; duplicates (same folded form) always share a key,
   hence a bucket, and only the first occurrence in input order stays.
3. **write**: the buckets are read in order, so the corpus is sorted by key: a shuffle fixed by
   ``--seed`` in which any prefix of parts is a uniform sample. With ``--weight`` each source
   is capped at its share of the mix: the first sentences in that order, again uniform.

Everything is built in a hidden sibling of ``--out`` and moved in at the end (``stats.json``
first, then the parts): an interrupted run leaves the earlier corpus or nothing, and a re-run
writes byte-identical parts. ``stats.json`` marks the folder as this command's.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from data.documents import TXT_DOCUMENTS, Source, read_documents
from data.errors import PipelineError
from data.files import (
    earlier_output,
    os_errors,
    remove,
    remove_stale_temporaries,
    sha256_file,
    temporary_sibling,
    write_text,
)
from data.progress import progress_bar
from data.sentences import (
    DROP_REASONS,
    LINE_BREAKS,
    SentenceRules,
    SentenceSplitter,
    fold,
    paragraphs,
)

STATS = "stats.json"
WRITTEN_BY = "pipeline corpus"
BUCKETS = 256  # a corpus of 100M sentences holds ~400k (about 100 MB) in memory at a time
_BUCKET_SHIFT = 64 - 8  # a key's top 8 bits name its bucket: bucket order is key order
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class CorpusOptions:
    """Everything that shapes the corpus besides its sources; recorded in ``stats.json``."""

    seed: int = 0
    part_size: int = 60_000
    column: str = "text"
    txt_documents: str = "blank-line"
    line_breaks: str = "space"
    rules: SentenceRules = field(default_factory=SentenceRules)
    weights: dict[str, float] = field(default_factory=dict)

    def check(self, sources: list[Source]) -> None:
        """Refuse choices outside their lists, empty bounds and weights that name no source or
        leave a source out."""
        if self.txt_documents not in TXT_DOCUMENTS:
            raise PipelineError(f"txt_documents {self.txt_documents!r}: not one of {TXT_DOCUMENTS}")
        if self.line_breaks not in LINE_BREAKS:
            raise PipelineError(f"line_breaks {self.line_breaks!r}: not one of {LINE_BREAKS}")
        self.rules.check()
        names = [source.name for source in sources]
        for name, weight in self.weights.items():
            if name not in names:
                raise PipelineError(
                    f"--weight {name}: no such source (sources: {', '.join(names)})"
                )
            if not (math.isfinite(weight) and weight > 0):
                raise PipelineError(f"--weight {name}={weight}: a weight is a positive number")
        missing = [name for name in names if self.weights and name not in self.weights]
        if missing:
            raise PipelineError(
                f"--weight given for {', '.join(self.weights)} but not for "
                f"{', '.join(missing)}: weight every source or none"
            )

    def record(self) -> dict[str, Any]:
        """The options as JSON values (the rules nested)."""
        return asdict(self)


@dataclass
class SourceStats:
    """One source's counts: ``sentences`` = dropped + duplicates + over_weight + kept."""

    documents: int = 0
    sentences: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    duplicates: int = 0
    over_weight: int = 0
    kept: int = 0


@dataclass
class CorpusSummary:
    lines: int
    parts: list[str]
    sources: dict[str, SourceStats]


def build_corpus(
    sources: list[Source], out: Path, options: CorpusOptions, *, overwrite: bool = False
) -> CorpusSummary:
    """Build the corpus of ``sources`` in ``out`` (see the module docstring)."""
    options.check(sources)
    check_apart(out, sources)
    identity = _identity(sources, options)
    previous = claim_output(out, identity, overwrite)
    splitter = SentenceSplitter()
    with os_errors(out.parent, "cannot create"):
        out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent, out.name)
    stats = {source.name: SourceStats() for source in sources}
    with _staging(out) as staging:
        buckets = [staging / f"bucket-{index:03d}" for index in range(BUCKETS)]
        _split_into_buckets(sources, options, splitter, buckets, stats)
        _dedup_buckets(buckets, sources, stats)
        quotas = mix_quotas({name: s.kept for name, s in stats.items()}, options.weights)
        staged = _write_parts(buckets, sources, quotas, options.part_size, staging, stats)
        parts = _publish(out, staged, identity, stats, previous)
    return CorpusSummary(sum(s.kept for s in stats.values()), parts, stats)


def check_apart(out: Path, sources: list[Source]) -> None:
    """Refuse an ``--out`` inside a source folder (a re-run would read its own parts) or a
    source inside ``--out``."""
    target = Path(out).resolve()
    for source in sources:
        if source.root is None:
            continue
        root = source.root.resolve()
        if target.is_relative_to(root) or root.is_relative_to(target):
            raise PipelineError(
                f"--out {out} and the documents {source.root} overlap; "
                "choose an --out outside the documents"
            )


def _identity(sources: list[Source], options: CorpusOptions) -> dict[str, Any]:
    """What a re-run into the same ``--out`` must repeat to replace it without --overwrite."""
    return {
        "options": options.record(),
        "inputs": {source.name: source.describe() for source in sources},
    }


def claim_output(out: Path, identity: dict[str, Any], overwrite: bool) -> list[str]:
    """The parts an earlier run wrote in ``out`` (none if it is absent or empty), after
    refusing a folder this command did not write, or one built otherwise without --overwrite."""
    if not earlier_output(out, STATS, "a corpus folder", dot_files_count=False):
        return []
    recorded = read_stats(out)
    for key in ("inputs", "options"):
        if recorded.get(key) != identity[key] and not overwrite:
            difference = _first_difference(recorded.get(key), identity[key])
            raise PipelineError(
                f"{out}: holds a corpus of other {key} ({difference}); "
                "pass --overwrite to replace it, or use another --out"
            )
    return [part["file"] for part in recorded.get("parts", [])]


def read_stats(out: Path) -> dict[str, Any]:
    """``out/stats.json`` if ``pipeline corpus`` wrote it; anything else is one line."""
    path = Path(out) / STATS
    with os_errors(path, "cannot read"):
        text = path.read_text(encoding="utf-8")
    try:
        recorded = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        recorded = None
    if not isinstance(recorded, dict) or recorded.get("written_by") != WRITTEN_BY:
        raise PipelineError(
            f"{path}: not written by {WRITTEN_BY}; use another --out (its folder is left alone)"
        )
    return recorded


def _first_difference(there: Any, here: Any, where: str = "") -> str:
    if isinstance(there, dict) and isinstance(here, dict):
        for key in sorted(set(there) | set(here)):
            if there.get(key) != here.get(key):
                return _first_difference(there.get(key), here.get(key), f"{where}{key}.")
    return f"{where.rstrip('.') or 'value'}: {there!r} there, {here!r} here"


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden sibling folder of ``out`` for buckets and parts, removed however the run ends.
    Its files have no ``.txt`` suffix, so ``encode`` never mistakes them for a corpus."""
    folder = temporary_sibling(out)
    remove(folder)
    try:
        with os_errors(folder, "cannot create"):
            folder.mkdir()
        yield folder
    finally:
        remove(folder)


def _key(folded: str, seed: int) -> int:
    """The seeded 64-bit hash that places a sentence: its bucket and its rank in the shuffle."""
    digest = hashlib.blake2b(f"{seed}\0{folded}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _split_into_buckets(
    sources: list[Source],
    options: CorpusOptions,
    splitter: SentenceSplitter,
    buckets: list[Path],
    stats: dict[str, SourceStats],
) -> None:
    """Pass 1: every kept sentence as ``key, order, source, sentence`` into its bucket."""
    order = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(os_errors(buckets[0].parent))  # the inputs' errors are their own
        handles = [stack.enter_context(path.open("w", encoding="utf-8")) for path in buckets]
        bar = stack.enter_context(progress_bar(desc="corpus: split", unit="sent"))
        for index, source in enumerate(sources):
            counts = stats[source.name]
            texts = _paragraph_stream(source, options, counts)
            for sentence, _ in splitter.split(texts):
                counts.sentences += 1
                bar.update(1)
                reason = options.rules.drop_reason(sentence)
                if reason is not None:
                    counts.dropped[reason] += 1
                    continue
                key = _key(fold(sentence), options.seed)
                handles[key >> _BUCKET_SHIFT].write(f"{key}\t{order}\t{index}\t{sentence}\n")
                order += 1


def _paragraph_stream(
    source: Source, options: CorpusOptions, counts: SourceStats
) -> Iterator[tuple[str, None]]:
    """The source's paragraphs for the splitter, counting documents as they start."""
    pieces = read_documents(source, column=options.column, txt_documents=options.txt_documents)
    for starts, text in pieces:
        counts.documents += starts
        for paragraph in paragraphs(text, options.line_breaks):
            yield paragraph, None


def _read_records(path: Path) -> Iterator[list[str]]:
    with os_errors(path, "cannot read"), path.open(encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n").split("\t", 3)


def _dedup_buckets(
    buckets: list[Path], sources: list[Source], stats: dict[str, SourceStats]
) -> None:
    """Pass 2: each bucket sorted by key, only each folded sentence's first occurrence kept,
    rewritten as ``source, sentence`` in key order."""
    names = [source.name for source in sources]
    for path in progress_bar(buckets, desc="corpus: dedup", unit="bucket"):
        records = sorted(
            (int(key), int(order), int(index), text)
            for key, order, index, text in _read_records(path)
        )
        with os_errors(path), path.open("w", encoding="utf-8") as handle:
            seen: set[str] = set()
            last_key = None
            for key, _, index, text in records:
                if key != last_key:
                    seen, last_key = set(), key
                folded = fold(text)  # a 64-bit key shared by two different texts is kept apart
                if folded in seen:
                    stats[names[index]].duplicates += 1
                    continue
                seen.add(folded)
                stats[names[index]].kept += 1
                handle.write(f"{index}\t{text}\n")


def mix_quotas(kept: dict[str, int], weights: dict[str, float]) -> dict[str, int]:
    """Sentences each source contributes: all of them without weights; with weights the
    largest mix whose shares are ``weight / sum of weights`` (exact in rationals), so the
    scarcest source, relative to its weight, gives all it has."""
    if not weights:
        return dict(kept)
    total = sum(Fraction(weight) for weight in weights.values())
    shares = {name: Fraction(weights[name]) / total for name in kept}
    empty = [name for name, count in kept.items() if count == 0]
    if empty:
        raise PipelineError(f"source {empty[0]} kept no sentence: nothing to mix by --weight")
    size = min(Fraction(count) / shares[name] for name, count in kept.items())
    return {name: math.floor(size * shares[name]) for name in kept}


class _PartWriter:
    """Numbered gzip parts of ``part_size`` lines, byte-identical on every run (no name or
    time in the gzip header)."""

    def __init__(self, folder: Path, part_size: int) -> None:
        self.folder, self.part_size = folder, part_size
        self.parts: list[tuple[Path, int]] = []
        self.handle: IO[bytes] | None = None
        self.raw: IO[bytes] | None = None

    def write(self, sentence: str) -> None:
        if self.handle is None or self.parts[-1][1] == self.part_size:
            self.close()
            path = self.folder / f"part-{len(self.parts)}"
            self.raw = path.open("wb")
            self.handle = gzip.GzipFile(
                filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=_GZIP_LEVEL
            )
            self.parts.append((path, 0))
        self.handle.write(sentence.encode("utf-8") + b"\n")
        path, lines = self.parts[-1]
        self.parts[-1] = (path, lines + 1)

    def close(self) -> None:
        if self.handle is not None and self.raw is not None:
            self.handle.close()
            self.raw.close()
            self.handle = self.raw = None


def _write_parts(
    buckets: list[Path],
    sources: list[Source],
    quotas: dict[str, int],
    part_size: int,
    staging: Path,
    stats: dict[str, SourceStats],
) -> list[tuple[Path, int]]:
    """Pass 3: the buckets in key order into staged parts, each source up to its quota."""
    names = [source.name for source in sources]
    taken = dict.fromkeys(names, 0)
    writer = _PartWriter(staging, part_size)
    with (
        os_errors(staging),
        progress_bar(total=sum(quotas.values()), desc="corpus: write", unit="sent") as bar,
    ):
        for path in buckets:
            for index, text in _read_records(path):
                name = names[int(index)]
                if taken[name] == quotas[name]:
                    stats[name].over_weight += 1
                    stats[name].kept -= 1
                    continue
                taken[name] += 1
                writer.write(text)
                bar.update(1)
            path.unlink()
        writer.close()
    if not writer.parts:
        found = sum(s.sentences for s in stats.values())
        raise PipelineError(
            f"no sentence kept: {found:,} found, all dropped by the filters or as duplicates; "
            "nothing written"
        )
    return writer.parts


def part_name(index: int, count: int) -> str:
    """``part-000.txt.gz``: the digits are as many as the last part needs (at least 3), so
    name order is corpus order for ``encode``, which reads a folder's files sorted by name."""
    return f"part-{index:0{max(3, len(str(count - 1)))}d}.txt.gz"


def _publish(
    out: Path,
    staged: list[tuple[Path, int]],
    identity: dict[str, Any],
    stats: dict[str, SourceStats],
    previous: list[str],
) -> list[str]:
    """Move the staged parts into ``out`` after writing ``stats.json``, and delete the earlier
    run's parts that the new corpus does not have; a file this command did not write is never
    replaced."""
    names = [part_name(index, len(staged)) for index in range(len(staged))]
    foreign = [name for name in names if (out / name).exists() and name not in previous]
    if foreign:
        raise PipelineError(f"{out / foreign[0]}: not written by {WRITTEN_BY}; not replaced")
    parts = [
        {"file": name, "lines": lines, "sha256": sha256_file(path)}
        for name, (path, lines) in zip(names, staged, strict=True)
    ]
    record = {
        "written_by": WRITTEN_BY,
        "lines": sum(lines for _, lines in staged),
        "parts": parts,
        **identity,
        "sources": {name: asdict(counts) for name, counts in stats.items()},
    }
    with os_errors(out, "cannot create"):
        out.mkdir(exist_ok=True)
    write_text(out / STATS, json.dumps(record, indent=1) + "\n")
    for name, (path, _) in zip(names, staged, strict=True):
        with os_errors(out / name):
            os.replace(path, out / name)
    for name in sorted(set(previous) - set(names)):
        with os_errors(out / name, "cannot remove"):
            (out / name).unlink(missing_ok=True)
    return names
