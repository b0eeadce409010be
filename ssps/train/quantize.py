"""int8 graphs of a model directory, made with onnxruntime.quantization.

    ssps quantize models/my-model --calibration-manifest data/corpus/train.csv \\
        --calibrate-trials data/corpus/trials_synth_cal.txt \\
        --check-trials data/corpus/trials_synth_dev.txt --root data/corpus/wav --set-default

writes ``model.int8.onnx`` beside ``model.onnx`` and lists it in config.json (``variants``,
with its sha256, how it was made, its own thresholds and calibration when
``--calibrate-trials`` is given, and the accuracy check it passed), so
``ssps.load_model(dir, precision="int8")`` and the server can run it. ``--set-default``
makes it the graph ``load_model`` runs by default, and is refused unless the check on a
trial list shows the EER rose by at most ``--accepted-eer-increase`` points and the
embeddings kept a median cosine of ``--min-cosine`` to fp32's.

Method (bench/ compares it with the alternatives, docs/benchmarks.md):

- static: QDQ format, per-channel int8 weights, uint8 activations (the u8 x s8 pairing that
  x86 VNNI kernels take), activation ranges calibrated (min-max) on real speech clips.
- dynamic (bench only): int8 weights, activation ranges computed at run time.

Only Conv and Gemm are quantised: the log-mel frontend (STFT, mel MatMul, log) stays fp32,
since 8 bits cannot hold the dynamic range of a power spectrum. The embedding head (the
encoder's ``pooling`` and ``output`` modules) stays fp32 too: quantised, it shifted every
cosine score up by ~0.009 on synth_dev (the int8 EER rose 0.22 points and false accepts at the
fp32 threshold 3 points); kept in fp32, by ~0.003, for ~10 % of the FLOPs. Needs the ``onnx``
package (the [train] extra), not torch.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ssps import model_dir as md
from ssps.errors import ConfigError, ModelError, SSPSError

log = logging.getLogger(__name__)

QUANTISED_OPS = ["Conv", "Gemm"]
# Encoder modules kept in fp32 (both encoders name their head so): attention pooling and the
# embedding layer. The exporter records each node's module path in its metadata.
HEAD_MODULES = ("pooling", "output")
CALIBRATION_SECONDS = 3.0
DEFAULT_CALIBRATION_CLIPS = 32
# An int8 graph may replace fp32 by default when, on the same trials, its EER is at most
# this many points (absolute) higher and its embeddings keep this median cosine to fp32's.
ACCEPTED_EER_INCREASE = 0.5
MIN_MEDIAN_COSINE = 0.99


# --- calibration audio -------------------------------------------------------------------


def calibration_clips(manifest: Path | None, count: int, seconds: float, rate: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` clips of at most ``seconds`` of real speech: files drawn (seeded) from a
    manifest (CSV with a ``path`` column relative to its folder), or, without one, cuts of
    the speech file shipped with the recipe."""
    from ssps.audio import load_audio

    size = int(seconds * rate)
    if manifest is not None:
        from ssps.evaluation.trials import read_manifest_paths

        return [load_audio(path, rate)[:size] for path in read_manifest_paths(manifest, count, seed)]
    speech = _shipped_speech(rate)
    starts = np.linspace(0, max(len(speech) - size, 0), count).astype(int)
    return [speech[start : start + size] for start in starts]


def _shipped_speech(rate: int) -> np.ndarray:
    """The 10.5 s of real speech the exporter's parity check uses (ssps/train/assets)."""
    from importlib import resources

    from ssps.audio import load_audio

    with resources.as_file(resources.files("ssps.train") / "assets" / "parity_speech.flac") as path:
        return load_audio(path, rate)


class ClipReader:
    """onnxruntime's CalibrationDataReader interface: one clip [1, samples] per ``get_next``."""

    def __init__(self, clips: list[np.ndarray]):
        self._clips = iter([{md.INPUT_NAME: clip[None, :].astype(np.float32)} for clip in clips])

    def get_next(self):
        return next(self._clips, None)


# --- quantisers --------------------------------------------------------------------------


