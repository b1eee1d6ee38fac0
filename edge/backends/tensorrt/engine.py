"""ONNX -> TensorRT engine, through the engine cache: the build step both the runtime and export/ use.

Dependency direction: the bedside runtime must build (or find) an engine when it opens a TensorRT backend,
before the stream starts, and edge/ may not import export/. So the builder and the cache live here, in the
torch-free runtime (they need only TensorRT's own ONNX parser, not the ``onnx`` package), and
``export/tensorrt/`` is a thin ahead-of-time/CLI layer on top that adds what needs ``onnx`` (the FP16
conversion) and the reporting::

    export/tensorrt/aot.py ───────┬──> edge/backends/tensorrt/engine.py ──> cache.py, flavour.py, io.py
    edge/backends/tensorrt/runner.py ─┘     (build + cache)              (disk) (per-flavour) (checks)

Precision comes from the graph (strongly typed network): an FP16 engine is built from ``<name>.fp16.onnx``
(FP16 weights/compute, float32 IO), written by ``dvt-edge export fp16``. :func:`resolve_model` picks it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from edge.backends.tensorrt.cache import EngineCache, Entry, KeyParts, atomic_write
from edge.backends.tensorrt.flavour import (
    Flavour,
    build_target,
    configure_builder,
    import_trt,
    installed_flavour,
    normalise_targets,
    serialize_timing_cache,
)
from edge.backends.tensorrt.io import IoTensor, ShapeRange, check_io, dtype_name, profile_for
from edge.errors import BackendError, ModelError
from edge.gpu import probe_gpu
from edge.spec import ModelSpec, load_spec, spec_path_for

log = logging.getLogger(__name__)
DEFAULT_WORKSPACE_MIB = 1024
_LOGGERS: dict[str, Any] = {}
_LOGGER_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()  # one build at a time per process: the logger's sink is shared


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trt_logger(trt: ModuleType) -> Any:
    """The process-wide logger for one TensorRT module (TensorRT keeps the first logger it is given).

    Messages go to Python logging (TRT errors as ERROR, warnings as INFO, the rest DEBUG) and, while
    ``logger.sink`` is a list, warnings and errors are also appended there (to report a failed build)."""
    with _LOGGER_LOCK:
        if trt.__name__ in _LOGGERS:
            return _LOGGERS[trt.__name__]

        class CaptureLogger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.sink: list[str] | None = None

            def log(self, severity: Any, msg: str) -> None:
                sev = getattr(severity, "name", str(severity)).rsplit(".", 1)[-1]
                bad = sev in ("INTERNAL_ERROR", "ERROR")
                log.log(logging.ERROR if bad else logging.INFO if sev == "WARNING" else logging.DEBUG,
                        "%s: %s", trt.__name__, msg)
                if self.sink is not None and (bad or sev == "WARNING"):
                    self.sink.append(f"[{sev}] {msg}")

        _LOGGERS[trt.__name__] = CaptureLogger()
        return _LOGGERS[trt.__name__]


def fp16_sibling(model: Path) -> Path:
    """``x.onnx`` -> ``x.fp16.onnx`` (the FP16 twin written by ``dvt-edge export fp16``)."""
    return model.with_name(model.name[: -len(".onnx")] + ".fp16.onnx")


def fp16_is_current(fp16: Path, fp32: Path) -> bool:
    """True when ``fp16`` exists and its spec says it was derived from the current bytes of ``fp32``."""
    try:
        derived = json.loads(spec_path_for(fp16).read_text()).get("derived_from", {})
    except (OSError, json.JSONDecodeError):
        return False
    return fp16.is_file() and derived.get("sha256") == sha256_file(fp32)


def resolve_model(model: str | Path, precision: str = "auto") -> tuple[Path, str]:
    """The ONNX file to build for ``precision`` ("auto" | "fp16" | "fp32") and the precision it has.

    "auto" takes the FP16 twin when it is current, else the FP32 model with a logged warning (never a
    silent downgrade); "fp16" without a current twin is a ModelError saying how to make one."""
    model = Path(model)
    if model.suffix != ".onnx":
        raise ModelError(f"{model}: expected an .onnx model (engines are built from ONNX and cached)")
    if not model.is_file():
        raise ModelError(f"{model}: ONNX model not found")
    if precision not in ("auto", "fp16", "fp32"):
        raise ModelError(f"unknown precision '{precision}': choose auto, fp16 or fp32")
    if model.name.endswith(".fp16.onnx"):
        if precision == "fp32":
            raise ModelError(f"{model}: is the FP16 model; pass the FP32 .onnx for an FP32 engine")
        return model, "fp16"
    if precision == "fp32":
        return model, "fp32"
    twin = fp16_sibling(model)
    if fp16_is_current(twin, model):
        return twin, "fp16"
    if precision == "fp16":
        raise ModelError(f"{model}: no current FP16 model beside it ({twin.name} missing or derived from other "
                         f"weights): run 'dvt-edge export fp16 {model}'")
    log.warning("%s: no current %s beside it (run 'dvt-edge export fp16 %s'); building an FP32 engine",
                model, twin.name, model)
    return model, "fp32"


def _spec_io(spec: ModelSpec) -> tuple[IoTensor, ...]:
    def shape(s: tuple[int | str, ...]) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in s)

    return (IoTensor(spec.input.name, "input", shape(spec.input.shape), spec.input.dtype),
            *(IoTensor(o.name, "output", shape(o.shape), o.dtype) for o in spec.outputs))


def network_io(network: Any) -> tuple[IoTensor, ...]:
    """IO of a parsed ``INetworkDefinition`` (what the engine will expose; readable without a GPU)."""
    ins = (network.get_input(i) for i in range(network.num_inputs))
    outs = (network.get_output(i) for i in range(network.num_outputs))
    return (*(IoTensor(t.name, "input", tuple(t.shape), dtype_name(t.dtype)) for t in ins),
            *(IoTensor(t.name, "output", tuple(t.shape), dtype_name(t.dtype)) for t in outs))


@dataclass
class BuildOutput:
    plan: bytes
    io: tuple[IoTensor, ...]
    timing_cache: bytes | None
    warnings: tuple[str, ...]


def build_plan(trt: ModuleType, flavour: Flavour, onnx: Path, spec: ModelSpec, profile: tuple[ShapeRange, ...], *,
               target: str, workspace_mib: int = DEFAULT_WORKSPACE_MIB,
               timing_cache: bytes | None = None) -> BuildOutput:
    """Parse ``onnx`` into a strongly typed network, check its IO against ``spec``, build the plan.

    Raises ModelError with every parser error when the ONNX cannot be parsed or does not match its spec,
    BackendError with the builder's warnings/errors when the build fails. Both name the ONNX file."""
    logger = trt_logger(trt)
    ver = f"{flavour.module} {trt.__version__}"
    with _BUILD_LOCK, _capturing(logger) as messages:
        return _build(trt, flavour, onnx, spec, profile, logger, messages, ver, target, workspace_mib, timing_cache)


