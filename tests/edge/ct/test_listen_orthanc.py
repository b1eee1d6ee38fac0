"""End to end with a real archive: Orthanc, started by the test on 127.0.0.1, pushes studies to the listener
and receives the SR and key images back into the same study (issue 11).

Orthanc is a Debian package (``apt-get install orthanc``; ``.ci/run`` installs it). The test writes its own
configuration (free DICOM and HTTP ports, a temporary storage folder, the listener as a DICOM modality),
talks to Orthanc's REST API with urllib only, and skips, with the reason, only when the binary is missing.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pynetdicom")

import edge.cli  # noqa: E402
from edge.commands import ct as ct_cli  # noqa: E402
from edge.ct.dicom_out import read_sr_findings  # noqa: E402
from edge.ct.dicom_series import dataset_hu  # noqa: E402
from edge.ct.listen import ListenConfig, StoreListener  # noqa: E402
from edge.ct.send import Destination, Sender  # noqa: E402
from edge.ct.testing import ThresholdDetector, encode_lossless, write_series  # noqa: E402
from edge.jobs.ct_serve import serve  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """A throw-away Orthanc: own config, own storage, killed at the end."""

    def __init__(self, exe: str, root: Path, listener_port: int):
        self.dicom_port, self.http_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        config = {
            "Name": "dvt-edge-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
            "DicomAet": "ORTHANC", "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "SslEnabled": False,
            "DicomModalities": {"dvtedge": ["DVTEDGE", "127.0.0.1", listener_port]},
            "DicomAlwaysAllowStore": True, "DicomCheckCalledAet": False, "DicomCheckModalityHost": False,
            "DicomAssociationCloseDelay": 0, "DicomScuTimeout": 20, "ConcurrentJobs": 4, "SaveJobs": False,
            "Plugins": [], "StorageCompression": False, "OverwriteInstances": True, "StableAge": 60,
        }
        (root / "db").mkdir(parents=True, exist_ok=True)
        (root / "orthanc.json").write_text(json.dumps(config, indent=1))
        self.log = open(root / "orthanc.log", "w")
        self.proc = subprocess.Popen([exe, str(root / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/system")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Orthanc did not start; see {root / 'orthanc.log'}:\n"
                                       + (root / "orthanc.log").read_text()[-2000:])
                time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read()
        return json.loads(data) if r.headers.get_content_type() == "application/json" else data

    def get(self, path: str):
        return self.request("GET", path)

    def upload(self, path: Path) -> dict:
        return self.request("POST", "/instances", path.read_bytes(), "application/dicom")

    def push(self, resources: list[str]) -> dict:
        body = json.dumps({"Resources": resources, "Synchronous": True}).encode()
        return self.request("POST", "/modalities/dvtedge/store", body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wait_for_results(orthanc: Orthanc, study_id: str, n_key_images: int, timeout_s: float = 60) -> dict:
    """Poll the study until an SR and the key images are there; {modality: [instance ids]}."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict = {}
        for series in orthanc.get(f"/studies/{study_id}/series"):
            mod = series["MainDicomTags"].get("Modality", "")
            found.setdefault(mod, []).extend(series["Instances"])
        if len(found.get("SR", [])) == 1 and len(found.get("OT", [])) == n_key_images:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"results did not come back into the study: {found}")
        time.sleep(0.2)


@pytest.fixture
def orthanc_exe() -> str:
    exe = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
                                           if Path(p).is_file()), None)
    if exe is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc; .ci/run does)")
    return exe


