"""OpenIGTLink source: live ultrasound frames from an OpenIGTLink server (``igtl://HOST:PORT[/DEVICE]``).

Research ultrasound set-ups stream B-mode images over OpenIGTLink (e.g. PLUS Toolkit's server, port 18944),
as IMAGE messages. This source connects as a client with ``pyigtl`` (MIT; the ``[igtl]`` extra) and yields
each new IMAGE message as a frame:

* ``DEVICE``: the image's device name (e.g. ``Image_Reference``); without it, IMAGE messages of any device.
* live=True: frames go through the newest-frame slot; pyigtl itself keeps only the latest message per device,
  so a slow model never builds a queue.
* t_media: the message timestamp (sender's clock), relative to the first frame.
* The IMAGE message's ijk-to-world matrix gives the pixel spacing in mm (column norms), so reports show vein
  areas in mm² (``calibration``, as for a DICOM cine; ``--mm-per-px`` still wins).
* Pixels: (1, H, W) or (1, H, W, C) scalars; 8-bit as is, wider types scaled to 0-255 by their range; RGB(A)
  converted to OpenCV's BGR.

Errors name the URL: nothing listening (the connection never succeeded within ``open_timeout_s``), no IMAGE
message within ``open_timeout_s``, no frame for ``read_timeout_s`` during the run (the sender stopped).
"""

from __future__ import annotations

import time
from typing import Iterator
from urllib.parse import urlparse

import numpy as np

from edge.errors import InputError, SourceError
from edge.sources.base import Frame, SourceBase

DEFAULT_PORT = 18944


def parse_igtl_url(url: str) -> tuple[str, int, str | None]:
    """(host, port, device or None) of ``igtl://host[:port][/device]``; InputError naming the URL otherwise."""
    u = urlparse(url)
    if u.scheme.lower() != "igtl" or not u.hostname:
        raise InputError(f"'{url}': not an OpenIGTLink URL; expected igtl://HOST:PORT[/DEVICE], e.g. "
                         "igtl://127.0.0.1:18944/Image_Reference")
    try:
        port = u.port or DEFAULT_PORT
    except ValueError:
        raise InputError(f"'{url}': the port is not a number; expected igtl://HOST:PORT[/DEVICE]") from None
    device = u.path.strip("/") or None
    return u.hostname, port, device


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    a = img.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return ((a - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


class IgtlSource(SourceBase):
    """See the module docstring."""

    live = True

    def __init__(self, url: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0) -> None:
        self.url = url
        self.host, self.port, self.device = parse_igtl_url(url)
        self.name = f"igtl://{self.host}:{self.port}" + (f"/{self.device}" if self.device else "")
        self.live = True
        self.frame_count = None
        self.fps = None
        self.calibration = None
        self.read_timeout_s = float(read_timeout_s)
        try:
            import pyigtl
        except ImportError as exc:
            raise InputError(f"{self.name}: OpenIGTLink needs pyigtl: pip install 'dvt-edge[igtl]'") from exc
        self._pyigtl = pyigtl
        self._client = pyigtl.OpenIGTLinkClient(host=self.host, port=self.port, start_now=True)
        self._closed = False
        self._t0: float | None = None
        deadline = time.monotonic() + float(open_timeout_s)
        first = None
        while time.monotonic() < deadline:
            first = self._take()
            if first is not None:
                break
            time.sleep(0.005)
        if first is None:
            connected = self._client.is_connected()
            self.close()
            if not connected:
                raise InputError(f"{self.name}: nothing accepts connections there (waited {open_timeout_s:g} s); "
                                 "start the OpenIGTLink server (e.g. PLUS) or check the host and port")
            what = f"IMAGE message from device '{self.device}'" if self.device else "IMAGE message"
            raise InputError(f"{self.name}: connected, but no {what} within {open_timeout_s:g} s; check the "
                             "server streams images" + (" and the device name" if self.device else ""))
        self._first_msg = first
        self.height, self.width = self._image(first).shape[:2]
        spacing = np.linalg.norm(np.asarray(first.ijk_to_world_matrix, dtype=np.float64)[:3, :2], axis=0)
        if np.all(spacing > 0) and not np.allclose(spacing, 1.0):
            from edge.sources.calibration import Calibration

            self.calibration = Calibration(float(spacing[0]), float(spacing[1]),
                                           "OpenIGTLink IMAGE spacing (ijk-to-world matrix, mm)")

    def _take(self):
        """The newest IMAGE message not yet taken (of our device), or None."""
        messages = self._client.get_latest_messages()
        images = [m for m in messages if getattr(m, "message_type", getattr(m, "_message_type", "")) == "IMAGE"
                  and (self.device is None or m.device_name == self.device)]
        return images[-1] if images else None

    def _image(self, msg) -> np.ndarray:
        img = np.asarray(msg.image)
        if img.ndim == 4:  # (k, j, i, components)
            img = img[0]
        elif img.ndim == 3 and img.shape[0] == 1:  # (k=1, j, i)
            img = img[0]
        elif img.ndim != 2:
            raise SourceError(f"{self.name}: IMAGE of shape {img.shape} is not a 2D frame")
        img = _to_uint8(img)
        if img.ndim == 3:
            import cv2

            if img.shape[2] == 1:
                img = img[:, :, 0]
            elif img.shape[2] == 3:
                img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            elif img.shape[2] == 4:
                img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)
        return np.ascontiguousarray(img)

    def _frames(self) -> Iterator[Frame]:
        msg, index = self._first_msg, 0
        self._first_msg = None
        while not self._closed:
            if msg is None:
                waited = time.monotonic()
                while msg is None and not self._closed:
                    if time.monotonic() - waited > self.read_timeout_s:
                        self.ended_early = f"no IMAGE for {self.read_timeout_s:g} s (the sender stopped)"
                        raise SourceError(f"{self.name}: no image for {self.read_timeout_s:g} s; the sender "
                                          "stopped or the connection dropped")
                    time.sleep(0.002)
                    msg = self._take()
                if msg is None:
                    return
            if self._t0 is None:
                self._t0 = float(msg.timestamp)
            frame = Frame(self._image(msg), index, time.monotonic(), round(float(msg.timestamp) - self._t0, 6),
                          {"device": msg.device_name})
            self.frames_read += 1
            index += 1
            msg = None
            yield frame

    def close(self) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            try:
                self._client.stop()
            except Exception:
                pass
        self._closed = True

    def __repr__(self) -> str:
        return f"IgtlSource({self.name!r})"
