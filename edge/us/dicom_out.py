"""The ultrasound result back into the cine's study: a DICOM Structured Report (``us run --sr``).

Template: a Comprehensive SR (2D: nothing here needs 3D coordinates) holding a TID 1500 "Imaging
Measurement Report" written with highdicom, like the CT SR (:mod:`edge.ct.dicom_out`). TID 1500 fits: the
compression test is one image-level measurement group (TID 1501, "Measurements and Qualitative Evaluations",
no region) on the cine:

* tracking identifier ``compression test`` and a UID; the source image of the group is the cine (its SOP
  class and instance UID), which is also in the report's image library and the evidence sequence;
* qualitative evaluation ``Compressibility verdict`` (private scheme ``99DVTEDGE``), value one of
  ``compressible`` / ``non-compressible`` / ``indeterminate``;
* measurements (private concept names, UCUM units): compressibility (unit ``1``, a ratio 0..1, as in the
  JSON report), baseline and minimum vein area in pixels (``{pixels}``, screen pixels of the cine) and, when
  the cine is calibrated (its ultrasound regions, or ``--mm-per-px``), in ``mm2``; artery flattening
  (``1``); frames processed (``{frames}``). A value the run did not produce (null in the JSON) is left out;
* the algorithm (model name, version = the model file's sha256) on the group and on every measurement.

Text the template has no slot for is added as TEXT items (DCM 121106 "Comment") at the root: the verdict's
reason, and the research-use statement. The statement is also the series description, and the document
is UNVERIFIED and PARTIAL (never final: nobody has checked it).

Same study as the cine: Study Instance UID, Accession Number, the patient and general study modules are
copied from the cine's header by highdicom; a new series (number 9911) and instance. The cine's pixels are
not read.
"""

from __future__ import annotations

from pathlib import Path

from edge.dicom_sr import code, complete_header, device_observer, save_atomic
from edge.us.types import VerdictKind

NOTICE = "RESEARCH SOFTWARE - NOT FOR DIAGNOSTIC USE"
SR_SERIES_NUMBER = 9911
SERIES_DESCRIPTION = "DVT Edge US compression - RESEARCH, NOT FOR DIAGNOSTIC USE"

VERDICT_CONCEPT = ("DVTE-101", "Compressibility verdict")
VERDICT_CODES = {  # verdict -> (code value, meaning)
    VerdictKind.COMPRESSIBLE: ("DVTE-111", "compressible"),
    VerdictKind.NON_COMPRESSIBLE: ("DVTE-112", "non-compressible"),
    VerdictKind.INDETERMINATE: ("DVTE-113", "indeterminate"),
}
# (code value, meaning, JSON key, UCUM unit value, unit meaning), written in this order when not null
MEASUREMENTS = (
    ("DVTE-102", "Vein compressibility", "compressibility", "1", "no units"),
    ("DVTE-103", "Baseline vein area (pixels)", "baseline_vein_area_px", "{pixels}", "pixels"),
    ("DVTE-104", "Minimum vein area (pixels)", "min_vein_area_px", "{pixels}", "pixels"),
    ("DVTE-105", "Baseline vein area", "baseline_vein_area_mm2", "mm2", "square millimeter"),
    ("DVTE-106", "Minimum vein area", "min_vein_area_mm2", "mm2", "square millimeter"),
    ("DVTE-107", "Artery flattening", "artery_flattening", "1", "no units"),
    ("DVTE-108", "Frames processed", "frames", "{frames}", "frames"),
)
COMMENT = ("121106", "Comment", "DCM")


def statement(report: dict) -> str:
    return (f"{NOTICE}. Vein compressibility from an automatic segmentation model "
            f"({report.get('model') or 'unknown model'}) trained on synthetic phantoms and public images; "
            "not validated on patients. Unverified: not a diagnosis.")


def _algorithm(report: dict):
    import highdicom as hd

    spec = report.get("model_spec") or {}
    sha = ((spec.get("artifact") or {}).get("sha256")) or ""
    return hd.sr.AlgorithmIdentification(name=str(report.get("model") or spec.get("name") or "dvt-edge-us"),
                                         version=(f"sha256:{sha[:16]}" if sha else "unknown"))


