"""int8 variants of a model directory, made with onnxruntime.quantization.

Each variant is written as a complete model directory (a copy of the original with the new
``model.onnx`` and its sha256 in config.json), so ``ssps.load_model`` and the server can
load it exactly like the original.

- static: QDQ format, per-channel int8 weights, uint8 activations (the u8 x s8 pairing that
  x86 VNNI kernels take), ranges calibrated (min-max) on real speech clips.
- dynamic: int8 weights, activation ranges computed at run time (ConvInteger / MatMulInteger).

Only Conv and Gemm are quantised: the log-mel frontend (STFT, mel MatMul, log) stays fp32,
since 8 bits cannot hold the dynamic range of a power spectrum.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import log
from ssps import model_dir as md

QUANTISED_OPS = ["Conv", "Gemm"]


def calibration_clips(manifest: Path | None, count: int, seconds: float, rate: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` clips of at most ``seconds`` of real speech: files drawn from a training
    manifest (CSV with a ``path`` column relative to its folder), or, without one, cuts of
    the speech file shipped with the recipe."""
    from ssps.audio import load_audio
    from ssps.train.export import parity_audio

    size = int(seconds * rate)
    if manifest is not None and Path(manifest).is_file():
        import csv

        with open(manifest, newline="") as f:
            paths = [row["path"] for row in csv.DictReader(f)]
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
        return [load_audio(Path(manifest).parent / paths[i], rate)[:size] for i in chosen]
    speech = parity_audio(rate)
    starts = np.linspace(0, max(len(speech) - size, 0), count).astype(int)
    return [speech[start : start + size] for start in starts]


class ClipReader:
    """The CalibrationDataReader interface: one clip [1, samples] per ``get_next``."""

    def __init__(self, clips: list[np.ndarray]):
        self._clips = iter([{md.INPUT_NAME: clip[None, :].astype(np.float32)} for clip in clips])

    def get_next(self):
        return next(self._clips, None)


def _preprocess(source: Path, target: Path) -> Path:
    """Shape inference + graph optimisation (folds BatchNorm into Conv) before quantising,
    as onnxruntime recommends; symbolic shape inference is skipped when it cannot follow
    the dynamic time axis through the frontend."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target))
    except Exception as err:  # noqa: BLE001 - the fallback below is the documented remedy
        log(f"quant_pre_process with symbolic shapes failed ({type(err).__name__}); retrying without")
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    # The exporter's value_info disagrees with onnx's own shape inference on some tensors,
    # which quantize_dynamic rejects; shapes are re-inferred anyway, so drop it.
    import onnx

    model = onnx.load(str(target))
    del model.graph.value_info[:]
    onnx.save(model, str(target))
    return target


def static_int8(onnx_in: Path, onnx_out: Path, clips: list[np.ndarray]) -> dict:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess(onnx_in, Path(tmp) / "prepared.onnx")
        quantize_static(
            str(prepared), str(onnx_out), ClipReader(clips),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTISED_OPS, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return {"method": "static QDQ, per-channel s8 weights, u8 activations, min-max calibration",
            "ops": QUANTISED_OPS, "calibration_clips": len(clips)}


def dynamic_int8(onnx_in: Path, onnx_out: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess(onnx_in, Path(tmp) / "prepared.onnx")
        # ConvInteger's CPU kernel takes uint8 weights only.
        quantize_dynamic(str(prepared), str(onnx_out), op_types_to_quantize=QUANTISED_OPS,
                         per_channel=True, weight_type=QuantType.QUInt8)
    return {"method": "dynamic, per-channel u8 weights", "ops": QUANTISED_OPS}


def derived_model_dir(source: Path, out: Path, suffix: str, write_onnx) -> Path:
    """Copy model directory ``source`` to ``out`` with a new model.onnx written by
    ``write_onnx(onnx_in, onnx_out) -> description``; config.json gets the new sha256."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    onnx_path = out / md.ONNX_FILE
    description = write_onnx(source / md.ONNX_FILE, onnx_path)
    config = md.read_config(source)
    provenance = {**config.provenance, "derived_from": config.name, "quantization": description}
    md.write_config(out, replace(config, name=f"{config.name}-{suffix}", onnx_sha256=md.sha256_of(onnx_path),
                                 provenance=provenance))
    return out


def make_variants(model: Path, work: Path, clips: list[np.ndarray]) -> dict[str, Path | str]:
    """{"int8 static": dir, "int8 dynamic": dir}; a variant that fails maps to its error."""
    makers = {
        "int8 static": ("int8-static", lambda src, dst: static_int8(src, dst, clips)),
        "int8 dynamic": ("int8-dynamic", dynamic_int8),
    }
    made: dict[str, Path | str] = {}
    for label, (suffix, write) in makers.items():
        log(f"quantising: {label}")
        try:
            made[label] = derived_model_dir(model, work / suffix, suffix, write)
        except Exception as err:  # reported in the tables, not fatal
            made[label] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
            log(f"{label} failed: {made[label]}")
    return made
