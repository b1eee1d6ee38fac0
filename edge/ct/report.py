"""CT scan outputs: the JSON report, key images (PNG) and the live one-line finding message.

No patient identifiers: the series is named by its hashed UID, files are numbered (``finding-01.png``),
the input path is not written into the JSON (folder names are often patient names). Every output carries
the research-use notice.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from edge.ct.loop import ScanResult
from edge.ct.types import Finding
from edge.notice import NOTICE

SCHEMA = "dvt-edge/ct-scan@1"
_UID = re.compile(r"(?<!\d)\d+(?:\.\d+){4,}(?!\d)")  # a DICOM UID (e.g. a PACS export named by SOP UID)


def redact(text: str) -> str:
    """Replace DICOM-UID-looking tokens (often file names of PACS exports) by ``uid:<short hash>``."""
    from edge.ct.dicom_series import short_uid

    return _UID.sub(lambda m: "uid:" + short_uid(m.group(0)), text)


def finding_line(f: Finding, direction: int, number: int) -> str:
    """The live message for a finding in stream indices (position order is only known at the end when
    the stream runs head-to-feet, so those show the received range and the positions in mm)."""
    where = f"slices {f.slice_start}-{f.slice_end}" if direction >= 0 else f"received slices {f.slice_start}-{f.slice_end}"
    x0, y0, x1, y1 = f.box
    return (f"candidate {number}: {where} ({f.slice_end - f.slice_start + 1} slices), peak {f.peak_slice}, "
            f"score {f.score:.2f}, box [{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}] px "
            f"({f.box_mm[2] - f.box_mm[0]:.1f} x {f.box_mm[3] - f.box_mm[1]:.1f} mm) - not for diagnostic use")


def build_report(result: ScanResult, *, input_kind: str, backend: dict | None, model: dict | None,
                 key_images: list[str] | None = None) -> dict:
    """The JSON-able report of one series (schema ``dvt-edge/ct-scan@1``).

    ``input.skipped``: every file or slice left out, with why (non-DICOM, not CT, truncated, late, duplicate,
    another series); ``input.gaps``: missing-slice gaps found by position. ``complete`` is False when the
    series itself lost slices (a gap, or a CT slice skipped as truncated, unreadable or late): the findings
    then cover only part of it. Files that were never part of the series (a README, a dose report) do not
    make it incomplete."""
    warnings = [redact(w) for w in result.warnings]
    skipped = [w for w in warnings if "skipped" in w or "dropped" in w]
    gaps = [w for w in warnings if w.startswith("gap ")]
    lost = [w for w in skipped if any(k in w for k in ("truncated", "cannot read", "cannot decode", "arrived late",
                                                      "pixel grid"))]
    return {
        "schema": SCHEMA,
        "notice": NOTICE,
        "complete": not gaps and not lost,
        "input": {"kind": input_kind, "series": result.series_hash or None,
                  "stream_direction": "ascending" if result.direction >= 0 else "descending",
                  "slices_read": result.slices, "skipped": skipped, "gaps": gaps},
        "slices": result.slices,
        "k": result.k,
        "findings": [f.to_json() for f in result.findings],
        "suppressed": [s.to_json() for s in result.suppressed],
        "warnings": warnings,
        "backend": backend,
        "model": model,
        "timing": result.timing,
        "key_images": key_images or [],
    }


def render_key_image(img: np.ndarray, f: Finding, number: int) -> np.ndarray:
    """BGR uint8: the windowed peak slice, the box in red, the slice range and the notice in text."""
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape
    scale = max(1, int(round(512 / max(h, w))))  # small phantoms are upscaled so the text stays legible
    if scale > 1:
        bgr = cv2.resize(bgr, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    x0, y0, x1, y1 = (int(round(v * scale)) for v in f.box)
    cv2.rectangle(bgr, (x0 - 1, y0 - 1), (x1, y1), (0, 0, 255), 2)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    lines = [f"candidate {number}: slices {f.slice_start}-{f.slice_end} (peak {f.peak_slice}) score {f.score:.2f}",
             "W400/L140 - NOT FOR DIAGNOSTIC USE"]
    for j, text in enumerate(lines):
        y = 18 + 18 * j
        cv2.putText(bgr, text, (6, y), font, size, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(bgr, text, (6, y), font, size, (0, 255, 255), 1, cv2.LINE_AA)
    return bgr


def write_key_images(result: ScanResult, out_dir: str | Path) -> list[str]:
    """One ``finding-NN.png`` per finding under ``out_dir``; returns the file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for j, (f, img) in enumerate(zip(result.findings, result.key_images), start=1):
        name = f"finding-{j:02d}.png"
        from edge.atomic import write_bytes_atomic
        from edge.errors import OutputError

        ok, buf = cv2.imencode(".png", render_key_image(img, f, j))
        if not ok:
            raise OutputError(f"{out / name}: cannot encode the key image")
        write_bytes_atomic(out / name, buf.tobytes(), "the key image")
        names.append(name)
    return names