def scan_json(folder: Path, tmp_path: Path, monkeypatch) -> dict:
    """``dvt-edge ct scan`` on the folder, with the same stand-in detector as the listener."""
    monkeypatch.setattr(edge.cli, "_builtin_registrars", lambda: [ct_cli.register])
    monkeypatch.setattr(edge.cli, "_plugin_registrars", lambda: [])
    from edge.jobs.ct import DetectorHandle, use_detector_factory

    fake = lambda options: DetectorHandle(ThresholdDetector(), {"name": "fake"}, {"name": "threshold-fake"})  # noqa: E731
    out = tmp_path / f"scan-{folder.name}.json"
    with use_detector_factory(fake):
        assert edge.cli.main(["ct", "scan", str(folder), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_orthanc_push_scout_then_venous_results_back_in_the_same_study(orthanc_exe, tmp_path, monkeypatch):
    import pydicom
    from pydicom import uid

    t_start = time.monotonic()
    # three studies: 1 = scout + venous series; 2 = another patient's series; 3 = JPEG Lossless
    s1, s2, s3 = (f"1.2.826.0.1.3680043.8.498.{900 + i}" for i in (1, 2, 3))
    data = tmp_path / "data"
    scout = write_series(data / "scout", 1, study_uid=s1, extra={
        "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"], "SeriesDescription": "Topogram", "AccessionNumber": "A1"})
    venous = write_series(data / "venous", 10, clot_slices=[3, 4, 5, 8], study_uid=s1,
                          extra={"SeriesDescription": "venous 3mm", "AccessionNumber": "A1"})
    other = write_series(data / "other", 8, clot_slices=[5], study_uid=s2,
                         extra={"PatientID": "SYNTH0002", "AccessionNumber": "A2"})
    plain = write_series(data / "plain", 7, clot_slices=[2, 3], study_uid=s3,
                         extra={"PatientID": "SYNTH0003", "AccessionNumber": "A3"})
    (data / "jpeg").mkdir()
    jpeg = [encode_lossless(p, data / "jpeg" / p.name, uid.JPEGLosslessSV1) for p in plain]

    out = tmp_path / "out"
    lines: list[str] = []
    listener = StoreListener(ListenConfig(port=0, store_dir=out, idle_timeout_s=30), notice=lines.append).start()
    orthanc = None
    sender = None
    runner = None
    holder: dict = {}
    try:
        orthanc = Orthanc(orthanc_exe, tmp_path / "orthanc", listener.port)
        sender = Sender(Destination("ORTHANC", "127.0.0.1", orthanc.dicom_port), backoff_s=0.5, notice=lines.append)
        runner = threading.Thread(target=lambda: holder.update(s=serve(
            listener, ThresholdDetector(), 3, out=out, sender=sender, log=lines.append, warn=lines.append)))
        runner.start()
        ids = {name: [orthanc.upload(p) for p in files]
               for name, files in (("scout", scout), ("venous", venous), ("other", other), ("jpeg", jpeg))}
        t_up = time.monotonic()

        # push 1: the scout is the first object, then the venous series
        orthanc.push([ids["scout"][0]["ID"], ids["venous"][0]["ParentSeries"]])
        study1 = ids["venous"][0]["ParentStudy"]
        assert ids["scout"][0]["ParentStudy"] == study1
        scan = scan_json(data / "venous", tmp_path, monkeypatch)
        got = wait_for_results(orthanc, study1, len(scan["findings"]))
        t_push1 = time.monotonic()

        # pushes 2 and 3 at the same time (two associations), one of them JPEG Lossless
        pushes = [threading.Thread(target=orthanc.push, args=([ids[name][0]["ParentSeries"]],))
                  for name in ("other", "jpeg")]
        for t in pushes:
            t.start()
        for t in pushes:
            t.join(60)
        scan2 = scan_json(data / "other", tmp_path, monkeypatch)
        scan3 = scan_json(data / "plain", tmp_path, monkeypatch)
        wait_for_results(orthanc, ids["other"][0]["ParentStudy"], len(scan2["findings"]))
        wait_for_results(orthanc, ids["jpeg"][0]["ParentStudy"], len(scan3["findings"]))
        t_push23 = time.monotonic()

        # the SR in Orthanc: same study, patient and accession as the input; findings equal ct scan's
        sr = pydicom.dcmread(io.BytesIO(orthanc.request("GET", f"/instances/{got['SR'][0]}/file")))
        src = pydicom.dcmread(venous[0])
        assert (sr.StudyInstanceUID, sr.PatientID, sr.AccessionNumber) == (s1, src.PatientID, "A1")
        assert sr.SeriesInstanceUID not in (src.SeriesInstanceUID,) and "NOT FOR DIAGNOSTIC USE" in sr.SeriesDescription
        sop_index = {pydicom.dcmread(p).SOPInstanceUID: i for i, p in enumerate(venous)}
        found = read_sr_findings(sr)
        assert len(found) == len(scan["findings"]) >= 2
        for f, r in zip(found, scan["findings"]):
            assert f["box"] == r["box"] and round(f["score"], 4) == r["score"]
            assert (int(f["slice_start"]), int(f["slice_end"]), int(f["peak_slice"])) == \
                (r["slice_start"], r["slice_end"], r["peak_slice"])
            assert sop_index[f["peak_sop_uid"]] == r["peak_slice"]
        key = pydicom.dcmread(io.BytesIO(orthanc.request("GET", f"/instances/{got['OT'][0]}/file")))
        assert key.StudyInstanceUID == s1 and key.SOPClassUID.name == "Secondary Capture Image Storage"

        # the scout went in and was left out; every pushed series was processed, each with its own report
        assert any("excluded by rule 'localizer / scout'" in m for m in lines), lines
        reports = [json.loads(p.read_text()) for p in sorted(out.glob("study-*/report.json"))]
        assert sorted(r["slices"] for r in reports) == [7, 8, 10]
        by_n = {r["slices"]: r for r in reports}
        assert by_n[8]["findings"] == scan2["findings"] and by_n[7]["findings"] == scan3["findings"]

        # JPEG Lossless came over the wire as such and decodes to the uncompressed copy, bit for bit
        jdir = next(p.parent for p in out.glob("study-*/report.json") if json.loads(p.read_text())["slices"] == 7)
        stored = sorted((jdir / "dicom").iterdir())
        assert {str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in stored} == \
            {uid.JPEGLosslessSV1}
        by_sop = {pydicom.dcmread(p).SOPInstanceUID: p for p in plain}
        for p in stored:
            ds = pydicom.dcmread(p)
            ref = pydicom.dcmread(by_sop[ds.SOPInstanceUID])
            assert np.array_equal(ds.pixel_array, ref.pixel_array)
            assert np.array_equal(dataset_hu(ds, p.name), dataset_hu(ref, p.name))
        assert sender.wait(10) and all(o.sent for o in sender.outcomes), [o.message for o in sender.outcomes]
    finally:
        listener.request_stop()
        if runner is not None:
            runner.join(5)
        listener.stop()
        if sender is not None:
            sender.close()
        if orthanc is not None:
            orthanc.stop()
    summary = holder.get("s")
    assert summary is not None and len(summary.processed) == 3 and not summary.discarded
    print(f"\nOrthanc: start+upload {t_up - t_start:.1f} s, push 1 -> SR back {t_push1 - t_up:.1f} s, "
          f"two simultaneous pushes -> both SRs back {t_push23 - t_push1:.1f} s; peak concurrent associations "
          f"{listener.stats['peak_associations']}")


def test_the_real_command_sends_its_sr_to_orthanc(orthanc_exe, tmp_path):
    """``dvt-edge ct listen --once --send-to ORTHANC@...`` with the packaged model, as a process: it waits for
    the send before it exits, and the SR in Orthanc holds the findings of the command's own report.json."""
    import os
    import subprocess
    import sys

    import pydicom

    repo = Path(__file__).resolve().parents[3]
    if not (repo / "edge" / "ct" / "assets" / "ctdet-k3.onnx").is_file():
        pytest.skip("the packaged CT model is not built")
    venous = write_series(tmp_path / "venous", 6, clot_slices=[2, 3], study_uid="1.2.826.0.1.3680043.8.498.990",
                          extra={"AccessionNumber": "A9"})
    port = free_port()
    orthanc = Orthanc(orthanc_exe, tmp_path / "orthanc", port)
    proc = None
    try:
        ids = [orthanc.upload(p) for p in venous]
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "ct", "listen", "--port", str(port), "--once", "--backend",
             "onnxruntime", "--out", str(tmp_path / "out"), "--send-to", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=repo, env={**os.environ})
        deadline = time.monotonic() + 60
        while True:  # push as soon as the command listens
            try:
                orthanc.push([ids[0]["ParentSeries"]])
                break
            except urllib.error.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.3)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        report = json.loads((tmp_path / "out" / "study-001" / "report.json").read_text())
        assert len(report["findings"]) >= 1, report  # the packaged model finds the synthetic clot
        assert f"study 1: {1 + len(report['findings'])} file(s) sent to ORTHANC@127.0.0.1" in out, out
        got = wait_for_results(orthanc, ids[0]["ParentStudy"], len(report["findings"]), timeout_s=10)
        sr = pydicom.dcmread(io.BytesIO(orthanc.request("GET", f"/instances/{got['SR'][0]}/file")))
        found = read_sr_findings(sr)
        assert [(int(f["slice_start"]), int(f["slice_end"]), int(f["peak_slice"]), f["box"]) for f in found] == \
            [(r["slice_start"], r["slice_end"], r["peak_slice"], r["box"]) for r in report["findings"]]
        assert sr.AccessionNumber == "A9" and sr.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.990"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        orthanc.stop()
