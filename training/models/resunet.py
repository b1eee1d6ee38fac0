"""ResUNet (Chen et al.): a U-Net whose encoder is a ResNet, for artery/vein segmentation.

Output: raw logits (N, 3, H, W) for background / artery / vein (softmax over classes at inference).
Variants live in :data:`VARIANTS`; ``resunet34`` follows the paper (ResNet34 encoder: 3-4-6-3 basic blocks,
64-512 channels); ``resunet-lite`` keeps the residual encoder/decoder shape at a width and depth that
runs in real time on two CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.models.blocks import BasicBlock, conv_bn_relu, res_stage

LABELS = ("background", "artery", "vein")


@dataclass(frozen=True)
class ResUNetConfig:
    name: str
    stem: int  # channels of the full-resolution stem
    widths: tuple[int, ...]  # channels of each encoder stage (each halves the resolution)
    blocks: tuple[int, ...]  # residual blocks per encoder stage
    in_channels: int = 1
    classes: int = len(LABELS)
    input_size: int = 256  # square input the model is trained and exported at


VARIANTS: dict[str, ResUNetConfig] = {
    # Chen et al.: ResNet34 encoder (3, 4, 6, 3 basic blocks, 64..512 channels).
    "resunet34": ResUNetConfig("resunet34", stem=32, widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), input_size=256),
    # Real time on two CPU cores: the same residual U-Net, narrower, with one block per stage.
    "resunet-lite": ResUNetConfig("resunet-lite", stem=8, widths=(16, 24, 32, 48), blocks=(1, 1, 2, 1), input_size=192),
}


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip, then a residual block."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.block = BasicBlock(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class ResUNet(nn.Module):
    def __init__(self, cfg: ResUNetConfig):
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(conv_bn_relu(cfg.in_channels, cfg.stem), conv_bn_relu(cfg.stem, cfg.stem))
        chans = [cfg.stem, *cfg.widths]
        self.encoder = nn.ModuleList(
            res_stage(chans[i], chans[i + 1], cfg.blocks[i], stride=2) for i in range(len(cfg.widths))
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(chans[i + 1], chans[i], chans[i]) for i in reversed(range(len(cfg.widths)))
        )
        self.head = nn.Conv2d(cfg.stem, cfg.classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for stage in self.encoder:
            skips.append(stage(skips[-1]))
        y = skips.pop()
        for dec in self.decoder:
            y = dec(y, skips.pop())
        return self.head(y)


def build_model(variant: str) -> ResUNet:
    if variant not in VARIANTS:
        raise KeyError(f"unknown model variant '{variant}': choose one of {sorted(VARIANTS)}")
    return ResUNet(VARIANTS[variant])


def config_dict(variant: str) -> dict:
    return asdict(VARIANTS[variant])
