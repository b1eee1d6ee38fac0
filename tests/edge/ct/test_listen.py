"""The C-STORE listener: pynetdicom's SCU and dcmtk's storescu in-process; findings of listen == findings of scan."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

pytest.importorskip("pynetdicom")

from edge.ct.listen import ListenConfig, StoreListener  # noqa: E402
from edge.ct.loop import run_slice_loop  # noqa: E402
from edge.ct.stream import iter_folder, stream_datasets  # noqa: E402
from edge.ct.testing import ThresholdDetector, write_series  # noqa: E402
from edge.errors import ConfigError  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "edge" / "ct" / "assets" / "ctdet-k3.onnx"
BONE = dict(lo=700.0, hi=3000.0, min_area=30)  # a fake detector with plenty to find on the real abdomen


def send_pynetdicom(files, port, calling="TESTSCU", called="DVTEDGE", release=True, errors=None):
    """Send files in the given order over one association; returns the C-STORE statuses."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, [JPEG2000Lossless])
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        if errors is not None:
            errors.append("association not established")
        return []
    statuses = [assoc.send_c_store(pydicom.dcmread(f)).Status for f in files]
    assoc.release() if release else None
    return statuses if release else (statuses, assoc)


def listen_and_run(send, detector, store_dir=None, idle_timeout_s=30.0, allow=("TESTSCU", "STORESCU")):
    """Start a listener on a free port, run ``send(port)`` in a thread, stream the first study through the pipeline."""
    # the study ends on association release; the idle timeout only guards a sender that never comes,
    # so a generous one keeps this test stable on a loaded CI machine without slowing it
    cfg = ListenConfig(port=0, allow=allow, idle_timeout_s=idle_timeout_s, store_dir=store_dir)
    errors: list = []
    with StoreListener(cfg) as lst:
        def sender():
            try:
                send(lst.port)
            except Exception as exc:  # surfaced by the assertion below
                errors.append(exc)

        t = threading.Thread(target=sender)
        t.start()
        study = next(lst.studies(once=True, wait_s=30), None)
        result = run_slice_loop(stream_datasets(study), detector) if study is not None else None
        t.join(30)
    assert not errors, errors
    assert study is not None, "no study arrived"
    return result, study


def same_findings(a, b):
    assert a.slices == b.slices
    assert [f.to_json() for f in a.findings] == [f.to_json() for f in b.findings]
    assert [f.detections for f in a.findings] == [f.detections for f in b.findings]
    assert [s.to_json() for s in a.suppressed] == [s.to_json() for s in b.suppressed]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_series(folder, 16, clot_slices=[3, 4, 5, 6, 11, 12])
    return folder


@pytest.fixture(scope="module")
def sample_with_uids(tmp_path_factory, ct_sample_dir) -> Path:
    """The real sample with the SOP/series UIDs its anonymiser blanked restored (C-STORE needs them)."""
    import pydicom
    from pydicom.uid import CTImageStorage

    out = tmp_path_factory.mktemp("sample")
    for i, f in enumerate(sorted(ct_sample_dir.iterdir())):
        ds = pydicom.dcmread(f)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.77"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.78"
        ds.save_as(out / f"{i:03d}.dcm", enforce_file_format=True)
    return out


def test_pynetdicom_head_to_feet_equals_scan_and_store_rescans(synthetic, tmp_path):
    files = sorted(synthetic.iterdir())[::-1]  # sent head-to-feet: the stream runs backwards
    result, study = listen_and_run(lambda port: send_pynetdicom(files, port), ThresholdDetector(), store_dir=tmp_path)
    scan = run_slice_loop(iter_folder(synthetic), ThresholdDetector())
    assert result.direction == -1 and study.end_reason == "released" and result.warnings == []
    assert [(f.slice_start, f.slice_end) for f in scan.findings] == [(3, 6), (11, 12)]
    same_findings(result, scan)
    stored = sorted((tmp_path / "study-001" / "dicom").iterdir())
    assert [p.name for p in stored] == [f"{i:05d}.dcm" for i in range(1, 17)]  # numbered, no UIDs
    same_findings(run_slice_loop(iter_folder(stored[0].parent), ThresholdDetector()), scan)


