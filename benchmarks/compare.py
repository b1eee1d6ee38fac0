"""``dvt-edge bench --only compare``: ratios that hold on a busy machine, measured interleaved (A, B, A, B, ...).

Two parts, each run in rounds; in every round each contender runs once, in the same order, so a load spike
from other work lands on all of them alike and the per-round ratios stay meaningful:

* **model**: one ``infer`` per query (host in -> host out) on ONNX Runtime FP32 (the reference), OpenVINO
  FP32 and OpenVINO INT8 (NNCF; quantized once and cached, outside the timing). A contender that cannot run
  here (no OpenVINO, no NNCF) is reported as skipped with the reason.
* **frame loop** at 1920x1080 (the demo clip scaled into an HD scanner-screen capture, written to a temp
  file): the plain loop (decode -> grey -> INTER_AREA resize -> infer -> argmax, nothing else) against the
  whole ``us run`` job (identity, tracking, measurements, verdict, JSON report) with the overlay video
  recorded, with the video reduced to 720 lines, and without video. Files are read losslessly, so every
  frame is processed (the video's wait-when-full policy: a complete video).

Ratio = contender / reference per round (time for the model part, wall time per frame for the loop part);
the median over rounds is the headline. The load average is recorded before and after each part.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.env import load_average
from benchmarks.timing import summary

MODEL_CONTENDERS = ("onnxruntime-cpu", "openvino", "openvino-int8")
REFERENCE = "onnxruntime-cpu"
LOOP_REFERENCE = "plain-loop"
HD = (1920, 1080)


def _ratio_block(per_round: dict[str, list[float]], reference: str) -> dict[str, dict]:
    ref = per_round.get(reference)
    out = {}
    for name, values in per_round.items():
        if not ref or len(values) != len(ref):
            continue
        ratios = [v / r for v, r in zip(values, ref) if r > 0]
        out[name] = {"median": round(float(np.median(ratios)), 3), "min": round(min(ratios), 3),
                     "max": round(max(ratios), 3), "rounds": [round(x, 3) for x in ratios]}
    return out


# ---------------------------------------------------------------------------------------------- model
def run_model_part(cfg: BenchConfig, info, x: np.ndarray, log=print) -> dict:
    from benchmarks.model_only import Skip, prepare_backend

    prepared, rows = {}, {}
    for name in MODEL_CONTENDERS:
        try:
            prepared[name] = prepare_backend(info.path, name, cfg, x, 1)  # INT8: quantized here, untimed
        except Skip as exc:
            rows[name] = {"status": "skipped", "reason": str(exc)}
            log(f"  {name:<16} skipped: {exc}")
    samples: dict[str, list[float]] = {n: [] for n in prepared}
    per_round: dict[str, list[float]] = {n: [] for n in prepared}
    load_start = load_average()
    try:
        for prep in prepared.values():
            for _ in range(cfg.compare_warmup):
                prep.fn()
        gc.collect()
        clock = time.perf_counter_ns
        for _ in range(cfg.compare_rounds):
            for name, prep in prepared.items():
                turn = []
                for _ in range(cfg.compare_queries):
                    t0 = clock()
                    prep.fn()
                    turn.append((clock() - t0) / 1e6)
                samples[name] += turn
                per_round[name].append(float(np.median(turn)))
    finally:
        for prep in prepared.values():
            prep.close()
    for name, prep in prepared.items():
        rows[name] = {"status": "ok", "chosen": prep.chosen, "latency_ms": summary(samples[name])}
    ratios = _ratio_block(per_round, REFERENCE)
    for name, r in ratios.items():
        rows[name]["ratio_to_onnxruntime"] = r
        log(f"  {name:<16} p50 {rows[name]['latency_ms']['p50']:.2f} ms  ratio to ONNX Runtime {r['median']:.2f} "
            f"(rounds {r['min']:.2f}-{r['max']:.2f})")
    return {"reference": REFERENCE, "rounds": cfg.compare_rounds, "queries_per_turn": cfg.compare_queries,
            "load_average_start": load_start, "load_average_end": load_average(), "results": rows}


# ----------------------------------------------------------------------------------------- frame loop
def make_hd_clip(src: Path, dst: Path, n_frames: int) -> Path:
    """``src`` (640x480) scaled to full height into a black 1920x1080 frame with a text line: an HD capture of
    a scanner screen whose image region (~1150x860) is over 4x the model grid. Loops ``src`` if short."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, HD)
    n = 0
    try:
        while n < n_frames:
            ok, f = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, f = cap.read()
                if not ok:
                    raise RuntimeError(f"{src}: cannot decode a frame")
            screen = np.zeros((HD[1], HD[0], 3), np.uint8)
            screen[:, 240:1680] = cv2.resize(f, (1440, 1080), interpolation=cv2.INTER_CUBIC)
            cv2.putText(screen, "L12-5  MI 0.9", (40, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
            out.write(screen)
            n += 1
    finally:
        cap.release()
        out.release()
    return dst


def plain_loop(clip: Path, model: Path, backend: str, threads: int) -> int:
    """decode -> grey -> resize -> infer -> argmax over the whole clip; returns the frame count.

    The backend is opened as for a model timed alone (:func:`benchmarks.models.open_alone`): the plain loop has
    no other thread to give way to."""
    import cv2

    from benchmarks.models import open_alone
    from edge.spec import load_spec

    spec = load_spec(model)
    be, _ = open_alone(model, backend, threads)
    h, w = spec.input_hw
    cap = cv2.VideoCapture(str(clip))
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            x = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[None, None] / 255.0
            be.infer({spec.input.name: x})[spec.outputs[0].name][0].argmax(0)
            n += 1
    finally:
        cap.release()
        be.close()
    return n


def _us_run(clip: Path, model: Path, backend: str, threads: int, out: Path, **kw) -> int:
    from edge.jobs.us import run_us_job

    res = run_us_job(str(clip), model, backend=backend, out_dir=out, threads=threads, progress=False,
                     log=lambda s: None, **kw)
    return int(res.report["frames"])


def run_loop_part(cfg: BenchConfig, info, clip: Path, tmp: Path, log=print) -> dict:
    backend = "onnxruntime-cpu"
    hd = make_hd_clip(clip, tmp / "hd-1080p.mp4", cfg.compare_loop_frames)
    scenarios = {
        LOOP_REFERENCE: lambda: plain_loop(hd, info.path, backend, cfg.threads),
        "us-run-1080p-video": lambda: _us_run(hd, info.path, backend, cfg.threads, tmp / "run-video"),
        "us-run-1080p-video-720": lambda: _us_run(hd, info.path, backend, cfg.threads, tmp / "run-720",
                                                  video_height=720),
        "us-run-1080p-no-video": lambda: _us_run(hd, info.path, backend, cfg.threads, tmp / "run-novideo",
                                                 video=False),
    }
    per_round: dict[str, list[float]] = {n: [] for n in scenarios}
    frames: dict[str, int] = {}
    load_start = load_average()
    for _ in range(cfg.compare_loop_rounds):
        for name, fn in scenarios.items():
            gc.collect()
            t0 = time.perf_counter()
            n = fn()
            dt = time.perf_counter() - t0
            frames[name] = n
            per_round[name].append(dt / max(n, 1) * 1e3)  # ms per frame, set-up included
    ratios = _ratio_block(per_round, LOOP_REFERENCE)
    rows = {}
    for name, values in per_round.items():
        ms = float(np.median(values))
        rows[name] = {"frames": frames[name], "ms_per_frame": round(ms, 2), "frames_per_s": round(1e3 / ms, 1),
                      "ms_per_frame_rounds": [round(v, 2) for v in values],
                      "ratio_to_plain_loop": ratios.get(name)}
        log(f"  {name:<24} {1e3 / ms:6.1f} frames/s  ({ms:.1f} ms/frame; x{ratios[name]['median']:.2f} the plain loop)")
    return {"reference": LOOP_REFERENCE, "clip": f"{clip.name} scaled to {HD[0]}x{HD[1]}, {cfg.compare_loop_frames} "
            "frames, read losslessly", "backend": backend, "threads": cfg.threads, "rounds": cfg.compare_loop_rounds,
            "load_average_start": load_start, "load_average_end": load_average(), "results": rows}


def run_compare(cfg: BenchConfig, info, clip: Path, tmp: Path, log=print) -> dict:
    from benchmarks.models import demo_input

    log("compare, interleaved (model: ONNX Runtime vs OpenVINO):")
    model = run_model_part(cfg, info, demo_input(info.spec), log=log)
    log(f"compare, interleaved (frame loop at {HD[0]}x{HD[1]}):")
    loop = run_loop_part(cfg, info, clip, tmp, log=log)
    return {"method": "interleaved rounds: every contender once per round, same order; ratio = contender / "
                      "reference per round, median over rounds", "model": model, "frame_loop": loop}
