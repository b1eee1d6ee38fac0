"""``dvt-edge export triton --out DIR``: a Triton Inference Server model repository of the bundled models.

Each model (the ultrasound segmenter, the CT detector) is re-exported from its ONNX file with a symbolic batch
dimension on every input and output, and checked: the batch-N model on N different inputs must give what the
batch-1 model gives on each (ONNX Runtime, max abs difference <= 1e-4), else the graph has the batch baked in
(a Reshape to 1, a constant Resize size) and the export fails naming it. Layout::

    DIR/<name>/config.pbtxt          platform onnxruntime_onnx, max_batch_size, dynamic_batching
    DIR/<name>/1/model.onnx          the batch-dynamic model
    DIR/<name>/dvt-edge-spec.json    the model spec (Triton ignores it; `--backend triton` reads the local one)

The Triton model name is the spec's name (``resunet-lite``, ``ctdet-k3``): the ``triton`` backend asks the
server for the model of that name. ``parse_pbtxt`` reads the protobuf text format of ``config.pbtxt`` (the
subset Triton configs use) so configs can be checked without Triton's protobuf modules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from edge.errors import ConfigError, ModelError

_TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32",
                 "int64": "TYPE_INT64"}


def make_batch_dynamic(src: Path, dst: Path, *, check_batch: int = 4, atol: float = 1e-4, seed: int = 0) -> dict:
    """Write ``src`` with dim 0 of every graph input and output named ``batch``; check it; return the check."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src))
    for vi in [*model.graph.input, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            raise ModelError(f"{src}: tensor '{vi.name}' has no shape; cannot make its batch dimension dynamic")
        if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
            raise ModelError(f"{src}: tensor '{vi.name}' has batch {dims[0].dim_value}, expected 1")
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "batch"
    del model.graph.value_info[:]  # intermediate shapes inferred at batch 1 would contradict the new inputs
    try:
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:
        raise ModelError(f"{src}: the graph does not accept a dynamic batch dimension ({exc})") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))

    one = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    many = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds_n = {}
    for i in one.get_inputs():
        shape = [check_batch, *i.shape[1:]]
        feeds_n[i.name] = rng.random(shape, dtype=np.float32)
    try:
        out_n = many.run(None, feeds_n)
    except Exception as exc:
        raise ModelError(f"{src}: the graph fails at batch {check_batch} (a batch of 1 is baked into it: {exc}); "
                         "re-export it from PyTorch with dynamic_axes={'<input>': {0: 'batch'}}") from exc
    worst = 0.0
    for b in range(check_batch):
        out_1 = one.run(None, {k: v[b:b + 1] for k, v in feeds_n.items()})
        for a, c in zip(out_1, out_n):
            if c.shape[0] != check_batch or a.shape[1:] != c.shape[1:]:
                raise ModelError(f"{src}: output shape {c.shape} at batch {check_batch} does not match {a.shape}")
            worst = max(worst, float(np.abs(a[0] - c[b]).max()))
    if worst > atol:
        raise ModelError(f"{src}: the batch-{check_batch} model differs from the batch-1 model by {worst:.2e} "
                         f"(> {atol:g}): items of a batch are not independent in this graph")
    return {"batch": check_batch, "max_abs_diff": worst, "atol": atol}


def config_pbtxt(name: str, spec, *, max_batch_size: int, preferred: list[int], queue_delay_us: int,
                 instances: int = 1) -> str:
    """Triton ``config.pbtxt`` text for an ONNX Runtime model whose dim 0 is the batch."""

    def tensor(t) -> str:
        if t.dtype not in _TRITON_TYPES:
            raise ModelError(f"model '{name}': tensor '{t.name}' dtype {t.dtype} has no Triton type here")
        dims = ", ".join(str(int(d)) for d in t.shape[1:])
        return f'  {{\n    name: "{t.name}"\n    data_type: {_TRITON_TYPES[t.dtype]}\n    dims: [ {dims} ]\n  }}'

    return "\n".join([
        "# written by dvt-edge export triton; research software, not for diagnostic use",
        f'name: "{name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size}",
        "input [\n" + ",\n".join(tensor(t) for t in [spec.input]) + "\n]",
        "output [\n" + ",\n".join(tensor(t) for t in spec.outputs) + "\n]",
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
        f"  max_queue_delay_microseconds: {queue_delay_us}\n"
        "}",
        f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_AUTO\n  }}\n]",
        "",
    ])


