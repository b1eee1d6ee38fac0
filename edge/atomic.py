"""Atomic output files: every file is written under a temporary name in its own folder and renamed into
place when complete, so a reader (or the next run) never sees half a file under the final name.

    write_json(path, data)                         # a JSON report (the one JSON writer of edge/)
    write_bytes_atomic(path, data)                 # small files: PNG bytes
    with atomic_path(path) as tmp:                 # writers that need a file name (cv2.VideoWriter)
        ...write tmp...                            # renamed to path on success, removed on an exception

The temporary name is hidden and keeps the final suffix (``.us.mp4`` -> ``.us.mp4.<pid>.part.mp4``), because
OpenCV picks the container from the suffix. A process killed hard (SIGKILL, power loss) leaves at most that
hidden ``.part`` file, never a truncated file under the final name.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

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


def _jsonable(value: Any) -> Any:
    """JSON stand-in for what ``json`` cannot write: numpy scalars and arrays, sets and tuples, else str()."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)  # Path, enums, anything else a config may hold


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 1, parents: bool = False,
               what: str = "the report") -> Path:
    """Write ``data`` as JSON (``indent``, a final newline) to ``path`` atomically: a reader never sees half
    a file. Numpy values, sets and paths are converted (``_jsonable``); NaN/infinity are refused, because
    they are not JSON: OutputError names the path and ``what`` it is. ``parents``: create missing folders."""
    path = Path(path)
    try:
        text = json.dumps(data, indent=indent, default=_jsonable, allow_nan=False) + "\n"
    except ValueError as exc:
        raise OutputError(f"{path}: cannot write {what}: {exc}") from exc
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, text, what)
