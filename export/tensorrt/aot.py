"""``dvt-edge export engine``: build (or find) a model's engine in the cache ahead of time.

FP16 engines come from the FP16 ONNX (strongly typed networks take precision from the graph), so for
``precision="fp16"`` the ``<name>.fp16.onnx`` twin is written first when it is missing or stale.
With TensorRT-RTX this runs on a machine without a GPU (CPU-only AOT build); standard TensorRT must run
on the device the engine is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from edge.assets import asset_dir
from edge.backends.tensorrt.cache import EngineCache
from edge.backends.tensorrt.engine import DEFAULT_WORKSPACE_MIB, ResolvedEngine, ensure_engine
from edge.backends.tensorrt.flavour import build_target, installed_flavour, normalise_targets
from edge.gpu import probe_gpu
from export.fp16 import ensure_fp16


def bundled_models() -> list[Path]:
    """The FP32 ONNX models shipped with the runtime (ultrasound and CT assets), whatever exists."""
    dirs = [asset_dir(), asset_dir().parent / "ct" / "assets"]
    found = sorted(p for d in dirs if d.is_dir() for p in d.glob("*.onnx") if not p.name.endswith(".fp16.onnx"))
    return found


def build_engine(model: str | Path, *, flavour: str | None = None, precision: str = "fp16",
                 targets: tuple[str, ...] = (), cache_dir: str | Path | None = None,
                 cache: EngineCache | None = None, workspace_mib: int = DEFAULT_WORKSPACE_MIB,
                 stream: TextIO | None = None) -> ResolvedEngine:
    """The engine for ``model`` (FP32 .onnx, or its .fp16.onnx) at ``precision``, built if not cached."""
    model = Path(model)
    build_target(installed_flavour(flavour), probe_gpu(), normalise_targets(targets))  # fail before converting
    if precision == "fp16" and not model.name.endswith(".fp16.onnx"):
        ensure_fp16(model)
    cache = cache or (EngineCache(Path(cache_dir)) if cache_dir else EngineCache())
    return ensure_engine(model, flavour=flavour, precision=precision, targets=targets, cache=cache,
                         workspace_mib=workspace_mib, stream=stream)


def describe(eng: ResolvedEngine) -> str:
    """Human-readable summary: engine path, provenance, IO table."""
    e, b = eng.entry, eng.entry.meta.get("builder", {})
    how = f"built in {e.seconds:.1f} s" if e.built else f"from the cache (built {e.meta.get('built_at')})"
    lines = [
        f"engine     {e.engine}",
        f"           {e.meta['engine']['bytes'] / 1e6:.2f} MB, {how}",
        f"builder    {b.get('flavour')} {b.get('version')}, target {b.get('target')}, {eng.precision}",
        f"from       {eng.onnx} (sha256 {eng.parts.onnx_sha256[:16]}...)",
        "io",
    ]
    lines += [f"  {t.mode:<6} {t.name:<12} {list(t.shape)!s:<20} {t.dtype}" for t in eng.io]
    return "\n".join(lines)
