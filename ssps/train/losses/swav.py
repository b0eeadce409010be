"""SwAV: swapped prediction of Sinkhorn-Knopp cluster codes (paper eq. 3).

The codes a_i of one view are computed with Sinkhorn-Knopp from its prototype scores
(an equipartition of the batch over the P prototypes), and predicted from the other view:

    L = -1/B sum_i sum_k a_{i,k} log( e^{cos(z'_i, p_k)/tau} / sum_k' e^{cos(z'_i, p_k')/tau} )

The paper writes a 1/(B*P) factor; we average over the batch only, as the SwAV reference
code does (a constant factor, which Adam ignores). "Swapped": the loss is computed both
ways (codes of z predicted from z', codes of z' predicted from z) and averaged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ssps.train.losses.precision import in_float32


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft codes [B, P] with uniform cluster marginals; sums are global under DDP."""
    codes = torch.exp((scores.float() - scores.float().max()) / epsilon).T  # [P, B]
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    prototypes, local_batch = codes.shape
    batch = local_batch * world

    def all_reduce(t: torch.Tensor) -> torch.Tensor:
        if world > 1:
            dist.all_reduce(t)
        return t

    codes /= all_reduce(codes.sum())
    for _ in range(iterations):
        codes /= all_reduce(codes.sum(dim=1, keepdim=True))  # each prototype gets 1/P of the mass
        codes /= prototypes
        codes /= codes.sum(dim=0, keepdim=True)  # each sample's code sums to 1/B
        codes /= batch
    return (codes * batch).T  # each row is a distribution over prototypes


@in_float32
def swav_loss(
    scores: torch.Tensor,
    scores_pos: torch.Tensor,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    codes_from_queue: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """scores, scores_pos: [B, P] cosines between each view's embeddings and the prototypes.

    ``codes_from_queue`` optionally holds queue scores ([Q, P] for each view) that are
    prepended before Sinkhorn-Knopp to stabilise the codes of small batches (the SwAV queue);
    only the batch rows of the resulting codes are used.
    """
    batch = scores.shape[0]
    if codes_from_queue is not None:
        codes = sinkhorn_knopp(torch.cat([codes_from_queue[0], scores]), epsilon, iterations)[-batch:]
        codes_pos = sinkhorn_knopp(torch.cat([codes_from_queue[1], scores_pos]), epsilon, iterations)[-batch:]
    else:
        codes = sinkhorn_knopp(scores, epsilon, iterations)
        codes_pos = sinkhorn_knopp(scores_pos, epsilon, iterations)
    predict_from_pos = -(codes * F.log_softmax(scores_pos.float() / temperature, dim=1)).sum(dim=1).mean()
    predict_from_anchor = -(codes_pos * F.log_softmax(scores.float() / temperature, dim=1)).sum(dim=1).mean()
    return (predict_from_pos + predict_from_anchor) / 2
