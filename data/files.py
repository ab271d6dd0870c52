"""Writing files so that a failure leaves nothing half-written, and the environment's refusals
(disk full, read-only, permission denied, a folder where a file belongs) as one-line errors.

Every output goes to a temporary sibling first and is renamed over its final name only when
complete, so a file that exists under its final name is whole. The temporary name starts with a
dot and ends in ``.tmp-PID``; ``remove_stale_temporaries`` clears those left by killed runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data import report
from data.errors import PipelineError

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a path component is not a directory",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
}


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """One line naming the path and the reason, without errno numbers or a traceback."""
    reason = _REASONS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    where = path if path is not None else exc.filename
    return f"{where}: {reason}" if where is not None else reason


@contextlib.contextmanager
def os_errors(path: str | os.PathLike, action: str = "cannot write") -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a one-line ``PipelineError``."""
    try:
        yield
    except PipelineError:
        raise
    except OSError as exc:
        raise PipelineError(f"{action} {describe_os_error(exc, path)}") from None


def temporary_sibling(target: Path) -> Path:
    """The temporary name ``target`` is written under before it is renamed into place."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def remove(path: Path) -> None:
    """Remove a file or folder if it exists; never fails (used on the way out of an error)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``target`` at (a file or a folder); on success it is
    renamed over ``target``, on any failure it is removed and an ``OSError`` becomes one line.

    With ``keep_existing`` (folders only) a non-empty ``target`` folder that appeared meanwhile
    is kept and the copy dropped: concurrent writers of the same content (array tasks) let the
    first one win.
    """
    target = Path(target)
    tmp = temporary_sibling(target)
    remove(tmp)
    try:
        with os_errors(target):
            yield tmp
            if keep_existing:
                with contextlib.suppress(OSError):  # refused onto a non-empty folder
                    tmp.rename(target)
                remove(tmp)
                return
            if target.is_dir() and not target.is_symlink() and tmp.is_dir():
                shutil.rmtree(target)
            os.replace(tmp, target)
    except BaseException:
        remove(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


# How the Rust writers (tokenizers, safetensors) name the OS error behind a failed write.
_RUST_OS_ERROR = re.compile(r"os error (\d+)|code: (\d+)")


def save_pretrained(folder: Path, *objects: Any) -> None:
    """Save Hugging Face objects (tokenizer, model) into ``folder``.

    Their Rust writers report a failed write (disk full, read-only) as a plain ``Exception``;
    it is raised here as the ``OSError`` it is, so ``os_errors``/``atomic_path`` make it one line.
    """
    for obj in objects:
        try:
            obj.save_pretrained(str(folder))
        except OSError:
            raise
        except Exception as exc:
            found = _RUST_OS_ERROR.search(str(exc))
            if found is None:
                raise
            code = int(found.group(1) or found.group(2))
            raise OSError(code, os.strerror(code)) from None


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks so any size fits in memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove ``.NAME.tmp-*`` left in ``folder`` by runs that were killed mid-write."""
    for stale in folder.glob(f".{name}.tmp-*"):
        remove(stale)


def earlier_output(folder: Path, marker: str, what: str, *, dot_files_count: bool = True) -> bool:
    """Whether ``folder`` holds an earlier output of this kind, i.e. has the ``marker`` file.

    An output folder may be absent, empty, or one this tool wrote; a file, or a folder with any
    other content, is refused whatever ``--overwrite`` says, so a mistyped ``--out`` (a shard
    folder, a Hugging Face model, a home directory) loses nothing. Without ``dot_files_count``
    hidden entries (this tool's temporaries and locks) do not make a folder non-empty.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PipelineError(f"{folder}: exists and is not a directory; use another --out")
    if (folder / marker).is_file():
        return True
    content = (
        [p for p in folder.iterdir() if dot_files_count or not p.name.startswith(".")]
        if folder.is_dir()
        else []
    )
    if content:
        raise PipelineError(
            f"{folder}: not empty and not {what} (no {marker}); "
            f"use another --out (--overwrite only replaces {what})"
        )
    return False


def made_here(path: Path, mark: str) -> bool:
    """Whether an existing file carries ``mark`` (text only its writer puts there) in its first
    64 kB: the proof that this tool wrote it, so that replacing it loses nothing."""
    try:
        with Path(path).open("rb") as handle:
            return mark.encode("utf-8") in handle.read(1 << 16)
    except OSError:
        return False


def require_made_here(path: Path, mark: str, writer: str) -> None:
    """Refuse to replace ``path`` unless it is absent or a file ``writer`` made (has ``mark``)."""
    path = Path(path)
    if path.is_dir():
        raise PipelineError(f"{path}: is a folder where {writer} writes a file; use another --out")
    if path.exists() and not made_here(path, mark):
        raise PipelineError(
            f"{path}: exists and was not written by {writer}; not overwritten (use another --out)"
        )


def remove_outputs(folder: Path, paths: list[Path]) -> None:
    """``--overwrite``: delete exactly these earlier outputs (files or folders), saying which."""
    found = [path for path in paths if path.exists() or path.is_symlink()]
    names = ", ".join(p.name for p in found) if len(found) <= 8 else f"{len(found)} files"
    report.warning(f"--overwrite: removing {names} from {folder}")
    for path in found:
        with os_errors(path, "cannot remove"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start a write of about ``needed`` bytes that the file system cannot hold.

    HDF5 does not survive a full disk gracefully (it can crash the process while closing a file
    whose write failed), so writers check the room they need before they begin.
    """
    with os_errors(folder, "cannot check free space on"):
        free = shutil.disk_usage(folder).free
    if free < needed:
        raise PipelineError(
            f"{folder}: no space left on device for {what} "
            f"(needs about {_mib(needed)}, {_mib(free)} free)"
        )


def require_writable_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) or say in one line why it cannot be an output folder."""
    if folder.exists() and not folder.is_dir():
        raise PipelineError(f"{folder} is a file, not a folder; choose another output path")
    with os_errors(folder, "cannot create output folder"):
        folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PipelineError(f"cannot write to {folder}: permission denied or read-only")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


@contextlib.contextmanager
def exclusive_lock(folder: Path, name: str) -> Iterator[None]:
    """Hold ``folder/name`` locked (``flock``) for a read-modify-write that other processes share.

    Concurrent writers (SLURM array tasks, two benchmark runs into one folder) would otherwise
    each read the file, add their part and overwrite the other's. The lock file stays behind;
    it is hidden and empty.
    """
    with os_errors(folder, "cannot lock"), (Path(folder) / name).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
