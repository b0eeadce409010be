"""What every training method is: a small ``nn.Module`` the trainer drives through hooks.

A method
- owns the speaker encoder being trained (``self.encoder``, the module that is averaged
  and exported) and whatever else it needs: a projector, a momentum (teacher) encoder,
  prototypes, queues of negatives;
- turns a batch into a loss in ``forward(batch) -> StepOutput`` (the trainer calls it
  through DDP, so gradients are synchronised);
- may use SSPS (``self.ssps``, None when disabled) to swap its positive embeddings:

      z_pos_fresh = z_pos
      z_pos = self.ssps.select_positives(batch.indices, z_pos, batch.reference)
      ...loss on (z, z_pos)...
      self.ssps.update_queues(batch.indices, batch.reference, z_pos_fresh)

- hooks (all optional): ``on_epoch_start(epoch)`` (freeze prototypes, switch a queue on),
  ``on_step_end(global_step, total_steps)`` (EMA of a teacher, after the optimiser step).
- class attributes: ``name`` (the ``method.name`` of the YAML), ``Config`` (a dataclass of
  its options, the rest of the ``method:`` section), ``view_seconds`` (how many views, of
  which durations; None = ``data.frame_seconds``, e.g. DINO: ``[4, 4, 2, 2, 2, 2]``).

Register a new method with ``@register_method`` and it is reachable from the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ssps.train.model import SpeakerEncoder
from ssps.train.positive_sampling import SSPS


@dataclass
class TrainBatch:
    """One step's input. No labels: a self-supervised method cannot see them."""

    views: list[torch.Tensor]  # each [B, samples] (augmented crops of the same utterances)
    indices: torch.Tensor  # [B] training-sample index of each utterance
    reference: torch.Tensor | None = None  # [B, D_repr] SSPS reference representations


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)  # logged next to the loss


class Method(nn.Module):
    name: ClassVar[str]
    Config: ClassVar[type]
    view_seconds: ClassVar[list[float] | None] = None

    def __init__(self, config, encoder: SpeakerEncoder, ssps: SSPS | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.ssps = ssps

    def forward(self, batch: TrainBatch) -> StepOutput:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_step_end(self, global_step: int, total_steps: int) -> None:
        pass

    @property
    def embedding_dim(self) -> int:
        """Dimension of the embeddings the loss sees (and SSPS stores in Q')."""
        return self.encoder.embedding_dim


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls
