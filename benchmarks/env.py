"""What machine and software a benchmark ran on: recorded in every result file next to the numbers.

Nothing here imports torch or onnxruntime eagerly at module import; each version is read when the
environment is collected (a missing library is recorded as ``None``, not an error).
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from pathlib import Path

from edge.gpu import probe_gpu

_LIBRARIES = {  # import name -> distribution names to ask importlib.metadata
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "torch": ("torch",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "onnx": ("onnx",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    "tensorrt_rtx": ("tensorrt_rtx", "tensorrt-rtx"),
    "pydicom": ("pydicom",),
    "matplotlib": ("matplotlib",),
}


def cpu_model() -> str:
    """The CPU model string (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, which containers and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, dists in _LIBRARIES.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def collect_environment(threads: int, device_label: str) -> dict:
    """The environment block of a result file: device, CPU, GPU, OS, libraries, thread settings, load."""
    gpu = probe_gpu()
    env = {
        "device_label": device_label,
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
                "machine": platform.machine()},
        "gpu": {"available": gpu.available, "name": gpu.name, "driver": gpu.driver,
                "compute_capability": gpu.compute_capability, "memory_mib": gpu.memory_mib,
                "probe": gpu.reason, "describe": gpu.describe()},
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "threads": {"requested": threads, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "onnxruntime_intra_op": threads, "onnxruntime_inter_op": 1, "torch_intra_op": threads},
        "load_average_start": load_average(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import onnxruntime as ort

        env["onnxruntime_providers"] = list(ort.get_available_providers())
    except ImportError:
        env["onnxruntime_providers"] = []
    return env


def default_device_label() -> str:
    """``gpu-<name>`` when a GPU is found, else ``cpu-<n>core`` (the results folder name)."""
    gpu = probe_gpu()
    if gpu.available and gpu.name:
        return "gpu-" + "-".join(gpu.name.lower().replace("nvidia", "").split())
    return f"cpu-{usable_cores()}core"
