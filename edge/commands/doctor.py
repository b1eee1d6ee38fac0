"""``dvt-edge doctor``: what this machine can run, and what ``--backend auto`` would choose and why."""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
from importlib.metadata import PackageNotFoundError, version

from edge.backends.ort_install import INSTALL_HINT, duplicate_warning, installed_ort
from edge.backends.select import choose_backend
from edge.backends.tensorrt.cache import default_cache_dir
from edge.backends.tensorrt.cuda_mem import available_bindings
from edge.backends.tensorrt.flavour import tensorrt_flavour
from edge.errors import DvtEdgeError
from edge.gpu import probe_gpu


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def collect() -> dict:
    """Facts only: nothing here imports TensorRT or touches CUDA (see edge.gpu)."""
    gpu = probe_gpu()
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    flavour = tensorrt_flavour()
    trt_dist = {"tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11"),
                "tensorrt_rtx": ("tensorrt-rtx", "tensorrt-rtx-cu13", "tensorrt-rtx-cu12")}
    # every installed flavour (both may be); versions from package metadata: nothing is imported
    installed = {m: next((v for d in dists if (v := _version(d))), "unknown (no pip metadata; JetPack?)")
                 for m, dists in trt_dist.items() if importlib.util.find_spec(m) is not None}
    trt_version = installed.get(flavour) if flavour else None
    try:
        choice = choose_backend("auto")
        auto = {"backend": choice.name, "reason": choice.reason}
    except DvtEdgeError as exc:
        auto = {"backend": None, "reason": str(exc)}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "gpu": {"available": gpu.available, "name": gpu.name, "driver": gpu.driver,
                "compute_capability": gpu.compute_capability, "memory_mib": gpu.memory_mib, "probe": gpu.reason},
        "tensorrt": {"flavour": flavour, "version": trt_version, "installed": installed,
                     "engine_cache": str(default_cache_dir())},
        "onnxruntime": {"version": _version("onnxruntime") or _version("onnxruntime-gpu"), "providers": providers,
                        "packages": dict(installed_ort()), "warning": duplicate_warning()},
        "cuda_bindings": {b: b in available_bindings() for b in ("pycuda", "cuda-python")},
        "numpy": _version("numpy"), "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "pydicom": _version("pydicom"), "torch (training/export only)": _version("torch"),
        "auto_backend": auto,
    }


def render(facts: dict) -> str:
    g, t, o = facts["gpu"], facts["tensorrt"], facts["onnxruntime"]
    gpu = (f"{g['name']} (driver {g['driver']}, compute {g['compute_capability']}, {g['memory_mib']} MiB)"
           if g["available"] else f"none ({g['probe']})")
    cuda = ", ".join(k for k, v in facts["cuda_bindings"].items() if v) or "none"
    lines = [
        f"python        {facts['python']} on {facts['machine']}",
        f"GPU           {gpu}",
        f"TensorRT      {', '.join(f'{m} {v}' for m, v in t['installed'].items()) or 'not installed'}"
        + (f" (backend uses {t['flavour']}; engine cache {t['engine_cache']})" if t["flavour"] else ""),
        f"ONNX Runtime  {', '.join(f'{n} {v}' for n, v in o.get('packages', {}).items()) or 'not installed'}; "
        f"providers: {', '.join(o['providers']) or 'none'}"
        + (f"\nWARNING       {o['warning']}" if o.get("warning") else "")
        + ("" if o.get("packages") else f"\n              {INSTALL_HINT}"),
        f"CUDA bindings {cuda}",
        f"auto backend  {facts['auto_backend']['backend']}: {facts['auto_backend']['reason']}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    facts = collect()
    print(json.dumps(facts, indent=2) if args.json else render(facts))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show GPU, TensorRT, ONNX Runtime and the backend 'auto' would choose")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
