"""Hospital integration (issue 11, parts 1-2) without an archive: series selection, JPEG Lossless and JPEG-LS
over the network, the SR / key images written back into the same study, the background sender."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pynetdicom")

from edge.ct.dicom_series import dataset_hu  # noqa: E402
from edge.ct.listen import ListenConfig, StoreListener, supported_transfer_syntaxes  # noqa: E402
from edge.ct.loop import run_slice_loop  # noqa: E402
from edge.ct.series_rules import SeriesRules, orientation_name  # noqa: E402
from edge.ct.stream import iter_folder, stream_datasets  # noqa: E402
from edge.ct.testing import ThresholdDetector, encode_lossless, send_files, write_series  # noqa: E402
from edge.errors import ConfigError  # noqa: E402
from edge.jobs.ct_serve import serve  # noqa: E402

STUDY = "1.2.826.0.1.3680043.8.498.555"
CORONAL = (1, 0, 0, 0, 0, -1)


def secondary_capture(study_uid: str = STUDY):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(64)
    return ds


def dose_report(study_uid: str = STUDY):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, XRayRadiationDoseSRStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = XRayRadiationDoseSRStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), "SR"
    ds.ValueType = "CONTAINER"
    return ds


@pytest.fixture(scope="module")
def mixed_study(tmp_path_factory) -> dict:
    """One study as a scanner pushes it: scout, dose report, screen capture, a coronal reformat, a stray
    one-slice axial image, then the arterial and venous axial series."""
    root = tmp_path_factory.mktemp("mixed")
    extra = {"AccessionNumber": "ACC123"}
    return {
        "scout": write_series(root / "scout", 1, study_uid=STUDY, extra={
            **extra, "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"], "SeriesDescription": "Topogram 0.6 T20s"}),
        "coronal": write_series(root / "coronal", 4, study_uid=STUDY, orientation=CORONAL,
                                extra={**extra, "SeriesDescription": "venous cor MPR"}),
        "single": write_series(root / "single", 1, study_uid=STUDY, extra={**extra, "SeriesDescription": "one image"}),
        "arterial": write_series(root / "arterial", 6, clot_slices=[2], study_uid=STUDY,
                                 extra={**extra, "SeriesDescription": "arterial 3mm"}),
        "venous": write_series(root / "venous", 9, clot_slices=[3, 4, 5], study_uid=STUDY,
                               extra={**extra, "SeriesDescription": "venous 3mm"}),
    }


def push(mixed_study) -> list:
    s = mixed_study
    return [*s["scout"], dose_report(), secondary_capture(), *s["coronal"], *s["single"], *s["arterial"],
            *s["venous"]]


def run_listener(items, tmp_path, rules=None, expect: int = 1, **kw):
    """Push ``items`` over one association into a listener + serve loop; stop once ``expect`` series have a
    report (and half a second more, so an unexpected extra one would be seen)."""
    out = tmp_path / "out"
    lines: list[str] = []
    with StoreListener(ListenConfig(port=0, store_dir=out, rules=rules, idle_timeout_s=10),
                       notice=lines.append) as lst:
        holder: dict = {}
        runner = threading.Thread(target=lambda: holder.update(s=serve(lst, ThresholdDetector(), 3, out=out,
                                                                        log=lines.append, warn=lines.append, **kw)))
        runner.start()
        statuses = send_files(lst.port, items)
        deadline = time.monotonic() + 30
        while sum("candidate(s)" in m for m in lines) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        lst.request_stop()
        runner.join(5)
    return statuses, holder["s"], lines, out


def test_every_qualifying_axial_series_gets_its_own_report(mixed_study, tmp_path):
    statuses, summary, lines, out = run_listener(push(mixed_study), tmp_path, expect=2)
    assert statuses == [0] * len(statuses)  # the whole study is accepted, nothing fails the push
    assert summary.processed == [1, 2]
    slices = sorted(r["slices"] for r in summary.reports.values())
    assert slices == [6, 9]
    for name, n in (("arterial", 6), ("venous", 9)):
        scan = run_slice_loop(iter_folder(mixed_study[name][0].parent), ThresholdDetector())
        report = next(r for r in summary.reports.values() if r["slices"] == n)
        assert report["findings"] == [f.to_json() for f in scan.findings]
    text = "\n".join(lines)
    assert "excluded by rule 'localizer / scout'" in text
    assert "no select rule matches (X-Ray Radiation Dose SR Storage" in text
    assert "no select rule matches (Secondary Capture Image Storage" in text
    assert "CORONAL orientation" in text
    assert "1 slice(s), fewer than min_slices 3" in text
    assert sorted(p.parent.name for p in out.glob("study-*/report.json")) == ["study-001", "study-002"]


def test_a_site_rules_file_changes_what_is_processed(mixed_study, tmp_path):
    from edge.ct.series_rules import default_rules_path

    rules = json.loads(default_rules_path().read_text())
    rules["exclude"].append({"name": "arterial phase", "conditions": {"SeriesDescription": ".*arterial.*"}})
    path = tmp_path / "site-rules.json"
    path.write_text(json.dumps(rules))
    statuses, summary, lines, _ = run_listener(push(mixed_study), tmp_path, rules=SeriesRules.load(path))
    assert [r["slices"] for r in summary.reports.values()] == [9]
    assert any("excluded by rule 'arterial phase'" in m for m in lines)


def test_bad_rules_files_are_named_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="missing.json: rules file not found"):
        SeriesRules.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"select": []}')
    with pytest.raises(ConfigError, match="bad.json: 'select' needs at least one rule"):
        SeriesRules.load(bad)
    bad.write_text('{"select": [{"conditions": {"Modality": "(CT"}}]}')
    with pytest.raises(ConfigError, match="bad regular expression"):
        SeriesRules.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not a readable JSON rules file"):
        SeriesRules.load(bad)


def test_orientation_names():
    assert orientation_name([1, 0, 0, 0, 1, 0]) == "AXIAL"
    assert orientation_name([1, 0, 0, 0, 0, -1]) == "CORONAL"
    assert orientation_name([0, 1, 0, 0, 0, -1]) == "SAGITTAL"
    assert orientation_name([1, 0, 0, 0, 0.94, 0.34]) == "AXIAL"  # 20 deg gantry tilt: still axial
    assert orientation_name([1, 0, 0, 0, 0.7071, 0.7071]) == "OBLIQUE"
    assert orientation_name(None) is None


@pytest.mark.parametrize("name", ["JPEGLosslessSV1", "JPEGLSLossless"])
def test_jpeg_lossless_and_jpeg_ls_are_accepted_and_pixel_identical(tmp_path, name):
    import pydicom
    from pydicom import uid

    syntax = getattr(uid, name)
    offered, missing = supported_transfer_syntaxes()
    assert syntax in offered, f"{syntax.name} not offered ({missing}): pip install 'dvt-edge[ct]'"
    plain = write_series(tmp_path / "plain", 5, clot_slices=[2])
    (tmp_path / "enc").mkdir()
    coded = [encode_lossless(p, tmp_path / "enc" / p.name, syntax) for p in plain]
    assert sum(p.stat().st_size for p in coded) < sum(p.stat().st_size for p in plain)  # really compressed
    with StoreListener(ListenConfig(port=0, store_dir=tmp_path / "out", idle_timeout_s=10)) as lst:
        assert send_files(lst.port, coded, transfer_syntax=syntax) == [0] * 5  # only that syntax proposed
        job = next(lst.studies(once=True, wait_s=10))
        received = list(job)
    stored = sorted((tmp_path / "out" / "study-001" / "dicom").iterdir())
    assert {str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in stored} == {syntax}
    for (name_, ds), p in zip(received, plain):
        ref = pydicom.dcmread(p)
        assert np.array_equal(ds.pixel_array, ref.pixel_array)  # stored values, bit for bit
        assert np.array_equal(dataset_hu(ds, name_), dataset_hu(ref, p.name))
    result = run_slice_loop(stream_datasets(iter(received)), ThresholdDetector())
    assert [f.to_json() for f in result.findings] == \
        [f.to_json() for f in run_slice_loop(iter_folder(plain[0].parent), ThresholdDetector()).findings]


def test_results_are_dicom_in_the_same_study(mixed_study, tmp_path):
    import pydicom

    from edge.ct.dicom_out import read_sr_findings

    _, summary, _, out = run_listener([*mixed_study["venous"]], tmp_path)
    res = summary.results[1]
    sr = pydicom.dcmread(res.sr_path)
    src = pydicom.dcmread(mixed_study["venous"][0])
    for kw in ("StudyInstanceUID", "AccessionNumber", "PatientID", "PatientName"):
        assert str(sr.get(kw)) == str(src.get(kw)), kw
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID and "NOT FOR DIAGNOSTIC USE" in sr.SeriesDescription
    assert sr.SOPClassUID.name == "Comprehensive 3D SR Storage" and sr.VerificationFlag == "UNVERIFIED"
    comments = [it.TextValue for it in sr.ContentSequence if it.ValueType == "TEXT"]
    assert any("Research software. Not for diagnostic use." in c for c in comments)
    report = summary.reports[1]
    found = read_sr_findings(sr)
    sops = {pydicom.dcmread(p).SOPInstanceUID: i for i, p in enumerate(mixed_study["venous"])}
    assert len(found) == len(report["findings"]) >= 1
    for f, r in zip(found, report["findings"]):
        assert f["box"] == r["box"] and round(f["score"], 4) == r["score"]
        assert (int(f["slice_start"]), int(f["slice_end"]), int(f["peak_slice"])) == \
            (r["slice_start"], r["slice_end"], r["peak_slice"])
        assert sops[f["peak_sop_uid"]] == r["peak_slice"]  # the region lies on the peak slice's image
    keys = [pydicom.dcmread(p) for p in res.key_image_paths]
    assert len(keys) == len(report["findings"])
    for k in keys:
        assert k.StudyInstanceUID == src.StudyInstanceUID and k.AccessionNumber == "ACC123"
        assert k.SOPClassUID.name == "Secondary Capture Image Storage" and k.pixel_array.ndim == 3
    assert report["dicom_results"] == ["results/sr.dcm"] + [f"results/key-{i:02d}.dcm" for i in range(1, len(keys) + 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sender_retries_with_back_off_until_the_archive_is_up(mixed_study, tmp_path):
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    from edge.ct.send import Destination, Sender

    _, summary, _, _ = run_listener([*mixed_study["venous"]], tmp_path)
    files = summary.results[1].files
    port = free_port()
    lines: list[str] = []
    sender = Sender(Destination("ARCHIVE", "127.0.0.1", port), backoff_s=0.3, attempts=8, notice=lines.append)
    t0 = time.monotonic()
    assert sender.submit(files, "study 1")
    assert time.monotonic() - t0 < 0.05  # never blocks the caller
    time.sleep(0.8)  # the archive is down for the first attempts
    got: list = []
    ae = AE(ae_title="ARCHIVE")
    ae.supported_contexts = AllStoragePresentationContexts
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, lambda e: got.append(e.dataset) or 0x0000)])
    try:
        assert sender.wait(15)
    finally:
        sender.close()
        server.shutdown()
    out = sender.outcomes[0]
    assert out.sent and out.attempts >= 2, (out, lines)
    assert any("retrying in 0.3 s" in m for m in lines) and any("retrying in 0.6 s" in m for m in lines)
    assert sorted(d.SOPInstanceUID for d in got) == sorted(
        __import__("pydicom").dcmread(f).SOPInstanceUID for f in files)


def test_sender_gives_up_and_says_where_the_files_are(tmp_path):
    from edge.ct.send import Destination, Sender

    f = write_series(tmp_path / "s", 1)[0]
    lines: list[str] = []
    sender = Sender(Destination("ARCHIVE", "127.0.0.1", free_port()), backoff_s=0.05, attempts=2,
                    notice=lines.append)
    sender.submit([f], "study 9")
    assert sender.wait(10)
    sender.close()
    assert not sender.outcomes[0].sent
    assert any("given up after 2 attempts" in m and str(f.parent) in m and "storescu" in m for m in lines)


def test_send_to_parsing():
    from edge.ct.send import Destination

    assert Destination.parse("ORTHANC@10.0.0.5:4242") == Destination("ORTHANC", "10.0.0.5", 4242)
    for bad in ("ORTHANC", "ORTHANC@host", "@h:1", "A@h:x", "A@h:70000", "AAAAAAAAAAAAAAAAA@h:1"):
        with pytest.raises(ConfigError, match="--send-to"):
            Destination.parse(bad)
