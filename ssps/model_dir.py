"""The model directory: the one contract between training and inference.

A model is a directory (identical in ``models/``, on disk anywhere, and as a Hugging Face
Hub repository) holding:

- ``model.onnx``: input ``waveform`` float32 [batch, samples] at ``sample_rate``, output
  ``embedding`` float32 [batch, dim], L2-normalised. The log-mel frontend is inside the graph.
- ``model.int8.onnx`` (optional): the same model with int8 weights and activations
  (``ssps quantize``), listed in ``config.json`` under ``variants`` with its sha256 and the
  accuracy check it passed; ``default_precision`` says which graph ``load_model`` runs.
- ``config.json``: described by :class:`ModelConfig` below.
- ``model.safetensors`` + ``train_config.yaml``: the PyTorch weights and the config that
  built them (only training needs them).
- ``README.md``: the model card.

This module is torch-free: both the exporter (``ssps.train.export``) and inference read and
write ``config.json`` through it, so the format is defined in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ssps.errors import ModelError

FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
# Precisions a model directory can offer: fp32 is always model.onnx; the others are variants.
FP32, INT8 = "fp32", "int8"
PRECISIONS = (FP32, INT8)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAIN_CONFIG_FILE = "train_config.yaml"
CARD_FILE = "README.md"
INPUT_NAME = "waveform"
OUTPUT_NAME = "embedding"


@dataclass
class Threshold:
    """A decision threshold on the cosine score and where it was measured."""

    value: float
    measured_on: str  # trial list the threshold was chosen on
    false_accept_rate: float | None = None
    false_reject_rate: float | None = None


@dataclass
class Calibration:
    """Logistic calibration: probability(same speaker) = sigmoid(scale * score + offset)."""

    scale: float
    offset: float
    fitted_on: str
    kind: str = "logistic"


@dataclass
class Variant:
    """Another ONNX graph of the same model (e.g. int8-quantised), stored beside model.onnx.

    Quantisation shifts scores a little, so a variant may carry thresholds and a calibration
    fitted on its own scores (``ssps quantize --calibrate-trials``, ``ssps calibrate
    --precision int8``); without them, fp32's apply.
    """

    file: str
    sha256: str
    method: dict[str, Any] = field(default_factory=dict)  # how it was made
    accuracy: dict[str, Any] = field(default_factory=dict)  # its check against fp32, if run
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    calibration: Calibration | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Variant":
        data = dict(data)
        data["thresholds"] = {k: Threshold(**v) for k, v in data.get("thresholds", {}).items()}
        if data.get("calibration") is not None:
            data["calibration"] = Calibration(**data["calibration"])
        return cls(**data)


@dataclass
class ModelConfig:
    """Everything inference needs to know about a model, stored as ``config.json``."""

    sample_rate: int
    embedding_dim: int
    frontend: dict[str, Any]
    encoder: dict[str, Any]
    onnx_sha256: str
    # Shorter audio gives unreliable embeddings and is refused; longer audio is embedded in
    # windows of max_duration seconds (hop window_hop) whose embeddings are averaged.
    min_duration: float = 0.5
    max_duration: float = 20.0
    window_hop: float = 10.0
    # Named thresholds: "eer" (equal error rate point), "far1" (1 % false accepts).
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    default_threshold: str = "eer"
    calibration: Calibration | None = None
    untrained: bool = False
    # Optional extra graphs by precision ("int8"), and the one load_model runs by default.
    variants: dict[str, Variant] = field(default_factory=dict)
    default_precision: str = FP32
    name: str = "unnamed"
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        if not self.variants and self.default_precision == FP32:
            # An fp32-only model is written exactly as before variants existed, so older
            # ssps releases still read it.
            del data["variants"], data["default_precision"]
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"config.json has format_version {version!r}; this ssps reads version "
                f"{FORMAT_VERSION}. Upgrade ssps or re-export the model."
            )
        try:
            data["thresholds"] = {k: Threshold(**v) for k, v in data.get("thresholds", {}).items()}
            if data.get("calibration") is not None:
                data["calibration"] = Calibration(**data["calibration"])
            data["variants"] = {k: Variant.from_dict(v) for k, v in data.get("variants", {}).items()}
            config = cls(**data)
        except TypeError as err:
            raise ModelError(f"config.json is malformed: {err}") from err
        unknown = sorted(set(config.variants) - set(PRECISIONS[1:]))
        if unknown or config.default_precision not in config.precisions:
            raise ModelError(
                f"config.json is malformed: variants {sorted(config.variants)} and default_precision "
                f"{config.default_precision!r} must name precisions among {list(PRECISIONS)}, the default "
                "one present. Re-run `ssps quantize` or re-export the model."
            )
        return config

    @property
    def precisions(self) -> list[str]:
        """The precisions this model directory offers, fp32 first."""
        return [FP32, *self.variants]

    def for_precision(self, precision: str) -> "ModelConfig":
        """This config as the graph of ``precision`` scores: the variant's own thresholds and
        calibration when it has thresholds (both or neither), else fp32's."""
        self.onnx_file(precision)  # a precision the model lacks is an error, not fp32
        variant = self.variants.get(precision)
        if variant is None or not variant.thresholds:
            return self
        return replace(self, thresholds=dict(variant.thresholds), calibration=variant.calibration)

    def onnx_file(self, precision: str) -> tuple[str, str]:
        """(file name, expected sha256) of the graph for ``precision``."""
        if precision == FP32:
            return ONNX_FILE, self.onnx_sha256
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}: use one of {list(PRECISIONS)}")
        if precision not in self.variants:
            raise ModelError(
                f"model {self.name} has no {precision} graph (it offers {', '.join(self.precisions)}): "
                f"make one with `ssps quantize MODEL_DIR`, or use precision 'fp32'"
            )
        variant = self.variants[precision]
        return variant.file, variant.sha256


def read_config(model_dir: str | Path) -> ModelConfig:
    """Read and validate ``config.json`` of a model directory."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{path} does not exist: is {model_dir} a model directory?")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read {path}: {err}") from err
    return ModelConfig.from_dict(data)


def write_config(model_dir: str | Path, config: ModelConfig) -> None:
    """Write ``config.json`` whole or not at all (a new file renamed over the old one)."""
    path = Path(model_dir) / CONFIG_FILE
    partial = path.with_name(CONFIG_FILE + ".partial")
    partial.write_text(config.to_json())
    os.replace(partial, path)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_onnx_integrity(model_dir: str | Path, config: ModelConfig, precision: str = FP32) -> Path:
    """Return the path of the ONNX graph for ``precision`` (model.onnx for fp32) after
    checking it against its sha256 in config.json."""
    name, expected = config.onnx_file(precision)
    onnx_path = Path(model_dir) / name
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path} does not exist: is {model_dir} a complete model directory?")
    actual = sha256_of(onnx_path)
    if actual != expected:
        raise ModelError(
            f"{onnx_path} does not match the sha256 in config.json (expected "
            f"{expected[:12]}..., found {actual[:12]}...): the file was modified or "
            "truncated. Download or export the model again."
        )
    return onnx_path
