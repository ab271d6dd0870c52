"""Runtime helpers: handing freed memory back to the OS."""

from __future__ import annotations

import platform

import pytest

from stage1_encode.memory import _malloc_trim, release_freed_memory


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc"
)
def test_release_freed_memory_returns_heap_holes_to_the_os() -> None:
    assert _malloc_trim() is not None
    blocks = [bytearray(b"x" * (64 * 1024)) for _ in range(2048)]  # 128 MiB of heap blocks
    del blocks[::2]  # 64 MiB of holes glibc keeps: the blocks between them are still in use
    before = _rss_mib()
    release_freed_memory()
    assert before - _rss_mib() > 32
    del blocks
