"""Probe for an NVIDIA GPU without touching CUDA or TensorRT.

TensorRT (and some CUDA bindings) can segfault on a machine with no GPU instead of raising, so every
GPU path asks :func:`probe_gpu` first. The probe only reads files and runs ``nvidia-smi`` in a
subprocess: a crash there cannot take this process down.
"""

from __future__ import annotations

import ctypes.util
import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuInfo:
    available: bool
    name: str | None = None
    driver: str | None = None
    compute_capability: str | None = None
    memory_mib: int | None = None
    reason: str = ""  # why none was found, or how it was found

    def describe(self) -> str:
        if not self.available:
            return f"no NVIDIA GPU ({self.reason})"
        cc = f", compute capability {self.compute_capability}" if self.compute_capability else ""
        return f"{self.name} (driver {self.driver}{cc}, {self.memory_mib} MiB)"


@functools.lru_cache(maxsize=1)
def probe_gpu() -> GpuInfo:
    """Find an NVIDIA GPU by asking ``nvidia-smi`` in a subprocess. Cached for the process."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        has_dev = Path("/dev/nvidia0").exists() or Path("/dev/nvhost-ctrl").exists()  # Jetsons have no nvidia-smi
        has_lib = ctypes.util.find_library("cuda") is not None
        if has_dev and has_lib:
            return GpuInfo(True, name="NVIDIA GPU (nvidia-smi absent)", reason="device node and libcuda found")
        return GpuInfo(False, reason="nvidia-smi not found and no /dev/nvidia0 with libcuda")
    query = "name,driver_version,compute_cap,memory.total"
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
    except (subprocess.SubprocessError, OSError) as exc:
        return GpuInfo(False, reason=f"nvidia-smi failed: {exc}")
    if not out:
        return GpuInfo(False, reason="nvidia-smi lists no GPU")
    fields = [f.strip() for f in out[0].split(",")]
    name, driver, cc, mem = (fields + [None] * 4)[:4]
    try:
        mem_mib = int(float(mem)) if mem else None
    except ValueError:
        mem_mib = None
    return GpuInfo(True, name=name, driver=driver, compute_capability=cc, memory_mib=mem_mib, reason="nvidia-smi")
