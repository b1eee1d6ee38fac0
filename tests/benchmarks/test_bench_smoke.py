"""Smoke test of ``dvt-edge bench --quick``: the command runs end to end and its JSON has every promised field.

No timing thresholds here (they live in the report's "targets" section): only structure and behaviour that
holds on any machine, e.g. a backend that sleeps 50 ms per frame at 30 fps MUST drop frames behind the
newest-frame slot and MUST leave a backlog behind a lossless FIFO.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = ("decode", "preprocess", "infer", "postprocess", "track", "measure", "track+measure", "render")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "bench", "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Targets" in proc.stdout  # the console table was printed
    return json.loads((out / "bench.json").read_text()), out


def _pct(block: dict) -> None:
    for key in ("p50", "p90", "p99", "mean", "n"):
        assert block[key] is not None, key
    assert block["p50"] <= block["p90"] <= block["p99"] <= block["max"]


def test_environment_and_config(bench):
    res, _ = bench
    assert res["schema"] == "dvt-edge/bench@1" and res["disclaimer"].startswith("Research software. Not for diagnostic use.")
    env = res["environment"]
    assert env["device_label"] and env["cpu"]["model"] and env["cpu"]["usable_cores"] >= 1
    assert set(env["gpu"]) >= {"available", "name", "driver", "describe"}
    for lib in ("numpy", "onnxruntime", "torch", "opencv"):
        assert env["libraries"][lib], lib
    assert env["threads"]["requested"] >= 1 and env["os"]
    assert env["load_average_start"] is None or len(env["load_average_start"]) == 3
    assert isinstance(env["contended"], str) and env["load_during"]  # load recorded at each section boundary
    assert res["config"]["quick"] is True and res["command"].startswith("dvt-edge bench --quick")
    assert res["model"]["sha256"] and res["model"]["input"]["shape"][0] == 1


def test_model_only_per_backend_percentiles(bench):
    res, _ = bench
    rows = {r["backend"]: r for r in res["model_only"]["results"] if r["batch"] == 1}
    for name in ("pytorch-eager", "onnxruntime-cpu"):
        r = rows[name]
        assert r["status"] == "ok", r
        _pct(r["latency_ms"])
        assert len(r["samples_ms"]) == r["queries"] == r["latency_ms"]["n"] and r["warmup"] > 0
        assert r["throughput_per_s"] > 0 and r["speedup_vs_baseline"]["p50"] > 0
    assert rows["pytorch-eager"]["speedup_vs_baseline"]["p50"] == 1.0
    for name in ("onnxruntime-cpu-fp16", "onnxruntime-cuda", "tensorrt"):  # measured, or skipped with a reason
        r = rows[name]
        assert r["status"] == "ok" or (r["status"] == "skipped" and len(r["reason"]) > 10), r


def test_end_to_end_stages_age_drops(bench):
    res, _ = bench
    scs = {s["name"]: s for s in res["end_to_end"]["scenarios"]}
    assert set(scs) >= {"paced-30fps", "slow-newest", "slow-fifo", "unpaced"}
    # How many frames a scenario gets through depends on the machine's load: a scenario with none after its
    # warm-up is reported as such (no rate), never asserted against a speed (issue 12).
    measured = {n: s for n, s in scs.items() if s["frames_processed"] > 1}
    for s in scs.values():
        assert isinstance(s["dropped"], int) and s["dropped"] >= 0
        idx = s["samples"]["index"]
        assert idx == sorted(set(idx)) and len(s["samples"]["frame_age_ms"]) == len(idx)
        if s["name"] not in measured:
            continue
        assert s["fps_processed"] > 0
        _pct(s["frame_age_ms"])
        for st in STAGES:
            _pct(s["stages_ms"][st])
    if "slow-newest" in measured:
        slow = measured["slow-newest"]
        assert slow["stages_ms"]["infer"]["p50"] >= 50.0  # the slow backend really slept
        assert slow["dropped"] > 0 and slow["backlog_at_end"] == 0  # newest-frame: drops, no backlog
    if "slow-fifo" in measured:
        fifo = measured["slow-fifo"]
        assert fifo["dropped"] == 0 and fifo["backlog_at_end"] > 0  # lossless: no drops, a backlog
        if "slow-newest" in measured:
            assert fifo["frame_age_ms"]["p50"] > measured["slow-newest"]["frame_age_ms"]["p50"]


def test_ct_measured_or_skipped_with_reason(bench):
    res, _ = bench
    ct = res["ct"]
    if ct["status"] == "skipped":
        assert len(ct["reason"]) > 10
        return
    assert ct["status"] == "ok" and ct["slices"] > 0 and ct["slices_per_s"] > 0
    for st in ("read", "preprocess", "infer", "decode"):
        _pct(ct["stages_ms"][st])
        assert len(ct["samples_ms"][st]) == ct["slices"]


def test_targets_and_files(bench):
    res, out = bench
    ids = {t["id"] for t in res["targets"]}
    assert {"us_e2e_30fps", "us_capacity_30fps", "us_age_bounded_30fps", "newest_frame_no_backlog"} <= ids
    assert all(t["pass"] in (True, False, None) and t["threshold"] for t in res["targets"])
    md = (out / "bench.md").read_text()
    assert "## Targets" in md and "## Model only" in md and "## End to end" in md and "## CT" in md
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
