"""Additive angular margin softmax (AAM-softmax / ArcFace), the supervised baseline.

    L = -1/B sum_i log( e^{s cos(theta_{y_i} + m)} / (e^{s cos(theta_{y_i} + m)} + sum_{j != y_i} e^{s cos theta_j}) )

theta_j is the angle between the embedding and the weight vector of class j; s = 30, m = 0.2
in the paper's supervised baseline (section IV-C).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ssps.train.losses.precision import in_float32


class AAMSoftmax(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_dim) * 0.01)
        self.scale, self.margin = scale, margin

    @in_float32
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float())).clamp(-1, 1)
        target_cosine = cosine.gather(1, labels[:, None])
        theta = torch.acos(target_cosine.clamp(-1 + 1e-7, 1 - 1e-7))
        # Past theta = pi - m, cos(theta + m) stops decreasing; the ArcFace fallback keeps the
        # target logit monotonic there.
        with_margin = torch.where(
            theta + self.margin < math.pi,
            torch.cos(theta + self.margin),
            target_cosine - math.sin(math.pi - self.margin) * self.margin,
        )
        logits = cosine.scatter(1, labels[:, None], with_margin) * self.scale
        return F.cross_entropy(logits, labels)
