"""CTDet: a small one-stage 2.5D thrombus detector (anchor-free, CenterNet-style heads, focal loss).

Why this design: Hwang/Seo et al. use RetinaNet (ResNet + FPN, anchors, focal loss) on 3 adjacent slices. On two
CPU cores we need <= 50 ms per slice, and thrombi are small (4-20 mm), so instead of a ResNet + 5-level FPN with
anchors we keep one stride-4 output level fed by a light 4-stage encoder and a top-down (FPN-style) merge, and
predict a centre heatmap plus box distances (CenterNet / FCOS family). That keeps the focal loss of the paper,
removes anchor tuning, and leaves only peak-picking + NMS on the host (``edge/ct/decode.py``). The graph outputs
RAW heads only - no sigmoid, no NMS - so it exports to any runtime (TensorRT has no NMS plugin any more).

Input:  ``image`` [N, k, S, S] float32, k adjacent slices windowed to [0, 1] (W400/L140), ascending position,
        resampled and fit per ``edge.ct.decode.prepare_slice``.
Output: ``heatmap`` [N, 1, S/4, S/4] logits of "a thrombus box centre is in this cell";
        ``box`` [N, 4, S/4, S/4] log(distance / stride) from the cell centre to the left, top, right, bottom edges.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 4
PRIOR = 0.01  # initial foreground probability (RetinaNet's prior: a stable start for the focal loss)


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CTDet(nn.Module):
    """Encoder (strides 2/4/8/16) -> top-down merge to stride 4 -> heatmap and box heads.

    k: input slices (channels); width: channels of the first stage (later stages 1.5x/2.5x/4x).
    """

    def __init__(self, k: int = 3, width: int = 24, head: int = 48):
        super().__init__()
        c1, c2, c3, c4 = width, int(width * 1.5), int(width * 2.5), width * 4
        self.k = k
        self.stem = nn.Sequential(_cbr(k, c1, 2), _cbr(c1, c1))  # /2
        self.s2 = nn.Sequential(_cbr(c1, c2, 2), _cbr(c2, c2))  # /4
        self.s3 = nn.Sequential(_cbr(c2, c3, 2), _cbr(c3, c3))  # /8
        self.s4 = nn.Sequential(_cbr(c3, c4, 2), _cbr(c4, c4))  # /16: context (~100 mm receptive field)
        self.l2, self.l3, self.l4 = nn.Conv2d(c2, head, 1), nn.Conv2d(c3, head, 1), nn.Conv2d(c4, head, 1)
        self.smooth = _cbr(head, head)
        self.heat = nn.Sequential(_cbr(head, head), nn.Conv2d(head, 1, 1))
        self.box = nn.Sequential(_cbr(head, head), nn.Conv2d(head, 4, 1))
        nn.init.constant_(self.heat[-1].bias, -math.log((1 - PRIOR) / PRIOR))
        nn.init.constant_(self.box[-1].bias, 0.5)  # exp(0.5) * 4 px ~ a 13 px box: a typical vein at 1 mm

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f2 = self.s2(self.stem(x))
        f3 = self.s3(f2)
        f4 = self.s4(f3)
        p = self.l4(f4)
        p = self.l3(f3) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        p = self.l2(f2) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        p = self.smooth(p)
        return self.heat(p), self.box(p)


class MeanDetector(nn.Module):
    """Several trained :class:`CTDet` of one input shape as ONE graph: the mean of their raw heads (heatmap logits,
    box sizes). Decoding, the plausibility rule and the runtime are unchanged; the cost is the members' sum."""

    def __init__(self, members: list[CTDet]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(x) for m in self.members]
        n = float(len(outs))
        return sum(o[0] for o in outs) / n, sum(o[1] for o in outs) / n


# ------------------------------------------------------------------------------------------- targets & loss
def make_targets(boxes_per_image: list[list[list[float]]], out_hw: tuple[int, int], stride: int = STRIDE):
    """Targets for a batch. boxes_per_image: per image, boxes [x0, y0, x1, y1] on the model grid (pixels).

    Returns numpy arrays: heat (N, 1, Hs, Ws) Gaussian centre targets (1.0 exactly at each box's centre cell),
    box (N, 4, Hs, Ws) log(ltrb / stride) from each cell centre, and weight (N, 1, Hs, Ws) for the box loss
    (the Gaussian value where it is >= 0.3 and the cell centre lies inside the box, else 0).
    """
    n = len(boxes_per_image)
    hs, ws = out_hw
    heat = np.zeros((n, 1, hs, ws), np.float32)
    box = np.zeros((n, 4, hs, ws), np.float32)
    wgt = np.zeros((n, 1, hs, ws), np.float32)
    gy, gx = np.mgrid[0:hs, 0:ws].astype(np.float32)
    cyc, cxc = (gy + 0.5) * stride, (gx + 0.5) * stride  # cell centres in model pixels
    for i, boxes in enumerate(boxes_per_image):
        for x0, y0, x1, y1 in boxes:
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            ix, iy = int(min(max(cx, 0), ws - 1)), int(min(max(cy, 0), hs - 1))
            sx = max(0.5, (x1 - x0) / stride / 5.0)
            sy = max(0.5, (y1 - y0) / stride / 5.0)
            g = np.exp(-((gx - ix) ** 2) / (2 * sx * sx) - ((gy - iy) ** 2) / (2 * sy * sy))
            heat[i, 0] = np.maximum(heat[i, 0], g)
            inside = (cxc > x0) & (cxc < x1) & (cyc > y0) & (cyc < y1) & (g >= 0.3)
            inside[iy, ix] = True  # the centre cell always regresses, even for a box smaller than a cell
            take = inside & (g >= wgt[i, 0])  # overlapping boxes: the nearer centre wins
            ltrb = np.stack([cxc - x0, cyc - y0, x1 - cxc, y1 - cyc])
            ltrb = np.log(np.clip(ltrb, 0.5, None) / stride)
            box[i][:, take] = ltrb[:, take]
            wgt[i, 0][take] = g[take]
    return heat, box, wgt


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (RetinaNet's focal loss with Gaussian-softened negatives).

    Positives are cells with target == 1; near-centre negatives are down-weighted by (1 - target)^beta.
    Normalised by the number of positives (>= 1).
    """
    p = torch.sigmoid(logits).clamp(1e-5, 1 - 1e-5)
    pos = (target >= 0.999).float()
    pos_loss = -torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = -torch.log(1 - p) * p ** alpha * (1 - target) ** beta * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def box_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted L1 on log(ltrb / stride) - scale-invariant, so small and large clots count alike."""
    return (F.smooth_l1_loss(pred, target, reduction="none", beta=0.1) * weight).sum() / weight.sum().clamp(min=1.0)


def detector_loss(model_out, heat_t, box_t, wgt_t, box_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    heat, box = model_out
    lh = focal_loss(heat, heat_t)
    lb = box_loss(box, box_t, wgt_t)
    return lh + box_weight * lb, {"heat": float(lh.detach()), "box": float(lb.detach())}
