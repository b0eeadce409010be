"""The training configuration: typed dataclasses, one per component, read from YAML.

    config = load_config("recipe.yaml", ["train.epochs=3", "ssps.enabled=true"])

A YAML file and ``key.sub=value`` overrides (values parsed as YAML) are merged, then
checked against the dataclasses: a key that does not exist is a ``ConfigError`` naming it
and the closest valid key; a value of the wrong type is one too. ``config.to_dict()`` is
the fully resolved config, written as ``RUN_DIR/train_config.yaml``.

Sections: ``data``, ``model`` (``ModelSpec``: frontend + encoder, see ``ssps.train.model``),
``method`` (``name`` + that method's own options), ``ssps``, ``optim``, ``train``,
``checkpoint``, ``eval``; plus ``run_dir`` and ``seed``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssps.errors import ConfigError
from ssps.train.augment import AugmentConfig
from ssps.train.encoders import ENCODERS
from ssps.train.frontend import FrontendConfig
from ssps.train.methods import method_class
from ssps.train.model import ModelSpec
from ssps.train.positive_sampling import SSPSConfig


@dataclass
class DataConfig:
    train_manifest: str = ""  # CSV: path, speaker, recording, duration (ssps.train.data.manifest)
    frame_seconds: float = 2.0  # length of each view
    positive: str = "same_utterance"  # or "supervised": another recording of the same speaker (upper bound)
    num_workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # see ssps.train.augment


@dataclass
class MethodSection:
    name: str = "simclr"
    options: Any = field(default_factory=lambda: method_class("simclr").Config())  # that method's Config

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.options)}


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # adam | sgd (the paper's DINO)
    lr: float = 1e-3  # the peak lr for warmup_cosine
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    scheduler: str = "step"  # step | warmup_cosine (see ssps.train.trainer.build_optimizer)
    lr_decay: float = 0.95  # step: lr *= lr_decay every lr_decay_every_epochs epochs
    lr_decay_every_epochs: int = 5
    warmup_epochs: int = 10  # warmup_cosine: linear ramp from 0 to lr ...
    min_lr: float = 1e-5  # ... then cosine down to min_lr
    grad_clip: float | None = None  # max gradient norm; None = no clipping


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 256  # global: split evenly over the torchrun processes
    precision: str = "auto"  # auto | fp32 | bf16 | fp16  (auto: bf16 on CPUs that have it, AMP on GPU)
    device: str = "auto"  # auto | cpu | cuda
    max_steps: int | None = None  # stop after this many optimiser steps in total
    max_minutes: float | None = None  # stop after this much wall time in this invocation
    log_every_steps: int = 10
    progress_bar: bool = True
    tensorboard: bool = True  # also log to RUN_DIR/logs/tensorboard (if tensorboard is installed)
    init_from: str | None = None  # another run directory: start from its last checkpoint


@dataclass
class CheckpointConfig:
    every_steps: int = 1000  # also at every epoch end
    average_last: int = 10  # the exported encoder averages the last K epochs' weights


@dataclass
class TrialList:
    path: str = ""  # VoxCeleb format: "label path1 path2" per line
    audio_root: str = ""  # paths in the trial file are relative to it
    name: str = ""  # defaults to the file's stem


@dataclass
class EvalConfig:
    trials: list[TrialList] = field(default_factory=list)  # evaluated at the end of training
    validation: TrialList | None = None  # evaluated every validate_every_epochs epochs
    validate_every_epochs: int = 1


@dataclass
class Config:
    run_dir: str = "runs/ssps"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    method: MethodSection = field(default_factory=MethodSection)
    ssps: SSPSConfig = field(default_factory=SSPSConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        data = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.to_dict() if hasattr(value, "to_dict") else (
                dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
            )
        return _plain(data)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so that yaml.safe_dump can write the config."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# ---- loading -----------------------------------------------------------------------
def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for override in overrides or []:
        apply_override(raw, override)
    return config_from_dict(raw)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """``a.b.c=value`` sets raw["a"]["b"]["c"] = yaml(value)."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form key.sub=value")
    key, value = override.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value)


def config_from_dict(raw: dict[str, Any]) -> Config:
    raw = dict(raw)
    model = _model_spec(raw.pop("model", None) or {})
    method = _method_section(raw.pop("method", None) or {})
    config = _build(Config, raw, prefix="")
    config.model, config.method = model, method
    return config


def _unknown_key(prefix: str, key: str, valid: typing.Iterable[str]) -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{prefix}{key}'.{hint} Valid keys here: {valid}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursively, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.')}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(prefix, key, names)
        values[key] = _convert(hints[key], value, f"{prefix}{key}")
    return cls(**values)


def _convert(kind: Any, value: Any, name: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (kind,) = [a for a in args if a is not type(None)]
        return _convert(kind, value, name)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, f"{name}.")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"'{name}' must be a list, got {value!r}")
        return [_convert(args[0], item, f"{name}[{i}]") for i, item in enumerate(value)]
    if origin is dict or kind is Any:
        if origin is dict and not isinstance(value, dict):
            raise ConfigError(f"'{name}' must be a mapping, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{name}' must be true or false, got {value!r}")
        return value
    if kind in (int, float):
        # YAML reads 1e-3 (no dot) as a string: accept numbers written that way.
        try:
            number = kind(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or (kind is int and number != int(number)):
            raise ConfigError(f"'{name}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        return kind(number)
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"'{name}' must be a string, got {value!r}")
        return str(value)
    return value


def _model_spec(data: dict[str, Any]) -> ModelSpec:
    data = dict(data)
    for key in data:
        if key not in ("frontend", "encoder"):
            raise _unknown_key("model.", key, ("frontend", "encoder"))
    frontend = dict(data.get("frontend") or {})
    frontend.pop("type", None)  # written by FrontendConfig.to_dict
    encoder = dict(data.get("encoder") or ModelSpec().encoder)
    name = encoder.get("name", "ecapa_tdnn")
    if name not in ENCODERS:
        close = difflib.get_close_matches(str(name), ENCODERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"model.encoder.name: unknown encoder {name!r}; known: {sorted(ENCODERS)}.{hint}")
    options = {k: v for k, v in encoder.items() if k != "name"}
    checked = _build(ENCODERS[name][1], options, "model.encoder.")
    return ModelSpec(
        frontend=_build(FrontendConfig, frontend, "model.frontend."),
        encoder={"name": name, **{k: getattr(checked, k) for k in options}},
    )


def _method_section(data: dict[str, Any]) -> MethodSection:
    data = dict(data)
    name = data.pop("name", MethodSection.name)
    try:
        cls = method_class(name)
    except ConfigError as error:
        raise ConfigError(f"method.name: {error}") from None
    for key in data:
        if key not in {f.name for f in dataclasses.fields(cls.Config)}:
            raise _unknown_key("method.", key, [f.name for f in dataclasses.fields(cls.Config)] + ["name"])
    return MethodSection(name=name, options=_build(cls.Config, data, "method."))