def export_repository(out: Path, models: list[Path], *, max_batch_size: int = 8, queue_delay_us: int = 2000,
                      check_batch: int = 4, log=print) -> list[dict]:
    """Write the model repository; returns one entry per model (name, folder, batch check)."""
    from edge.atomic import write_text_atomic
    from edge.spec import load_spec

    if max_batch_size < 1:
        raise ConfigError(f"--max-batch {max_batch_size}: must be >= 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is an existing file; name a folder for the model repository")
    written = []
    for src in models:
        src = Path(src)
        if not src.is_file():
            raise ModelError(f"{src}: ONNX model not found")
        spec = load_spec(src)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)
        folder = out / name
        check = make_batch_dynamic(src, folder / "1" / "model.onnx", check_batch=min(check_batch, max_batch_size))
        preferred = sorted({b for b in (max_batch_size // 2, max_batch_size) if b >= 1})
        write_text_atomic(folder / "config.pbtxt",
                          config_pbtxt(name, spec, max_batch_size=max_batch_size, preferred=preferred,
                                       queue_delay_us=queue_delay_us), "the Triton config")
        spec_json = json.loads(src.with_suffix(".json").read_text())
        write_text_atomic(folder / "dvt-edge-spec.json", json.dumps(spec_json, indent=2) + "\n", "the model spec")
        log(f"{folder}: {spec.name} (from {src.name}), max_batch_size {max_batch_size}, batch-{check['batch']} "
            f"check max abs diff {check['max_abs_diff']:.1e}")
        written.append({"name": name, "folder": str(folder), "check": check})
    return written


def default_models() -> list[Path]:
    from edge.assets import us_model
    from edge.ct.detector import default_model_path as ct_default

    return [Path(us_model()), Path(ct_default())]


# ---- protobuf text format (the subset of Triton's model config) -------------------------------------------

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([A-Za-z_][A-Za-z0-9_.]*)|(-?[0-9][0-9.eE+-]*))')


def _tokens(text: str):
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"config.pbtxt: cannot read at character {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        comment, string, punct, ident, number = m.groups()
        if comment:
            continue
        if string is not None:
            yield ("str", json.loads(string))
        elif punct:
            yield ("p", punct)
        elif ident:
            yield ("id", ident)
        elif number:
            yield ("num", float(number) if any(c in number for c in ".eE") else int(number))


def parse_pbtxt(text: str) -> dict:
    """Protobuf text format -> dict. Repeated fields (``x [ ... ]`` or a field given twice) become lists;
    enum values are strings. Raises ValueError naming the position of a syntax error."""
    toks = list(_tokens(text))
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def take(kind=None, value=None):
        nonlocal pos
        tok = peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise ValueError(f"config.pbtxt: expected {value or kind}, got {tok[1]!r} (token {pos})")
        pos += 1
        return tok

    def scalar():
        kind, value = take()
        if kind in ("str", "num"):
            return value
        if kind == "id":
            return {"true": True, "false": False}.get(value, value)
        raise ValueError(f"config.pbtxt: unexpected {value!r} (token {pos - 1})")

    def value():
        if peek() == ("p", "{"):
            return message("}")
        return scalar()

    def message(end):
        take("p", "{") if end == "}" else None
        out: dict = {}
        while peek() != ("p", end) and peek()[0] is not None:
            key = take("id")[1]
            if peek() == ("p", ":"):
                take("p", ":")
            if peek() == ("p", "["):
                take("p", "[")
                items = []
                while peek() != ("p", "]"):
                    items.append(value())
                    if peek() == ("p", ","):
                        take("p", ",")
                take("p", "]")
                out.setdefault(key, [])
                if not isinstance(out[key], list):
                    out[key] = [out[key]]
                out[key].extend(items)
            else:
                v = value()
                if key in out:
                    out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [v]
                else:
                    out[key] = v
            if peek() in (("p", ","), ("p", ";")):
                take()
        if end == "}":
            take("p", "}")
        return out

    result = message(None)
    if pos != len(toks):
        raise ValueError(f"config.pbtxt: unexpected {toks[pos][1]!r} (token {pos})")
    return result


def register_triton(esub) -> None:
    p = esub.add_parser("triton", help="write a Triton Inference Server model repository (US segmenter, CT detector)",
                        description="Write a Triton model repository: each model as ONNX with a dynamic batch "
                                    "dimension (checked against the batch-1 model) and a config.pbtxt with "
                                    "dynamic batching. Serve it with tritonserver --model-repository DIR and run "
                                    "dvt-edge with --backend triton --triton-url HOST:PORT.")
    p.add_argument("--out", type=Path, required=True, help="model repository folder")
    p.add_argument("--us-model", type=Path, default=None, help="ultrasound segmenter .onnx (default: the bundled one)")
    p.add_argument("--ct-model", type=Path, default=None, help="CT detector .onnx (default: the bundled ctdet-k3)")
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default 8)")
    p.add_argument("--queue-delay-us", type=int, default=2000,
                   help="dynamic batching: longest wait for a fuller batch, microseconds (default 2000)")

    def run(a) -> int:
        us, ct = default_models()
        export_repository(a.out, [a.us_model or us, a.ct_model or ct], max_batch_size=a.max_batch,
                          queue_delay_us=a.queue_delay_us)
        return 0

    p.set_defaults(func=run)
