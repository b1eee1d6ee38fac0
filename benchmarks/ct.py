"""CT throughput: slices per second for a whole phantom study through the real CT job, per stage.

A synthetic lower-extremity study (``training.ct.phantom.make_study``, seed ``ct_seed``, 512 x 512, its own
length: ~80-130 slices) is written as a DICOM series to a temp folder (not timed), then read back and run
through ``edge.ct.loop.run_slice_loop`` with the bundled detector (``edge/ct/assets/ctdet-k3.onnx``),
exactly as ``dvt-edge ct scan`` does. Stages:

* ``index``: scanning the folder's headers and sorting the series (once per study, before the first slice);
* ``read``: how long the pipeline waits for the next slice (the stream's ``next()``). The reader decodes ahead
  on its own thread (``CTSeries.prefetch``), so this is only the part of reading NOT hidden behind inference;
* ``read_decode``: the reader's full cost per slice (pydicom read + HU decode), timed in a separate pass over
  the same files after the run (what the prefetch thread spends, off the critical path);
* ``preprocess``: window/resample/fit of the new slice and stacking the k-slice input (``detect.preprocess``);
* ``infer``: the detector's Backend.infer (host arrays: synchronous);
* ``decode``: heatmap peaks, boxes, NMS (``detect.decode``);
* ``link``: the cross-slice linker (summary only: ``run_slice_loop`` keeps no raw link samples).

The backend is created and warmed up (``ct_warmup`` untimed queries) before the study starts. When the CT
pipeline or its model is missing, the section is ``skipped`` with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.timing import rounded, summary


class TimedStream:
    """Wraps a slice stream; records how long each ``next()`` took (ms) and forwards every other attribute."""

    def __init__(self, stream):
        self._stream = stream
        self.read_ms: list[float] = []

    def __iter__(self):
        it = iter(self._stream)
        while True:
            t0 = time.perf_counter()
            try:
                s = next(it)
            except StopIteration:
                return
            self.read_ms.append((time.perf_counter() - t0) * 1e3)
            yield s

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _decode_cost(stream) -> list[float]:
    """ms per slice to read + decode each file of the series again, one after another (empty if unavailable)."""
    try:
        from edge.ct.dicom_series import decode_hu

        paths = [h.path for h in stream.series.headers]
    except (ImportError, AttributeError):
        return []
    out = []
    for p in paths:
        t0 = time.perf_counter()
        decode_hu(p)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def run_ct(cfg: BenchConfig, tmp: Path, log=print) -> dict:
    try:
        from edge.backends import open_backend
        from edge.ct.detector import ModelDetector, default_model_path
        from edge.ct.loop import run_slice_loop
        from edge.ct.stream import iter_folder
        from edge.spec import load_spec
        from training.ct.phantom import make_study
        from training.ct.phantom_io import write_dicom_series
    except ImportError as exc:
        return skipped(f"the CT pipeline is not complete yet: {exc}")
    from edge.errors import DvtEdgeError

    model = Path(cfg.ct_model) if cfg.ct_model else default_model_path()
    if not model.is_file():
        return skipped(f"CT detector {model.name} not found at {model} (not trained/exported yet; pass --ct-model)")
    try:
        spec = load_spec(model)
        backend, choice = open_backend(model, cfg.ct_backend, threads=cfg.threads)
        detector = ModelDetector(backend, spec)
    except DvtEdgeError as exc:
        return skipped(f"CT detector cannot be opened: {exc}")

    t0 = time.perf_counter()
    study = make_study(cfg.ct_seed, size=cfg.ct_size, n_slices=cfg.ct_slices)
    folder = tmp / "ct-phantom" / "dicom"
    write_dicom_series(study, folder)
    prep_s = time.perf_counter() - t0

    x = np.zeros([d if isinstance(d, int) else 1 for d in spec.input.shape], dtype=spec.input.dtype)
    for _ in range(cfg.ct_warmup):
        backend.infer({spec.input.name: x})

    t0 = time.perf_counter()
    stream = TimedStream(iter_folder(folder))
    index_ms = (time.perf_counter() - t0) * 1e3
    try:
        result = run_slice_loop(stream, detector)
    finally:
        backend.close()
    total_s = index_ms / 1e3 + result.timing["total_s"]
    raw = {"read": stream.read_ms, "read_decode": _decode_cost(stream), **detector.timing}
    stages = {name: summary(v) for name, v in raw.items()}
    stages["link"] = result.timing["stages_ms"].get("link", {})
    stages["index"] = {"total_ms": round(index_ms, 3), "per_slice_ms": round(index_ms / max(1, result.slices), 3)}
    block = {
        "status": "ok", "model": {"path": str(model), "name": spec.name, "input": spec.input.to_json()},
        "backend": backend.name if hasattr(backend, "name") else choice.name, "backend_choice": choice.reason,
        "study": {"seed": cfg.ct_seed, "size": cfg.ct_size, "slices": int(study.hu.shape[0]),
                  "thickness_mm": study.thickness_mm, "thrombi": len(study.thrombi), "mimics": len(study.mimics),
                  "generated_s": round(prep_s, 2), "generation_timed": False},
        "slices": result.slices, "findings": len(result.findings), "suppressed": len(result.suppressed),
        "pipeline_s": result.timing["total_s"], "total_s_with_index": round(total_s, 3),
        "slices_per_s": result.timing["slices_per_s"],
        "slices_per_s_with_index": round(result.slices / total_s, 2) if total_s > 0 else None,
        "stages_ms": stages, "warmup_queries": cfg.ct_warmup,
        "samples_ms": {k: rounded(v) for k, v in raw.items()},
    }
    log(f"  {result.slices} slices in {total_s:.2f} s: {block['slices_per_s_with_index']} slices/s "
        f"(infer p50 {stages['infer']['p50']} ms, read p50 {stages['read']['p50']} ms)")
    return block
