"""The speaker encoder as trained and exported: waveform -> representation.

``ModelSpec`` is the ``model:`` section of a training config (``train_config.yaml``): the
frontend parameters and the encoder spec. It is all that is needed to rebuild the module
around a ``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssps.errors import ConfigError
from ssps.train.encoders import build_encoder
from ssps.train.frontend import FrontendConfig, LogMelFrontend


@dataclass
class ModelSpec:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "ecapa_tdnn", "channels": 512})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        data = dict(data or {})
        unknown = set(data) - {"frontend", "encoder"}
        if unknown:
            raise ConfigError(f"model: unknown keys {sorted(unknown)}; expected 'frontend' and 'encoder'")
        frontend_data = dict(data.get("frontend") or {})
        frontend_data.pop("type", None)
        known = {f.name for f in dataclasses.fields(FrontendConfig)}
        bad = set(frontend_data) - known
        if bad:
            raise ConfigError(f"model.frontend: unknown keys {sorted(bad)}; known: {sorted(known)}")
        encoder = dict(data.get("encoder") or {"name": "ecapa_tdnn", "channels": 512})
        return cls(frontend=FrontendConfig(**frontend_data), encoder=encoder)

    def to_dict(self) -> dict[str, Any]:
        return {"frontend": self.frontend.to_dict(), "encoder": dict(self.encoder)}


class SpeakerEncoder(nn.Module):
    """waveform [batch, samples] -> representation [batch, dim] (not normalised)."""

    def __init__(self, spec: ModelSpec | None = None):
        super().__init__()
        self.spec = spec = spec or ModelSpec()
        encoder_spec = dict(spec.encoder)
        # The encoder's input width always follows the frontend, so they cannot disagree.
        if encoder_spec.setdefault("n_mels", spec.frontend.n_mels) != spec.frontend.n_mels:
            raise ConfigError(
                f"model.encoder.n_mels ({encoder_spec['n_mels']}) differs from model.frontend.n_mels "
                f"({spec.frontend.n_mels}); set only the frontend's"
            )
        self.frontend = LogMelFrontend(spec.frontend)
        self.encoder = build_encoder(encoder_spec)

    @property
    def embedding_dim(self) -> int:
        return self.encoder.config.embedding_dim

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.frontend(waveform))


class NormalizedEmbedding(nn.Module):
    """What a model directory's ONNX graph computes: the L2-normalised representation."""

    def __init__(self, encoder: SpeakerEncoder):
        super().__init__()
        self.speaker_encoder = encoder

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.speaker_encoder(waveform).float(), dim=-1)
