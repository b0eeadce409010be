"""The MoCo contrastive objective with an optional additive margin.

Paper eq. (2), with the NT-Xent-AM margin ``m`` on the positive pair (``m = 0``: plain
MoCo). Queries z come from the query encoder, keys z' from the momentum (key) encoder, and
the negatives q_j from the queue of keys of past batches:

    L = -1/B sum_i log( e^{(cos(z_i, z'_i) - m)/tau}
                        / (e^{(cos(z_i, z'_i) - m)/tau} + sum_j e^{cos(z_i, q_j)/tau}) )
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssps.train.losses.precision import in_float32


@in_float32
def moco_contrastive(
    queries: torch.Tensor,
    keys: torch.Tensor,
    queue: torch.Tensor,
    temperature: float = 0.03,
    margin: float = 0.0,
) -> torch.Tensor:
    """queries, keys: [B, D]; queue: [Q, D] negatives (no gradient flows into keys/queue)."""
    queries = F.normalize(queries.float(), dim=-1)
    keys = F.normalize(keys.float(), dim=-1).detach()
    queue = F.normalize(queue.float(), dim=-1).detach()
    positive = (queries * keys).sum(dim=-1, keepdim=True) - margin  # [B, 1]
    negatives = queries @ queue.T  # [B, Q]
    logits = torch.cat([positive, negatives], dim=1) / temperature
    # The positive is column 0 of every row.
    return F.cross_entropy(logits, torch.zeros(len(queries), dtype=torch.long, device=queries.device))
