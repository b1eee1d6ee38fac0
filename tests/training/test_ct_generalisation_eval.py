"""The generalisation evaluation command (training.ct.evaluate_generalisation) on a small set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge.errors import ModelError
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "edge" / "ct" / "assets"


def _model(tmp_path: Path, real_volume: str | None) -> Path:
    """A copy of the bundled k=1 detector whose spec says it was trained on ``real_volume``."""
    dst = tmp_path / "m"
    dst.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(ASSETS / f"ctdet-k1{suffix}", dst / f"ctdet-k1{suffix}")
    spec = json.loads((dst / "ctdet-k1.json").read_text())
    spec.setdefault("training", {})["real_volume"] = real_volume
    (dst / "ctdet-k1.json").write_text(json.dumps(spec))
    return dst


def test_phantom_set_small_run_writes_json_and_markdown(tmp_path):
    pytest.importorskip("onnxruntime")
    from training.ct.evaluate_generalisation import main

    out = tmp_path / "r.json"
    assert main(["--models", str(_model(tmp_path, None)), "--set", "phantom", "--studies", "1", "--seed", "990000",
                 "--size", "256", "--n-slices", "6", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    r = res["models"]["ctdet-k1"]
    assert res["set"] == "phantom" and res["seeds"] == [990000, 990000]
    for key in ("per_slice", "per_slice_rule", "lesion", "lesion_rule", "per_study"):
        assert key in r
    assert r["per_slice"]["n_slices"] == 6
    assert r["lesion_rule"]["studies"] == 1 and "thrombus_sensitivity" in r["lesion_rule"]
    md = out.with_suffix(".md").read_text()
    assert "| ctdet-k1 | 1 |" in md and "first renderer" in md


@pytest.mark.data
def test_real_set_needs_the_held_out_volume(tmp_path):
    if not (SHARED_DATA / "ct-contrast-vessels" / "pulmonary" / "ct.nii.gz").is_file():
        pytest.skip(f"real contrast CT crops not found under {SHARED_DATA} (set DVT_SHARED_DATA to its parent)")
    pytest.importorskip("nibabel")
    pytest.importorskip("onnxruntime")
    from training.ct.evaluate_generalisation import main

    with pytest.raises(ModelError, match="trained on the pulmonary volume"):
        main(["--models", str(_model(tmp_path, "pulmonary")), "--set", "real", "--volume", "pulmonary",
              "--studies", "1", "--out", str(tmp_path / "x.json")])
    other = tmp_path / "other"
    other.mkdir()
    out = tmp_path / "r.json"
    assert main(["--models", str(_model(other, "aorta")), "--set", "real", "--volume", "pulmonary", "--studies", "1",
                 "--seed", "990000", "--size", "256", "--n-slices", "8", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["models"]["ctdet-k1"]
    assert r["clean_rule"]["studies"] == 1 and r["lesion_rule"]["studies"] == 1
    assert r["lesion_rule"]["thrombi"] >= 1, "the lesion copy carries its inserted defects"
    assert [p["clean"] for p in r["per_study"]] == [False, True]
    assert "false findings / clean study" in out.with_suffix(".md").read_text()
