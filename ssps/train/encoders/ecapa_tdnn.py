"""ECAPA-TDNN (Desplanques et al., 2020) with attentive statistics pooling.

Log-mel [batch, n_mels, frames] -> representation [batch, embedding_dim].
The paper's encoder is ``channels=1024, mfa_channels=3072`` (22.5M parameters with 40 mels
and a 512-d output); ``channels=512, mfa_channels=1536`` is the small CPU variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ECAPATDNNConfig:
    n_mels: int = 40
    channels: int = 512
    mfa_channels: int = 1536  # multi-layer feature aggregation: 3 x channels
    scale: int = 8  # res2net branches
    se_bottleneck: int = 128
    attention_channels: int = 128
    embedding_dim: int = 512


class ConvReluBN(nn.Sequential):
    """1-d convolution, ReLU, batch norm: the TDNN layer of ECAPA."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, padding=padding),
            nn.ReLU(),
            nn.BatchNorm1d(out_channels),
        )


class Res2Conv(nn.Module):
    """Res2Net: split channels into ``scale`` groups, each convolved after adding the previous."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels ({channels}) must be divisible by scale ({scale})")
        width = channels // scale
        self.scale = scale
        self.convs = nn.ModuleList(ConvReluBN(width, width, kernel_size, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.chunk(x, self.scale, dim=1)
        outputs = [groups[0]]  # the first group passes through unchanged
        previous = None
        for conv, group in zip(self.convs, groups[1:]):
            previous = conv(group if previous is None else group + previous)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SqueezeExcitation1d(nn.Module):
    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, bottleneck, 1),
            nn.ReLU(),
            nn.Conv1d(bottleneck, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int, se_bottleneck: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvReluBN(channels, channels),
            Res2Conv(channels, kernel_size, dilation, scale),
            ConvReluBN(channels, channels),
            SqueezeExcitation1d(channels, se_bottleneck),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AttentiveStatisticsPooling(nn.Module):
    """Attention-weighted mean and standard deviation over time, with global context."""

    def __init__(self, channels: int, attention_channels: int):
        super().__init__()
        self.attention = nn.Sequential(
            ConvReluBN(3 * channels, attention_channels),
            nn.Tanh(),
            nn.Conv1d(attention_channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32: a variance in bf16 can come out negative.
        x = x.float()
        frames = x.shape[-1]
        mean, std = weighted_mean_std(x, torch.full_like(x[:, :1], 1.0 / frames))
        context = torch.cat([x, mean.unsqueeze(-1).expand_as(x), std.unsqueeze(-1).expand_as(x)], dim=1)
        weights = torch.softmax(self.attention(context).float(), dim=-1)
        mean, std = weighted_mean_std(x, weights)
        return torch.cat([mean, std], dim=1)


def weighted_mean_std(x: torch.Tensor, weights: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the last axis with weights summing to one."""
    mean = (x * weights).sum(dim=-1)
    var = (x.pow(2) * weights).sum(dim=-1) - mean.pow(2)
    return mean, torch.sqrt(var.clamp(min=eps))


class ECAPATDNN(nn.Module):
    def __init__(self, config: ECAPATDNNConfig | None = None):
        super().__init__()
        self.config = c = config or ECAPATDNNConfig()
        self.stem = ConvReluBN(c.n_mels, c.channels, kernel_size=5)
        self.blocks = nn.ModuleList(
            SERes2Block(c.channels, kernel_size=3, dilation=d, scale=c.scale, se_bottleneck=c.se_bottleneck)
            for d in (2, 3, 4)
        )
        self.aggregate = nn.Sequential(nn.Conv1d(3 * c.channels, c.mfa_channels, 1), nn.ReLU())
        self.pooling = AttentiveStatisticsPooling(c.mfa_channels, c.attention_channels)
        self.pooled_norm = nn.BatchNorm1d(2 * c.mfa_channels)
        self.output = nn.Linear(2 * c.mfa_channels, c.embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.stem(features)
        block_outputs = []
        for block in self.blocks:
            x = block(x)
            block_outputs.append(x)
        x = self.aggregate(torch.cat(block_outputs, dim=1))
        return self.output(self.pooled_norm(self.pooling(x)))
