"""MoCo (paper section II-B): a query encoder trained by gradient, a key encoder that is
its exponential moving average, and a queue of past keys as negatives. Symmetric: each
view is a query for the other view's key. No projector (IV-C)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ssps.train.distributed import all_gather, all_gather_with_grad
from ssps.train.losses import moco_contrastive
from ssps.train.methods.base import Method, StepOutput, TrainBatch, register_method


@dataclass
class MoCoConfig:
    temperature: float = 0.03
    margin: float = 0.0  # NT-Xent-AM additive margin on the positive cosine
    queue_size: int = 65536
    momentum: float = 0.999  # key <- m * key + (1 - m) * query
    symmetric: bool = True


@register_method
class MoCo(Method):
    name = "moco"
    Config = MoCoConfig

    def __init__(self, config: MoCoConfig, encoder, ssps=None):
        super().__init__(config, encoder, ssps)
        self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
        queue = torch.nn.functional.normalize(torch.randn(config.queue_size, encoder.embedding_dim), dim=-1)
        self.register_buffer("queue", queue)  # Q^MoCo, a FIFO ring
        self.register_buffer("queue_position", torch.zeros((), dtype=torch.long))

    def forward(self, batch: TrainBatch) -> StepOutput:
        queries = [self.encoder(view) for view in batch.views[:2]]
        with torch.no_grad():
            keys = [self.key_encoder(view) for view in batch.views[:2]]
        # keys[1] is the positive of queries[0]: the one SSPS may swap (section III-C.3).
        key_fresh = keys[1]
        if self.ssps is not None:
            keys[1] = self.ssps.select_positives(batch.indices, keys[1], batch.reference)
        pairs = [(queries[0], keys[1])] + ([(queries[1], keys[0])] if self.config.symmetric else [])
        loss = sum(
            moco_contrastive(all_gather_with_grad(q), all_gather(k), self.queue, self.config.temperature, self.config.margin)
            for q, k in pairs
        ) / len(pairs)
        if self.ssps is not None:
            self.ssps.update_queues(batch.indices, batch.reference, key_fresh)
        # After the loss (which holds its own normalised copy of the queue): both views'
        # keys become negatives for the next steps (gathered: same queue on all ranks).
        self._enqueue(all_gather(torch.cat([keys[0], key_fresh])))
        return StepOutput(loss)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        """Overwrite the oldest entries of the ring with this step's keys (all ranks)."""
        positions = (self.queue_position + torch.arange(len(keys), device=keys.device)) % len(self.queue)
        self.queue[positions] = torch.nn.functional.normalize(keys.float(), dim=-1)
        self.queue_position.copy_((self.queue_position + len(keys)) % len(self.queue))

    @torch.no_grad()
    def on_step_end(self, global_step: int, total_steps: int) -> None:
        m = self.config.momentum
        for key, query in zip(self.key_encoder.parameters(), self.encoder.parameters()):
            key.mul_(m).add_(query.detach(), alpha=1 - m)
        # Batch-norm statistics follow the query encoder (they are not learned weights).
        for key, query in zip(self.key_encoder.buffers(), self.encoder.buffers()):
            key.copy_(query)
