"""Batch augmentation on the CPU in torch: what varies between scanners, probes, presets and hands."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def geometry(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip (artery/vein sides swap between legs), scale 0.7-1.35 (depth setting, vessel size),
    aspect 0.85-1.15 (screens and resizes differ), shifts of up to 10%. One affine grid for image
    (bilinear) and labels (nearest)."""
    n = images.shape[0]
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    scale = _uniform(n, 0.7, 1.35, gen)
    aspect = _uniform(n, 0.85, 1.15, gen)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / (scale * aspect)
    theta[:, 1, 1] = aspect / scale
    theta[:, 0, 2] = _uniform(n, -0.1, 0.1, gen)
    theta[:, 1, 2] = _uniform(n, -0.1, 0.1, gen)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(labels.unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, lab.squeeze(1).long()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(round(2.5 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(-1, -2))


def scanner(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Scanner and preset differences on a batch in [0, 1] (labels unchanged):
    resolution (down- and up-sampling) and blur, coarser speckle (multiplicative low-pass noise),
    time-gain compensation (a smooth random gain along depth), lateral gain (contact, shadowing), edge
    enhancement, contrast, dynamic range / gamma, overall gain, additive noise. Each is applied to a random
    part of the batch so clean inputs are kept too."""
    n, _, h, w = images.shape
    out = images
    pick = lambda p: (torch.rand(n, generator=gen) < p).view(n, 1, 1, 1).float()  # noqa: E731
    # resolution: one factor per batch (the batch shares a shape), mixed in per sample
    f = float(_uniform(1, 0.4, 0.9, gen))
    low = F.interpolate(F.interpolate(out, scale_factor=f, mode="area"), size=(h, w), mode="bilinear",
                        align_corners=False)
    m = pick(0.3)
    out = m * low + (1 - m) * out
    sigma = float(_uniform(1, 0.6, 1.8, gen))
    m = pick(0.3)
    out = m * _blur(out, sigma) + (1 - m) * out
    # coarse speckle: multiplicative noise, low-passed anisotropically (lateral wider than axial)
    s = float(_uniform(1, 1.0, 3.0, gen))
    noise = torch.randn(n, 1, h // 2, w // 2, generator=gen)
    noise = F.interpolate(_blur(noise, s), size=(h, w), mode="bilinear", align_corners=False)
    noise = noise / noise.flatten(1).std(1).clamp_min(1e-6).view(n, 1, 1, 1)
    out = out * (1 + pick(0.35) * _uniform(n, 0.1, 0.45, gen).view(n, 1, 1, 1) * noise).clamp_min(0)
    # TGC: gain along depth from 4 random knots, linearly interpolated
    knots = _uniform(n * 4, 0.6, 1.5, gen).view(n, 1, 4, 1)
    tgc = F.interpolate(knots, size=(h, 1), mode="bilinear", align_corners=True)
    m = pick(0.5)
    out = out * (m * tgc + (1 - m))
    # lateral gain: probe contact and shadowing make one side brighter than the other (3 knots across)
    knots = _uniform(n * 3, 0.65, 1.3, gen).view(n, 1, 1, 3)
    lat = F.interpolate(knots, size=(1, w), mode="bilinear", align_corners=True)
    m = pick(0.3)
    out = out * (m * lat + (1 - m))
    # edge enhancement (scanner presets sharpen) or contrast about the image mean
    m = pick(0.2)
    out = m * (out + float(_uniform(1, 0.3, 1.0, gen)) * (out - _blur(out, 1.5))) + (1 - m) * out
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    m = pick(0.4)
    out = m * (mean + _uniform(n, 0.6, 1.5, gen).view(n, 1, 1, 1) * (out - mean)) + (1 - m) * out
    gain = _uniform(n, 0.6, 1.4, gen).view(n, 1, 1, 1)
    gamma = _uniform(n, 0.5, 1.9, gen).view(n, 1, 1, 1)
    out = (out.clamp(0, 1) ** gamma) * gain
    out = out + torch.randn(out.shape, generator=gen) * _uniform(n, 0.0, 0.05, gen).view(n, 1, 1, 1)
    return out.clamp(0, 1)


def screen_marks(images: torch.Tensor, gen: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """Bright calipers, crosses and text-like bars drawn over a random part of the batch (labels unchanged):
    scanners put measurement marks and annotations on the image, and they are not anatomy."""
    out = images.clone()
    n, _, h, w = out.shape
    for i in range(n):
        if float(torch.rand(1, generator=gen)) >= p:
            continue
        for _ in range(int(torch.randint(1, 5, (1,), generator=gen))):
            y = int(torch.randint(2, h - 3, (1,), generator=gen))
            x = int(torch.randint(2, w - 3, (1,), generator=gen))
            v = float(_uniform(1, 0.7, 1.0, gen))
            kind = int(torch.randint(0, 3, (1,), generator=gen))
            if kind == 0:  # caliper cross
                out[i, 0, y, max(0, x - 2):x + 3] = v
                out[i, 0, max(0, y - 2):y + 3, x] = v
            elif kind == 1:  # dotted measurement line
                x1 = min(w - 1, x + int(torch.randint(10, 60, (1,), generator=gen)))
                out[i, 0, y, x:x1:3] = v
            else:  # a run of text-like glyphs
                for k in range(int(torch.randint(3, 10, (1,), generator=gen))):
                    gx = x + 4 * k
                    if gx + 3 >= w or y + 5 >= h:
                        break
                    glyph = torch.rand(5, 3, generator=gen) < 0.55
                    out[i, 0, y:y + 5, gx:gx + 3] = torch.where(glyph, torch.tensor(v), out[i, 0, y:y + 5, gx:gx + 3])
    return out


def sector_edges(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator,
                 p: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Black wedges at the left and right edges of a random part of the batch: the trapezoid image of a
    linear probe in steered/virtual-convex mode, whose bounding box the runtime crops. Labels under a
    wedge become background (nothing is visible there)."""
    n, _, h, w = images.shape
    ys = torch.linspace(0, 1, h).view(h, 1)
    xs = torch.linspace(0, 1, w).view(1, w)
    out, lab = images.clone(), labels.clone()
    for i in range(n):
        if float(torch.rand(1, generator=gen)) >= p:
            continue
        slant = float(_uniform(1, 0.05, 0.2, gen))  # wedge width at the bottom, fraction of the width
        top = float(_uniform(1, 0.0, 0.05, gen))
        keep = (xs >= top + slant * ys) & (xs <= 1 - top - slant * ys)
        out[i, 0] = torch.where(keep, out[i, 0], torch.zeros(()))
        lab[i] = torch.where(keep, lab[i], torch.zeros((), dtype=lab.dtype))
    return out, lab


def augment(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator,
            crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N,1,H,W) in [0,1], labels (N,H,W) int64 -> augmented copies.

    crop: when given, one random crop x crop window per batch (the network is fully convolutional, so
    training on crops costs (crop/H)^2 of the compute and still sees whole vessels).
    """
    out, lab = geometry(images, labels, gen)
    out = screen_marks(scanner(out, gen), gen)
    out, lab = sector_edges(out, lab, gen)
    if crop is not None and crop < out.shape[-1]:
        y0 = int(torch.randint(0, out.shape[-2] - crop + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, out.shape[-1] - crop + 1, (1,), generator=gen))
        out, lab = out[..., y0:y0 + crop, x0:x0 + crop], lab[..., y0:y0 + crop, x0:x0 + crop]
    return out, lab
