"""Per-frame cost over a long live stream: is the ultrasound frame loop flat, or does it grow with the session?

    python -m benchmarks.long_stream --frames 20000 --out benchmarks/results/cpu-2core-quiet/long-stream

Feeds ``--frames`` frames of the demo clip (looped, decoded once into memory, timestamps at 30 fps as a
probe would give them) through :class:`edge.us.pipeline.UltrasoundPipeline` with the bundled model on ONNX
Runtime, back to back (not paced: the figure is the cost of a frame, not the pacing), and times every
``process`` call: preprocess, inference, tracking, measurement, episodes, verdict. Decoding, rendering and the
video are left out on purpose: they do not depend on the session's length.

Reports the median and mean per-frame cost of the first and the last ``--window`` frames, their ratio, the
median per stage, and the 1-minute load average before and after. Because a shared machine drifts over
minutes, the last window is also run interleaved, frame by frame, with a fresh pipeline's first window (same
frames, same backend, same moments): that ratio is the one judged. Target (issue 14): within +-10%. Writes ``OUT.json``
and ``OUT.md`` when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.env import load_average, usable_cores

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "edge" / "assets" / "demo-normal.mp4"
MODEL = ROOT / "edge" / "assets" / "resunet-lite.onnx"
FPS = 30.0


def window_summary(costs_ms: list[float], window: int) -> dict:
    """Pure: first vs last ``window`` frames of a per-frame cost series (ms): medians, means, ratios."""
    if len(costs_ms) < 2 * window:
        raise ValueError(f"{len(costs_ms)} frames: need at least {2 * window} for two windows of {window}")
    first, last = costs_ms[:window], costs_ms[-window:]
    f_med, l_med = statistics.median(first), statistics.median(last)
    f_mean, l_mean = statistics.fmean(first), statistics.fmean(last)
    return {"window": window, "first_median_ms": round(f_med, 3), "last_median_ms": round(l_med, 3),
            "first_mean_ms": round(f_mean, 3), "last_mean_ms": round(l_mean, 3),
            "ratio_median": round(l_med / f_med, 3), "ratio_mean": round(l_mean / f_mean, 3)}


def run(frames: int, window: int, threads: int, model: Path = MODEL, clip: Path = DEMO, log=print) -> dict:
    """The long stream, and beside its last ``window`` frames a fresh pipeline's first ``window`` frames,
    interleaved frame by frame (alternating which goes first) on one backend: the fresh pipeline is the
    first window measured at the same time as the last one, so the machine's drift cancels in the ratio."""
    from edge.backends import open_backend
    from edge.sources.base import Frame
    from edge.sources.testing import video_frames
    from edge.spec import load_spec
    from edge.us.pipeline import UltrasoundPipeline

    images = video_frames(clip, grey=True)
    spec = load_spec(model)
    backend, _ = open_backend(model, "onnxruntime-cpu", threads=threads)
    long_pipe, fresh_pipe = UltrasoundPipeline(backend, spec), UltrasoundPipeline(backend, spec)
    load_before = load_average()
    costs: list[float] = []
    fresh: list[float] = []
    stages: dict[str, list[float]] = {}

    def timed(pipe, i: int) -> tuple[float, object]:
        frame = Frame(image=images[i % len(images)], index=i, t_capture=time.monotonic(), t_media=i / FPS)
        t0 = time.perf_counter()
        res = pipe.process(frame)
        return (time.perf_counter() - t0) * 1e3, res

    t_start = time.perf_counter()
    try:
        for i in range(frames):
            j = i - (frames - window)  # the fresh pipeline's frame index, inside the last window
            if j >= 0 and i % 2:
                fresh.append(timed(fresh_pipe, j)[0])
            ms, res = timed(long_pipe, i)
            costs.append(ms)
            if j >= 0 and not i % 2:
                fresh.append(timed(fresh_pipe, j)[0])
            for k, v in (getattr(res, "stage_ms", None) or {}).items():
                stages.setdefault(k, []).append(v)
            if (i + 1) % 2000 == 0:
                log(f"  {i + 1}/{frames} frames, last 1000 median {statistics.median(costs[-1000:]):.2f} ms")
    finally:
        backend.close()
    verdict = long_pipe.current_verdict(final=True)
    summary = window_summary(costs, window)
    f_med, f_mean = statistics.median(fresh), statistics.fmean(fresh)
    interleaved = {"fresh_first_median_ms": round(f_med, 3), "fresh_first_mean_ms": round(f_mean, 3),
                   "ratio_median": round(summary["last_median_ms"] / f_med, 3),
                   "ratio_mean": round(summary["last_mean_ms"] / f_mean, 3)}
    stage_windows = {k: window_summary(v, window) for k, v in stages.items() if len(v) >= 2 * window}
    met = all(abs(x - 1) <= 0.10 for x in (interleaved["ratio_median"], interleaved["ratio_mean"]))
    return {"what": "UltrasoundPipeline.process per frame (preprocess..verdict), demo clip looped, 30 fps "
                    "timestamps, not paced; decode, render and video excluded",
            "frames": frames, "clip": clip.name, "clip_frames": len(images), "model": model.name,
            "backend": backend.name, "threads": threads, "cores": usable_cores(),
            "wall_s": round(time.perf_counter() - t_start, 1), "load_average_before": load_before,
            "load_average_after": load_average(), "summary": summary, "interleaved": interleaved,
            "stages": stage_windows, "episodes": len(getattr(long_pipe, "episodes", []) or []),
            "verdict": str(verdict.verdict),
            "target": "last window within +-10% of the first (issue 14), judged on the interleaved ratio",
            "met": bool(met)}


