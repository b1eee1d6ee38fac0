"""Triton Inference Server backend: the frame loop and the CT detector infer on a remote Triton server.

``--backend triton --triton-url HOST:PORT`` (the ``[triton]`` extra: ``tritonclient[http]``). The server serves
a model repository written by ``dvt-edge export triton`` (batch-dynamic ONNX, dynamic batching), so requests
of many bedside clients are batched together on one GPU. The model asked for is the local model's spec name
(``resunet-lite``, ``ctdet-k3``): the local ``.onnx``/``.json`` pair still says which model and how to pre-
and post-process; the server must hold the same model under that name.

Protocol: KServe v2 over HTTP/REST (Triton's port 8000 by default) with Triton's binary tensor extension.
``grpc://HOST:PORT`` (port 8001) uses Triton's gRPC client instead (``tritonclient[grpc]``; not tested here).

At open, the backend checks the server is live, the model is ready, and the model's metadata (input and
output names, datatypes, shapes with -1 for the batch) fits the local spec; any mismatch is a BackendError
naming the server and the model. Each infer sends batch 1 (the frame loop's shape) and checks the outputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge.errors import BackendError
from edge.spec import ModelSpec, TensorSpec

DEFAULT_URL = "127.0.0.1:8000"
URL_ENV = "DVT_EDGE_TRITON_URL"  # set by --triton-url (accepted anywhere on the command line)

_TO_TRITON = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8", "int32": "INT32", "int64": "INT64"}


def triton_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


class TritonBackend:
    """A model on a Triton server behind the Backend contract (inputs/outputs are the local spec's, batch 1)."""

    def __init__(self, url: str, spec: ModelSpec, *, model_name: str | None = None, timeout_s: float = 10.0):
        self.url = url
        self.model = model_name or spec.name
        self.where = f"Triton server {url}, model '{self.model}'"
        grpc = url.startswith("grpc://")
        address = url.split("://", 1)[1] if "://" in url else url
        try:
            if grpc:
                import tritonclient.grpc as tc
            else:
                import tritonclient.http as tc
        except ImportError as exc:
            raise BackendError(f"backend 'triton' needs the Triton client: pip install 'dvt-edge[triton]' "
                               f"({'tritonclient[grpc]' if grpc else 'tritonclient[http]'}; {exc})") from exc
        self._tc, self._grpc = tc, grpc
        try:
            if grpc:
                self._client = tc.InferenceServerClient(url=address)
            else:
                self._client = tc.InferenceServerClient(url=address, connection_timeout=timeout_s,
                                                        network_timeout=timeout_s)
            live = self._client.is_server_live()
        except Exception as exc:
            raise BackendError(f"Triton server {url}: not reachable ({_msg(exc)}); start it with "
                               "'tritonserver --model-repository DIR' (DIR from 'dvt-edge export triton') or fix "
                               "--triton-url") from exc
        if not live:
            raise BackendError(f"Triton server {url}: answers but is not live")
        try:
            ready = self._client.is_model_ready(self.model)
        except Exception as exc:
            raise BackendError(f"{self.where}: readiness check failed ({_msg(exc)})") from exc
        if not ready:
            raise BackendError(f"{self.where}: not loaded or not ready on the server; export it with "
                               "'dvt-edge export triton --out DIR' and serve DIR")
        try:
            meta = self._client.get_model_metadata(self.model)
        except Exception as exc:
            raise BackendError(f"{self.where}: cannot read the model metadata ({_msg(exc)})") from exc
        if not isinstance(meta, dict):  # the gRPC client returns a protobuf message
            from google.protobuf.json_format import MessageToDict

            meta = MessageToDict(meta, preserving_proto_field_name=True)
        self._check_metadata(meta, spec)
        self.name = f"triton:{url}/{self.model}"
        self.inputs: tuple[TensorSpec, ...] = (spec.input,)
        self.outputs: tuple[TensorSpec, ...] = tuple(spec.outputs)
        self.spec = spec

    def _check_metadata(self, meta: dict, spec: ModelSpec) -> None:
        def table(entries) -> dict:
            return {e["name"]: (e.get("datatype"), [int(d) for d in e.get("shape", [])]) for e in entries or []}

        served_in, served_out = table(meta.get("inputs")), table(meta.get("outputs"))
        for kind, wanted, served in (("input", [spec.input], served_in), ("output", spec.outputs, served_out)):
            for t in wanted:
                if t.name not in served:
                    raise BackendError(f"{self.where}: the served model has no {kind} '{t.name}' (it has "
                                       f"{sorted(served)}); the server holds another model under this name")
                dtype, shape = served[t.name]
                if dtype != _TO_TRITON.get(t.dtype):
                    raise BackendError(f"{self.where}: {kind} '{t.name}' is {dtype} there, {_TO_TRITON.get(t.dtype)} "
                                       "in the local spec")
                local = [int(d) if isinstance(d, int) else -1 for d in t.shape]
                ok = len(shape) == len(local) and all(s in (-1, d) or d == -1 for s, d in zip(shape, local))
                if not ok:
                    raise BackendError(f"{self.where}: {kind} '{t.name}' has shape {shape} there, {local} in the "
                                       "local spec (-1 = any batch)")

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tc = self._tc
        inputs = []
        for t in self.inputs:
            if t.name not in feeds:
                raise BackendError(f"{self.where}: input '{t.name}' missing from feeds (got {sorted(feeds)})")
            arr = np.ascontiguousarray(feeds[t.name])
            if arr.dtype != np.dtype(t.dtype):
                raise BackendError(f"{self.where}: input '{t.name}' must be {t.dtype}, got {arr.dtype}")
            i = tc.InferInput(t.name, list(arr.shape), _TO_TRITON[t.dtype])
            if self._grpc:
                i.set_data_from_numpy(arr)
            else:
                i.set_data_from_numpy(arr, binary_data=True)
            inputs.append(i)
        if self._grpc:
            outputs = [tc.InferRequestedOutput(o.name) for o in self.outputs]
        else:
            outputs = [tc.InferRequestedOutput(o.name, binary_data=True) for o in self.outputs]
        try:
            res = self._client.infer(self.model, inputs, outputs=outputs)
        except Exception as exc:
            raise BackendError(f"{self.where}: inference failed ({_msg(exc)})") from exc
        got = {}
        batch = next(iter(feeds.values())).shape[0] if feeds else 1
        for o in self.outputs:
            arr = res.as_numpy(o.name)
            if arr is None:
                raise BackendError(f"{self.where}: the answer has no output '{o.name}'")
            want = tuple(batch if not isinstance(d, int) or i == 0 else d for i, d in enumerate(o.shape))
            if arr.shape != want or arr.dtype != np.dtype(o.dtype):
                raise BackendError(f"{self.where}: output '{o.name}' came back {arr.dtype}{list(arr.shape)}, "
                                   f"expected {o.dtype}{list(want)}")
            got[o.name] = arr
        return got

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def _msg(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def open_triton_backend(model: str | Path, url: str | None = None) -> TritonBackend:
    """The Triton backend for the local model ``model`` (its spec names the served model)."""
    from edge.spec import load_spec

    return TritonBackend(url or triton_url(), load_spec(Path(model)))
