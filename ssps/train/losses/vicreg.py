"""VICReg: variance, invariance, covariance (paper eq. 4).

    L = lambda * s(Z, Z') + mu * (v(Z) + v(Z')) + nu * (c(Z) + c(Z'))

    s(Z, Z') = mean_i ||z_i - z'_i||^2 / D      (invariance; mean squared error, as the
                                                 VICReg reference code, for which the
                                                 weights 1 / 1 / 0.04 are tuned)
    v(Z)     = 1/D sum_d max(0, 1 - sqrt(Var(z^d) + eps))
    c(Z)     = 1/D sum_{d != d'} C(Z)_{d,d'}^2

Under DDP, pass the embeddings gathered from every rank (``all_gather_with_grad``) so the
variance and covariance are statistics of the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssps.train.losses.precision import in_float32


def invariance(z: torch.Tensor, z_pos: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(z, z_pos)


def variance(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance(z: torch.Tensor) -> torch.Tensor:
    batch, dim = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (batch - 1)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    return off_diagonal.pow(2).sum() / dim


@in_float32
def vicreg_loss(
    z: torch.Tensor,
    z_pos: torch.Tensor,
    invariance_weight: float = 1.0,
    variance_weight: float = 1.0,
    covariance_weight: float = 0.04,
) -> torch.Tensor:
    z, z_pos = z.float(), z_pos.float()
    return (
        invariance_weight * invariance(z, z_pos)
        + variance_weight * (variance(z) + variance(z_pos))
        + covariance_weight * (covariance(z) + covariance(z_pos))
    )
