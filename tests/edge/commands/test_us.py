"""The CLI contract of the ultrasound job: outputs, report keys, bad input, doctor."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge.assets import DEMO_CLIPS, asset, us_model
from edge.cli import main
from edge.sources.testing import PATIENT_ID, PATIENT_NAME, make_dicom

REQUIRED = ("verdict", "compressibility", "baseline_vein_area_px", "min_vein_area_px", "vein_area_px", "frames",
            "dropped_frames", "backend", "model", "latency_ms")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=300)


def test_us_run_writes_report_video_and_curve(tmp_path):
    clip = asset(DEMO_CLIPS["normal"])
    assert main(["us", "run", str(clip), "--out", str(tmp_path), "--max-frames", "40"]) == 0
    report = json.loads((tmp_path / "us.json").read_text())
    for key in REQUIRED:
        assert key in report, key
    assert report["frames"] == 40 and len(report["vein_area_px"]) == 40
    assert set(report["latency_ms"]) >= {"p50", "p90", "p99"}
    assert report["backend"].startswith("onnxruntime")
    assert report["verdict"] in ("compressible", "non_compressible", "indeterminate")
    cap = cv2.VideoCapture(str(tmp_path / "us.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    curve = cv2.imread(str(tmp_path / "us_curve.png"))
    assert curve is not None and curve.std() > 5


def test_printed_timing_is_processing_for_a_clip_and_latency_when_paced(tmp_path, capsys):
    clip = str(asset(DEMO_CLIPS["normal"]))
    assert main(["us", "run", clip, "--json", str(tmp_path / "a.json"), "--max-frames", "15"]) == 0
    out = capsys.readouterr().out
    assert "processing" in out and "ms per frame" in out and "latency p50" not in out
    assert main(["us", "run", clip, "--json", str(tmp_path / "b.json"), "--max-frames", "15", "--pace"]) == 0
    out = capsys.readouterr().out
    assert "latency p50" in out
    assert json.loads((tmp_path / "b.json").read_text())["config"]["pace"] is True


def test_us_run_json_only(tmp_path):
    dest = tmp_path / "r.json"
    assert main(["us", "run", str(asset(DEMO_CLIPS["dvt"])), "--json", str(dest), "--max-frames", "20"]) == 0
    assert json.loads(dest.read_text())["frames"] == 20
    assert not (tmp_path / "us.mp4").exists()


def test_us_run_on_dicom_cine_uses_frame_time_and_hides_patient(tmp_path):
    cap = cv2.VideoCapture(str(asset(DEMO_CLIPS["normal"])))
    frames = []
    while len(frames) < 30:
        ok, f = cap.read()
        assert ok
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    dcm = make_dicom(tmp_path / "cine.dcm", np.stack(frames), frame_time_ms=40.0)
    dest = tmp_path / "r.json"
    assert main(["us", "run", str(dcm), "--json", str(dest)]) == 0
    text = dest.read_text()
    report = json.loads(text)
    assert report["frames"] == 30
    assert report["t_media"][1] == pytest.approx(0.04, abs=1e-6)
    assert PATIENT_ID not in text and PATIENT_NAME not in text


def test_us_segment_writes_same_size_label_pngs(tmp_path):
    cap = cv2.VideoCapture(str(asset(DEMO_CLIPS["normal"])))
    ok, frame = cap.read()
    assert ok
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), frame)
    assert main(["us", "segment", str(img), "--out", str(tmp_path / "out")]) == 0
    lab = cv2.imread(str(tmp_path / "out" / "frame_labels.png"), cv2.IMREAD_UNCHANGED)
    assert lab.shape == frame.shape[:2]
    assert set(np.unique(lab)) <= {0, 1, 2}


@pytest.mark.parametrize("make_input, needle", [
    (lambda d: str(d / "missing.mp4"), "missing.mp4"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and str(d / "notes.mp4"), "notes.mp4"),
    (lambda d: (d / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 64) and str(d / "bad.dcm"), "bad.dcm"),
    (lambda d: "99", "camera 99"),
])
def test_bad_input_exits_nonzero_with_one_line_naming_it(tmp_path, make_input, needle):
    spec = make_input(tmp_path)
    proc = run_cli("us", "run", spec, "--out", str(tmp_path / "o"))
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert needle in err[0] and err[0].startswith("dvt-edge: error:")
    assert "Traceback" not in proc.stderr


def test_debug_flag_shows_traceback(tmp_path):
    proc = run_cli("--debug", "us", "run", str(tmp_path / "missing.mp4"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_bad_crop_is_a_config_error(tmp_path):
    proc = run_cli("us", "run", str(asset(DEMO_CLIPS["normal"])), "--crop", "1,2,3")
    assert proc.returncode != 0 and "--crop" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reports_cpu_backend_on_a_gpu_less_machine(capsys):
    from edge.gpu import probe_gpu

    if probe_gpu().available:
        pytest.skip("this machine has a GPU")
    assert main(["doctor", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["gpu"]["available"] is False
    assert facts["auto_backend"]["backend"] == "onnxruntime-cpu"
    assert "CPUExecutionProvider" in facts["onnxruntime"]["providers"]


def test_bundled_model_is_small_and_has_a_spec():
    model = us_model()
    assert model.stat().st_size <= 10 * 1024 * 1024
    spec = json.loads(model.with_suffix(".json").read_text())
    assert spec["labels"] == ["background", "artery", "vein"] and spec["opset"] <= 17
    assert model.with_suffix(".md").is_file()


def test_bedside_cli_works_without_torch(tmp_path):
    """A bedside install has no torch: the CLI must start, and the torch commands must say what to install."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # makes 'import torch' raise ImportError
        "import importlib.util as u; _f = u.find_spec\n"
        "u.find_spec = lambda n, *a, **k: None if n == 'torch' else _f(n, *a, **k)\n"
        "from edge.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    help_ = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and "demo" in help_.stdout and "unavailable" in help_.stdout
    train = subprocess.run([sys.executable, "-c", code, "train"], capture_output=True, text=True, timeout=120)
    assert train.returncode != 0 and "pip install" in train.stderr and "Traceback" not in train.stderr
    run = subprocess.run([sys.executable, "-c", code, "us", "run", str(asset(DEMO_CLIPS["dvt"])),
                          "--json", str(tmp_path / "r.json"), "--max-frames", "5"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "r.json").read_text())["frames"] == 5
