"""VICReg (paper section II-D): invariance, variance and covariance terms (eq. 4) on the
projector outputs of two views, weights 1 / 1 / 0.04 (IV-C), projector 2048 -> 512.

Under DDP the variance and covariance are statistics of the GLOBAL batch: the embeddings
of every rank are gathered (with their gradient) before the loss.
With SSPS, the positive view's embedding z' is replaced by the pseudo-positive's from Q'.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssps.train.distributed import all_gather_with_grad
from ssps.train.losses import vicreg_loss
from ssps.train.methods.base import Method, StepOutput, TrainBatch, register_method
from ssps.train.methods.projector import projector


@dataclass
class VICRegConfig:
    invariance_weight: float = 1.0  # lambda
    variance_weight: float = 1.0  # mu
    covariance_weight: float = 0.04  # nu
    projector_hidden: int = 2048
    projector_dim: int = 512  # D_emb


@register_method
class VICReg(Method):
    name = "vicreg"
    positives_are_representations = False  # Q' holds projector outputs
    Config = VICRegConfig

    def __init__(self, config: VICRegConfig, encoder, ssps=None):
        super().__init__(config, encoder, ssps)
        self.projector = projector(encoder.embedding_dim, config.projector_hidden, config.projector_dim)

    @property
    def embedding_dim(self) -> int:
        return self.config.projector_dim

    def forward(self, batch: TrainBatch) -> StepOutput:
        z = self.projector(self.encoder(batch.views[0]))
        z_pos = self.projector(self.encoder(batch.views[1]))
        z_pos_fresh = z_pos
        if self.ssps is not None:
            z_pos = self.ssps.select_positives(batch.indices, z_pos, batch.reference)
        loss = vicreg_loss(
            all_gather_with_grad(z),
            all_gather_with_grad(z_pos),
            self.config.invariance_weight,
            self.config.variance_weight,
            self.config.covariance_weight,
        )
        if self.ssps is not None:
            self.ssps.update_queues(batch.indices, batch.reference, z_pos_fresh)
        return StepOutput(loss)
