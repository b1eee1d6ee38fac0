"""A hand-set stand-in ultrasound segmenter, for GPU-less checks and tests when no trained model is at hand.

It labels locally dark pixels as vein (anechoic lumens are dark in B-mode), so on the demo clips it yields a
real vein-area curve: compressibility about 0.99 on the normal clip and about 0.03 on the DVT clip. That
makes FP16/TensorRT parity checks meaningful (borderline pixels, a real verdict) without training. Its
graph has the ops our ResUNet has (Conv, Relu, pooling, bilinear Resize). It is NOT a clinical model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edge.spec import ModelSpec
from export.onnx_export import export_onnx

PREPROCESS = {"scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0], "colour": "grey"}


class DarkBlobSeg(nn.Module):
    """(N, 1, H, W) grey in [0, 1] -> (N, 3, H, W) logits (background, artery, vein); artery never wins."""

    def __init__(self, thresholds: tuple[float, ...] = (0.08, 0.12, 0.16, 0.20)):
        super().__init__()
        k = len(thresholds)
        self.pool = nn.AvgPool2d(2)
        self.blur = nn.Conv2d(1, k, 7, padding=3)
        self.head = nn.Conv2d(k, 3, 1)
        with torch.no_grad():  # darkness below each threshold, summed: a soft "is lumen" score
            self.blur.weight.fill_(-1.0 / 49)
            self.blur.bias.copy_(torch.tensor(thresholds))
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[2, :, 0, 0] = 40.0
            self.head.bias[2] = -0.5
            self.head.weight[1, :, 0, 0] = 40.0
            self.head.bias[1] = -1.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.blur(self.pool(x)))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(y)


def export_standin(out: str | Path, size: int = 192) -> ModelSpec:
    """Write the stand-in as ``out`` (.onnx) + spec, exactly like a trained model is exported."""
    return export_onnx(DarkBlobSeg(), torch.zeros(1, 1, size, size), out, name="darkblob-standin",
                       task="us-segmentation", input_name="image", output_names=["logits"],
                       preprocess=PREPROCESS, labels=["background", "artery", "vein"],
                       extra={"note": "hand-set stand-in for tests; not a clinical model"})
