"""Issue 11, last part: ``us run CINE.dcm --sr`` writes a DICOM SR of the result into the cine's study, and
``--send-to`` sends it by C-STORE (here to a pynetdicom storage SCP on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("highdicom")
pytest.importorskip("pynetdicom")

import pydicom  # noqa: E402

import edge.cli  # noqa: E402
from edge.sources.testing import PATIENT_ID, PATIENT_NAME, make_dicom, video_frames  # noqa: E402
from edge.us.dicom_out import NOTICE, read_us_sr  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "edge" / "assets" / "demo-dvt.mp4"
N = 45
STUDY = "1.2.826.0.1.3680043.8.498.4711"
SERIES = "1.2.826.0.1.3680043.8.498.4712"
ACCESSION = "ACC-0815"


def _frames(n=N):
    return np.stack(video_frames(CLIP, n, grey=True))


def _cine(path: Path, frames, regions=None) -> Path:
    make_dicom(path, frames, frame_time_ms=33.3, regions=regions)
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.AccessionNumber = STUDY, SERIES, ACCESSION
    ds.StudyDate, ds.StudyID = "20261202", "S1"
    ds.save_as(path, enforce_file_format=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the bundled model: a calibrated cine sent to a storage SCP, a plain cine with --sr."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    d = tmp_path_factory.mktemp("sr")
    frames = _frames()
    h, w = frames.shape[1:]
    region = {"RegionSpatialFormat": 1, "RegionDataType": 1, "RegionFlags": 0,
              "RegionLocationMinX0": 0, "RegionLocationMinY0": 0, "RegionLocationMaxX1": w - 1,
              "RegionLocationMaxY1": h - 1, "PhysicalUnitsXDirection": 3, "PhysicalUnitsYDirection": 3,
              "PhysicalDeltaX": 0.008, "PhysicalDeltaY": 0.01}  # 0.08 x 0.1 mm per pixel
    cal = _cine(d / "cal.dcm", frames, [region])
    plain = _cine(d / "plain.dcm", frames)
    got: list = []
    port = _free_port()
    ae = AE(ae_title="ARCHIVE")
    ae.supported_contexts = AllStoragePresentationContexts
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, lambda e: got.append(e.dataset) or 0x0000)])
    out = {}
    try:
        for name, cine, extra in (("cal", cal, ["--send-to", f"ARCHIVE@127.0.0.1:{port}"]), ("plain", plain, ["--sr"])):
            folder = d / f"out-{name}"
            code = edge.cli.main(["us", "run", str(cine), "--no-video", "--out", str(folder), *extra])
            assert code == 0, name
            out[name] = {"cine": pydicom.dcmread(cine, stop_before_pixels=True),
                         "report": json.loads((folder / "us.json").read_text()),
                         "sr_path": folder / "us.sr.dcm"}
    finally:
        server.shutdown()
    out["received"] = got
    return out


@pytest.mark.parametrize("name", ["cal", "plain"])
def test_the_sr_is_in_the_cine_study_and_holds_the_report(runs, name):
    run = runs[name]
    cine, report = run["cine"], run["report"]
    sr = pydicom.dcmread(run["sr_path"])
    assert sr.Modality == "SR" and sr.SOPClassUID.name == "Comprehensive SR Storage"
    assert sr.StudyInstanceUID == cine.StudyInstanceUID == STUDY
    assert sr.AccessionNumber == ACCESSION and sr.PatientID == PATIENT_ID and str(sr.PatientName) == PATIENT_NAME
    assert sr.SeriesInstanceUID not in (SERIES, cine.SOPInstanceUID) and sr.SOPInstanceUID != cine.SOPInstanceUID
    assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "PARTIAL"
    assert "NOT FOR DIAGNOSTIC USE" in sr.SeriesDescription
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == STUDY
    assert ev.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == cine.SOPInstanceUID
    got = read_us_sr(sr)
    assert got["source_sop_uid"] == cine.SOPInstanceUID
    assert got["verdict"] == report["verdict"]
    assert report["compressibility"] is not None and got["compressibility"] == pytest.approx(report["compressibility"])
    assert got["compressibility:unit"] == "1"
    for key in ("baseline_vein_area_px", "min_vein_area_px", "artery_flattening", "frames"):
        assert got[key] == pytest.approx(report[key]), key
    assert got["frames"] == N and got["baseline_vein_area_px:unit"] == "{pixels}"
    assert f"Reason: {report['reason']}" in got["comments"]
    assert any(c.startswith(NOTICE) for c in got["comments"])
    if name == "cal":
        assert report["baseline_vein_area_mm2"] is not None
        for key in ("baseline_vein_area_mm2", "min_vein_area_mm2"):
            assert got[key] == pytest.approx(report[key]) and got[f"{key}:unit"] == "mm2"
    else:
        assert report["baseline_vein_area_mm2"] is None
        assert "baseline_vein_area_mm2" not in got and "min_vein_area_mm2" not in got
    # the patient's identifiers are in the SR (they must be), never in the JSON report
    text = json.dumps(report)
    assert PATIENT_ID not in text and PATIENT_NAME not in text


def test_send_to_stores_the_sr_in_the_archive(runs):
    received = runs["received"]
    assert len(received) == 1  # only the calibrated run was sent
    ds = received[0]
    written = pydicom.dcmread(runs["cal"]["sr_path"])
    assert ds.SOPInstanceUID == written.SOPInstanceUID and ds.StudyInstanceUID == STUDY
    assert read_us_sr(ds)["verdict"] == runs["cal"]["report"]["verdict"]


def test_sr_needs_a_dicom_cine_and_a_good_destination(tmp_path, capsys):
    out = tmp_path / "o"
    assert edge.cli.main(["us", "run", str(CLIP), "--sr", "--out", str(out)]) == 3  # InputError, before any work
    err = capsys.readouterr().err
    assert "demo-dvt.mp4" in err and "DICOM" in err
    assert not (out / "us.json").exists()
    assert edge.cli.main(["us", "run", str(CLIP), "--send-to", "ARCHIVE@host", "--out", str(out)]) == 6
    assert "AE@host:port" in capsys.readouterr().err


def test_a_cine_that_ends_early_gets_no_sr_and_an_old_sr_is_removed(tmp_path, capsys):
    from edge.faults import truncate

    frames = np.stack([np.full((32, 48), 10 + 20 * i, np.uint8) for i in range(8)])
    cine = truncate(_cine(tmp_path / "cut.dcm", frames), 0.6)
    out = tmp_path / "o"
    out.mkdir()
    (out / "us.sr.dcm").write_bytes(b"an older run's SR")
    assert edge.cli.main(["us", "run", str(cine), "--sr", "--no-video", "--out", str(out)]) == 3
    assert not (out / "us.sr.dcm").exists()
    assert json.loads((out / "us.json").read_text())["complete"] is False
    # a run that finishes with complete: false (input ended early) writes no SR either
    from edge.commands.us import _write_and_send_sr

    capsys.readouterr()
    assert _write_and_send_sr({"complete": False}, None, out / "us.sr.dcm", None, "DVTEDGE") == 0
    assert "sr: not written: the input ended early" in capsys.readouterr().out
    assert not (out / "us.sr.dcm").exists()
