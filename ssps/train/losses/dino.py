"""DINO self-distillation (paper eq. 5).

    L = 1/B sum_i sum_{t=1..2} sum_{s=1..S, s != t} H( (z'_{i,t} - c) / tau_t , z_{i,s} / tau_s )
    H(a, b) = - softmax(a) . log softmax(b)

Teacher outputs z' exist for the 2 global views, student outputs z for all S views (2 global
first, then the local ones); a view is never its own target. The centre c is a running mean
of teacher outputs (``update_center``). Like the DINO reference code we divide by the number
of (t, s) pairs, a constant factor the paper's equation omits.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ssps.train.losses.precision import in_float32


@in_float32
def dino_loss(
    student: list[torch.Tensor],
    teacher: list[torch.Tensor],
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> torch.Tensor:
    """student: S tensors [B, K] (global views first); teacher: 2 tensors [B, K]; center: [K]."""
    targets = [F.softmax((t.float() - center) / teacher_temperature, dim=-1).detach() for t in teacher]
    log_predictions = [F.log_softmax(s.float() / student_temperature, dim=-1) for s in student]
    total, pairs = 0.0, 0
    for t, target in enumerate(targets):
        for s, log_prediction in enumerate(log_predictions):
            if s == t:
                continue
            total = total + (-(target * log_prediction).sum(dim=-1)).mean()
            pairs += 1
    return total / pairs


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: list[torch.Tensor], momentum: float = 0.9) -> torch.Tensor:
    """c <- m c + (1 - m) mean of the teacher outputs over the global batch."""
    outputs = torch.cat([t.float() for t in teacher])
    batch_sum = outputs.sum(dim=0)
    count = torch.tensor(float(len(outputs)), device=outputs.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(batch_sum)
        dist.all_reduce(count)
    return center * momentum + (batch_sum / count) * (1 - momentum)
