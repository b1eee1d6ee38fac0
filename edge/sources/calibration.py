"""Physical units for ultrasound reports: vein areas in mm² when the pixel size is known.

Reporting only: the verdict is computed from areas in screen pixels (edge/us/measure.py, verdict.py) and
never sees these numbers; a report adds mm² beside the pixels, which stay.

Where the pixel size comes from, first found wins:

1. ``--mm-per-px X[,Y]`` (the operator's calibration, e.g. measured on the scanner's depth scale);
2. a DICOM cine's Sequence of Ultrasound Regions (0018,6011): the largest 2D tissue region
   (RegionSpatialFormat 1) whose Physical Units X/Y Direction are cm (code 3); PhysicalDeltaX/Y are cm per
   pixel, so mm per pixel = 10 x delta. Regions in other units (seconds, cm/s for Doppler) are ignored.

Areas in reports are SCREEN (original frame) pixels, so mm² = px x (mm/px in x) x (mm/px in y).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import ConfigError

CM = 3  # Physical Units X/Y Direction (0018,6024 / 0018,6026): 3 = cm
SPATIAL_2D = 1  # Region Spatial Format (0018,6012): 1 = 2D (tissue or flow)
DICOM_SOURCE = "DICOM Sequence of Ultrasound Regions (PhysicalDeltaX/Y, cm)"
FLAG_SOURCE = "--mm-per-px"


@dataclass(frozen=True)
class Calibration:
    mm_per_px_x: float
    mm_per_px_y: float
    source: str
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the DICOM region it came from
    note: str | None = None

    @property
    def mm2_per_px(self) -> float:
        return self.mm_per_px_x * self.mm_per_px_y

    def to_json(self) -> dict:
        return {"mm_per_px": [round(self.mm_per_px_x, 6), round(self.mm_per_px_y, 6)], "source": self.source,
                "region": list(self.region) if self.region else None, "note": self.note}

    @classmethod
    def from_json(cls, data: dict | None) -> "Calibration | None":
        if not data or not data.get("mm_per_px"):
            return None
        x, y = data["mm_per_px"]
        region = tuple(data["region"]) if data.get("region") else None
        return cls(float(x), float(y), str(data.get("source", "")), region, data.get("note"))


def parse_mm_per_px(text: str | None) -> Calibration | None:
    """``--mm-per-px 0.1`` (square pixels) or ``0.1,0.12`` (x, y); ConfigError naming the value otherwise."""
    if text is None:
        return None
    try:
        parts = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--mm-per-px '{text}': expected a number or X,Y in mm per screen pixel, e.g. 0.1") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(0 < v < 10 for v in parts):
        raise ConfigError(f"--mm-per-px '{text}': give one or two sizes in mm per pixel, each > 0 and < 10 "
                          "(e.g. 0.1 for a 48 mm deep image of 480 rows)")
    return Calibration(parts[0], parts[1], FLAG_SOURCE)


def from_dataset(ds) -> Calibration | None:
    """The calibration of a DICOM data set's Sequence of Ultrasound Regions, or None (see the module doc)."""
    regions = ds.get("SequenceOfUltrasoundRegions") if ds is not None else None
    if not regions:
        return None
    usable = []
    for item in regions:
        try:
            if int(item.get("RegionSpatialFormat", SPATIAL_2D)) != SPATIAL_2D:
                continue
            if int(item.get("PhysicalUnitsXDirection", 0)) != CM or int(item.get("PhysicalUnitsYDirection", 0)) != CM:
                continue
            dx, dy = abs(float(item.PhysicalDeltaX)), abs(float(item.PhysicalDeltaY))
        except (AttributeError, TypeError, ValueError):
            continue
        if not (dx > 0 and dy > 0):
            continue
        box = tuple(int(item.get(k, 0) or 0) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                                       "RegionLocationMaxX1", "RegionLocationMaxY1"))
        area = max(0, box[2] - box[0]) * max(0, box[3] - box[1])
        usable.append((area, dx * 10.0, dy * 10.0, box))
    if not usable:
        return None
    usable.sort(key=lambda u: -u[0])
    area, x, y, box = usable[0]
    note = None
    others = {(round(u[1], 6), round(u[2], 6)) for u in usable[1:]}
    if others - {(round(x, 6), round(y, 6))}:
        note = (f"{len(usable)} 2D regions with different pixel sizes; the largest ({box[2] - box[0]}x"
                f"{box[3] - box[1]} px) is used")
    return Calibration(x, y, DICOM_SOURCE, box, note)


def _mm2(px, cal: Calibration, ndigits: int = 2):
    return None if px is None else round(float(px) * cal.mm2_per_px, ndigits)


def add_physical_units(report: dict) -> dict:
    """Add ``calibration`` and the ``*_mm2`` twins of the area fields to a us report (in place; returned).
    The calibration is read from ``report["input"]["calibration"]``; without one the mm² fields are null."""
    cal = Calibration.from_json((report.get("input") or {}).get("calibration"))
    report["calibration"] = cal.to_json() if cal else None
    for key in ("baseline_vein_area", "min_vein_area"):
        report[f"{key}_mm2"] = _mm2(report.get(f"{key}_px"), cal) if cal else None
    areas = report.get("vein_area_px")
    report["vein_area_mm2"] = [_mm2(a, cal) for a in areas] if cal and areas is not None else None
    return report


def area_text(report: dict, key: str) -> str:
    """``'1423 px (35.6 mm²)'`` for ``key`` in (``baseline_vein_area``, ``min_vein_area``); 'n/a' when absent."""
    px = report.get(f"{key}_px")
    if px is None:
        return "n/a"
    mm2 = report.get(f"{key}_mm2")
    return f"{mm2:.1f} mm² ({px:.0f} px)" if mm2 is not None else f"{px:.0f} px"


def areas_line(report: dict) -> str:
    """One line for the console and the UI: baseline and minimum vein area, mm² when the pixel size is known."""
    cal = report.get("calibration")
    where = (f"; {cal['mm_per_px'][0]:.4g} x {cal['mm_per_px'][1]:.4g} mm/px from {cal['source']}" if cal
             else "; pixel size unknown (pass --mm-per-px for mm²)")
    return (f"vein area: baseline {area_text(report, 'baseline_vein_area')}, minimum "
            f"{area_text(report, 'min_vein_area')}{where}")
