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
- hooks (all optional, continued): ``before_optimizer_step(epoch)`` (after backward: drop the
  gradient of a part frozen this epoch, e.g. SwAV prototypes, DINO's last layer),
  ``epoch_batches(dataset, batch_per_rank, seed, epoch, start)`` (compose the epoch's
  batches, e.g. CHNS; None = a random permutation), ``exported_encoder()`` (the encoder
  that is averaged, evaluated and exported; DINO: the teacher).
- class attributes: ``name`` (the ``method.name`` of the YAML), ``Config`` (a dataclass of
  its options, the rest of the ``method:`` section), ``view_seconds`` (how many views, of
  which durations; None = ``num_views`` crops of ``data.frame_seconds``; DINO overrides
  ``views_for(config)`` to read them from its options), ``needs_labels``.

Labels: a method with ``needs_labels = False`` (every self-supervised one) gets
``batch.labels = None``, always. Only the supervised baselines (AAM-softmax, SupCon, CHNS)
set ``needs_labels = True``; they are built with ``num_speakers`` and cannot use SSPS.

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
    """One step's input. ``labels`` is None unless the method ``needs_labels``."""

    views: list[torch.Tensor]  # each [B, samples] (augmented crops of the same utterances)
    indices: torch.Tensor  # [B] training-sample index of each utterance
    reference: torch.Tensor | None = None  # [B, D_repr] SSPS reference representations
    labels: torch.Tensor | None = None  # [B] speaker ids: supervised methods only


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)  # logged next to the loss


class Method(nn.Module):
    name: ClassVar[str]
    Config: ClassVar[type]
    view_seconds: ClassVar[list[float] | None] = None
    num_views: ClassVar[int] = 2  # crops of data.frame_seconds when view_seconds is None
    needs_labels: ClassVar[bool] = False
    # False when Q' holds projector outputs (SwAV, VICReg, DINO): then the SSPS centroid
    # variant, whose positives are centroids of representations, does not apply.
    positives_are_representations: ClassVar[bool] = True

    @classmethod
    def views_for(cls, config) -> list[float] | None:
        """View durations for this method's options (None: ``num_views`` x frame_seconds)."""
        return cls.view_seconds

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

    def before_optimizer_step(self, epoch: int) -> None:
        pass

    def epoch_batches(self, dataset, batch_per_rank: int, seed: int, epoch: int, start: int):
        """This rank's batches of the epoch (a ``Sampler`` of index lists), or None for the
        trainer's random permutation."""
        return None

    def exported_encoder(self) -> SpeakerEncoder:
        """The encoder whose weights are averaged, evaluated and exported."""
        return self.encoder

    @property
    def embedding_dim(self) -> int:
        """Dimension of the embeddings the loss sees (and SSPS stores in Q')."""
        return self.encoder.embedding_dim


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls
