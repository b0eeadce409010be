"""SwAV (paper section II-C): swapped prediction of Sinkhorn-Knopp codes over learned
prototypes (eq. 3, ``ssps/train/losses/swav.py``).

Settings of section IV-C: projector 2048 -> 512, P = 3000 prototypes, tau = 0.1,
Sinkhorn-Knopp with epsilon = 0.05 and 3 iterations; a queue of the last 3,840 embeddings
of each view joins the codes' computation from epoch 16 on (``queue_start_epoch = 15``,
0-based); the prototypes are frozen during the first epoch (their gradient is dropped).

Under DDP each rank keeps ``queue_size / world_size`` rows of the queue (as the SwAV
reference code does); Sinkhorn-Knopp sums over all ranks, so the codes see the whole queue.
With SSPS, the positive view's embedding z' is replaced by the pseudo-positive's from Q';
its prototype scores then feed both the codes and the predictions of that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssps.train import distributed
from ssps.train.losses import swav_loss
from ssps.train.methods.base import Method, StepOutput, TrainBatch, register_method
from ssps.train.methods.projector import projector


@dataclass
class SwAVConfig:
    temperature: float = 0.1
    num_prototypes: int = 3000  # P
    sinkhorn_epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    queue_size: int = 3840  # |Q^SwAV|, global (split over ranks); 0 = no queue
    queue_start_epoch: int = 15  # 0-based: the queue is filled and used from this epoch on
    freeze_prototypes_epochs: int = 1
    projector_hidden: int = 2048
    projector_dim: int = 512


@register_method
class SwAV(Method):
    name = "swav"
    positives_are_representations = False  # Q' holds projector outputs
    Config = SwAVConfig

    def __init__(self, config: SwAVConfig, encoder, ssps=None):
        super().__init__(config, encoder, ssps)
        self.projector = projector(encoder.embedding_dim, config.projector_hidden, config.projector_dim)
        self.prototypes = nn.Linear(config.projector_dim, config.num_prototypes, bias=False)
        local_queue = config.queue_size // distributed.world_size()
        self.register_buffer("queue", torch.zeros(2, local_queue, config.projector_dim))  # both views, newest first
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.epoch = 0

    @property
    def embedding_dim(self) -> int:
        return self.config.projector_dim

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.config.freeze_prototypes_epochs:
            self.prototypes.weight.grad = None  # frozen: the optimiser skips it

    def prototype_scores(self, z: torch.Tensor) -> torch.Tensor:
        """cos(z, p_k) for every prototype: [B, P]."""
        return F.normalize(z.float(), dim=-1) @ F.normalize(self.prototypes.weight.float(), dim=-1).T

    def forward(self, batch: TrainBatch) -> StepOutput:
        z = self.projector(self.encoder(batch.views[0]))
        z_pos = self.projector(self.encoder(batch.views[1]))
        z_pos_fresh = z_pos
        if self.ssps is not None:
            z_pos = self.ssps.select_positives(batch.indices, z_pos, batch.reference)
        use_queue = self.config.queue_size > 0 and self.epoch >= self.config.queue_start_epoch
        codes_from_queue = None
        if use_queue and self.queue_filled > 0:
            with torch.no_grad():
                filled = self.queue[:, : int(self.queue_filled)]
                codes_from_queue = (self.prototype_scores(filled[0]), self.prototype_scores(filled[1]))
        loss = swav_loss(
            self.prototype_scores(z),
            self.prototype_scores(z_pos),
            self.config.temperature,
            self.config.sinkhorn_epsilon,
            self.config.sinkhorn_iterations,
            codes_from_queue,
        )
        if self.ssps is not None:
            self.ssps.update_queues(batch.indices, batch.reference, z_pos_fresh)
        if use_queue:
            self._enqueue(z, z_pos_fresh)
        return StepOutput(loss)

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor, z_pos: torch.Tensor) -> None:
        """Newest embeddings first; the oldest fall off the end."""
        batch = min(len(z), self.queue.shape[1])
        self.queue[:, batch:] = self.queue[:, :-batch].clone()
        self.queue[0, :batch] = F.normalize(z[:batch].detach().float(), dim=-1)
        self.queue[1, :batch] = F.normalize(z_pos[:batch].detach().float(), dim=-1)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + batch, max=self.queue.shape[1]))
