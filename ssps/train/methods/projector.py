"""The projector g of the joint-embedding architecture (paper section IV-C).

Three linear layers, the first two followed by batch normalisation and ReLU: representation
y (D_repr) -> 2048 -> 2048 -> embedding z (D_emb = 512). Used by SwAV, VICReg and DINO;
SimCLR and MoCo have none (it degrades speaker verification).
"""

from __future__ import annotations

from torch import nn


def projector(input_dim: int, hidden_dim: int = 2048, output_dim: int = 512) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(input_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, output_dim),
    )
