"""The ways to turn a batch of waveforms into embeddings that the benchmark compares.

A :class:`Variant` embeds ``[batch, samples]`` float32 at 16 kHz into ``[batch, dim]``.
Variants that share ``numerics`` compute the same function (e.g. one ONNX graph with
different thread settings), so their accuracy is measured once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssps import model_dir as md

# The reference every speed and accuracy ratio is taken against: model.onnx as
# ssps.load_model(ref, precision="fp32") runs it.
FP32_BASELINE = "ONNX Runtime fp32 (ssps)"
# Which GEMM of bench/gemm.py bounds each variant's arithmetic.
PEAK_TORCH_FP32, PEAK_TORCH_BF16 = "torch fp32", "torch bf16"
PEAK_ORT_FP32, PEAK_ORT_INT8 = "ONNX Runtime fp32", "ONNX Runtime int8 (u8 x s8)"
ORT_LEVELS = ("disabled", "basic", "extended", "all")


@dataclass
class Variant:
    name: str
    embed: Callable[[np.ndarray], np.ndarray]  # [B, samples] -> [B, dim]
    numerics: str  # variants with equal numerics share one accuracy measurement
    torch_free: bool  # runs on the package's onnxruntime-only inference path
    peak: str | None = None  # the GEMM row of bench/gemm.py its GFLOP/s compare with
    embed_file: Callable[[np.ndarray], np.ndarray] | None = None  # one whole clip -> [dim]; default: embed

    def embed_one(self, waveform: np.ndarray) -> np.ndarray:
        if self.embed_file is not None:
            return self.embed_file(waveform)
        return self.embed(waveform[None, :])[0]


def torch_variant(module, bf16: bool) -> Variant:
    """PyTorch eager; ``bf16``: autocast to bfloat16 (matmuls and convolutions in bf16)."""
    import torch

    def embed(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).float().numpy()

    name = "PyTorch eager bf16 (autocast)" if bf16 else "PyTorch eager fp32"
    # fp32 eager computes what the ONNX graph computes (export checks cosine >= 0.9999).
    return Variant(name, embed, "bf16" if bf16 else "fp32", False, PEAK_TORCH_BF16 if bf16 else PEAK_TORCH_FP32)


def ort_session(onnx_path: Path, level: str = "all", threads: int | None = None, spinning: bool = True):
    """An ONNX Runtime CPU session. ``threads`` None: ORT's choice (the physical cores);
    ``spinning`` False: idle worker threads sleep instead of busy-waiting for work."""
    import onnxruntime as ort

    levels = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = levels[level]
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def session_variant(name: str, session, numerics: str, peak: str) -> Variant:
    def embed(batch: np.ndarray) -> np.ndarray:
        return session.run([md.OUTPUT_NAME], {md.INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return Variant(name, embed, numerics, True, peak)


def fp32_baseline(model_ref: str) -> Variant:
    """Exactly what ``ssps.load_model(ref, precision="fp32")`` runs."""
    import warnings

    import ssps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        model = ssps.load_model(model_ref, precision="fp32")
    return Variant(FP32_BASELINE, model.embed_windows, "fp32", True, PEAK_ORT_FP32)


def resemblyzer_variant() -> Variant:
    """Resemblyzer's GE2E encoder (an outside reference; its own weights, not our model).
    Timed on the raw clips one by one (it has no batch API for utterances); accuracy uses
    its intended preprocessing (volume normalisation + its VAD trim)."""
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)

    def embed(batch: np.ndarray) -> np.ndarray:
        return np.stack([encoder.embed_utterance(np.asarray(clip, dtype=np.float32)) for clip in batch])

    def embed_file(waveform: np.ndarray) -> np.ndarray:
        return encoder.embed_utterance(preprocess_wav(waveform, source_sr=16000))

    return Variant("Resemblyzer (GE2E, reference)", embed, "resemblyzer", False, PEAK_TORCH_FP32, embed_file)


def build(model_ref: str, model_dir: Path, quantised: dict[str, Path | str], with_resemblyzer: bool = True) -> tuple[list[Variant], dict[str, str]]:
    """The main contenders, and {name: error} for those that could not be built."""
    from ssps.train.export import load_torch_model

    module = load_torch_model(model_dir)
    variants = [torch_variant(module, bf16=False), torch_variant(module, bf16=True), fp32_baseline(model_ref)]
    errors: dict[str, str] = {}
    for label, made in quantised.items():
        name = f"ONNX Runtime {label}"
        if isinstance(made, str):
            errors[name] = made
            continue
        variants.append(session_variant(name, ort_session(made / md.ONNX_FILE), label, PEAK_ORT_INT8))
    if with_resemblyzer:
        try:
            variants.append(resemblyzer_variant())
        except ImportError as err:
            errors["Resemblyzer (GE2E, reference)"] = f"not installed ({err}); pip install resemblyzer"
    return variants, errors


def settings_variants(fp32_onnx: Path, int8_onnx: Path | None, threads: int) -> list[Variant]:
    """ONNX Runtime session settings around the fp32 baseline: graph optimisation
    level, intra-op threads, thread spinning; the same for the int8 static graph."""
    variants = []
    for level in ORT_LEVELS:
        variants.append(session_variant(f"fp32, optimisation {level}, {threads} threads", ort_session(fp32_onnx, level, threads), "fp32", PEAK_ORT_FP32))
    graphs = [("fp32", fp32_onnx, PEAK_ORT_FP32)] + ([("int8 static", int8_onnx, PEAK_ORT_INT8)] if int8_onnx else [])
    for label, path, peak in graphs:
        variants.append(session_variant(f"{label}, optimisation all, 1 thread", ort_session(path, "all", 1), label, peak))
        variants.append(session_variant(f"{label}, optimisation all, {threads} threads, no spinning",
                                        ort_session(path, "all", threads, spinning=False), label, peak))
    if int8_onnx:
        variants.append(session_variant(f"int8 static, optimisation all, {threads} threads", ort_session(int8_onnx, "all", threads), "int8 static", PEAK_ORT_INT8))
    return variants
