"""Engine IO metadata and shape profiles: plain data and checks, no TensorRT import (testable anywhere).

A TensorRT engine is matched against its model spec by tensor name, shape and dtype: the builder records
the network's IO (:class:`IoTensor`) in the cache sidecar, the backend reads the same facts back from the
deserialized engine, and both are checked here with :func:`check_io`.

Shapes are tuples of ints; ``-1`` marks a dynamic dimension (TensorRT's convention). Spec shapes use a
string for a dynamic axis (e.g. ``"batch"``). A dynamic input needs a range, one optimisation profile
``(min, opt, max)``; it comes from the spec key ``shape_profile``::

    "shape_profile": {"image": {"min": [1, 1, 192, 192], "opt": [1, 1, 192, 192], "max": [4, 1, 192, 192]}}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edge.errors import BackendError, ModelError
from edge.spec import ModelSpec

# TensorRT DataType member name -> numpy dtype name
TRT_DTYPES = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8", "INT4": "int4",
}


def dtype_name(trt_dtype: Any) -> str:
    """numpy dtype name of a TensorRT ``DataType`` (works on the enum of either flavour, or a fake)."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    return TRT_DTYPES.get(name, name.lower())


@dataclass(frozen=True)
class IoTensor:
    """One engine input or output. ``shape`` uses -1 for a dynamic dimension."""

    name: str
    mode: str  # "input" | "output"
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IoTensor:
        return cls(str(data["name"]), str(data["mode"]), tuple(int(d) for d in data["shape"]), str(data["dtype"]))

    @property
    def static(self) -> bool:
        return all(d >= 0 for d in self.shape)


@dataclass(frozen=True)
class ShapeRange:
    """The optimisation-profile range of one input (min <= opt <= max, per dimension)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    @property
    def static(self) -> bool:
        return self.min == self.max

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def _dims_match(spec_shape: Sequence[int | str], shape: Sequence[int]) -> bool:
    """A spec dim that is a string (dynamic) matches anything; an int must equal the engine dim."""
    return len(spec_shape) == len(shape) and all(isinstance(s, str) or s == d for s, d in zip(spec_shape, shape))


def check_io(spec: ModelSpec, io: Iterable[IoTensor], where: str) -> None:
    """ModelError naming ``where`` unless the engine/network IO equals the spec's (names, shapes, dtypes)."""
    io = tuple(io)
    problems = []
    for mode, wanted in (("input", (spec.input,)), ("output", spec.outputs)):
        got = {t.name: t for t in io if t.mode == mode}
        if sorted(got) != sorted(w.name for w in wanted):
            problems.append(f"{mode}s are {sorted(got)}, the spec says {sorted(w.name for w in wanted)}")
            continue
        for w in wanted:
            t = got[w.name]
            if not _dims_match(w.shape, t.shape):
                problems.append(f"{mode} '{w.name}' has shape {list(t.shape)}, the spec says {list(w.shape)}")
            if t.dtype != w.dtype:
                problems.append(f"{mode} '{w.name}' is {t.dtype}, the spec says {w.dtype}")
    if problems:
        raise ModelError(f"{where}: engine IO does not match the model spec '{spec.name}': " + "; ".join(problems)
                         + " (rebuild the engine from this model, or fix the sidecar JSON)")


def profile_for(spec: ModelSpec, inputs: Sequence[IoTensor], where: str) -> tuple[ShapeRange, ...]:
    """One optimisation-profile range per network input: min=opt=max for static shapes, the spec's
    ``shape_profile`` for dynamic ones. ModelError when a dynamic input has no range or a bad one."""
    ranges = []
    declared = spec.extra.get("shape_profile", {})
    for t in inputs:
        if t.static:
            ranges.append(ShapeRange(t.name, t.shape, t.shape, t.shape))
            continue
        r = declared.get(t.name)
        if r is None:
            raise ModelError(f"{where}: input '{t.name}' has dynamic shape {list(t.shape)}; add "
                             f"\"shape_profile\": {{\"{t.name}\": {{\"min\": [...], \"opt\": [...], \"max\": [...]}}}} "
                             "to the model spec")
        try:
            rng = ShapeRange(t.name, tuple(r["min"]), tuple(r["opt"]), tuple(r["max"]))
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{where}: shape_profile for '{t.name}' needs min, opt and max lists") from exc
        ok = all(len(s) == len(t.shape) for s in (rng.min, rng.opt, rng.max)) and all(
            lo <= o <= hi and (d < 0 or lo == d == hi) for d, lo, o, hi in zip(t.shape, rng.min, rng.opt, rng.max))
        if not ok:
            raise ModelError(f"{where}: shape_profile for '{t.name}' {rng.to_json()} does not fit the network "
                             f"shape {list(t.shape)} (need min <= opt <= max, fixed dims equal)")
        ranges.append(rng)
    return tuple(ranges)


def check_input_shape(shape: Sequence[int], rng: ShapeRange, where: str) -> None:
    """BackendError naming the input when ``shape`` is outside the engine's optimisation profile."""
    if not rng.contains(shape):
        raise BackendError(
            f"{where}: input '{rng.name}' has shape {list(shape)}, outside the engine's profile "
            f"min {list(rng.min)} .. max {list(rng.max)}; widen the spec's shape_profile and rebuild the engine")