def build_us_sr(report: dict, header):
    """The SR data set for the us report dict ``report`` (``dvt-edge/us-report@1``) of the cine whose header
    (pydicom Dataset, pixels not needed) is ``header``."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    header = complete_header(header)
    algorithm = _algorithm(report)
    measurements = []
    for value, meaning, key, unit, unit_meaning in MEASUREMENTS:
        v = report.get(key)
        if v is None:
            continue
        measurements.append(hd.sr.Measurement(name=code(value, meaning), value=float(v),
                                              unit=code(unit, unit_meaning, "UCUM"), algorithm_id=algorithm))
    verdict = VERDICT_CODES.get(str(report.get("verdict")), VERDICT_CODES[VerdictKind.INDETERMINATE])
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="compression test"),
        algorithm_id=algorithm,
        measurements=measurements or None,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=code(*VERDICT_CONCEPT), value=code(*verdict))],
        source_images=[hd.sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=str(header.SOPClassUID),
            referenced_sop_instance_uid=str(header.SOPInstanceUID))])
    content = hd.sr.MeasurementReport(
        observation_context=device_observer(),
        procedure_reported=code("16310003", "Diagnostic ultrasonography", "SCT"),
        imaging_measurements=[group],
        referenced_images=[header])
    root = content[0]
    texts = (f"Reason: {report.get('reason') or ''}", statement(report))
    if not all(t.isascii() for t in texts) and not header.get("SpecificCharacterSet"):
        header.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, copied into the SR with the patient module
    for text in texts:
        root.ContentSequence.append(hd.sr.TextContentItem(
            name=code(*COMMENT), value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return hd.sr.ComprehensiveSR(
        evidence=[header], content=root, series_instance_uid=generate_uid(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="DVT Edge (research software)",
        is_complete=False, is_final=False, is_verified=False, series_description=SERIES_DESCRIPTION)


def sr_path_for(json_path: Path) -> Path:
    """``<stem>.sr.dcm`` beside the JSON report ``<stem>.json``."""
    json_path = Path(json_path)
    return json_path.with_name(f"{json_path.stem}.sr.dcm")


def read_cine_header(path: str | Path):
    """The cine's header (no pixels) for the SR; InputError naming the file when it cannot be used: not
    DICOM, or without the Study/SOP Instance UIDs the SR must reference."""
    import pydicom

    from edge.errors import InputError

    name = Path(path).name
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises assorted errors on non-DICOM files
        raise InputError(f"--sr: '{name}' is not a readable DICOM file, so there is no study to write the "
                         f"report into ({type(exc).__name__}); --sr and --send-to need a DICOM cine") from exc
    missing = [kw for kw in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID") if not ds.get(kw)]
    if missing:
        raise InputError(f"--sr: '{name}' has no {', '.join(missing)}; the SR must name the cine's study and "
                         "instance")
    return ds


def write_us_sr(report: dict, header, path: str | Path) -> Path:
    """Build the SR and save it atomically at ``path``."""
    return save_atomic(build_us_sr(report, header), path)


def read_us_sr(sr) -> dict:
    """What an SR written by :func:`build_us_sr` holds, with the JSON report's keys: ``verdict`` (the JSON
    value), the measurements present, ``comments`` (texts), ``source_sop_uid`` (the referenced cine)."""
    out: dict = {"comments": []}
    by_code = {m[0]: m[2] for m in MEASUREMENTS}
    verdict_by_code = {v[0]: k for k, v in VERDICT_CODES.items()}

    def walk(items):
        for it in items:
            yield it
            yield from walk(getattr(it, "ContentSequence", []))

    for it in walk(sr.ContentSequence):
        c = it.ConceptNameCodeSequence[0].CodeValue
        if it.ValueType == "NUM" and c in by_code:
            out[by_code[c]] = float(it.MeasuredValueSequence[0].NumericValue)
            out[by_code[c] + ":unit"] = str(it.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
        elif it.ValueType == "CODE" and c == VERDICT_CONCEPT[0]:
            out["verdict"] = verdict_by_code.get(it.ConceptCodeSequence[0].CodeValue)
        elif it.ValueType == "TEXT" and c == COMMENT[0]:
            out["comments"].append(str(it.TextValue))
        elif it.ValueType == "IMAGE" and "source_sop_uid" not in out and c == "260753009":  # Source
            out["source_sop_uid"] = str(it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    return out
