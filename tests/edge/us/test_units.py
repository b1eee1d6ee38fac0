"""Vein areas in mm² (reporting only): from a DICOM cine's Sequence of Ultrasound Regions, or --mm-per-px;
pixels still reported; the verdict and the pixel areas are the same with and without a calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edge.cli
from edge.sources.calibration import Calibration, add_physical_units, from_dataset, parse_mm_per_px
from edge.sources.testing import make_dicom, video_frames

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "edge" / "assets" / "demo-dvt.mp4"
N = 45


def _frames(n=N):
    return np.stack(video_frames(CLIP, n, grey=True))


def _region(dx_cm, dy_cm, box=(0, 0, 639, 479), units=(3, 3), fmt=1):
    return {"RegionSpatialFormat": fmt, "RegionDataType": 1, "RegionFlags": 0,
            "RegionLocationMinX0": box[0], "RegionLocationMinY0": box[1],
            "RegionLocationMaxX1": box[2], "RegionLocationMaxY1": box[3],
            "PhysicalUnitsXDirection": units[0], "PhysicalUnitsYDirection": units[1],
            "PhysicalDeltaX": dx_cm, "PhysicalDeltaY": dy_cm}


@pytest.fixture(scope="module")
def cines(tmp_path_factory):
    d = tmp_path_factory.mktemp("cines")
    frames = _frames()
    h, w = frames.shape[1:]
    box = (0, 0, w - 1, h - 1)
    return {
        # 0.008 cm x 0.01 cm per pixel = 0.08 x 0.1 mm: 0.008 mm² per pixel
        "calibrated": make_dicom(d / "cal.dcm", frames, frame_time_ms=33.3,
                                 regions=[_region(0.01, 0.01, (0, 0, 40, 40), units=(4, 7), fmt=3),  # a Doppler strip
                                          _region(0.008, 0.01, box)]),
        "plain": make_dicom(d / "plain.dcm", frames, frame_time_ms=33.3),
    }


def _run(src, tmp_path, *extra):
    out = tmp_path / f"{Path(src).stem}{len(extra)}.json"
    code = edge.cli.main(["us", "run", str(src), "--no-video", "--json", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_from_dataset_takes_the_2d_cm_region(cines):
    import pydicom

    cal = from_dataset(pydicom.dcmread(cines["calibrated"], stop_before_pixels=True))
    assert cal.mm_per_px_x == pytest.approx(0.08) and cal.mm_per_px_y == pytest.approx(0.1)
    assert cal.mm2_per_px == pytest.approx(0.008) and "Ultrasound Regions" in cal.source
    assert from_dataset(pydicom.dcmread(cines["plain"], stop_before_pixels=True)) is None


def test_report_and_console_in_mm2_from_the_cine(cines, tmp_path, capsys):
    cal = _run(cines["calibrated"], tmp_path)
    out = capsys.readouterr().out
    plain = _run(cines["plain"], tmp_path)
    plain_out = capsys.readouterr().out
    # reporting only: the same verdict and pixel areas with and without a calibration
    for key in ("verdict", "compressibility", "baseline_vein_area_px", "min_vein_area_px", "vein_area_px"):
        assert cal[key] == plain[key], key
    assert cal["baseline_vein_area_px"] and cal["baseline_vein_area_px"] > 100
    assert cal["calibration"]["mm_per_px"] == [0.08, 0.1]
    assert cal["baseline_vein_area_mm2"] == pytest.approx(cal["baseline_vein_area_px"] * 0.008, abs=0.01)
    assert cal["min_vein_area_mm2"] == pytest.approx(cal["min_vein_area_px"] * 0.008, abs=0.01)
    assert len(cal["vein_area_mm2"]) == len(cal["vein_area_px"]) == N
    for mm2, px in zip(cal["vein_area_mm2"], cal["vein_area_px"]):
        assert (mm2 is None) == (px is None) and (px is None or mm2 == pytest.approx(px * 0.008, abs=0.01))
    assert plain["calibration"] is None and plain["baseline_vein_area_mm2"] is None and plain["vein_area_mm2"] is None
    line = next(x for x in out.splitlines() if x.startswith("vein area:"))
    assert f"{cal['baseline_vein_area_mm2']:.1f} mm²" in line and f"({cal['baseline_vein_area_px']:.0f} px)" in line
    assert "0.08 x 0.1 mm/px" in line
    pline = next(x for x in plain_out.splitlines() if x.startswith("vein area:"))
    assert "mm²" not in pline.split(";")[0] and "--mm-per-px" in pline


def test_mm_per_px_flag(cines, tmp_path, capsys):
    rep = _run(cines["plain"], tmp_path, "--mm-per-px", "0.1")
    assert rep["calibration"]["source"] == "--mm-per-px" and rep["calibration"]["mm_per_px"] == [0.1, 0.1]
    assert rep["baseline_vein_area_mm2"] == pytest.approx(rep["baseline_vein_area_px"] * 0.01, abs=0.01)
    rep = _run(cines["calibrated"], tmp_path, "--mm-per-px", "0.05,0.2")  # the operator's value wins
    assert rep["calibration"]["mm_per_px"] == [0.05, 0.2]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        edge.cli.main(["us", "run", str(cines["plain"]), "--mm-per-px", "abc"])
    err = capsys.readouterr().err
    assert "--mm-per-px" in err and "abc" in err


def test_calibration_units():
    assert parse_mm_per_px("0.1,0.2") == Calibration(0.1, 0.2, "--mm-per-px")
    rep = add_physical_units({"input": {"calibration": Calibration(0.1, 0.2, "x").to_json()},
                              "baseline_vein_area_px": 1000.0, "min_vein_area_px": 0.0, "vein_area_px": [1000.0, None]})
    assert rep["baseline_vein_area_mm2"] == 20.0 and rep["min_vein_area_mm2"] == 0.0
    assert rep["vein_area_mm2"] == [20.0, None]
