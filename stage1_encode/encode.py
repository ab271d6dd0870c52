"""The stage-1 run: stream a corpus, encode each owned shard with the teacher, write atomically.

One reader thread streams the corpus, groups lines into shards and tokenizes them while the main
thread runs the teacher on the previous shard, so tokenization overlaps with compute and at most
two shards are in memory whatever the corpus size.
"""

from __future__ import annotations

import functools
import hashlib
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save

from data import report, shards
from data.batching import TEACHER_MAX_TOKENS
from data.corpus import LineStats, fingerprint, iter_lines, resolve_corpus
from data.dataset_corpus import DatasetCorpus
from data.errors import PipelineError
from data.files import (
    atomic_path,
    remove_stale_temporaries,
    require_free_space,
    save_pretrained,
    sha256_file,
    write_bytes,
)
from data.manifest import FORMAT_VERSION, read_manifest, record_shard, shard_attrs, shard_count
from data.progress import progress_bar
from stage1_encode.memory import release_freed_memory
from stage1_encode.reuse import ReusedVectors
from stage1_encode.teacher import Teacher

# What transformers records about how a tokenizer was loaded, not about how it tokenizes.
LOADER_KEYS = ("local_files_only", "is_local", "cache_dir", "revision", "token", "_commit_hash")
# Yields (line number, text) of every non-blank line, counting what it drops into the stats.
ReadLines = Callable[..., Iterator[tuple[int, str]]]


@dataclass
class EncodeConfig:
    out: Path
    shard_size: int = 10_000
    max_tokens: int = TEACHER_MAX_TOKENS
    dtype: str = "float16"
    num_shards: int = 1
    shard_index: int = 0
    dedup: bool = False
    reuse: Path | None = None  # an earlier encoding by the same teacher: its texts skip the teacher
    strict: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass
class PendingShard:
    """A shard's texts read and tokenized, waiting for the teacher."""

    index: int
    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class EncodeSummary:
    rows: int
    seconds: float
    written: list[str]
    skipped: list[str]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def owned_shards(total: int, num_tasks: int, task_index: int) -> list[int]:
    """Shard indices of one array task: round-robin, so every task gets a fair share."""
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise PipelineError(f"--shard-index {task_index} must lie in 0..{num_tasks - 1}")
    return [i for i in range(total) if i % num_tasks == task_index]


def _open_corpus(
    corpus: list[str | Path] | DatasetCorpus, strict: bool
) -> tuple[dict[str, Any], ReadLines]:
    """The corpus' manifest record (identity, fingerprint, line count) and its line reader."""
    if isinstance(corpus, DatasetCorpus):
        found, extra, read = corpus.fingerprint(), {"dataset": corpus.describe()}, corpus.iter_lines
    else:
        files = resolve_corpus(corpus)
        found, extra = fingerprint(files, strict=strict), {}
        read = functools.partial(iter_lines, files, strict=strict)
    record = {"paths": found.paths, "sha256": found.sha256, "lines": found.lines, **extra}
    return record, read


