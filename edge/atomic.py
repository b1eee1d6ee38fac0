"""Atomic output files: every file is written under a temporary name in its own folder and renamed into
place when complete, so a reader (or the next run) never sees half a file under the final name.

    write_bytes_atomic(path, data)                 # small files: JSON, PNG bytes
    with atomic_path(path) as tmp:                 # writers that need a file name (cv2.VideoWriter)
        ...write tmp...                            # renamed to path on success, removed on an exception

The temporary name is hidden and keeps the final suffix (``.us.mp4`` -> ``.us.mp4.<pid>.part.mp4``), because
OpenCV picks the container from the suffix. A process killed hard (SIGKILL, power loss) leaves at most that
hidden ``.part`` file, never a truncated file under the final name.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edge.errors import OutputError


def temp_name(path: str | os.PathLike) -> Path:
    """The hidden temporary sibling of ``path`` (same folder, same suffix, this process's id)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.part{path.suffix}")


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename a finished temporary file onto ``path`` (atomic on one file system)."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` when the block ends normally, remove it when
    the block raises."""
    tmp = temp_name(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` atomically; OutputError names the path and ``what`` it is."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write {what}: {exc.strerror or exc}") from exc
    return path


def write_text_atomic(path: str | os.PathLike, text: str, what: str = "the file") -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), what)
