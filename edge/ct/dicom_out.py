"""Results back to the archive as DICOM: a TID 1500 measurement report (SR) and key images (Secondary Capture).

Both go into the **same study** as the input series (Study Instance UID, Accession Number, patient and study
modules copied from the received header, by highdicom) as two **new series** with new UIDs, so a PACS files
them beside the CT and a viewer shows them with it. Nothing here sends: :mod:`edge.ct.send` does.

The SR (Comprehensive 3D SR, TID 1500 "Imaging Measurement Report"), one TID 1410 group per finding:

* tracking identifier "candidate N" (N as in the JSON report) and a UID;
* finding type SCT 128053003 "Deep venous thrombosis" (a *candidate*: the document is UNVERIFIED/PARTIAL);
* the box on the peak slice as a closed POLYLINE (SCOORD, pixel coordinates of that image) referencing the
  peak slice's SOP instance (the region in the referenced image);
* measurements (private scheme ``99DVTEDGE``): detection score (max over the chain), mean score, first,
  last and peak slice index (position-sorted series, 0 = most inferior, as in the JSON report), and the
  chain's number of slices;
* the algorithm (name and version of the model).

The "not for diagnostic use" statement is a TEXT item (DCM 121106 "Comment") at the root of the report, the
SeriesDescription of both series, and burned into each key image.

Key images: the peak slice in the soft-tissue window with the box and the notice burned in (what
``finding-NN.png`` shows), RGB 8 bit, one instance per finding, referencing the peak slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.ct.report import render_key_image

# shared with the ultrasound SR (edge.us.dicom_out); complete_header is re-exported: callers import it from here
from edge.dicom_sr import MANUFACTURER, PRIVATE, complete_header  # noqa: F401
from edge.dicom_sr import code as _code
from edge.notice import NOTICE

SR_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902

# (code value, meaning) of the measurements written per finding, in this order
MEASUREMENTS = (
    ("DVTE-001", "Detection score", "score"),
    ("DVTE-002", "Mean detection score", "mean_score"),
    ("DVTE-003", "First slice index", "slice_start"),
    ("DVTE-004", "Last slice index", "slice_end"),
    ("DVTE-005", "Peak slice index", "peak_slice"),
    ("DVTE-006", "Number of slices", "n_slices"),
)


class SopRecorder:
    """Wraps a slice stream and records each slice's SOP instance UID, so findings (position-sorted indices)
    can reference the images they lie on. Attribute access passes through to the wrapped stream."""

    def __init__(self, stream):
        self._stream = stream
        self.sop_uids: list[str] = []  # stream order

    def __iter__(self):
        for s in self._stream:
            self.sop_uids.append(s.sop_uid)
            yield s

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def by_position(self, direction: int) -> list[str]:
        return list(self.sop_uids) if direction >= 0 else list(reversed(self.sop_uids))


@dataclass
class DicomResults:
    sr_path: Path
    key_image_paths: list[Path]

    @property
    def files(self) -> list[Path]:
        return [self.sr_path, *self.key_image_paths]


def build_sr(result, header, sop_uids: list[str], model: dict | None = None):
    """The SR dataset of ``result`` (edge.ct.loop.ScanResult) for the series whose first header is
    ``header``; ``sop_uids[i]`` is the SOP instance UID of position index i."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    header = complete_header(header)
    sop_class = str(header.SOPClassUID)

    def evidence_for(uid: str):
        import copy

        d = copy.deepcopy(header)
        d.SOPInstanceUID = uid
        return d

    algorithm = hd.sr.AlgorithmIdentification(name=str((model or {}).get("name") or "dvt-edge-ct"),
                                              version=str((model or {}).get("file") or "1"))
    groups, evidence, seen = [], [header], {str(header.SOPInstanceUID)}
    for n, f in enumerate(result.findings, start=1):
        peak_uid = sop_uids[f.peak_slice]
        if peak_uid not in seen:
            seen.add(peak_uid)
            evidence.append(evidence_for(peak_uid))
        x0, y0, x1, y1 = (float(v) for v in f.box)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float),
            source_image=hd.sr.SourceImageForRegion(referenced_sop_class_uid=sop_class,
                                                    referenced_sop_instance_uid=peak_uid))
        values = f.to_json()
        measurements = []
        for code, meaning, key in MEASUREMENTS:
            unit = _code("1", "no units", "UCUM") if "score" in key else _code("{index}" if key != "n_slices" else "{slices}",
                                                                                 "index" if key != "n_slices" else "slices",
                                                                                 "UCUM")
            measurements.append(hd.sr.Measurement(name=_code(code, meaning), value=float(values[key]), unit=unit,
                                                  algorithm_id=algorithm))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"candidate {n}"),
            referenced_region=region,
            finding_type=_code("128053003", "Deep venous thrombosis", "SCT"),
            algorithm_id=algorithm,
            measurements=measurements))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="DVT Edge", manufacturer_name=MANUFACTURER))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_code("25045-6", "CT unspecified body region", "LN"),
        imaging_measurements=groups or None,
        title=codes.DCM.ImagingMeasurementReport)
    statement = (f"{NOTICE} DVT candidates from an automatic detector trained on synthetic phantoms; "
                 f"{len(result.findings)} candidate(s) on {result.slices} slices. Not validated on patients.")
    report[0].ContentSequence.append(hd.sr.TextContentItem(
        name=_code("121106", "Comment", "DCM"), value=statement,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=generate_uid(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=False, is_final=False, is_verified=False,
        series_description="DVT Edge CT candidates - RESEARCH, NOT FOR DIAGNOSTIC USE")
    return sr


def build_key_images(result, header, sop_uids: list[str]) -> list:
    """One Secondary Capture dataset per finding (same study, one new series)."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    header = complete_header(header)
    series_uid = generate_uid()
    out = []
    for n, (f, img) in enumerate(zip(result.findings, result.key_images), start=1):
        rgb = np.ascontiguousarray(render_key_image(img, f, n)[:, :, ::-1])
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=header, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=SC_SERIES_NUMBER,
            sop_instance_uid=generate_uid(), instance_number=n, manufacturer=MANUFACTURER,
            patient_orientation=("L", "P"),
            series_description="DVT Edge CT key images - RESEARCH, NOT FOR DIAGNOSTIC USE")
        sc.BurnedInAnnotation = "YES"
        sc.ImageComments = f"candidate {n}: slices {f.slice_start}-{f.slice_end}, peak {f.peak_slice}, " \
                           f"score {f.score:.2f}. {NOTICE}"
        ref = Dataset()
        ref.ReferencedSOPClassUID = header.SOPClassUID
        ref.ReferencedSOPInstanceUID = sop_uids[f.peak_slice]
        sc.SourceImageSequence = [ref]
        out.append(sc)
    return out


def write_results(result, header, sop_uids: list[str], out_dir: str | Path, model: dict | None = None) -> DicomResults:
    """Write ``sr.dcm`` and ``key-NN.dcm`` under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(sop_uids) != result.slices:
        raise ValueError(f"{len(sop_uids)} SOP UIDs for {result.slices} slices")
    sr = build_sr(result, header, sop_uids, model)
    sr_path = out / "sr.dcm"
    sr.save_as(sr_path, enforce_file_format=True)
    keys = []
    for n, sc in enumerate(build_key_images(result, header, sop_uids), start=1):
        p = out / f"key-{n:02d}.dcm"
        sc.save_as(p, enforce_file_format=True)
        keys.append(p)
    return DicomResults(sr_path, keys)


def read_sr_findings(sr) -> list[dict]:
    """The findings of an SR written by :func:`build_sr`, as dicts comparable with the JSON report's
    (``box`` from the region, ``peak_sop_uid`` the referenced image, the measurements by their keys)."""
    out = []
    root = sr.ContentSequence

    def walk(items):
        for it in items:
            yield it
            yield from walk(getattr(it, "ContentSequence", []))

    for group in walk(root):
        if getattr(group, "ValueType", "") != "CONTAINER" or \
                group.ConceptNameCodeSequence[0].CodeValue != "125007":  # "Measurement Group"
            continue
        f: dict = {}
        for it in group.ContentSequence:
            code = it.ConceptNameCodeSequence[0].CodeValue
            if it.ValueType == "SCOORD":
                xy = np.asarray(it.GraphicData, float).reshape(-1, 2)
                f["box"] = [round(float(xy[:, 0].min()), 1), round(float(xy[:, 1].min()), 1),
                            round(float(xy[:, 0].max()), 1), round(float(xy[:, 1].max()), 1)]
                f["peak_sop_uid"] = str(it.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            elif it.ValueType == "NUM":
                for c, _, key in MEASUREMENTS:
                    if c == code:
                        f[key] = float(it.MeasuredValueSequence[0].NumericValue)
            elif it.ValueType == "TEXT" and code == "112039":  # tracking identifier
                f["identifier"] = str(it.TextValue)
        out.append(f)
    return out
