"""A stand-in Triton server for tests: the KServe v2 HTTP/REST protocol over a model repository, on ONNX Runtime.

No Triton server can run on the development machine, so the ``triton`` backend is tested against this stub. It
serves a repository written by ``dvt-edge export triton`` (``<name>/config.pbtxt`` + ``<name>/1/model.onnx``),
on 127.0.0.1 only, and implements what the client uses:

* ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2/models/<m>/ready``;
* ``GET /v2/models/<m>`` (metadata: inputs/outputs with datatype and shape, -1 for the batch);
* ``POST /v2/models/<m>/infer`` with JSON tensors or Triton's binary tensor extension
  (``Inference-Header-Content-Length``, ``parameters.binary_data_size`` / ``binary_data``).

It checks requests as Triton does (unknown model 404; a missing or unknown input, a wrong datatype, a shape
that does not fit the config, a batch above max_batch_size: 400 with ``{"error": ...}``). Requests are answered
one at a time per model (no dynamic batching). Not a Triton replacement: test use only.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

_NP = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64}
_CFG = {"TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_UINT8": "UINT8", "TYPE_INT32": "INT32",
        "TYPE_INT64": "INT64"}


class _Model:
    def __init__(self, folder: Path):
        import onnxruntime as ort

        from export.triton import parse_pbtxt

        self.config = parse_pbtxt((folder / "config.pbtxt").read_text())
        self.name = self.config["name"]
        self.max_batch = int(self.config.get("max_batch_size", 0))
        self.session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        self.lock = threading.Lock()

        def table(entries):
            batch = [-1] if self.max_batch > 0 else []
            return [{"name": e["name"], "datatype": _CFG[e["data_type"]], "shape": batch + [int(d) for d in e["dims"]]}
                    for e in entries]

        self.inputs, self.outputs = table(self.config["input"]), table(self.config["output"])

    def metadata(self) -> dict:
        return {"name": self.name, "versions": ["1"], "platform": self.config.get("platform", ""),
                "inputs": self.inputs, "outputs": self.outputs}


class TritonStub:
    """``with TritonStub(repo) as stub: stub.url`` -> "127.0.0.1:PORT". ``requests`` counts infer calls per model."""

    def __init__(self, repository: Path, port: int = 0):
        self.models = {m.name: m for m in (_Model(f) for f in sorted(Path(repository).iterdir())
                                           if (f / "config.pbtxt").is_file())}
        self.requests: dict[str, int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.url = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="triton-stub")

    def __enter__(self) -> "TritonStub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def _json(self, code: int, obj) -> None:
                self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def _model(self, parts):
                m = stub.models.get(parts[1]) if len(parts) > 1 else None
                if m is None:
                    self._json(404, {"error": f"Request for unknown model: '{parts[1] if len(parts) > 1 else ''}' "
                                              "is not found"})
                return m

            def do_GET(self) -> None:
                parts = [p for p in self.path.split("?")[0].split("/") if p][1:]  # drop "v2"
                if parts in (["health", "live"], ["health", "ready"]):
                    return self._send(200)
                if parts[:1] == ["models"]:
                    m = self._model(parts)
                    if m is None:
                        return
                    rest = parts[4:] if parts[2:4] == ["versions", "1"] else parts[2:]
                    if rest == ["ready"]:
                        return self._send(200)
                    if not rest:
                        return self._json(200, m.metadata())
                    if rest == ["config"]:
                        return self._json(200, m.config)
                self._json(404, {"error": f"not found: {self.path}"})

            def do_POST(self) -> None:
                parts = [p for p in self.path.split("?")[0].split("/") if p][1:]
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if parts[:1] != ["models"] or parts[-1] != "infer":
                    return self._json(404, {"error": f"not found: {self.path}"})
                m = self._model(parts)
                if m is None:
                    return
                try:
                    code, answer, headers = stub._infer(m, body, self.headers.get("Inference-Header-Content-Length"))
                except ValueError as exc:
                    return self._json(400, {"error": str(exc)})
                self._send(code, answer, headers)

        return Handler

    def _infer(self, m: _Model, body: bytes, header_len: str | None):
        hlen = int(header_len) if header_len else len(body)
        try:
            req = json.loads(body[:hlen])
        except json.JSONDecodeError as exc:
            raise ValueError(f"failed to parse the request JSON: {exc}") from None
        blob, offset = body[hlen:], 0
        feeds = {}
        wanted = {i["name"]: i for i in m.inputs}
        for t in req.get("inputs", []):
            name = t.get("name")
            if name not in wanted:
                raise ValueError(f"unexpected inference input '{name}' for model '{m.name}'")
            dt = t.get("datatype")
            if dt != wanted[name]["datatype"]:
                raise ValueError(f"inference input '{name}' data-type is '{dt}', but model '{m.name}' expects "
                                 f"'{wanted[name]['datatype']}'")
            shape = [int(d) for d in t.get("shape", [])]
            size = (t.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                arr = np.frombuffer(blob[offset:offset + int(size)], dtype=_NP[dt])
                offset += int(size)
            else:
                arr = np.asarray(t.get("data"), dtype=_NP[dt]).ravel()
            if arr.size != int(np.prod(shape)):
                raise ValueError(f"unexpected total byte size for input '{name}': {arr.size} elements for "
                                 f"shape {shape}")
            model_shape = wanted[name]["shape"]
            if len(shape) != len(model_shape) or any(d != -1 and d != s for d, s in zip(model_shape, shape)):
                raise ValueError(f"unexpected shape for input '{name}' for model '{m.name}'. Expected "
                                 f"{model_shape}, got {shape}")
            if m.max_batch and shape[0] > m.max_batch:
                raise ValueError(f"inference request batch-size must be <= {m.max_batch} for '{m.name}'")
            feeds[name] = arr.reshape(shape)
        missing = set(wanted) - set(feeds)
        if missing:
            raise ValueError(f"expected {len(wanted)} inputs but got {len(feeds)} inputs for model '{m.name}'. "
                             f"Got input(s) {sorted(feeds)}, but missing required input(s) {sorted(missing)}")
        requested = req.get("outputs") or [{"name": o["name"]} for o in m.outputs]
        names = [o["name"] for o in requested]
        unknown = [n for n in names if n not in {o["name"] for o in m.outputs}]
        if unknown:
            raise ValueError(f"unexpected inference output '{unknown[0]}' for model '{m.name}'")
        with m.lock:
            values = m.session.run(names, feeds)
        self.requests[m.name] = self.requests.get(m.name, 0) + 1
        dts = {o["name"]: o["datatype"] for o in m.outputs}
        outs, blobs = [], []
        for o, v in zip(requested, values):
            entry = {"name": o["name"], "datatype": dts[o["name"]], "shape": list(v.shape)}
            if (o.get("parameters") or {}).get("binary_data"):
                data = np.ascontiguousarray(v).tobytes()
                entry["parameters"] = {"binary_data_size": len(data)}
                blobs.append(data)
            else:
                entry["data"] = v.ravel().tolist()
            outs.append(entry)
        header = json.dumps({"model_name": m.name, "model_version": "1", "id": req.get("id", ""),
                             "outputs": outs}).encode()
        headers = {"Content-Type": "application/octet-stream" if blobs else "application/json"}
        if blobs:
            headers["Inference-Header-Content-Length"] = str(len(header))
        return 200, header + b"".join(blobs), headers
