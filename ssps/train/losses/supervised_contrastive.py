"""Supervised contrastive loss (Khosla et al., 2020), the loss CHNS composes batches for.

For anchor i with label y_i, P(i) = the other samples of the batch with the same label:

    L = 1/|I| sum_i -1/|P(i)| sum_{p in P(i)} log( e^{cos(z_i, z_p)/tau} / sum_{a != i} e^{cos(z_i, z_a)/tau} )

Anchors with no positive in the batch are left out of the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssps.train.losses.precision import in_float32


@in_float32
def supervised_contrastive(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    z = F.normalize(embeddings.float(), dim=-1)
    n = len(z)
    not_self = ~torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(~not_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & not_self
    count = positives.sum(dim=1)
    has_positive = count > 0
    if not has_positive.any():
        raise ValueError("supervised_contrastive: no anchor has a positive; batches need >= 2 samples per speaker")
    mean_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)[has_positive] / count[has_positive]
    return -mean_log_prob.mean()