def _preprocess(source: Path, target: Path) -> Path:
    """Shape inference + graph optimisation (folds BatchNorm into Conv) before quantising,
    as onnxruntime recommends; symbolic shape inference is skipped when it cannot follow
    the dynamic time axis through the frontend."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target))
    except Exception as err:  # noqa: BLE001 - the fallback below is the documented remedy
        log.info("quant_pre_process with symbolic shapes failed (%s); retrying without", type(err).__name__)
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    # The exporter's value_info disagrees with onnx's own shape inference on some tensors,
    # which quantize_dynamic rejects; shapes are re-inferred anyway, so drop it.
    model = onnx.load(str(target))
    del model.graph.value_info[:]
    onnx.save(model, str(target))
    return target


def embedding_head_nodes(onnx_path: Path) -> list[str]:
    """Names of the Conv/Gemm nodes inside the encoder's HEAD_MODULES, read from the module
    path the exporter stores in each node's ``pkg.torch.onnx.name_scopes`` metadata."""
    import ast

    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    heads = tuple(f".encoder.{name}" for name in HEAD_MODULES)
    names = []
    for node in graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "[]")
        if node.op_type in QUANTISED_OPS and any(scope.endswith(heads) for scope in ast.literal_eval(scopes)):
            names.append(node.name)
    return names


def static_int8(onnx_in: Path, onnx_out: Path, clips: list[np.ndarray], keep_head_fp32: bool = True) -> dict:
    """Write the static QDQ int8 graph of ``onnx_in``; return how it was made."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not clips:
        raise ConfigError("static int8 quantisation needs at least one calibration clip")
    fp32_nodes = embedding_head_nodes(onnx_in) if keep_head_fp32 else []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess(onnx_in, Path(tmp) / "prepared.onnx")
        quantize_static(
            str(prepared), str(onnx_out), ClipReader(clips),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTISED_OPS, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=fp32_nodes,
        )
    return {"method": "static QDQ, per-channel s8 weights, u8 activations, min-max calibration",
            "ops": QUANTISED_OPS, "fp32_nodes": fp32_nodes, "calibration_clips": len(clips)}


def dynamic_int8(onnx_in: Path, onnx_out: Path) -> dict:
    """Write the dynamic int8 graph of ``onnx_in`` (weights int8, activations at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess(onnx_in, Path(tmp) / "prepared.onnx")
        # ConvInteger's CPU kernel takes uint8 weights only.
        quantize_dynamic(str(prepared), str(onnx_out), op_types_to_quantize=QUANTISED_OPS,
                         per_channel=True, weight_type=QuantType.QUInt8)
    return {"method": "dynamic, per-channel u8 weights", "ops": QUANTISED_OPS}


# --- the model-directory operation -------------------------------------------------------


def add_int8_variant(model_dir: Path, clips: list[np.ndarray], calibration_source: str) -> md.ModelConfig:
    """Quantise ``model_dir/model.onnx`` into ``model.int8.onnx`` and list it in config.json
    (replacing an earlier int8 graph; its accuracy check, if any, is dropped with it)."""
    config = md.read_config(model_dir)
    fp32_path = md.check_onnx_integrity(model_dir, config)
    target = model_dir / md.INT8_ONNX_FILE
    partial = target.with_name(target.name + ".partial")
    try:
        method = static_int8(fp32_path, partial, clips)
        partial.replace(target)  # whole or not at all
    finally:
        partial.unlink(missing_ok=True)
    method["calibration_audio"] = calibration_source
    variant = md.Variant(file=md.INT8_ONNX_FILE, sha256=md.sha256_of(target), method=method)
    default = config.default_precision if config.default_precision != md.INT8 else md.FP32  # re-earned by a check
    config = replace(config, variants={**config.variants, md.INT8: variant}, default_precision=default)
    md.write_config(model_dir, config)
    return config


def _read_trial_list(trials_path: Path, max_trials: int | None):
    """The trials of a list, at most ``max_trials`` of them (drawn with a fixed seed)."""
    from ssps.metrics import read_trials

    trials = read_trials(trials_path)
    if max_trials is not None and len(trials) > max_trials:
        trials = [trials[i] for i in sorted(np.random.default_rng(0).choice(len(trials), max_trials, replace=False))]
    return trials


def _score_with(model_dir: Path, precision: str, trials, root: Path, threads: int | None):
    """(the loaded model, {path: embedding}, scored trials) with the graph of ``precision``,
    through the same embedding and scoring code as ``ssps eval``."""
    import warnings

    import ssps
    from ssps.evaluation.embedding import embed_files
    from ssps.evaluation.trials import score_trials, trial_paths

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)  # a test model's check is still a check
        model = ssps.load_model(model_dir, precision=precision, threads=threads)
    embeddings, failures = embed_files(model, trial_paths(trials, root), progress=False, description=precision)
    if failures:
        path, message = next(iter(failures.items()))
        raise ConfigError(f"{len(failures)} trial files cannot be embedded under --root {root} (first: {path}: {message}): "
                          "pass the folder the trial paths are relative to")
    return model, embeddings, score_trials(precision, trials, root, embeddings)


