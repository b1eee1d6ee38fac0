"""The effective benchmark configuration: one frozen dataclass, recorded verbatim in every result file.

Two presets: ``full`` (the run the README quotes; ~5.5 min on two CPU cores) and ``quick`` (a CI smoke run,
under a minute on two CPU cores). Everything a reader needs to reproduce a number is in here.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

#: Backend names accepted by ``--backends`` for the model-only section (order = table order).
MODEL_BACKENDS = (
    "pytorch-eager",  # the baseline: torch eager FP32 on the CPU (and on CUDA where torch sees a GPU)
    "onnxruntime-cpu",  # ONNX Runtime FP32, CPU execution provider
    "onnxruntime-cpu-fp16",  # ONNX Runtime on the FP16 artifact (<model>.fp16.onnx or export.fp16)
    "onnxruntime-cuda",  # ONNX Runtime FP32, CUDA execution provider
    "tensorrt",  # TensorRT FP16 engine through edge.backends (select 'tensorrt')
)
SECTIONS = ("model", "e2e", "ct", "compare")
#: what a plain ``dvt-edge bench`` runs; ``compare`` (interleaved ratios, OpenVINO, 1080p loops) is asked for
DEFAULT_SECTIONS = ("model", "e2e", "ct")


@dataclass(frozen=True)
class Budget:
    """How long one model-only measurement runs (MLPerf single-stream spirit: enough queries for a stable p90).

    A measurement issues ``warmup`` untimed queries, then timed queries until BOTH ``min_queries`` and
    ``min_seconds`` are reached, stopping early only at ``max_seconds`` (recorded as ``truncated``).
    """

    warmup: int
    min_queries: int
    min_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    out: Path = Path("bench-out")
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    backends: tuple[str, ...] = MODEL_BACKENDS
    only: tuple[str, ...] = DEFAULT_SECTIONS
    model: Path | None = None  # ultrasound ONNX; None = edge/assets/resunet-lite.onnx (or an untrained export)
    checkpoint: Path | None = None  # PyTorch weights for the eager baseline; None = runs/us-lite/resunet-lite.pt
    ct_model: Path | None = None  # CT detector ONNX; None = edge/ct/assets/ctdet-k3.onnx
    device_label: str = ""  # names the machine in the results ("cpu-2core", "jetson-orin-nano", ...)
    # model-only
    budget: Budget = Budget(warmup=50, min_queries=1024, min_seconds=60.0, max_seconds=120.0)
    batch_budget: Budget = Budget(warmup=10, min_queries=256, min_seconds=15.0, max_seconds=60.0)
    batches: tuple[int, ...] = (1, 4)
    # end to end
    e2e_backend: str = "auto"
    e2e_fps: tuple[float, ...] = (30.0, 60.0)
    e2e_seconds: float = 30.0  # per paced scenario, after warm-up
    e2e_warmup_s: float = 2.0  # frames captured in the first seconds are processed but not counted
    slow_delay_ms: float = 50.0  # the deliberately slow backend's extra time per infer
    slow_seconds: float = 15.0
    fifo_seconds: float = 10.0  # the lossless-queue contrast (its backlog grows, so keep it short)
    unpaced_seconds: float = 20.0
    # ct
    ct_backend: str = "auto"
    ct_seed: int = 7
    ct_size: int = 512
    ct_slices: int | None = None  # None = the phantom's own length (a whole study)
    ct_warmup: int = 5
    # compare (interleaved A, B, A, B rounds; benchmarks/compare.py)
    compare_warmup: int = 20
    compare_rounds: int = 12
    compare_queries: int = 50  # per contender per round
    compare_loop_frames: int = 150  # frames of the 1080p clip
    compare_loop_rounds: int = 3

    def to_json(self) -> dict:
        data = asdict(self)
        for k, v in data.items():
            if isinstance(v, Path):
                data[k] = str(v)
        return data


def quick_config(base: BenchConfig) -> BenchConfig:
    """The ``--quick`` preset: few iterations, short scenarios, a 12-slice CT study (< 1 min on 2 CPU cores)."""
    return replace(
        base,
        quick=True,
        budget=Budget(warmup=5, min_queries=30, min_seconds=0.0, max_seconds=3.0),
        batch_budget=Budget(warmup=2, min_queries=5, min_seconds=0.0, max_seconds=2.0),
        batches=(1,),
        e2e_fps=(30.0,),
        e2e_seconds=3.0,
        e2e_warmup_s=0.5,
        slow_seconds=2.5,
        fifo_seconds=2.0,
        unpaced_seconds=2.0,
        ct_slices=12,
        ct_warmup=2,
        compare_warmup=3,
        compare_rounds=3,
        compare_queries=10,
        compare_loop_frames=20,
        compare_loop_rounds=1,
    )