@contextlib.contextmanager
def _capturing(logger: Any) -> Iterator[list[str]]:
    """Collect the logger's warnings and errors for the duration (to report a failed build in full)."""
    logger.sink = messages = []
    try:
        yield messages
    finally:
        logger.sink = None


def _build(trt: ModuleType, flavour: Flavour, onnx: Path, spec: ModelSpec, profile: tuple[ShapeRange, ...],
           logger: Any, messages: list[str], ver: str, target: str, workspace_mib: int,
           timing_cache: bytes | None) -> BuildOutput:
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or messages or ["(no detail)"]
        raise ModelError(f"{onnx}: {ver} cannot parse this ONNX model ({len(errors)} error(s)):\n  "
                         + "\n  ".join(errors)
                         + "\ncheck the file is complete, or export it again at opset 17 (export/onnx_export.py)")
    io = network_io(network)
    check_io(spec, io, where=str(onnx))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt = builder.create_optimization_profile()
    for r in profile:
        opt.set_shape(r.name, r.min, r.opt, r.max)
    config.add_optimization_profile(opt)
    configure_builder(trt, flavour, config, target=target, timing_cache=timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"{onnx}: {ver} failed to build an engine (target {target}); builder log:\n  "
                           + "\n  ".join(messages[-50:] or ["(no messages)"])
                           + "\nrun with --debug for the full TensorRT log")
    tc = serialize_timing_cache(config) if flavour.timing_cache else None
    return BuildOutput(bytes(plan), io, tc, tuple(messages))


