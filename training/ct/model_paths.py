"""Which detector files a ``--models`` argument names: one ``ctdet-k*.onnx`` file, or a folder of them."""

from __future__ import annotations

import re
from pathlib import Path

from edge.errors import ModelError


def find_models(path: str | Path) -> list[Path]:
    """``ctdet-k*.onnx`` at ``path`` (a file) or inside it (a folder), ordered by k. ModelError when none:
    a tool that silently processed nothing once left a model uncalibrated."""
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        found = [path]
    elif path.is_dir():
        found = list(path.glob("ctdet-k*.onnx"))
    else:
        found = []
    if not found:
        raise ModelError(f"{path}: no ctdet-k*.onnx detector here (pass the .onnx file or the folder holding it)")
    return sorted(found, key=lambda p: (int((re.findall(r"k(\d+)", p.stem) or ["0"])[0]), p.name))
