"""Training methods, by the name the YAML uses (``method.name``).

``build_method(name, options, encoder, ssps)`` is the one way the trainer creates one. See
``base.py`` for the interface a new method implements.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from ssps.errors import ConfigError
from ssps.train.methods.base import METHODS, Method, StepOutput, TrainBatch, register_method
from ssps.train.methods import dino, moco, simclr, supervised, swav, vicreg  # noqa: F401  (registers the methods)


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), METHODS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown method {name!r}; known methods: {sorted(METHODS)}.{hint}")
    return METHODS[name]


def build_method(config: Any, encoder, ssps=None, num_speakers: int | None = None) -> Method:
    """``config`` is the method's own ``Config`` dataclass (see ``ssps.train.config``).
    ``num_speakers`` reaches supervised methods only (``needs_labels``)."""
    for name, cls in METHODS.items():
        if type(config) is cls.Config:
            if cls.needs_labels:
                if not num_speakers:
                    raise ConfigError(f"method {cls.name!r} is supervised: every utterance needs a speaker label")
                return cls(config, encoder, ssps, num_speakers=num_speakers)
            return cls(config, encoder, ssps)
    raise ConfigError(f"no method takes a {type(config).__name__}")


__all__ = ["METHODS", "Method", "StepOutput", "TrainBatch", "build_method", "method_class", "register_method"]
