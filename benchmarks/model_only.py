"""Model-only latency: every available backend on the same model and the same real-looking input.

What is timed: one ``infer`` call, host array in -> host array out (the Backend contract), nothing else: no
preprocessing, no postprocessing. For GPUs this includes the host->device and device->host copies, which the
frame loop pays too. Each backend gets ``budget.warmup`` untimed queries first (session/engine warm-up,
allocator growth, CPU frequency ramp), then queries one after another (single stream, MLPerf style).

Backends (see :data:`benchmarks.config.MODEL_BACKENDS`); one that cannot run here is reported as
``skipped`` with the reason, never silently dropped:

* ``pytorch-eager``: the baseline: torch eager FP32, ``torch.inference_mode()``, ``torch.set_num_threads``
  = the thread setting; on CUDA too (synchronised, host copy) when torch sees a GPU.
* ``onnxruntime-cpu``: ONNX Runtime FP32 on the CPU provider (what the bedside runtime runs on a laptop).
* ``onnxruntime-cpu-fp16``: ONNX Runtime on the FP16 artifact (``<model>.fp16.onnx`` beside the model, or
  made by ``export.fp16`` into a temp folder).
* ``onnxruntime-cuda`` / ``tensorrt``: through ``edge.backends.open_backend`` (the runtime's own selection).

Batch > 1 runs only where the model allows it: the ONNX artifacts are exported with a STATIC batch of 1
(streaming), so their batch-N rows say so; PyTorch eager takes any batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.models import ModelInfo, torch_baseline
from benchmarks.timing import rounded, summary, time_queries

BASELINE = "pytorch-eager"


class Skip(Exception):
    """A backend that cannot run here; the message is the reason shown in the results."""


@dataclass
class Prepared:
    fn: Callable[[], object]  # one synchronous query
    close: Callable[[], None]
    label: str
    chosen: str  # what actually ran (provider / device), for the record


def _batched(x: np.ndarray, batch: int) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(x, batch, axis=0))


# ------------------------------------------------------------------------------------------- runners
def prepare_torch(cfg: BenchConfig, x: np.ndarray, batch: int, device: str) -> Prepared:
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"torch is not installed ({exc}); pip install 'dvt-edge[train]'") from exc
    if device == "cuda" and not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    torch.set_num_threads(cfg.threads)
    model, note = torch_baseline(cfg.checkpoint)
    model = model.to(device)
    xt = torch.from_numpy(_batched(x, batch)).to(device)

    if device == "cuda":
        def fn():
            with torch.inference_mode():
                out = model(xt).cpu()  # device -> host copy, like the ONNX/TensorRT backends
            torch.cuda.synchronize()
            return out
    else:
        def fn():
            with torch.inference_mode():
                return model(xt)

    return Prepared(fn, lambda: None, f"PyTorch eager FP32 ({device})",
                    f"torch {torch.__version__} {device}, {torch.get_num_threads()} threads, {note}")


def fp16_artifact(model: Path, tmp: Path) -> Path:
    """The FP16 twin ``<model>.fp16.onnx`` when it is current (derived from this FP32 file), else one made by
    ``export.fp16.convert_fp16`` into ``tmp`` (never into the source tree); Skip when neither is possible."""
    beside = model.with_name(model.name[: -len(".onnx")] + ".fp16.onnx")
    try:
        from export import (
            fp16 as fp16_mod,  # imported lazily: needs onnx and onnxconverter-common
        )
    except ImportError as exc:
        if beside.is_file():
            return beside  # cannot check it is current without export.fp16; the JSON records which file ran
        raise Skip(f"no {beside.name} beside the model and export.fp16 is not available ({exc})") from exc
    if beside.is_file() and fp16_mod.fp16_is_current(beside, model):
        return beside
    out = tmp / beside.name
    try:
        fp16_mod.convert_fp16(model, out)
    except Exception as exc:
        raise Skip(f"export.fp16 could not convert {model.name}: {type(exc).__name__}: {exc}") from exc
    return out


def prepare_backend(model: Path, requested: str, cfg: BenchConfig, x: np.ndarray, batch: int) -> Prepared:
    from benchmarks.models import open_alone
    from edge.errors import DvtEdgeError
    from edge.us.int8_frames import calibration_inputs

    try:
        be, choice = open_alone(model, requested, cfg.threads, calibration=calibration_inputs)
    except DvtEdgeError as exc:
        raise Skip(str(exc)) from exc
    spec = be.inputs[0]
    if isinstance(spec.shape[0], int) and spec.shape[0] != batch:
        be.close()
        raise Skip(f"{model.name} has a static batch of {spec.shape[0]} (streaming export); batch {batch} not run")
    feeds = {spec.name: _batched(x, batch).astype(spec.dtype, copy=False)}
    be.infer(feeds)  # fail here (as a skip) rather than inside the timed loop
    return Prepared(lambda: be.infer(feeds), be.close, requested, f"{be.name} on {model.name} ({choice.reason})")


def prepare(name: str, info: ModelInfo, cfg: BenchConfig, x: np.ndarray, batch: int, tmp: Path) -> list[tuple[str, Callable[[], Prepared]]]:
    """(row name, deferred preparation) for backend ``name``; several rows for PyTorch (cpu, cuda)."""
    if name == "pytorch-eager":
        return [("pytorch-eager", lambda: prepare_torch(cfg, x, batch, "cpu")),
                ("pytorch-eager-cuda", lambda: prepare_torch(cfg, x, batch, "cuda"))]
    if name == "onnxruntime-cpu-fp16":
        return [(name, lambda: prepare_backend(fp16_artifact(info.path, tmp), "onnxruntime-cpu", cfg, x, batch))]
    if name == "tensorrt":
        from edge.gpu import probe_gpu

        def trt():
            gpu = probe_gpu()  # TensorRT can crash on a machine with no GPU: never import it there
            if not gpu.available:
                raise Skip(f"TensorRT needs an NVIDIA GPU: {gpu.describe()}")
            return prepare_backend(info.path, "tensorrt", cfg, x, batch)
        return [(name, trt)]
    return [(name, lambda: prepare_backend(info.path, name, cfg, x, batch))]


# ------------------------------------------------------------------------------------------- the section
def run_model_only(cfg: BenchConfig, info: ModelInfo, x: np.ndarray, tmp: Path, log=print) -> dict:
    """Measure every requested backend at every requested batch size. Returns the ``model_only`` block."""
    rows: list[dict] = []
    for batch in cfg.batches:
        budget = cfg.budget if batch == 1 else cfg.batch_budget
        for name in cfg.backends:
            for row_name, make in prepare(name, info, cfg, x, batch, tmp):
                row = {"backend": row_name, "batch": batch}
                try:
                    prep = make()
                except Skip as exc:
                    if row_name == "pytorch-eager-cuda":
                        continue  # the CPU row is the baseline; a missing torch CUDA is not news on a CPU box
                    if batch > 1 and any(r["backend"] == row_name and r["status"] == "skipped" for r in rows):
                        continue  # already skipped at batch 1 (no GPU, no provider): say it once
                    rows.append(row | {"status": "skipped", "reason": str(exc)})
                    log(f"  {row_name:<22} batch {batch}: skipped: {exc}")
                    continue
                try:
                    samples, run = time_queries(prep.fn, budget)
                finally:
                    with contextlib.suppress(Exception):
                        prep.close()
                stats = summary(samples)
                rows.append(row | {
                    "status": "ok", "label": prep.label, "chosen": prep.chosen, **run,
                    "latency_ms": stats,
                    "throughput_per_s": round(batch * 1e3 / stats["mean"], 2),
                    "samples_ms": rounded(samples),
                })
                log(f"  {row_name:<22} batch {batch}: p50 {stats['p50']:.2f} ms  p90 {stats['p90']:.2f}  "
                    f"p99 {stats['p99']:.2f}  ({run['queries']} queries, {run['seconds']:.1f} s)")
    _speedups(rows)
    return {"baseline": BASELINE, "input_shape": list(x.shape), "synchronisation":
            "host arrays in and out of every call (ORT copies outputs to the host before run() returns; the TensorRT "
            "backend synchronises its stream; torch CUDA calls synchronize())", "results": rows}


def _speedups(rows: list[dict]) -> None:
    """speed-up = baseline p50 / backend p50 (and on the mean), same batch, measured in this same run."""
    base = {r["batch"]: r for r in rows if r["backend"] == BASELINE and r["status"] == "ok"}
    for r in rows:
        b = base.get(r["batch"])
        if r["status"] != "ok" or b is None:
            continue
        r["speedup_vs_baseline"] = {
            "p50": round(b["latency_ms"]["p50"] / r["latency_ms"]["p50"], 3),
            "mean": round(b["latency_ms"]["mean"] / r["latency_ms"]["mean"], 3),
        }
