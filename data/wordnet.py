"""WordNet 3.0 glosses and example sentences as a plain-text corpus, one text per line.

The demo needs real English sentences that exist offline on a fresh machine; Debian's
``wordnet-base`` package ships the WordNet database (``/usr/share/wordnet/data.{noun,verb,adj,
adv}``), and its glosses (definitions) and quoted usage examples are ~180k short, varied texts.

A data line is ``offset lex_filenum ss_type w_cnt word ... | gloss``; the gloss holds the
definition, then ``; "example"`` parts. Lines starting with two spaces are the licence header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data import files
from data.errors import PipelineError

WORDNET_DIR = Path("/usr/share/wordnet")
PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")
KINDS = ("both", "glosses", "examples")
_QUOTED = re.compile(r'"([^"]+)"')


@dataclass
class ExtractSummary:
    glosses: int = 0
    examples: int = 0
    duplicates: int = 0

    @property
    def written(self) -> int:
        return self.glosses + self.examples


def split_gloss(gloss: str) -> tuple[str, list[str]]:
    """(definition, examples) of one gloss; examples lose their quotes and attributions."""
    definition, _, rest = gloss.partition('"')
    definition = definition.strip().rstrip(";").strip()
    examples = _QUOTED.findall('"' + rest) if rest else []
    return definition, [e.strip() for e in examples if e.strip()]


def data_files(directory: Path) -> list[Path]:
    """The four ``data.*`` files, or a PipelineError that says how to get them."""
    files = [Path(directory) / f"data.{pos}" for pos in PARTS_OF_SPEECH]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise PipelineError(
            f"{directory}: WordNet data files missing ({', '.join(missing)}); "
            "install them with `sudo apt-get install wordnet-base` or pass --wordnet-dir"
        )
    return files


def iter_glosses(directory: Path = WORDNET_DIR) -> Iterator[tuple[str, list[str]]]:
    """(definition, examples) of every synset, in file order (noun, verb, adj, adv)."""
    for path in data_files(directory):
        with (
            files.os_errors(path, "cannot read"),
            path.open(encoding="utf-8", errors="replace") as handle,
        ):
            for number, line in enumerate(handle, start=1):
                if line.startswith("  ") or not line.strip():
                    continue
                head, bar, gloss = line.partition(" | ")
                if not bar or not head[:8].isdigit():
                    raise PipelineError(f"{path}:{number}: not a WordNet data line")
                yield split_gloss(gloss.strip())


def extract(
    out: Path, directory: Path = WORDNET_DIR, kind: str = "both", dedup: bool = True
) -> ExtractSummary:
    """Write the texts to ``out`` (atomically: a file that exists is complete).

    An existing ``out`` is replaced only when it is an earlier extraction; it is checked after
    WordNet is read and before anything is written.
    """
    if kind not in KINDS:
        raise PipelineError(f"unknown kind {kind!r}; choose from {KINDS}")
    out = Path(out)
    if out.is_dir():
        raise PipelineError(f"{out} is a folder; --out names the corpus file to write")
    summary, seen, lines, every = ExtractSummary(), set(), [], set()
    for definition, examples in iter_glosses(directory):
        every.update([definition, *examples])
        texts = []
        if kind != "examples" and definition:
            texts.append(("glosses", definition))
        if kind != "glosses":
            texts.extend(("examples", e) for e in examples)
        for field, text in texts:
            if dedup and text in seen:
                summary.duplicates += 1
                continue
            seen.add(text)
            setattr(summary, field, getattr(summary, field) + 1)
            lines.append(text + "\n")
    if out.exists() and not _earlier_extraction(out, every):
        raise PipelineError(
            f"{out}: exists and is not a WordNet corpus written by `pipeline data wordnet`; "
            "not overwritten (use another --out)"
        )
    with files.os_errors(out.parent, "cannot create"):
        out.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(out, "".join(lines))
    return summary


def _earlier_extraction(path: Path, texts: set[str]) -> bool:
    """Whether every line of ``path`` is a WordNet text: an earlier extraction of any kind.

    A corpus has no room for a mark (every line of it is a text to encode), so its lines are
    the proof that this command wrote it; the first foreign line settles it.
    """
    try:
        with path.open(encoding="utf-8") as handle:
            return all(line.rstrip("\n") in texts for line in handle)
    except (OSError, UnicodeDecodeError):
        return False
