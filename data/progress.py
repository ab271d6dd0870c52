"""Progress for long commands: a tqdm bar in a terminal, a plain line every so often elsewhere.

In a batch job stderr is a file (SLURM's default); a bar's carriage-return redraws would write
hundreds of updates a minute into it as one endless line. Outside a terminal the same calls log
``desc: n/total unit (p%), rate, elapsed, ETA`` every ``PIPELINE_PROGRESS_INTERVAL`` seconds
(default 30) and once more when the work ends.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

INTERVAL_ENV = "PIPELINE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0
TIME_BOX_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s of the time box "
    "[{elapsed}<{remaining}{postfix}]"
)


def log_interval() -> float:
    """Seconds between two progress lines outside a terminal."""
    value = os.environ.get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LineProgress:
    """The part of tqdm's interface the pipeline uses, writing whole lines instead of redraws.

    A time box (``seconds=True``: the total is a duration) reports elapsed and remaining time
    of the box; other totals also report the rate.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None,
        desc: str,
        unit: str,
        initial: float = 0,
        file: TextIO,
        leave: bool = True,
        seconds: bool = False,
    ) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = initial
        self.file, self.leave, self.seconds = file, leave, seconds
        self.postfix: dict[str, Any] = {}
        self.start = self.last = time.monotonic()
        self.interval = log_interval()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, error: type[BaseException] | None, *rest: object) -> None:
        self.closed = self.closed or error is not None  # a failed run is not "done"
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._log(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def close(self) -> None:
        if not self.closed and self.leave:
            self._log(time.monotonic(), done=True)
        self.closed = True

    def _log(self, now: float, done: bool = False) -> None:
        elapsed = now - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n:,.0f}" + (f"/{self.total:,.0f}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if not self.seconds:
            parts.append(f"{rate:,.1f} {self.unit}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and rate > 0 and not done:
            parts.append(f"ETA {_clock(max(0.0, self.total - self.n) / rate)}")
        parts.extend(f"{key}={value}" for key, value in self.postfix.items())
        state = "done, " if done else ""
        print(f"{self.desc}: {state}{', '.join(parts)}", file=self.file, flush=True)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str,
    unit: str = "it",
    initial: float = 0,
    enabled: bool = True,
    leave: bool = True,
    unit_scale: bool = False,
    seconds: bool = False,
    file: TextIO | None = None,
) -> Any:
    """A tqdm bar when ``file`` (stderr by default) is a terminal, else a ``LineProgress``.

    ``seconds=True`` makes a time box: the total is the budget in seconds, and the bar shows
    the box's elapsed and remaining time. A disabled bar is tqdm's silent one either way.
    """
    file = sys.stderr if file is None else file
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if enabled and not _is_terminal(file):
        return LineProgress(
            iterable,
            total=total,
            desc=desc,
            unit="s" if seconds else unit,
            initial=initial,
            file=file,
            leave=leave,
            seconds=seconds,
        )
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit="s" if seconds else unit,
        initial=initial,
        disable=not enabled,
        leave=leave,
        unit_scale=unit_scale,
        file=file,
        dynamic_ncols=True,
        bar_format=TIME_BOX_FORMAT if seconds else None,
    )


def _is_terminal(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


def encode_timed(
    encode: Callable[[Sequence[str]], np.ndarray],
    texts: Sequence[str],
    *,
    chunk: int = 4096,
    desc: str = "encode",
) -> tuple[np.ndarray, float]:
    """Vectors for ``texts`` in chunks, with a progress bar, and the seconds spent in ``encode``.

    Every evaluation encodes through this, so the same texts are cut into the same batches
    (and give the same vectors) wherever they are measured.
    """
    parts, seconds = [], 0.0
    with progress_bar(total=len(texts), desc=desc, unit="sent", enabled=len(texts) > chunk) as bar:
        for start in range(0, len(texts), chunk):
            batch = texts[start : start + chunk]
            begin = time.perf_counter()
            parts.append(encode(batch))
            seconds += time.perf_counter() - begin
            bar.update(len(batch))
    if not parts:
        return encode([]), 0.0
    return np.concatenate(parts), seconds