def run_encode(
    corpus: list[str | Path] | DatasetCorpus, teacher: Teacher, cfg: EncodeConfig
) -> EncodeSummary:
    """Encode the shards this task owns that are not complete yet; return what was done."""
    teacher.pack_for_inference()  # first: a bf16 teacher may fall back to fp32, or be refused
    corpus_record, read_lines = _open_corpus(corpus, cfg.strict)
    lines = corpus_record["lines"]
    total = shard_count(lines, cfg.shard_size)
    manifest = {
        "format_version": FORMAT_VERSION,
        "teacher": teacher.description().to_dict(),
        "tokenizer": {
            "dir": shards.TOKENIZER_DIR,
            "class": type(teacher.tokenizer).__name__,
            "sha256": _tokenizer_sha256(teacher),
        },
        "corpus": corpus_record,
        "dtype": cfg.dtype,
        "shard_size": cfg.shard_size,
        "num_shards": total,
        "dedup": cfg.dedup,
    }
    mine = owned_shards(total, cfg.num_shards, cfg.shard_index)  # check before writing
    names = {i: shards.shard_name(i, total) for i in mine}
    reused = _open_reuse(cfg, manifest)
    _prepare_out(cfg.out)
    shards.claim_output(cfg.out, manifest, overwrite=cfg.overwrite, owned=list(names.values()))
    _save_tokenizer_and_embeddings(cfg.out, teacher, manifest["teacher"]["weights_sha256"])

    for name in names.values():  # half-written shards of this task's killed runs
        remove_stale_temporaries(cfg.out, name)
    done = [i for i in mine if (cfg.out / names[i]).is_file()]
    _record_unrecorded(cfg.out, [names[i] for i in done])
    todo = [i for i in mine if i not in done]
    if done:
        report.info(f"skipping {len(done)} complete shard(s) of {len(mine)} (resume)")

    start, rows, written = time.perf_counter(), 0, []
    expected = sum(_lines_in(i, cfg.shard_size, lines) for i in todo)
    attrs = shard_attrs(manifest)
    bar = progress_bar(
        total=expected, unit="sent", desc="encode", enabled=cfg.progress and bool(todo)
    )
    with bar:  # closed on failure too, so that the error starts on a line of its own
        for pending in _prefetch(_read_shards(read_lines, todo, teacher, cfg)):
            embedding = _embed(pending, teacher, reused, cfg.max_tokens, bar.update)
            data = shards.ShardData(embedding, pending.ids, pending.texts, np.array(pending.lines))
            record = shards.write_shard(cfg.out, names[pending.index], data, attrs, cfg.dtype)
            skipped = _lines_in(pending.index, cfg.shard_size, lines) - len(pending.ids)
            blank = skipped - pending.stats["duplicates"]
            record_shard(cfg.out, {**record, **pending.stats, "blank": blank})
            bar.update(skipped)
            rows += len(pending.ids)
            written.append(names[pending.index])
            del pending, data, embedding
            release_freed_memory()
    return EncodeSummary(rows, time.perf_counter() - start, written, [names[i] for i in done])


def _open_reuse(cfg: EncodeConfig, manifest: dict[str, Any]) -> ReusedVectors | None:
    if cfg.reuse is None:
        return None
    if cfg.reuse.resolve() == cfg.out.resolve():
        raise PipelineError(f"--reuse {cfg.reuse}: that is --out itself; give an earlier encoding")
    reused = ReusedVectors(cfg.reuse, manifest)
    report.info(f"reusing the vectors of {len(reused):,} distinct texts from {cfg.reuse}")
    return reused


def _embed(
    pending: PendingShard,
    teacher: Teacher,
    reused: ReusedVectors | None,
    max_tokens: int,
    on_batch: Callable[[int], Any],
) -> np.ndarray:
    """The shard's vectors: stored ones where ``reused`` has the text, the teacher's elsewhere."""
    if reused is None:
        return teacher.embed_ids(pending.ids, max_tokens, on_batch=on_batch)
    hits, stored = reused.lookup(pending.texts)
    pending.stats["reused"] = len(hits)
    on_batch(len(hits))
    hit = set(hits)
    misses = [i for i in range(len(pending.ids)) if i not in hit]
    fresh = teacher.embed_ids([pending.ids[i] for i in misses], max_tokens, on_batch=on_batch)
    embedding = np.empty((len(pending.ids), reused.dim), dtype=np.float32)
    embedding[hits] = stored
    if misses:
        embedding[misses] = fresh
    return embedding


def _lines_in(index: int, shard_size: int, lines: int) -> int:
    return max(0, min(shard_size, lines - index * shard_size))


