"""Export a trained (or random-init) speaker encoder to a model directory.

    export_model("runs/simclr", "models/my-model")          # from a training run directory
    export_model("w.safetensors", "out", train_config="c.yaml")  # from weights + config
    export_model(None, "out", train_config={"model": ...})   # random init, marked untrained

The directory is built in a temporary folder beside ``out_dir`` and renamed into place only
after ONNX Runtime and PyTorch agree (cosine >= 0.9999) on real speech of several lengths,
so a failed export never leaves a half-written model directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import yaml

from ssps import model_dir as md
from ssps.errors import ConfigError, ModelError
from ssps.train.checkpoint import load_weights, save_weights
from ssps.train.model import ModelSpec, NormalizedEmbedding, SpeakerEncoder

RUN_CONFIG = "train_config.yaml"
RUN_WEIGHTS = "encoder.safetensors"
ONNX_OPSET = 18
PARITY_MIN_COSINE = 0.9999
PARITY_SECONDS = (1.0, 3.0, 10.0)
PARITY_BATCH = 8


def export_model(
    source: str | Path | None,
    out_dir: str | Path,
    *,
    train_config: str | Path | dict[str, Any] | None = None,
    name: str | None = None,
    thresholds: dict[str, md.Threshold] | None = None,
    calibration: md.Calibration | None = None,
    min_duration: float = 0.5,
    max_duration: float = 20.0,
    window_hop: float = 10.0,
    training_summary: dict[str, Any] | None = None,
    overwrite: bool = False,
    seed: int = 0,
) -> Path:
    """Write a model directory at ``out_dir`` and return its path.

    ``source`` is a training run directory (``train_config.yaml`` + ``encoder.safetensors``),
    a ``.safetensors`` file (then ``train_config`` is required), or None for a random-init
    encoder built from ``train_config`` (marked untrained in config.json and the card).
    """
    out_dir = Path(out_dir)
    config, weights_path = _resolve_source(source, train_config)
    spec = ModelSpec.from_dict(config.get("model", {}))
    config = {**config, "model": spec.to_dict()}  # store the resolved spec, defaults included
    encoder = SpeakerEncoder(spec)
    untrained = weights_path is None
    if untrained:
        torch.manual_seed(seed)
        encoder = SpeakerEncoder(spec)
    else:
        load_weights(encoder, weights_path)
    encoder.eval()

    _check_destination(out_dir, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a model directory is meant to be shared
    try:
        started = time.perf_counter()
        onnx_path = staging / md.ONNX_FILE
        export_onnx(NormalizedEmbedding(encoder).eval(), onnx_path, spec.frontend.sample_rate)
        save_weights(encoder, staging / md.WEIGHTS_FILE)
        (staging / md.TRAIN_CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
        model_config = md.ModelConfig(
            sample_rate=spec.frontend.sample_rate,
            embedding_dim=encoder.embedding_dim,
            frontend=spec.frontend.to_dict(),
            encoder=dict(spec.encoder),
            onnx_sha256=md.sha256_of(onnx_path),
            min_duration=min_duration,
            max_duration=max_duration,
            window_hop=window_hop,
            thresholds=dict(thresholds or {}),
            calibration=calibration,
            untrained=untrained,
            name=name or out_dir.name,
            provenance=_provenance(source),
            training=dict(training_summary or {}),
        )
        md.write_config(staging, model_config)
        (staging / md.CARD_FILE).write_text(model_card_stub(model_config, encoder))
        worst = check_parity(encoder, onnx_path, spec.frontend.sample_rate)
        model_config.provenance["parity_min_cosine"] = worst
        model_config.provenance["export_seconds"] = round(time.perf_counter() - started, 1)
        md.write_config(staging, model_config)
        _move_into_place(staging, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def export_onnx(module: torch.nn.Module, path: Path, sample_rate: int) -> None:
    """ONNX graph with dynamic batch and time axes: waveform [B, T] -> embedding [B, D]."""
    example = torch.zeros(2, 3 * sample_rate)
    dims = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("samples", min=sample_rate // 10)}
    # The exporter warns about every torchvision operator it cannot register; not our concern.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=[md.INPUT_NAME],
            output_names=[md.OUTPUT_NAME],
            dynamic_shapes={"waveform": dims},
            verbose=False,
        )
    program.save(str(path))


def parity_audio(sample_rate: int) -> np.ndarray:
    """10.5 s of real speech shipped with the recipe (see assets/README.md)."""
    with resources.as_file(resources.files("ssps.train") / "assets" / "parity_speech.flac") as path:
        audio, rate = sf.read(path, dtype="float32")
    if rate != sample_rate:
        import soxr

        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    return audio


def check_parity(encoder: SpeakerEncoder, onnx_path: Path, sample_rate: int) -> float:
    """Run PyTorch and ONNX Runtime on real speech; raise if any cosine < 0.9999."""
    import onnxruntime as ort

    speech = parity_audio(sample_rate)
    rng = np.random.default_rng(0)
    batches = [speech[None, : int(s * sample_rate)] for s in PARITY_SECONDS]
    starts = rng.integers(0, len(speech) - 3 * sample_rate, PARITY_BATCH)
    batches.append(np.stack([speech[s : s + 3 * sample_rate] for s in starts]))

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = NormalizedEmbedding(encoder).eval()
    worst = 1.0
    for batch in batches:
        onnx_out = session.run([md.OUTPUT_NAME], {md.INPUT_NAME: batch.astype(np.float32)})[0]
        with torch.no_grad():
            torch_out = reference(torch.from_numpy(batch)).numpy()
        cosine = np.sum(onnx_out * torch_out, axis=1) / (
            np.linalg.norm(onnx_out, axis=1) * np.linalg.norm(torch_out, axis=1)
        )
        worst = min(worst, float(cosine.min()))
        if cosine.min() < PARITY_MIN_COSINE:
            raise ModelError(
                f"ONNX and PyTorch disagree on a batch of shape {batch.shape}: cosine {cosine.min():.6f} "
                f"< {PARITY_MIN_COSINE}. The export is not trustworthy; please report this with the config."
            )
    return worst


def load_torch_model(model_dir: str | Path) -> NormalizedEmbedding:
    """The PyTorch module (waveform -> L2-normalised embedding) of a model directory or of
    a finished training run directory (``encoder.safetensors``)."""
    model_dir = Path(model_dir)
    config_path = model_dir / md.TRAIN_CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(f"{config_path} does not exist: the model directory has no training config")
    spec = ModelSpec.from_dict(_read_yaml(config_path).get("model", {}))
    encoder = SpeakerEncoder(spec)
    weights = model_dir / md.WEIGHTS_FILE
    if not weights.is_file() and (model_dir / RUN_WEIGHTS).is_file():
        weights = model_dir / RUN_WEIGHTS
    load_weights(encoder, weights)
    return NormalizedEmbedding(encoder).eval()


def model_card_stub(config: md.ModelConfig, encoder: SpeakerEncoder) -> str:
    params = sum(p.numel() for p in encoder.parameters())
    status = (
        "**UNTRAINED: random-init weights, for tests only. Its scores mean nothing.**"
        if config.untrained
        else "Trained with the ssps recipe; see training summary below."
    )
    thresholds = "\n".join(
        f"- `{key}`: {t.value:.4f} (measured on {t.measured_on})" for key, t in config.thresholds.items()
    ) or "- none measured yet: pass a threshold explicitly."
    return f"""# {config.name}

