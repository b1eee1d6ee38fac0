"""Model specs: the sidecar JSON that travels with every model artifact.

Nothing about a model is hard-coded at its call sites: input name/shape/dtype, normalisation, labels,
precision and provenance are read from ``<model>.json`` beside ``<model>.onnx`` (or ``.engine``).

Schema ``dvt-edge/model-spec@1`` (keys not listed are kept in ``extra``)::

    {"schema": "dvt-edge/model-spec@1", "name": "resunet-lite", "task": "us-segmentation",
     "input":  {"name": "image", "shape": [1, 1, 256, 256], "dtype": "float32", "layout": "NCHW"},
     "outputs": [{"name": "logits", "shape": [1, 3, 256, 256], "dtype": "float32"}],
     "preprocess": {"scale": 0.00392156862745098, "mean": [0.0], "std": [1.0], "colour": "grey"},
     "labels": ["background", "artery", "vein"],
     "precision": "fp32", "opset": 17,
     "training": {...}, "metrics": {...}, "exported_with": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ModelError

SCHEMA = "dvt-edge/model-spec@1"
_DTYPES = {"float32", "float16", "uint8", "int64", "int32"}


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor. Dimensions are ints, or strings for dynamic axes (e.g. "batch")."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy dtype name: "float32", "float16", ...

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "TensorSpec":
        try:
            name, shape, dtype = data["name"], tuple(data["shape"]), data["dtype"]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{where}: a tensor entry needs name, shape and dtype (got {data!r})") from exc
        if dtype not in _DTYPES:
            raise ModelError(f"{where}: tensor '{name}' has unsupported dtype '{dtype}' (one of {sorted(_DTYPES)})")
        return cls(str(name), shape, str(dtype))


@dataclass(frozen=True)
class ModelSpec:
    """What a runtime needs to know about a model, loaded from its sidecar JSON."""

    name: str
    task: str
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    preprocess: dict[str, Any]
    labels: tuple[str, ...]
    precision: str = "fp32"
    opset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the model input in pixels (NCHW layout)."""
        h, w = self.input.shape[-2], self.input.shape[-1]
        if not isinstance(h, int) or not isinstance(w, int):
            raise ModelError(f"model '{self.name}': input height/width must be fixed, got {self.input.shape}")
        return h, w

    def to_json(self) -> dict[str, Any]:
        data = {
            "schema": SCHEMA,
            "name": self.name,
            "task": self.task,
            "input": self.input.to_json() | {"layout": "NCHW"},
            "outputs": [o.to_json() for o in self.outputs],
            "preprocess": self.preprocess,
            "labels": list(self.labels),
            "precision": self.precision,
            "opset": self.opset,
        }
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "model spec") -> "ModelSpec":
        if data.get("schema") != SCHEMA:
            raise ModelError(f"{where}: expected schema '{SCHEMA}', got {data.get('schema')!r}")
        try:
            known = {"schema", "name", "task", "input", "outputs", "preprocess", "labels", "precision", "opset"}
            return cls(
                name=str(data["name"]),
                task=str(data["task"]),
                input=TensorSpec.from_json(data["input"], where),
                outputs=tuple(TensorSpec.from_json(o, where) for o in data["outputs"]),
                preprocess=dict(data.get("preprocess", {})),
                labels=tuple(data.get("labels", ())),
                precision=str(data.get("precision", "fp32")),
                opset=data.get("opset"),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except KeyError as exc:
            raise ModelError(f"{where}: missing key {exc} in the model spec") from exc


def spec_path_for(model_path: str | Path) -> Path:
    """The sidecar JSON path of a model artifact: ``x.onnx`` -> ``x.json``, ``x.fp16.onnx`` -> ``x.fp16.json``."""
    return Path(model_path).with_suffix(".json")


def load_spec(model_path: str | Path) -> ModelSpec:
    """Load and validate the sidecar spec of ``model_path``; ModelError names the file on any problem."""
    path = spec_path_for(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model spec not found (every model needs its sidecar JSON beside it)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the model spec: {exc}") from exc
    return ModelSpec.from_json(data, where=str(path))


def save_spec(spec: ModelSpec, model_path: str | Path) -> Path:
    """Write the sidecar spec beside ``model_path``; returns its path."""
    from edge.atomic import write_text_atomic

    path = spec_path_for(model_path)
    return write_text_atomic(path, json.dumps(spec.to_json(), indent=2, sort_keys=False) + "\n", "the model spec")
