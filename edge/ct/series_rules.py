"""Which received series ``ct listen`` processes: small, documented rules a site can change in a JSON file.

Modelled on MONAI Deploy's series selector (rules matching DICOM attributes). The packaged default
(``edge/ct/assets/series-rules.json``, explained in its ``_comment``) keeps axial CT images and leaves out
localizers/scouts (ImageType LOCALIZER, or a one/two-slice series), dose reports (an SR, or a CT image
described as a dose report), secondary captures and screen saves, and coronal/sagittal reformats.

A series is judged on its first object (the header: no pixels are needed), and once more on its slice
count (``min_slices``) when its association ends. Every decision is a :class:`Decision` whose ``reason``
names the rule, so the listener can say why a series was or was not processed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError

SCHEMA = "dvt-edge/ct-series-rules@1"


def default_rules_path() -> Path:
    from importlib.resources import files

    return Path(str(files("edge.ct").joinpath("assets", "series-rules.json")))


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: dict

    def matches(self, attrs: "Attributes") -> bool:
        return all(_holds(attrs.get(k), v) for k, v in self.conditions.items())


@dataclass(frozen=True)
class Decision:
    process: bool
    reason: str


@dataclass
class SeriesRules:
    select: list[Rule]
    exclude: list[Rule] = field(default_factory=list)
    min_slices: int = 3
    axial_tolerance_deg: float = 20.0
    source: str = "built-in"

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SeriesRules":
        """The rules in ``path`` (None: the packaged default). ConfigError naming the file on any mistake."""
        p = Path(path) if path is not None else default_rules_path()
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: rules file not found (pass --rules PATH to a JSON file like "
                              f"{default_rules_path()})") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{p}: not a readable JSON rules file ({exc})") from exc
        return cls.from_dict(data, str(p))

    @classmethod
    def from_dict(cls, data: dict, source: str = "built-in") -> "SeriesRules":
        def fail(msg: str):
            raise ConfigError(f"{source}: {msg} (see the _comment of {default_rules_path()})")

        if not isinstance(data, dict):
            fail("the rules file must hold a JSON object")
        if data.get("schema", SCHEMA) != SCHEMA:
            fail(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
        unknown = set(data) - {"schema", "_comment", "select", "exclude", "min_slices", "axial_tolerance_deg"}
        if unknown:
            fail(f"unknown key(s) {sorted(unknown)}")

        def rules(key: str) -> list[Rule]:
            out = []
            for j, r in enumerate(data.get(key, [])):
                if not isinstance(r, dict) or not isinstance(r.get("conditions"), dict) or not r["conditions"]:
                    fail(f"{key}[{j}] needs a non-empty 'conditions' object")
                for k, v in r["conditions"].items():
                    if isinstance(v, str):
                        try:
                            re.compile(v)
                        except re.error as exc:
                            fail(f"{key}[{j}] {k}: bad regular expression {v!r} ({exc})")
                    elif not isinstance(v, (list, bool, int, float)):
                        fail(f"{key}[{j}] {k}: a condition is a string, a list, a number or true/false")
                out.append(Rule(str(r.get("name", f"{key}[{j}]")), dict(r["conditions"])))
            return out

        select = rules("select")
        if not select:
            fail("'select' needs at least one rule (nothing would ever be processed)")
        min_slices = data.get("min_slices", 3)
        if not isinstance(min_slices, int) or min_slices < 1:
            fail("min_slices must be an integer >= 1")
        tol = data.get("axial_tolerance_deg", 20.0)
        if not isinstance(tol, (int, float)) or not 0 < tol < 90:
            fail("axial_tolerance_deg must be a number between 0 and 90")
        return cls(select, rules("exclude"), min_slices, float(tol), source)

    def judge(self, ds) -> Decision:
        """Decide on a series from its first dataset (headers only)."""
        attrs = Attributes(ds, self.axial_tolerance_deg)
        for r in self.exclude:
            if r.matches(attrs):
                return Decision(False, f"excluded by rule '{r.name}'")
        for r in self.select:
            if r.matches(attrs):
                return Decision(True, f"selected by rule '{r.name}'")
        what = attrs.get("_SOPClassName") or "unknown object"
        return Decision(False, f"no select rule matches ({what}, Modality {attrs.get('Modality') or 'missing'}, "
                               f"{attrs.get('_Orientation') or 'no'} orientation)")

    def judge_count(self, n: int) -> Decision:
        if n < self.min_slices:
            return Decision(False, f"{n} slice(s), fewer than min_slices {self.min_slices} (a localizer or a "
                                   "fragment)")
        return Decision(True, f"{n} slices")


class Attributes:
    """Attribute look-up on a pydicom Dataset plus the computed keywords (``_Orientation``, ``_SOPClassName``)."""

    def __init__(self, ds, axial_tolerance_deg: float = 20.0):
        self.ds = ds
        self.tol = axial_tolerance_deg

    def get(self, key: str):
        if key == "_Orientation":
            return orientation_name(self.ds.get("ImageOrientationPatient"), self.tol)
        if key == "_SOPClassName":
            uid = self.ds.get("SOPClassUID")
            return getattr(uid, "name", str(uid)) if uid else None
        try:
            elem = self.ds.get(key)
        except Exception:  # a keyword pydicom does not know, or an unparseable value
            return None
        return elem


def orientation_name(iop, tol_deg: float = 20.0) -> str | None:
    """AXIAL / CORONAL / SAGITTAL (slice normal within ``tol_deg`` of z / y / x) or OBLIQUE; None if absent."""
    try:
        r = [float(v) for v in iop]
        if len(r) != 6:
            return None
    except (TypeError, ValueError):
        return None
    nx = r[1] * r[5] - r[2] * r[4]
    ny = r[2] * r[3] - r[0] * r[5]
    nz = r[0] * r[4] - r[1] * r[3]
    norm = math.sqrt(nx * nx + ny * ny + nz * nz) or 1.0
    cos_tol = math.cos(math.radians(tol_deg))
    for name, c in (("AXIAL", nz), ("CORONAL", ny), ("SAGITTAL", nx)):
        if abs(c) / norm >= cos_tol:
            return name
    return "OBLIQUE"


def _values(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _holds(value, cond) -> bool:
    if isinstance(cond, bool):
        return (value is not None and value != "") == cond
    if value is None:
        return False
    if isinstance(cond, str):
        vals = _values(value)
        text = "\\".join(vals)
        return re.fullmatch(cond, text, re.IGNORECASE | re.DOTALL) is not None or any(
            re.fullmatch(cond, v, re.IGNORECASE | re.DOTALL) for v in vals)
    if isinstance(cond, list):
        have = {v.strip().upper() for v in _values(value)}
        return all(str(c).strip().upper() in have for c in cond)
    try:
        return float(value) == float(cond)
    except (TypeError, ValueError):
        return False