{status}

- Encoder: `{config.encoder.get('name')}` ({params / 1e6:.2f}M parameters), embedding dim {config.embedding_dim}
- Input: mono waveform at {config.sample_rate} Hz; log-mel frontend inside the ONNX graph
  ({config.frontend['n_mels']} mels, {config.frontend['win_length']}-sample Hamming window,
  hop {config.frontend['hop_length']}).
- Useful durations: at least {config.min_duration} s; audio longer than {config.max_duration} s
  is embedded in windows (hop {config.window_hop} s) and averaged.

## Thresholds

{thresholds}

## Training data, metrics and limits

To be written by whoever publishes this model: data and licences, metrics with the command
that measured them, known limits.
"""


def _resolve_source(source, train_config) -> tuple[dict[str, Any], Path | None]:
    if isinstance(train_config, dict):
        config = train_config
    elif train_config is not None:
        config = _read_yaml(Path(train_config))
    else:
        config = None
    if source is None:
        if config is None:
            raise ConfigError("exporting a random-init encoder needs train_config (its model: section)")
        return config, None
    source = Path(source)
    if source.is_dir():
        weights = source / RUN_WEIGHTS
        if config is None:
            config = _read_yaml(source / RUN_CONFIG)
        if not weights.is_file():
            raise ModelError(f"{source} has no {RUN_WEIGHTS}: is it a finished training run directory?")
        return config, weights
    if source.is_file():
        if config is None:
            raise ConfigError(f"exporting {source} needs the training config that built it (train_config=...)")
        return config, source
    raise ModelError(f"{source} does not exist: give a run directory or a .safetensors file")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a YAML mapping")
    return data


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not overwrite:
        raise ModelError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelError(f"cannot create {out_dir.parent}: {err}") from err
    if not os.access(out_dir.parent, os.W_OK):
        raise ModelError(f"{out_dir.parent} is not writable: choose another output directory")


def _move_into_place(staging: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and overwrite:
        # Keep the old directory until the new one is in place: never both missing.
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def _provenance(source) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        commit = ""  # not a git checkout (an installed package), or no commit yet
    from ssps import __version__

    return {
        "source": str(source) if source is not None else "random-init",
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ssps_version": __version__,
        "torch_version": torch.__version__,
        "git_commit": commit or None,
    }


def cli_main(argv: list[str] | None = None) -> int:
    """``ssps export RUN_DIR -o models/NAME``."""
    parser = argparse.ArgumentParser(prog="ssps export", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="training run directory or .safetensors weights")
    parser.add_argument("-o", "--output", required=True, help="model directory to write")
    parser.add_argument("--config", help="training config YAML (needed with a .safetensors source)")
    parser.add_argument("--untrained", action="store_true", help="export a random-init encoder from --config")
    parser.add_argument("--name", help="model name written in config.json (default: output folder name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    args = parser.parse_args(argv)
    if args.untrained == bool(args.source):
        parser.error("give either SOURCE or --untrained --config CONFIG")
    try:
        started = time.perf_counter()
        out = export_model(
            None if args.untrained else args.source,
            args.output,
            train_config=args.config,
            name=args.name,
            overwrite=args.overwrite,
        )
    except (ConfigError, ModelError) as err:
        print(f"ssps export: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return 0
