"""Calibration frames for INT8 quantization of an ultrasound model (``--backend openvino-int8``).

The backend (:mod:`edge.backends.openvino`) knows no imaging domain: the ultrasound commands hand it
:func:`calibration_inputs`, which preprocesses frames exactly as the frame loop does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import ModelError


def calibration_inputs(model: Path, every: int = 4) -> list[np.ndarray]:
    """Model inputs (1, 1, H, W) float32 from the bundled demo clips, preprocessed as the frame loop does."""
    import cv2

    from edge.assets import DEMO_CLIPS, asset
    from edge.spec import load_spec
    from edge.us.preprocess import Preprocessor

    spec = load_spec(model)
    out = []
    for name in sorted(DEMO_CLIPS):
        cap = cv2.VideoCapture(str(asset(DEMO_CLIPS[name])))
        pre = Preprocessor(spec)
        i = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if i % every == 0:
                    x, _ = pre(frame)
                    out.append(x.copy())
                i += 1
        finally:
            cap.release()
    if not out:
        raise ModelError("no calibration frames could be read from the bundled demo clips")
    return out
