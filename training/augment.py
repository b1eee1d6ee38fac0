"""Batch augmentation on the CPU in torch: what varies between scanners, probes and hands."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator,
            crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N,1,H,W) in [0,1], labels (N,H,W) int64 -> augmented copies.

    crop: when given, one random crop x crop window per batch (the network is fully convolutional, so
    training on crops costs (crop/H)^2 of the compute and still sees whole vessels).

    Horizontal flip (artery/vein sides swap between legs), scale 0.8-1.25 and shifts of up to 10%
    (depth setting, probe position), gain 0.7-1.3, gamma 0.7-1.5 (TGC/dynamic range), additive noise.
    Geometry uses one affine grid for image (bilinear) and labels (nearest).
    """
    n = images.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=gen)  # noqa: E731
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    scale = u(0.8, 1.25)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2] = u(-0.1, 0.1)
    theta[:, 1, 2] = u(-0.1, 0.1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(labels.unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    gain = u(0.7, 1.3).view(n, 1, 1, 1)
    gamma = u(0.7, 1.5).view(n, 1, 1, 1)
    out = (out.clamp(0, 1) ** gamma) * gain
    out = out + torch.randn(out.shape, generator=gen) * u(0.0, 0.04).view(n, 1, 1, 1)
    out, lab = out.clamp(0, 1), lab.squeeze(1).long()
    if crop is not None and crop < out.shape[-1]:
        y0 = int(torch.randint(0, out.shape[-2] - crop + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, out.shape[-1] - crop + 1, (1,), generator=gen))
        out, lab = out[..., y0:y0 + crop, x0:x0 + crop], lab[..., y0:y0 + crop, x0:x0 + crop]
    return out, lab
