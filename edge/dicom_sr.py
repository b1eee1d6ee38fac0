"""Shared pieces of the DICOM results DVT Edge writes back into a study (CT: :mod:`edge.ct.dicom_out`,
ultrasound: :mod:`edge.us.dicom_out`), so both sides copy the study the same way and say the same things.

* :func:`complete_header`: a copy of the input's header with the patient/study attributes highdicom copies
  present (empty when absent: DICOM type 2) and the pixel data removed;
* :func:`code`: a coded concept, by default in the private scheme ``99DVTEDGE``;
* :func:`device_observer`: the observation context naming DVT Edge as the observing device;
* :func:`save_atomic`: save a data set as a Part 10 file under a hidden name and rename it into place
  (:mod:`edge.atomic`), so an archive sender or a reader never sees half a file.

Sending is :mod:`edge.ct.send` (``Sender``/``Destination``), shared by both sides as it is.
"""

from __future__ import annotations

import copy
from pathlib import Path

PRIVATE = "99DVTEDGE"
MANUFACTURER = "DVT Edge (research software)"

_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def complete_header(header):
    """A copy of ``header`` with the patient/study attributes highdicom copies present (empty when the
    input lacks them: DICOM type 2), pixel data removed."""
    h = copy.deepcopy(header)  # Dataset.copy() is shallow: the copies would share their elements
    for kw in _TYPE2:
        if kw not in h:
            setattr(h, kw, "")
    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in h:
            delattr(h, kw)
    return h


def code(value: str, meaning: str, scheme: str = PRIVATE):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def device_observer(name: str = "DVT Edge"):
    """``ObservationContext`` with DVT Edge as the observer device (a new device UID each time)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=name, manufacturer_name=MANUFACTURER))
    return hd.sr.ObservationContext(observer_device_context=observer)


def save_atomic(ds, path: str | Path) -> Path:
    """Save ``ds`` (Part 10) to ``path`` atomically; OutputError naming the path on failure."""
    from edge.atomic import atomic_path
    from edge.errors import OutputError

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the DICOM file: {exc.strerror or exc}") from exc
    return path
