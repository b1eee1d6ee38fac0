"""``dvt-edge bench --only compare`` (benchmarks/compare.py): structure and behaviour, no timing thresholds."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import cv2

from benchmarks.compare import _ratio_block, make_hd_clip, run_compare
from benchmarks.config import BenchConfig
from benchmarks.models import DEMO_CLIP, resolve_us_model
from benchmarks.report import markdown_summary


def test_ratios_are_per_round_against_the_reference():
    block = _ratio_block({"a": [10.0, 20.0, 10.0], "b": [5.0, 30.0, 7.0]}, "a")
    assert block["a"]["median"] == 1.0 and block["b"]["rounds"] == [0.5, 1.5, 0.7] and block["b"]["median"] == 0.7


def test_hd_clip_is_1080p_and_loops_a_short_source(tmp_path):
    clip = make_hd_clip(DEMO_CLIP, tmp_path / "hd.mp4", 130)  # the demo clip has 116 frames: it loops
    cap = cv2.VideoCapture(str(clip))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1920, 1080)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 130
    cap.release()


def test_compare_section_interleaves_and_reports_every_contender(tmp_path, monkeypatch):
    monkeypatch.setenv("DVT_EDGE_OPENVINO_CACHE", str(tmp_path / "ov"))
    cfg = replace(BenchConfig(threads=2), compare_warmup=1, compare_rounds=2, compare_queries=3,
                  compare_loop_frames=6, compare_loop_rounds=1)
    info = resolve_us_model(None, tmp_path)
    res = run_compare(cfg, info, DEMO_CLIP, tmp_path, log=lambda s: None)
    model = res["model"]["results"]
    assert model["onnxruntime-cpu"]["ratio_to_onnxruntime"]["median"] == 1.0
    for name in ("openvino", "openvino-int8"):
        have = importlib.util.find_spec("openvino") is not None and (
            name == "openvino" or importlib.util.find_spec("nncf") is not None)
        if have:
            assert model[name]["status"] == "ok" and len(model[name]["ratio_to_onnxruntime"]["rounds"]) == 2
            assert model[name]["latency_ms"]["n"] == 2 * 3
        else:
            assert model[name]["status"] == "skipped" and "pip install" in model[name]["reason"]
    loop = res["frame_loop"]["results"]
    assert set(loop) == {"plain-loop", "us-run-1080p-video", "us-run-1080p-video-720", "us-run-1080p-no-video"}
    assert all(r["frames"] == 6 for r in loop.values())
    assert loop["plain-loop"]["ratio_to_plain_loop"]["median"] == 1.0
    assert res["model"]["load_average_start"] is not None and res["frame_loop"]["load_average_end"] is not None
    # the report renders the section
    results = {"environment": {"device_label": "t", "cpu": {"model": "x", "usable_cores": 2},
                               "gpu": {"describe": "no GPU"}, "os": "linux", "python": "3", "libraries": {},
                               "load_average_start": [1.0, 1.0, 1.0]},
               "config": {"threads": 2, "quick": True}, "command": "dvt-edge bench", "wall_s": 1.0,
               "targets": [], "compare": res}
    md = markdown_summary(results, None)
    assert "## Interleaved comparison" in md and "us-run-1080p-video-720" in md
