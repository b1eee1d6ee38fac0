"""Export contract of the ultrasound model: one self-contained opset-17 file, a sidecar spec, and parity
with PyTorch on real-looking frames (mask Dice >= 0.99)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from edge.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "training" / "weights" / "resunet-lite.pt"
SUMMARY = REPO / "training" / "weights" / "resunet-lite.train_summary.json"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from export.us_model import export_us_model

    out = tmp_path_factory.mktemp("export") / "resunet-lite.onnx"
    spec = export_us_model(CHECKPOINT, SUMMARY, out)
    return out, spec


def test_single_file_opset_17_checked(exported):
    out, _ = exported
    assert not Path(str(out) + ".data").exists() and [p.name for p in out.parent.glob("*.data")] == []
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 17
    assert out.stat().st_size <= 10 * 1024 * 1024


def test_sidecar_spec_carries_io_normalisation_labels_provenance(exported):
    out, spec = exported
    loaded = load_spec(out)
    assert loaded.input.name == "image" and loaded.input.shape == (1, 1, 192, 192)
    assert loaded.outputs[0].shape == (1, 3, 192, 192)
    assert loaded.labels == ("background", "artery", "vein")
    assert loaded.preprocess["scale"] == pytest.approx(1 / 255)
    assert spec["training"]["seed"] is not None and "metrics" in spec
    assert spec["artifact"]["sha256"] and spec["exported_with"]["torch"]


def test_parity_with_pytorch_on_phantom_frames(exported):
    _, spec = exported
    parity = spec["parity"]
    assert parity["frames"] >= 50
    # both vessel classes are present in these frames, so the Dice is not trivially 1 for empty masks
    assert min(parity["dice"].values()) >= 0.99, parity


def test_bundled_model_is_this_checkpoint_exported(exported):
    """The shipped ONNX must be what this checkpoint exports to (same predictions)."""
    import onnxruntime as ort

    from export.us_model import parity_frames

    out, _ = exported
    bundled = REPO / "edge" / "assets" / "resunet-lite.onnx"
    x = parity_frames((192, 192))[:8]
    a = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(bundled), providers=["CPUExecutionProvider"])
    for xi in x:
        la = a.run(None, {"image": xi[None]})[0].argmax(1)
        lb = b.run(None, {"image": xi[None]})[0].argmax(1)
        assert (la == lb).mean() > 0.999
    assert json.loads(bundled.with_suffix(".json").read_text())["name"] == "resunet-lite"


def test_out_may_be_a_folder(tmp_path):
    from export.us_model import export_us_model

    export_us_model(CHECKPOINT, SUMMARY, tmp_path / "new")
    assert {p.name for p in (tmp_path / "new").iterdir()} == {"resunet-lite.onnx", "resunet-lite.json", "resunet-lite.md"}
