"""NT-Xent with an additive margin (NT-Xent-AM), the SimCLR objective.

Paper eq. (1), with the additive margin ``m`` of NT-Xent-AM (Lepage & Dehak, 2024) on the
positive pair only (``m = 0`` is plain NT-Xent):

    L = -1/B sum_i log( e^{(cos(z_i, z'_i) - m)/tau}
                        / (e^{(cos(z_i, z'_i) - m)/tau} + sum_{j != i} e^{cos(z_i, z'_j)/tau}) )

Symmetric version (the paper's SimCLR, section IV-C): every one of the 2B embeddings of
the batch is an anchor in turn; its positive is the other view of the same sample and its
negatives are the 2B - 2 embeddings of the other samples, from both views.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssps.train.losses.precision import in_float32


@in_float32
def nt_xent(
    z: torch.Tensor,
    z_pos: torch.Tensor,
    temperature: float = 0.03,
    margin: float = 0.0,
    symmetric: bool = True,
) -> torch.Tensor:
    """z, z_pos: [B, D] anchor and positive embeddings (any scale: cosine is used)."""
    z, z_pos = F.normalize(z.float(), dim=-1), F.normalize(z_pos.float(), dim=-1)
    batch = z.shape[0]
    if symmetric:
        embeddings = torch.cat([z, z_pos])  # [2B, D]
        cosine = embeddings @ embeddings.T  # [2B, 2B]
        # An embedding is never its own negative.
        self_pairs = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
        cosine = cosine.masked_fill(self_pairs, float("-inf"))
        # Row i's positive is the other view of the same sample.
        positive_column = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    else:
        cosine = z @ z_pos.T  # [B, B]: rows are anchors, the diagonal holds the positives
        positive_column = torch.arange(batch, device=z.device)
    rows = torch.arange(cosine.shape[0], device=z.device)
    cosine = cosine.index_put((rows, positive_column), cosine[rows, positive_column] - margin)
    return F.cross_entropy(cosine / temperature, positive_column)