@pytest.mark.data
def test_real_jpeg2000_sample_over_pynetdicom_equals_scan(sample_with_uids):
    files = sorted(sample_with_uids.iterdir())  # instance order = descending position in this sample
    result, _ = listen_and_run(lambda port: send_pynetdicom(files, port), ThresholdDetector(**BONE))
    scan = run_slice_loop(iter_folder(sample_with_uids), ThresholdDetector(**BONE))
    assert scan.slices == 20 and len(scan.findings) >= 1
    same_findings(result, scan)


def dcmtk_storescu() -> str | None:
    """dcmtk's storescu binary. pynetdicom installs a Python script of the same name into the venv, which
    shadows dcmtk's on PATH and takes other options: pick the executable that says it is dcmtk."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        exe = os.path.join(folder, "storescu")
        if os.access(exe, os.X_OK):
            try:
                out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            if "dcmtk" in out.lower():
                return exe
    return None


@pytest.mark.data
def test_storescu_binary_equals_scan(sample_with_uids):
    exe = dcmtk_storescu()
    if exe is None:
        pytest.skip("dcmtk's storescu is not on PATH (apt-get install dcmtk)")
    files = [str(p) for p in sorted(sample_with_uids.iterdir())]  # -xv: propose JPEG 2000 lossless as stored

    def send(port):
        proc = subprocess.run([exe, "-xv", "-aet", "STORESCU", "-aec", "DVTEDGE", "127.0.0.1", str(port), *files],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr

    result, study = listen_and_run(send, ThresholdDetector(**BONE))
    scan = run_slice_loop(iter_folder(sample_with_uids), ThresholdDetector(**BONE))
    assert study.received == 20
    same_findings(result, scan)


@pytest.mark.data
def test_real_model_listen_equals_scan(sample_with_uids):
    if not MODEL.is_file():
        pytest.skip(f"trained CT model not found at {MODEL}")
    from edge.jobs.ct import DetectorOptions, open_model_detector

    handle = open_model_detector(DetectorOptions(MODEL, "onnxruntime"))
    detector = handle.detector
    try:
        files = sorted(sample_with_uids.iterdir())
        result, _ = listen_and_run(lambda port: send_pynetdicom(files, port), detector)
        scan = run_slice_loop(iter_folder(sample_with_uids), detector)
    finally:
        detector.backend.close()
    same_findings(result, scan)


def test_caller_not_in_allow_list_is_rejected(synthetic):
    with StoreListener(ListenConfig(port=0, allow=("GOODSCU",), idle_timeout_s=1)) as lst:
        errors: list = []
        assert send_pynetdicom(sorted(synthetic.iterdir())[:1], lst.port, calling="EVILSCU", errors=errors) == []
        assert errors == ["association not established"]
        errors.clear()
        send_pynetdicom(sorted(synthetic.iterdir())[:1], lst.port, calling="GOODSCU", called="WRONGAE", errors=errors)
        assert errors == ["association not established"]  # callers must address our AE title


def test_study_ends_after_idle_timeout(synthetic):
    files = sorted(synthetic.iterdir())[:4]
    with StoreListener(ListenConfig(port=0, idle_timeout_s=0.5)) as lst:
        holder: dict = {}
        t = threading.Thread(target=lambda: holder.update(r=send_pynetdicom(files, lst.port, release=False)))
        t.start()
        study = next(lst.studies(once=True, wait_s=10))
        result = run_slice_loop(stream_datasets(study), ThresholdDetector())
        t.join(10)
        statuses, assoc = holder["r"]
        assoc.release()
    assert statuses == [0] * 4 and result.slices == 4 and study.end_reason.startswith("idle")


def test_config_validation():
    with pytest.raises(ConfigError, match="--allow"):
        ListenConfig(host="0.0.0.0").validate()
    with pytest.raises(ConfigError, match="AE title"):
        ListenConfig(ae_title="A" * 17).validate()
    ListenConfig(host="0.0.0.0", allow=("PACS",)).validate()
