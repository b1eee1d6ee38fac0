"""Bundled artifacts: the lite ultrasound model, its demo clips, the CT detector (package data)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from edge.errors import ModelError

US_MODEL = "resunet-lite.onnx"
DEMO_CLIPS = {"normal": "demo-normal.mp4", "dvt": "demo-dvt.mp4"}


def asset_dir() -> Path:
    return Path(str(files("edge") / "assets"))


def asset(name: str) -> Path:
    """Path of a bundled file; ModelError when missing (a broken install or an unbuilt checkout)."""
    path = asset_dir() / name
    if not path.is_file():
        raise ModelError(f"bundled file {name} not found in {path.parent}: reinstall dvt-edge, "
                         "or rebuild it (README, 'Reproduce the bundled artifacts')")
    return path


def us_model() -> Path:
    return asset(US_MODEL)
