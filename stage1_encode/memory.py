"""Keeping stage 1's resident memory flat over many shards."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_freed_memory() -> None:
    """Hand memory freed since the last call back to the OS (glibc's ``malloc_trim``).

    Each encoded shard frees a shard's worth of small Python and tensor allocations, scattered
    over the heaps of two threads; without trimming, glibc keeps them and peak RSS creeps up with
    the number of shards (measured: 1,248 MiB after 40k lines against 1,008 after 10k).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