def calibrate_int8(model_dir: Path, trials_path: Path, root: Path, threads: int | None = None,
                   max_trials: int | None = None) -> md.ModelConfig:
    """Fit the int8 graph's own thresholds and calibration on a trial list (as ``ssps
    calibrate`` does for fp32) and store them with the int8 variant."""
    from ssps.evaluation.calibration import calibrate_model_dir
    from ssps.evaluation.trials import COSINE

    trials = _read_trial_list(trials_path, max_trials)
    _, _, scored = _score_with(model_dir, md.INT8, trials, root, threads)
    measured_on = f"{trials_path.name} ({len(trials)} trials)"
    return calibrate_model_dir(model_dir, scored.systems[COSINE], scored.labels, measured_on, precision=md.INT8)


def check_against_fp32(model_dir: Path, trials_path: Path, root: Path, threads: int | None = None,
                       max_trials: int | None = None) -> dict:
    """Score a trial list with the fp32 and the int8 graph: EER of each, error rates of each
    at its own default threshold, and the cosine between their embeddings."""
    from ssps.evaluation.trials import COSINE
    from ssps.metrics import equal_error_rate
    from ssps.scoring import rates_at

    trials = _read_trial_list(trials_path, max_trials)
    embeddings, result = {}, {"trials": f"{trials_path.name} ({len(trials)} trials)"}
    for precision in (md.FP32, md.INT8):
        model, embeddings[precision], scored = _score_with(model_dir, precision, trials, root, threads)
        scores, threshold = scored.systems[COSINE], model.threshold()
        false_accept, false_reject = rates_at(scores, scored.labels, threshold)
        result[precision] = {
            "eer": round(100 * equal_error_rate(scores, scored.labels)[0], 3),
            "threshold": round(threshold, 6),
            "false_accept_at_threshold": round(false_accept, 4),
            "false_reject_at_threshold": round(false_reject, 4),
        }
    cosines = [float(embeddings[md.FP32][path] @ embeddings[md.INT8][path]) for path in embeddings[md.FP32]]
    result["cosine_to_fp32"] = {"median": round(statistics.median(cosines), 6), "min": round(min(cosines), 6)}
    result["eer_increase"] = round(result[md.INT8]["eer"] - result[md.FP32]["eer"], 3)
    return result


def shortfalls(check: dict, max_eer_increase: float = ACCEPTED_EER_INCREASE, min_cosine: float = MIN_MEDIAN_COSINE) -> list[str]:
    """Why the int8 graph does not keep accuracy (empty: it does)."""
    reasons = []
    if check["eer_increase"] > max_eer_increase:
        reasons.append(f"its EER rose by {check['eer_increase']:+.2f} points (accepted: +{max_eer_increase})")
    if check["cosine_to_fp32"]["median"] < min_cosine:
        reasons.append(f"the median cosine of its embeddings to fp32's is {check['cosine_to_fp32']['median']:.4f} (accepted: >= {min_cosine})")
    return reasons


def record_check(model_dir: Path, check: dict, set_default: bool, max_eer_increase: float = ACCEPTED_EER_INCREASE,
                 min_cosine: float = MIN_MEDIAN_COSINE) -> md.ModelConfig:
    """Store the check with the int8 variant; make int8 the default if asked and accepted
    (refused with ModelError otherwise, after the check is stored)."""
    config = md.read_config(model_dir)
    reasons = shortfalls(check, max_eer_increase, min_cosine)
    accuracy = {**check, "accepted_eer_increase": max_eer_increase, "accepted_min_cosine": min_cosine, "accepted": not reasons}
    variant = replace(config.variants[md.INT8], accuracy=accuracy)
    default = md.INT8 if set_default and not reasons else config.default_precision
    config = replace(config, variants={**config.variants, md.INT8: variant}, default_precision=default)
    md.write_config(model_dir, config)
    if set_default and reasons:
        raise ModelError(f"int8 not made the default: {'; '.join(reasons)}. model.int8.onnx stays available with precision='int8'")
    return config


