"""The OpenVINO backend (edge/backends/openvino.py): FP32 and NNCF INT8 against ONNX Runtime.

Parity: mask Dice vs ONNX Runtime on phantom frames of the bundled demo clips, and the verdicts of
``us run`` on both bundled clips identical. Skipped, with the reason, where the [openvino] extra is missing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge.assets import DEMO_CLIPS, asset, us_model
from edge.backends.select import choose_backend, open_backend
from edge.errors import BackendError
from edge.spec import load_spec
from edge.us.int8_frames import calibration_inputs
from edge.us.postprocess import labels_from_logits

needs_ov = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                              reason="OpenVINO not installed: pip install 'dvt-edge[openvino]'")
needs_nncf = pytest.mark.skipif(importlib.util.find_spec("nncf") is None,
                                reason="NNCF not installed (INT8 quantization): pip install 'dvt-edge[openvino]'")


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(autouse=True)
def _cache_env(int8_cache, monkeypatch):
    monkeypatch.setenv("DVT_EDGE_OPENVINO_CACHE", str(int8_cache))


def frames_in():
    return calibration_inputs(us_model(), every=8)  # the same preprocessing as the frame loop, 30 frames


def labels_of(backend_name: str, xs) -> list[np.ndarray]:
    model = us_model()
    spec = load_spec(model)
    be, _ = open_backend(model, backend_name, threads=2, calibration=calibration_inputs)
    try:
        return [labels_from_logits(be.infer({spec.input.name: x})[spec.outputs[0].name]) for x in xs]
    finally:
        be.close()


def pooled_dice(a: list[np.ndarray], b: list[np.ndarray], label: int) -> float:
    inter = sum(int(((x == label) & (y == label)).sum()) for x, y in zip(a, b))
    total = sum(int((x == label).sum() + (y == label).sum()) for x, y in zip(a, b))
    return 2.0 * inter / total


def test_missing_openvino_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n == "openvino" else real(n, *a, **k))
    for name in ("openvino", "openvino-int8"):
        with pytest.raises(BackendError, match=r"pip install 'dvt-edge\[openvino\]'"):
            choose_backend(name)


@needs_ov
def test_fp32_masks_match_onnxruntime():
    xs = frames_in()
    ref, ov = labels_of("onnxruntime", xs), labels_of("openvino", xs)
    for label in (1, 2):
        assert pooled_dice(ov, ref, label) >= 0.999


@needs_ov
@needs_nncf
def test_int8_masks_match_onnxruntime_and_are_cached(int8_cache):
    xs = frames_in()
    ref, q = labels_of("onnxruntime", xs), labels_of("openvino-int8", xs)
    for label in (1, 2):
        assert pooled_dice(q, ref, label) >= 0.98, label
    cached = list(int8_cache.glob("resunet-lite-*-int8.xml"))
    assert len(cached) == 1 and cached[0].with_suffix(".bin").is_file()
    assert not list(int8_cache.glob(".*part*"))  # written atomically


@needs_ov
def test_int8_without_a_cached_model_needs_calibration_frames_from_the_caller(tmp_path):
    """The backend knows no imaging domain: the ultrasound callers pass edge.us.int8_frames.calibration_inputs."""
    from edge.backends.openvino import open_openvino_backend

    with pytest.raises(BackendError, match="no calibration frames"):
        open_openvino_backend(us_model(), precision="int8", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


@needs_ov
def test_int8_refuses_a_ct_model():
    from pathlib import Path

    import edge
    from edge.backends.openvino import open_openvino_backend

    ct_model = Path(edge.__file__).parent / "ct" / "assets" / "ctdet-k3.onnx"
    with pytest.raises(BackendError, match="use --backend openvino"):
        open_openvino_backend(ct_model, precision="int8")


@needs_ov
@pytest.mark.parametrize("clip", sorted(DEMO_CLIPS))
def test_verdicts_identical_on_the_demo_clips(clip, tmp_path):
    from edge.jobs.us import run_us_job

    backends = ["onnxruntime", "openvino"]
    if importlib.util.find_spec("nncf") is not None:
        backends.append("openvino-int8")
    reports = {}
    for name in backends:
        res = run_us_job(str(asset(DEMO_CLIPS[clip])), us_model(), backend=name, json_path=tmp_path / f"{name}.json",
                         progress=False, threads=2, log=lambda s: None)
        reports[name] = res.report
    ref = reports["onnxruntime"]
    for name, rep in reports.items():
        assert rep["backend"].startswith(name.split("-")[0]), rep["backend"]
        assert rep["verdict"] == ref["verdict"], (name, rep["verdict"], rep["reason"])
        assert abs((rep["compressibility"] or 0) - (ref["compressibility"] or 0)) <= 0.03, name