def _prepare_out(out: Path) -> None:
    shards.check_output(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise PipelineError(f"{out}: output directory is not writable ({exc.strerror})") from None


def _save_tokenizer_and_embeddings(out: Path, teacher: Teacher, weights_sha256: str) -> None:
    """Copy what stage 2 needs from the teacher, so it never has to load the teacher itself."""
    target = out / shards.TOKENIZER_DIR
    if not target.is_dir():
        _save_tokenizer(teacher, target)
    weights = out / shards.INPUT_EMBEDDINGS
    if not weights.is_file():
        meta = {"teacher": teacher.name_or_path, "weights_sha256": weights_sha256}
        payload = save({"weight": teacher.input_embeddings()}, metadata=meta)
        require_free_space(out, len(payload), "the teacher's embedding matrix")
        write_bytes(weights, payload)


def _save_tokenizer(teacher: Teacher, target: Path) -> None:
    """Write the tokenizer folder; an array task that loses the race to rename it drops its copy."""
    with atomic_path(target, keep_existing=True) as tmp:
        _save_stateless(teacher, tmp)


def _record_unrecorded(out: Path, names: list[str]) -> None:
    """A run killed between rename and manifest update left a whole shard without its record.

    Such a shard is recorded only once it proves to be this run's (``shards.shard_problem``):
    a file copied in under a missing shard's name is refused, and left where it is.
    """
    manifest = read_manifest(out)
    for name in names:
        if name not in manifest["shards"]:
            path = out / name
            try:
                with shards.h5py.File(path, "r") as handle:
                    rows = len(handle["line"])
            except (OSError, KeyError, ValueError) as exc:
                raise PipelineError(f"{path}: unreadable shard ({exc}); delete it") from None
            problem = shards.shard_problem(path, manifest, rows)
            if problem:
                raise PipelineError(f"{path}: not recorded in the manifest and {problem}")
            record_shard(out, {"file": name, "rows": rows, "sha256": sha256_file(path)})


def _tokenizer_sha256(teacher: Teacher) -> str:
    """The hash of the tokenizer as it will be saved into the shard directory."""
    with tempfile.TemporaryDirectory() as folder:
        _save_stateless(teacher, Path(folder))
        return shards.tokenizer_sha256(Path(folder))


def _save_stateless(teacher: Teacher, folder: Path) -> None:
    """Save the tokenizer without what depends on its history rather than on the tokenizer.

    A fast tokenizer writes the truncation and padding of its last call into tokenizer.json,
    and transformers records how it was loaded (offline or not) in tokenizer_config.json; with
    either, the same tokenizer would save (and hash) differently after the bf16 probe or under
    HF_HUB_OFFLINE, and a resumed or reused encoding would be refused as another tokenizer's.
    Each call sets truncation and padding again, and loading ignores the recorded loader keys.
    """
    tokenizer = teacher.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    for key in LOADER_KEYS:
        tokenizer.init_kwargs.pop(key, None)
    save_pretrained(folder, tokenizer)


def _read_shards(
    read_lines: ReadLines, todo: list[int], teacher: Teacher, cfg: EncodeConfig
) -> Iterator[PendingShard]:
    """Stream the corpus once, yielding each wanted shard tokenized, in index order.

    A wanted shard with no text left (all blank or duplicate) is yielded empty, so that the
    directory ends complete. Reading stops after the last wanted shard.
    """
    wanted = iter(sorted(todo))
    current = _next_pending(wanted)
    seen: set[bytes] = set()
    stats = LineStats()
    repaired_before = 0
    for number, text in read_lines(stats=stats):
        if current is None:
            return
        repaired, repaired_before = stats.invalid_utf8 > repaired_before, stats.invalid_utf8
        index = number // cfg.shard_size
        while current is not None and current.index < index:
            yield _finish(current, teacher)
            current = _next_pending(wanted)
        is_duplicate = False
        if cfg.dedup:
            key = hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()
            is_duplicate = key in seen
            seen.add(key)
        if current is not None and current.index == index:
            current.stats["invalid_utf8"] += repaired
            if is_duplicate:
                current.stats["duplicates"] += 1
            else:
                current.lines.append(number)
                current.texts.append(text)
    while current is not None:
        yield _finish(current, teacher)
        current = _next_pending(wanted)


def _next_pending(wanted: Iterator[int]) -> PendingShard | None:
    index = next(wanted, None)
    if index is None:
        return None
    return PendingShard(index, stats={"duplicates": 0, "invalid_utf8": 0})


def _finish(pending: PendingShard, teacher: Teacher) -> PendingShard:
    pending.ids, pending.stats["truncated"] = teacher.tokenize_counting(pending.texts)
    return pending


def _prefetch(items: Iterator[PendingShard]) -> Iterator[PendingShard]:
    """Run a generator in a background thread, one item ahead of the consumer."""
    box: queue.Queue = queue.Queue(maxsize=1)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in items:
                box.put(item)
        except BaseException as exc:  # handed to the consumer, re-raised there
            failure.append(exc)
        finally:
            box.put(None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := box.get()) is not None:
        yield item
    thread.join()
    if failure:
        raise failure[0]
