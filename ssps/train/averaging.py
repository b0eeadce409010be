"""Average the weights of the last K epochs (paper section IV-E: K = 10).

Floating-point tensors (weights and batch-norm running statistics) are averaged;
integer ones (``num_batches_tracked``) are taken from the newest checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ssps.errors import ModelError
from ssps.train.checkpoint import read_weights


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if not states:
        raise ModelError("no checkpoints to average")
    keys = list(states[-1])
    for state in states:
        if list(state) != keys:
            raise ModelError("the checkpoints to average do not hold the same tensors")
    averaged = {}
    for key in keys:
        newest = states[-1][key]
        if newest.is_floating_point():
            averaged[key] = torch.stack([state[key].float() for state in states]).mean(0).to(newest.dtype)
        else:
            averaged[key] = newest.clone()
    return averaged


def average_weight_files(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    return average_state_dicts([read_weights(path) for path in paths])