def _io_matches(spec: ModelSpec, io: tuple[IoTensor, ...], entry: Entry) -> bool:
    """Whether a cached sidecar's IO matches ``spec`` (logged when not, so the caller rebuilds)."""
    try:
        check_io(spec, io, where=str(entry.sidecar))
    except ModelError as exc:
        log.warning("engine cache: %s; rebuilding", exc)
        return False
    return True


@dataclass
class ResolvedEngine:
    """An engine file ready to deserialize, with everything known about it."""

    entry: Entry
    onnx: Path  # the ONNX it was built from (the FP16 twin for fp16)
    spec: ModelSpec  # that ONNX's spec
    precision: str
    flavour: Flavour
    parts: KeyParts
    cache: EngineCache
    io: tuple[IoTensor, ...]


def ensure_engine(model: str | Path, *, flavour: str | None = None, precision: str = "auto",
                  targets: tuple[str, ...] = (), cache: EngineCache | None = None,
                  workspace_mib: int = DEFAULT_WORKSPACE_MIB, stream: TextIO | None = None) -> ResolvedEngine:
    """Find the cached engine for ``model`` or build it (with console progress). Call before streaming.

    ``flavour``: "tensorrt" | "tensorrt-rtx" | None (the installed one). ``targets``: RTX compute
    capabilities ("8.6", "SM75"); empty = RTX's portable default. Standard TensorRT needs the GPU here."""
    fl = installed_flavour(flavour)
    gpu = probe_gpu()
    target = build_target(fl, gpu, normalise_targets(targets))  # BackendError: tensorrt without a GPU
    onnx, prec = resolve_model(model, precision)
    spec = load_spec(onnx)
    profile = profile_for(spec, [t for t in _spec_io(spec) if t.mode == "input"], where=str(onnx))
    trt = import_trt(fl)
    parts = KeyParts(sha256_file(onnx), fl.module, str(trt.__version__), target, prec,
                     tuple(r.to_json() for r in profile))
    cache = cache or EngineCache()
    tc_path = cache.timing_cache_path(parts)
    built_io: list[tuple[IoTensor, ...]] = []

    def build() -> tuple[bytes, dict[str, Any]]:
        tc = tc_path.read_bytes() if fl.timing_cache and tc_path.is_file() else None
        out = build_plan(trt, fl, onnx, spec, profile, target=target, workspace_mib=workspace_mib, timing_cache=tc)
        if out.timing_cache:
            atomic_write(tc_path, out.timing_cache)
        built_io.append(out.io)
        return out.plan, {
            "onnx": {"file": onnx.name, "path": str(onnx.resolve()), "sha256": parts.onnx_sha256},
            "io": [t.to_json() for t in out.io], "profile": [r.to_json() for r in profile],
            "builder": {"flavour": fl.module, "version": str(trt.__version__), "target": target,
                        "workspace_mib": workspace_mib, "python": platform.python_version()},
            "model_spec": spec.to_json(), "warnings": list(out.warnings),
        }

    name = onnx.name[: -len(".onnx")]
    label = f"building {prec} engine for {onnx.name} ({fl.module} {trt.__version__}, {target})"
    entry = cache.get_or_build(name, parts, build, stream=stream, label=label)
    io = built_io[0] if built_io else tuple(IoTensor.from_json(t) for t in entry.meta.get("io", []))
    if not built_io and not _io_matches(spec, io, entry):
        cache.invalidate(entry)  # a sidecar whose IO disagrees with the spec is not trusted: rebuild once
        entry = cache.get_or_build(name, parts, build, stream=stream, label=f"rebuilding {entry.engine.name}")
        io = built_io[0]
    return ResolvedEngine(entry, onnx, spec, prec, fl, parts, cache, io)
