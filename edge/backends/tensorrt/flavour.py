"""The two TensorRT flavours and every difference between them, in one place.

The builder (:mod:`edge.backends.tensorrt.engine`), the cache and the backend run one code path; what differs
per flavour is decided here:

=====================  ===========================================  ===========================================
                       ``tensorrt`` (10.3 .. 11.x)                  ``tensorrt_rtx`` (TensorRT for RTX 1.x)
=====================  ===========================================  ===========================================
build needs a GPU      yes: kernels are timed on the device         no: CPU-only ahead-of-time (AOT) compile;
                                                                    kernels are JIT-compiled on first run
engine runs on         the GPU model + TRT version it was built on  compute capabilities 8.0/8.6/8.9/12.0 by
                                                                    default, or the targets set (7.5 must be
                                                                    asked for); same RTX version
cache key "target"     ``<GPU name> sm<cc>``                         ``aot:default`` or ``aot:SM75,SM86``
timing cache           loaded/saved beside the engine cache         none: the API is a deprecated no-op that
                                                                    forces a GPU query (breaks AOT)
FP16                   strongly typed network from the FP16 ONNX     same (TRT 11 removed the FP16 builder flag)
CUDA graphs            captured by the backend on its stream        native: ``IRuntimeConfig.cuda_graph_strategy``
=====================  ===========================================  ===========================================

Importing ``tensorrt`` on a machine without a GPU is never done here without :func:`edge.gpu.probe_gpu`
first (it may crash); ``tensorrt_rtx`` imports and builds GPU-less (verified with 1.7: deserialising an
engine there fails cleanly with a CUDA driver error, so GPU-less checks read IO from the builder's network).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edge.errors import BackendError, ConfigError
from edge.gpu import GpuInfo


@dataclass(frozen=True)
class Flavour:
    module: str  # Python module: "tensorrt" | "tensorrt_rtx"
    label: str  # CLI and pip spelling: "tensorrt" | "tensorrt-rtx"
    aot: bool  # builds without a GPU; engines portable across compute capabilities
    timing_cache: bool
    native_cuda_graphs: bool
    pip: str  # what to install


FLAVOURS = {
    "tensorrt": Flavour("tensorrt", "tensorrt", aot=False, timing_cache=True, native_cuda_graphs=False,
                        pip="pip install tensorrt  (JetPack: the python3-libnvinfer package)"),
    "tensorrt_rtx": Flavour("tensorrt_rtx", "tensorrt-rtx", aot=True, timing_cache=False, native_cuda_graphs=True,
                            pip="pip install tensorrt-rtx"),
}


def get_flavour(name: str) -> Flavour:
    """``tensorrt``, ``tensorrt-rtx`` or ``tensorrt_rtx`` -> Flavour; ConfigError otherwise."""
    key = name.replace("-", "_")
    if key not in FLAVOURS:
        raise ConfigError(f"unknown TensorRT flavour '{name}': choose tensorrt or tensorrt-rtx")
    return FLAVOURS[key]


def tensorrt_flavour() -> str | None:
    """"tensorrt" or "tensorrt_rtx" when that Python package is importable (not imported here), else None."""
    for mod in ("tensorrt", "tensorrt_rtx"):
        if importlib.util.find_spec(mod) is not None:
            return mod
    return None


def installed_flavour(name: str | None = None) -> Flavour:
    """The flavour asked for, or the installed one (tensorrt preferred); BackendError when absent."""
    if name is not None:
        return get_flavour(name)
    found = tensorrt_flavour()
    if found is None:
        raise BackendError("neither tensorrt nor tensorrt_rtx is installed: pip install tensorrt-rtx "
                           "(builds without a GPU) or tensorrt (JetPack ships it)")
    return FLAVOURS[found]


def import_trt(flavour: Flavour) -> ModuleType:
    """Import the flavour's module (callers probe the GPU first for ``tensorrt``)."""
    try:
        return importlib.import_module(flavour.module)
    except ImportError as exc:
        raise BackendError(f"{flavour.module} is not installed: {flavour.pip}") from exc


def normalise_targets(targets: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """RTX compute-capability targets as ComputeCapability member names: "8.6" / "sm86" / "SM86" -> "SM86"."""
    out = []
    for t in targets or ():
        s = str(t).strip().upper().replace("SM_", "SM")
        s = s if s.startswith("SM") else "SM" + s.replace(".", "")
        if not s[2:].isdigit():
            raise ConfigError(f"bad compute-capability target '{t}': use e.g. 8.6 or SM86")
        out.append(s)
    return tuple(out)


def build_target(flavour: Flavour, gpu: GpuInfo, targets: tuple[str, ...] = ()) -> str:
    """The "where will this engine run" part of the cache key (see the table above)."""
    if flavour.aot:
        if not targets and gpu.available and gpu.compute_capability == "7.5":
            targets = ("SM75",)  # Turing is not in RTX's default portable set
        return "aot:" + (",".join(targets) if targets else "default")
    if not gpu.available:
        raise BackendError(f"a {flavour.module} engine is built on the GPU it will run on, and there is "
                           f"{gpu.describe()}; build on the target device, or use --flavour tensorrt-rtx")
    return f"{gpu.name} sm{gpu.compute_capability}"


def targets_of(target: str) -> tuple[str, ...]:
    """Inverse of :func:`build_target` for AOT targets: "aot:SM75,SM86" -> ("SM75", "SM86")."""
    if not target.startswith("aot:") or target == "aot:default":
        return ()
    return tuple(target[4:].split(","))


def configure_builder(trt: ModuleType, flavour: Flavour, config: Any, *, target: str,
                      timing_cache: bytes | None) -> Any:
    """Apply the per-flavour builder settings; returns the timing cache object (or None)."""
    if flavour.aot:
        targets = targets_of(target)
        if targets:
            config.num_compute_capabilities = len(targets)
            for i, t in enumerate(targets):
                member = getattr(trt.ComputeCapability, t, None)
                if member is None or not config.set_compute_capability(member, i):
                    raise ConfigError(f"{flavour.module} {trt.__version__} cannot target compute capability {t}")
        return None
    if flavour.timing_cache:
        cache = config.create_timing_cache(timing_cache or b"")
        config.set_timing_cache(cache, False)  # False: a cache from another device/version is rejected
        return cache
    return None


def serialize_timing_cache(config: Any) -> bytes | None:
    cache = config.get_timing_cache()
    return None if cache is None else bytes(cache.serialize())


def create_context(trt: ModuleType, flavour: Flavour, engine: Any) -> tuple[Any, str]:
    """An execution context and how CUDA graphs are done: "native" (RTX does it) or "capture" (we do)."""
    if flavour.native_cuda_graphs and hasattr(engine, "create_runtime_config"):
        rc = engine.create_runtime_config()
        rc.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
        return engine.create_execution_context(rc), "native"
    return engine.create_execution_context(), "capture"
