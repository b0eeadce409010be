"""DINO (paper section II-E, settings IV-C): self-distillation of a student by an EMA teacher.

Views: 2 global crops (4 s) and 4 local crops (2 s) per utterance. The student encodes all
six, the teacher the 2 global ones; the loss is eq. (5) (``ssps/train/losses/dino.py``).

Head (student and teacher alike): the projector 2048 -> 2048 -> 256 (BN + ReLU), an L2
normalisation, then a last layer of 65,536 units with weight normalisation of unit norm
(DINO's ``norm_last_layer``: each row of the weight is L2-normalised), frozen during the
first epoch. tau_s = 0.1, tau_t = 0.04 (optionally warmed up linearly from
``teacher_temperature_start``), centre momentum 0.9, EMA momentum 0.996 -> 1.0 on a cosine
over all training steps. SGD with warm-up + cosine and gradient clipping 3.0 are ``optim:``
settings (see the recipe). The TEACHER's encoder is the one exported (``exported_encoder``).

SSPS (section III-C): the student's outputs are the anchors and the teacher's the
positives, so the teacher outputs of both global views of the pseudo-positive replace the
anchor's. Q' stores, for each sample, the teacher's two 256-d bottleneck outputs (after the
L2 normalisation, before the last layer) and the current teacher's last layer maps them to
65,536 units when they are read. Storing the 65,536-d outputs would take
N x 2 x 65,536 x 4 B = 573 GB for VoxCeleb2 (N = 1,092,009); the bottleneck takes
N x 2 x 256 x 4 B = 2.24 GB. The last layer moves by EMA (m >= 0.996) between the write
and the read, so the difference is small; this is a documented deviation.
Only the six views are fed to the student: the SSPS reference frame never is.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssps.train.losses import dino_loss, update_center
from ssps.train.methods.base import Method, StepOutput, TrainBatch, register_method
from ssps.train.methods.projector import projector


@dataclass
class DINOConfig:
    global_seconds: float = 4.0
    local_seconds: float = 2.0
    local_views: int = 4
    projector_hidden: int = 2048
    bottleneck_dim: int = 256
    head_dim: int = 65536  # D_emb: units of the weight-normalised last layer
    freeze_last_layer_epochs: int = 1
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    teacher_temperature_start: float = 0.04  # linear warm-up from this value ...
    teacher_temperature_warmup_epochs: int = 0  # ... over these epochs (0: constant)
    center_momentum: float = 0.9
    teacher_momentum: float = 0.996  # EMA coefficient at the first step, 1.0 at the last (cosine)


class DINOHead(nn.Module):
    """Representation -> bottleneck (projector + L2 normalisation) -> 65,536 logits."""

    def __init__(self, input_dim: int, config: DINOConfig):
        super().__init__()
        self.projector = projector(input_dim, config.projector_hidden, config.bottleneck_dim)
        self.last_layer = nn.Parameter(torch.randn(config.head_dim, config.bottleneck_dim) * 0.02)

    def bottleneck(self, representation: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(representation).float(), dim=-1)

    def last(self, bottleneck: torch.Tensor) -> torch.Tensor:
        # Weight normalisation with g = 1: every output unit's weight vector has unit norm.
        return F.linear(bottleneck, F.normalize(self.last_layer.float(), dim=-1))

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        return self.last(self.bottleneck(representation))


@register_method
class DINO(Method):
    name = "dino"
    positives_are_representations = False  # Q' holds projector outputs
    Config = DINOConfig

    @classmethod
    def views_for(cls, config: DINOConfig) -> list[float]:
        return [config.global_seconds] * 2 + [config.local_seconds] * config.local_views

    def __init__(self, config: DINOConfig, encoder, ssps=None):
        super().__init__(config, encoder, ssps)
        self.head = DINOHead(encoder.embedding_dim, config)
        self.teacher_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("center", torch.zeros(config.head_dim))
        self.epoch = 0

    @property
    def embedding_dim(self) -> int:
        """Q' holds the teacher's two bottleneck outputs, concatenated."""
        return 2 * self.config.bottleneck_dim

    def exported_encoder(self):
        return self.teacher_encoder

    def teacher_temperature(self) -> float:
        config = self.config
        if self.epoch >= config.teacher_temperature_warmup_epochs:
            return config.teacher_temperature
        progress = self.epoch / config.teacher_temperature_warmup_epochs
        return config.teacher_temperature_start + progress * (config.teacher_temperature - config.teacher_temperature_start)

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def forward(self, batch: TrainBatch) -> StepOutput:
        global_views = batch.views[:2]
        student = [self.head(self.encoder(view)) for view in batch.views]  # 2 global + local views only
        with torch.no_grad():
            teacher_bottleneck = torch.cat([self.teacher_head.bottleneck(self.teacher_encoder(view)) for view in global_views], dim=1)
        bottleneck_fresh = teacher_bottleneck
        if self.ssps is not None:
            teacher_bottleneck = self.ssps.select_positives(batch.indices, teacher_bottleneck, batch.reference)
        teacher = [self.teacher_head.last(part) for part in teacher_bottleneck.detach().chunk(2, dim=1)]
        loss = dino_loss(student, teacher, self.center, self.config.student_temperature, self.teacher_temperature())
        if self.ssps is not None:
            self.ssps.update_queues(batch.indices, batch.reference, bottleneck_fresh)
        # The centre follows the batch's own teacher outputs (not the swapped ones); all ranks.
        with torch.no_grad():
            fresh = [self.teacher_head.last(part) for part in bottleneck_fresh.chunk(2, dim=1)]
            self.center.copy_(update_center(self.center, fresh, self.config.center_momentum))
        return StepOutput(loss)

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.config.freeze_last_layer_epochs:
            self.head.last_layer.grad = None  # frozen: the optimiser skips it

    def teacher_momentum_at(self, step: int, total_steps: int) -> float:
        """m = 1 - (1 - m0) (cos(pi step / total) + 1) / 2: m0 at step 0, 1.0 at the end."""
        base = self.config.teacher_momentum
        return 1 - (1 - base) * (math.cos(math.pi * step / max(total_steps, 1)) + 1) / 2

    @torch.no_grad()
    def on_step_end(self, global_step: int, total_steps: int) -> None:
        m = self.teacher_momentum_at(global_step, total_steps)
        student = [*self.encoder.parameters(), *self.head.parameters()]
        teacher = [*self.teacher_encoder.parameters(), *self.teacher_head.parameters()]
        for t, s in zip(teacher, student):
            t.mul_(m).add_(s.detach(), alpha=1 - m)
        # Batch-norm statistics: the teacher keeps its own running averages (it runs in train
        # mode on the global views), which match its own weights.