def markdown(r: dict) -> str:
    s = r["summary"]
    lines = [
        "# Per-frame cost over a long stream (issue 14)", "",
        f"Command: `python -m benchmarks.long_stream --frames {r['frames']} --window {s['window']} --threads "
        f"{r['threads']}`  ", f"What: {r['what']}.  ",
        f"Model `{r['model']}` on `{r['backend']}`, {r['threads']} threads, {r['cores']} cores; {r['wall_s']} s wall; "
        f"1-min load average {r['load_average_before']} before, {r['load_average_after']} after.  ",
        f"Episodes closed: {r['episodes']}; final verdict: {r['verdict']}.", "",
        f"| | first {s['window']} frames | last {s['window']} frames | last / first |", "|---|---|---|---|",
        f"| whole frame, median ms | {s['first_median_ms']} | {s['last_median_ms']} | {s['ratio_median']} |",
        f"| whole frame, mean ms | {s['first_mean_ms']} | {s['last_mean_ms']} | {s['ratio_mean']} |",
    ]
    iv = r["interleaved"]
    lines += [f"| whole frame, median ms: a fresh pipeline's first {s['window']} frames, interleaved with the "
              f"last {s['window']} (same time, same backend) | {iv['fresh_first_median_ms']} | "
              f"{s['last_median_ms']} | **{iv['ratio_median']}** |",
              f"| the same, mean ms | {iv['fresh_first_mean_ms']} | {s['last_mean_ms']} | **{iv['ratio_mean']}** |"]
    for k, v in r["stages"].items():
        lines.append(f"| {k}, median ms | {v['first_median_ms']} | {v['last_median_ms']} | {v['ratio_median']} |")
    lines += ["", f"Target: {r['target']}: **{'met' if r['met'] else 'NOT met'}**."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.long_stream", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=20000, help="frames in the stream (default 20000)")
    ap.add_argument("--window", type=int, default=1000, help="frames in the first / last window (default 1000)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    a = ap.parse_args(argv)
    if a.frames < 2 * a.window or a.window < 1:
        ap.error(f"--frames {a.frames} must be at least twice --window {a.window} (and --window >= 1)")
    r = run(a.frames, a.window, a.threads)
    print(markdown(r))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_suffix(".json").write_text(json.dumps(r, indent=1))
        a.out.with_suffix(".md").write_text(markdown(r))
    return 0 if r["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
