"""int8 variants of a model directory for the benchmark, made by ssps.train.quantize.

Each variant is written as a complete model directory (a copy of the original with the new
``model.onnx`` and its sha256 in config.json), so ``ssps.load_model`` and the server can
load it exactly like the original. The quantisers themselves (static QDQ, the one
``ssps quantize`` ships; dynamic, for comparison) live in :mod:`ssps.train.quantize`.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import log
from ssps import model_dir as md
from ssps.train.quantize import calibration_clips, dynamic_int8, static_int8

__all__ = ["calibration_clips", "derived_model_dir", "make_variants"]


def derived_model_dir(source: Path, out: Path, suffix: str, write_onnx) -> Path:
    """Copy model directory ``source`` to ``out`` with a new model.onnx written by
    ``write_onnx(onnx_in, onnx_out) -> description``; config.json gets the new sha256
    (and no variants: the copy's one graph is the derived one)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(md.INT8_ONNX_FILE))
    onnx_path = out / md.ONNX_FILE
    description = write_onnx(source / md.ONNX_FILE, onnx_path)
    config = md.read_config(source)
    provenance = {**config.provenance, "derived_from": config.name, "quantization": description}
    md.write_config(out, replace(config, name=f"{config.name}-{suffix}", onnx_sha256=md.sha256_of(onnx_path),
                                 provenance=provenance, variants={}, default_precision=md.FP32))
    return out


def make_variants(model: Path, work: Path, clips: list[np.ndarray]) -> dict[str, Path | str]:
    """{"int8 static": dir, "int8 dynamic": dir}; a variant that fails maps to its error.
    When the model ships an int8 graph (``ssps quantize``), "int8 static" is that graph, so
    the figures are those of what users run."""
    config = md.read_config(model)

    def static(onnx_in: Path, onnx_out: Path) -> dict:
        if md.INT8 not in config.variants:
            return static_int8(onnx_in, onnx_out, clips)
        shutil.copyfile(md.check_onnx_integrity(model, config, md.INT8), onnx_out)
        return {**config.variants[md.INT8].method, "shipped": True}

    makers = {
        "int8 static": ("int8-static", static),
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
