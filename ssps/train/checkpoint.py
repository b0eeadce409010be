"""Weights as safetensors (never pickle), written atomically, loaded strictly."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ssps.errors import ModelError


def save_weights(module_or_state: nn.Module | dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a state dict to ``path`` via a temporary file and a rename (never half-written)."""
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp files are private; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ModelError(f"{path} is not a readable safetensors file: {err}") from err


def load_weights(module: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``module``; any missing, unexpected or mis-shaped key is an error."""
    state = read_weights(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{path} does not match the model built from its config: "
            f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ModelError(
                f"{path}: key {name!r} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(expected[name].shape)}: the checkpoint was trained with another config"
            )
    module.load_state_dict(state, strict=True)
    return module
