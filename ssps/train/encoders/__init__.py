"""Encoders: log-mel features [batch, n_mels, frames] -> representations [batch, dim].

``build_encoder({"name": "ecapa_tdnn", "channels": 512, ...})`` is the one way the recipe,
the exporter and the tests create an encoder, so a config names exactly one architecture.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from torch import nn

from ssps.errors import ConfigError
from ssps.train.encoders.ecapa_tdnn import ECAPATDNN, ECAPATDNNConfig
from ssps.train.encoders.fast_resnet34 import FastResNet34, FastResNet34Config

ENCODERS: dict[str, tuple[type[nn.Module], type]] = {
    "ecapa_tdnn": (ECAPATDNN, ECAPATDNNConfig),
    "fast_resnet34": (FastResNet34, FastResNet34Config),
}


def build_encoder(spec: dict[str, Any]) -> nn.Module:
    """Build an encoder from ``{"name": ..., **config fields}``; unknown names/keys are errors."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in ENCODERS:
        close = difflib.get_close_matches(str(name), ENCODERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown encoder {name!r}; known encoders: {sorted(ENCODERS)}.{hint}")
    module_cls, config_cls = ENCODERS[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for key in spec:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"encoder {name!r} has no option {key!r}.{hint} Options: {sorted(fields)}")
    return module_cls(config_cls(**spec))
