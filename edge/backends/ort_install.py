"""Which ONNX Runtime package is installed, and what to install where.

ONNX Runtime is an extra of dvt-edge, not a hard dependency: ``onnxruntime`` (CPU) and ``onnxruntime-gpu``
(CUDA, also NVIDIA's Jetson builds) both provide the one ``onnxruntime`` module, so a hard dependency on the
first plus a GPU install of the second left two packages in one environment, the last one installed silently
overwriting the other's files. Now one is chosen:

* x86-64 or Arm CPU: ``pip install 'dvt-edge[cpu]'`` (``onnxruntime`` from PyPI);
* x86-64 with an NVIDIA GPU: ``pip install 'dvt-edge[gpu]'`` (``onnxruntime-gpu`` from PyPI, and cuda-python);
* Jetson (JetPack 6): ``pip install dvt-edge`` plus NVIDIA's ``onnxruntime-gpu`` wheel for that JetPack (PyPI's
  aarch64 ``onnxruntime-gpu`` is not built for Jetson's integrated GPU).

Nothing here imports onnxruntime: package metadata and ``find_spec`` only.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import distributions

#: PyPI distributions that install the ``onnxruntime`` module
ORT_DISTS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-qnn",
             "onnxruntime-rocm", "onnxruntime-migraphx", "onnxruntime-training")

INSTALL_HINT = ("install one ONNX Runtime: pip install 'dvt-edge[cpu]' on a CPU, 'dvt-edge[gpu]' on an x86-64 "
                "machine with an NVIDIA GPU, or on a Jetson NVIDIA's onnxruntime-gpu wheel for your JetPack "
                "(README: 'Which ONNX Runtime')")


def installed_ort() -> list[tuple[str, str]]:
    """[(distribution, version)] of the ONNX Runtime packages installed (normally 0 or 1)."""
    found = {}
    for d in distributions():
        name = (d.metadata.get("Name") or "").lower().replace("_", "-")
        if name in ORT_DISTS:
            found[name] = d.version
    return sorted(found.items())


def ort_importable() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def duplicate_warning() -> str | None:
    """A warning when two ONNX Runtime packages share this environment, else None."""
    found = installed_ort()
    if len(found) < 2:
        return None
    names = ", ".join(f"{n} {v}" for n, v in found)
    return (f"{len(found)} ONNX Runtime packages are installed together ({names}); they share the 'onnxruntime' "
            "module and whichever was installed last overwrote the other. Fix: pip uninstall -y "
            + " ".join(n for n, _ in found) + ", then " + INSTALL_HINT.replace("install one ONNX Runtime: ", ""))


def missing_message(context: str = "no ONNX Runtime is installed") -> str:
    return f"{context}; {INSTALL_HINT}"
