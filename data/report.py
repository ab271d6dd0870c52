"""How library code tells the user something, and the only place that decides where it goes.

The stages never print: a command line, a notebook and a test each want these lines somewhere
else. Library code calls ``info`` (what a run did: resumed, reused) or ``warning`` (what went
otherwise than asked, or was skipped); the entry point chooses the sinks with ``reporting_to``
(the CLI: click's streams). Without one, ``info`` goes to stdout and ``warning`` to stderr,
each looked up when written, so a redirected stream is honoured.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

Report = Callable[[str], None]  # takes one message line, without its newline


def to_stdout(message: str) -> None:
    print(message, flush=True)


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_SINKS: dict[str, Report] = {"info": to_stdout, "warning": to_stderr}


def info(message: str) -> None:
    """Report what a run did (stdout unless the entry point chose otherwise)."""
    _SINKS["info"](message)


def warning(message: str) -> None:
    """Report what went otherwise than asked (stderr unless the entry point chose otherwise)."""
    _SINKS["warning"](message)


@contextlib.contextmanager
def reporting_to(info_sink: Report, warning_sink: Report) -> Iterator[None]:
    """Send ``info`` and ``warning`` messages to these sinks while the block runs."""
    saved = dict(_SINKS)
    _SINKS.update(info=info_sink, warning=warning_sink)
    try:
        yield
    finally:
        _SINKS.update(saved)
