"""SimCLR (paper section II-A): two views of each utterance, the symmetric NT-Xent(-AM)
loss, negatives from the batch, no projector (it hurts speaker verification, IV-C)."""

from __future__ import annotations

from dataclasses import dataclass

from ssps.train.distributed import all_gather_with_grad
from ssps.train.losses import nt_xent
from ssps.train.methods.base import Method, StepOutput, TrainBatch, register_method


@dataclass
class SimCLRConfig:
    temperature: float = 0.03
    margin: float = 0.0  # NT-Xent-AM additive margin on the positive cosine (0 = NT-Xent)
    symmetric: bool = True


@register_method
class SimCLR(Method):
    name = "simclr"
    Config = SimCLRConfig

    def forward(self, batch: TrainBatch) -> StepOutput:
        z = self.encoder(batch.views[0])  # anchors
        z_pos = self.encoder(batch.views[1])  # positives
        z_pos_fresh = z_pos
        if self.ssps is not None:
            z_pos = self.ssps.select_positives(batch.indices, z_pos, batch.reference)
        # Negatives come from the global batch: gather every rank's embeddings.
        loss = nt_xent(
            all_gather_with_grad(z),
            all_gather_with_grad(z_pos),
            temperature=self.config.temperature,
            margin=self.config.margin,
            symmetric=self.config.symmetric,
        )
        if self.ssps is not None:
            self.ssps.update_queues(batch.indices, batch.reference, z_pos_fresh)
        return StepOutput(loss)
