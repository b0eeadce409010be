"""Fast ResNet-34 (Chung et al., 2020, "In defence of metric learning"), a.k.a. ResNetSE34L.

Half-width ResNet-34 with squeeze-excitation blocks, base width 16, self-attentive pooling.
Log-mel [batch, n_mels, frames] -> representation [batch, embedding_dim].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class FastResNet34Config:
    n_mels: int = 40
    base_width: int = 16
    layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    se_reduction: int = 8
    embedding_dim: int = 512


class SqueezeExcitation2d(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)  # tiny test widths would otherwise give 0
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, :, None, None]


class SEBasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int | tuple[int, int], se_reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            SqueezeExcitation2d(out_channels, se_reduction),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SelfAttentivePooling(nn.Module):
    """Weighted mean over time; weights from a learned context vector (Cai et al., 2018)."""

    def __init__(self, channels: int):
        super().__init__()
        self.project = nn.Linear(channels, channels)
        self.context = nn.Parameter(torch.randn(channels) / channels**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, channels, frames]
        frames = x.transpose(1, 2)
        scores = torch.tanh(self.project(frames)) @ self.context  # [batch, frames]
        weights = torch.softmax(scores.float(), dim=-1).to(frames.dtype)
        return (frames * weights.unsqueeze(-1)).sum(dim=1)


class FastResNet34(nn.Module):
    def __init__(self, config: FastResNet34Config | None = None):
        super().__init__()
        self.config = c = config or FastResNet34Config()
        w = c.base_width
        widths = [w, 2 * w, 4 * w, 8 * w]
        strides = [1, (2, 2), (2, 2), 1]  # frequency is also halved by the stem
        self.stem = nn.Sequential(
            nn.Conv2d(1, w, 7, stride=(2, 1), padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
        )
        stages = []
        in_channels = w
        for width, stride, depth in zip(widths, strides, c.layers):
            blocks = [SEBasicBlock(in_channels, width, stride, c.se_reduction)]
            blocks += [SEBasicBlock(width, width, 1, c.se_reduction) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pooling = SelfAttentivePooling(widths[-1])
        self.output = nn.Linear(widths[-1], c.embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(features.unsqueeze(1)))  # [batch, channels, freq, frames]
        x = x.mean(dim=2)  # average over frequency
        return self.output(self.pooling(x))