# --- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssps quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="model directory (model.onnx + config.json); model.int8.onnx is written into it")
    parser.add_argument("--calibration-manifest", type=Path,
                        help="manifest CSV (path column) of speech to calibrate activation ranges on; default: the speech shipped with ssps")
    parser.add_argument("--calibration-clips", type=int, default=DEFAULT_CALIBRATION_CLIPS, help="clips drawn from the manifest")
    parser.add_argument("--calibrate-trials", type=Path,
                        help="development trial list to fit the int8 graph's own thresholds and calibration on (as `ssps calibrate`)")
    parser.add_argument("--check-trials", type=Path, help="trial list (label a b) to compare int8 with fp32 on")
    parser.add_argument("--root", type=Path, help="folder the trial paths are relative to (default: each trial list's folder)")
    parser.add_argument("--max-trials", type=int, help="score at most this many trials (drawn with a fixed seed)")
    parser.add_argument("--accepted-eer-increase", type=float, default=ACCEPTED_EER_INCREASE,
                        help="most EER points int8 may add over fp32 to count as accurate (default: %(default)s)")
    parser.add_argument("--min-cosine", type=float, default=MIN_MEDIAN_COSINE,
                        help="least median cosine between int8 and fp32 embeddings to count as accurate (default: %(default)s)")
    parser.add_argument("--set-default", action="store_true", help="make int8 the default precision if the check accepts it")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads for the check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _quantize(args)
    except SSPSError as err:
        print(f"ssps quantize: error: {err}", file=sys.stderr)
    except ModuleNotFoundError as err:  # onnxruntime.quantization imports onnx only when used
        print(f"ssps quantize needs {err.name!r}, which is not installed: pip install 'ssps[train]'", file=sys.stderr)
    return 2


def _quantize(args: argparse.Namespace) -> int:
    if args.set_default and args.check_trials is None:
        raise ConfigError("--set-default needs --check-trials: int8 becomes the default only after its accuracy is measured")
    if args.calibration_clips < 1:
        raise ConfigError(f"--calibration-clips must be >= 1, got {args.calibration_clips}")
    if not (args.model_dir / md.CONFIG_FILE).is_file():
        raise ModelError(f"{args.model_dir} is not a model directory (no {md.CONFIG_FILE})")
    rate = md.read_config(args.model_dir).sample_rate
    source = str(args.calibration_manifest) if args.calibration_manifest else "ssps/train/assets/parity_speech.flac"
    clips = calibration_clips(args.calibration_manifest, args.calibration_clips, CALIBRATION_SECONDS, rate)
    log.info("quantising %s on %d calibration clips of %s", args.model_dir, len(clips), source)
    config = add_int8_variant(args.model_dir, clips, source)
    print(f"wrote {args.model_dir / md.INT8_ONNX_FILE} (sha256 {config.variants[md.INT8].sha256[:12]}...)")
    if args.calibrate_trials is not None:
        scoring = calibrate_int8(args.model_dir, args.calibrate_trials, args.root or args.calibrate_trials.parent,
                                 args.threads, args.max_trials)
        print(f"int8 calibration on {args.calibrate_trials.name}: P(same speaker) = sigmoid({scoring.calibration.scale:.4f} * score "
              f"{scoring.calibration.offset:+.4f}); thresholds "
              + ", ".join(f"{name} {t.value:.4f}" for name, t in scoring.thresholds.items()))
    else:
        print("int8 uses fp32's thresholds and calibration: pass --calibrate-trials to fit its own")
    if args.check_trials is None:
        print("not checked: pass --check-trials to measure its accuracy against fp32")
        return 0
    root = args.root or args.check_trials.parent
    check = check_against_fp32(args.model_dir, args.check_trials, root, args.threads, args.max_trials)
    for precision in (md.FP32, md.INT8):
        r = check[precision]
        print(f"{precision}: EER {r['eer']:.2f} %; at its default threshold ({r['threshold']:.4f}) false accepts "
              f"{100 * r['false_accept_at_threshold']:.2f} %, false rejects {100 * r['false_reject_at_threshold']:.2f} %")
    print(f"int8 - fp32: EER {check['eer_increase']:+.2f} points (accepted: +{args.accepted_eer_increase}); cosine to fp32 "
          f"median {check['cosine_to_fp32']['median']:.5f}, min {check['cosine_to_fp32']['min']:.5f}")
    config = record_check(args.model_dir, check, args.set_default, args.accepted_eer_increase, args.min_cosine)
    print(f"default precision: {config.default_precision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
