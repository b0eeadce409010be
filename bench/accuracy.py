"""Does a faster variant cost accuracy? EER on a bounded, balanced subset of a trial list,
and the cosine between each file's embedding and the fp32 baseline's embedding.

Accepted loss (the verdict column): EER at most ``MAX_EER_LOSS`` points (absolute) above
the fp32 baseline (ssps.load_model with precision fp32) on the same trials, and median cosine to its embeddings at least
``MIN_COSINE``. The EER of a few hundred trials is coarse (one target trial of 300 moves
it by ~0.7 points), but all variants score the same trials, so the difference is paired.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import log, table
from bench.variants import FP32_BASELINE, Variant
from ssps.train.quantize import ACCEPTED_EER_INCREASE, MIN_MEDIAN_COSINE

# The accepted loss is the one `ssps quantize --set-default` applies: one rule, one place.
MAX_EER_LOSS = ACCEPTED_EER_INCREASE  # EER points (%), absolute
MIN_COSINE = MIN_MEDIAN_COSINE


def trial_subset(path: Path, count: int, seed: int = 0):
    """``count`` trials (half targets, half non-targets where possible), fixed seed."""
    from ssps.metrics import read_trials

    trials = read_trials(path)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in (1, 0):
        pool = [t for t in trials if t.label == label]
        take = min(len(pool), count // 2 if label else count - count // 2)
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=take, replace=False))]
    return chosen


def load_waveforms(trials, root: Path) -> dict[str, np.ndarray]:
    from ssps.audio import load_audio

    files = sorted({t.enrollment for t in trials} | {t.test for t in trials})
    return {f: load_audio(root / f, 16_000) for f in files}


def _scores(embeddings: dict[str, np.ndarray], trials) -> np.ndarray:
    unit = {f: e / np.linalg.norm(e) for f, e in embeddings.items()}
    return np.array([float(unit[t.enrollment] @ unit[t.test]) for t in trials])


def evaluate(variants: list[Variant], trials, waveforms: dict[str, np.ndarray], baseline: str = FP32_BASELINE,
             skip: dict[str, str] | None = None) -> dict[str, dict]:
    """{numerics: {"eer", "cos_median", "cos_min", "seconds", "by"}}: each distinct
    numerics is measured once, with the first variant that has it; numerics in ``skip``
    are reported with the reason given instead."""
    from ssps.metrics import equal_error_rate

    labels = np.array([t.label for t in trials])
    order = sorted(variants, key=lambda v: v.name != baseline)  # the reference first
    reference: dict[str, np.ndarray] | None = None
    results: dict[str, dict] = {}
    for variant in order:
        if variant.numerics in results:
            continue
        if variant.numerics in (skip or {}):
            results[variant.numerics] = {"error": skip[variant.numerics], "by": variant.name}
            continue
        log(f"accuracy: {variant.name} on {len(trials)} trials ({len(waveforms)} files)")
        started = time.perf_counter()
        try:
            embeddings = {f: variant.embed_one(w) for f, w in waveforms.items()}
        except Exception as err:  # reported in the table
            results[variant.numerics] = {"error": f"{type(err).__name__}: {str(err)[:160]}", "by": variant.name}
            continue
        elapsed = time.perf_counter() - started
        result = {"eer": 100 * equal_error_rate(_scores(embeddings, trials), labels)[0], "seconds": elapsed, "by": variant.name}
        if reference is None and variant.name == baseline:
            reference = embeddings
        if reference is not None and variant.numerics != "resemblyzer":
            cosines = [float(embeddings[f] @ reference[f] / np.linalg.norm(embeddings[f]) / np.linalg.norm(reference[f])) for f in waveforms]
            result.update(cos_median=statistics.median(cosines), cos_min=min(cosines))
        results[variant.numerics] = result
    return results


def keeps_accuracy(result: dict, reference: dict) -> bool:
    return ("eer" in result and result["eer"] - reference["eer"] <= MAX_EER_LOSS
            and result.get("cos_median", 0.0) >= MIN_COSINE)


def verdict(variant: Variant, results: dict[str, dict], baseline: str = FP32_BASELINE) -> str:
    result = results.get(variant.numerics)
    reference = next((r for r in results.values() if r.get("by") == baseline), None)
    if result is None or "error" in result:
        return "not measured"
    if variant.numerics == "resemblyzer":
        return "another model (reference)"
    if reference is None:
        return "no reference"
    return "yes" if keeps_accuracy(result, reference) else "**no**"


def markdown(variants: list[Variant], results: dict[str, dict], trial_file: Path, trials, baseline: str = FP32_BASELINE) -> str:
    reference = next((r for r in results.values() if r.get("by") == baseline), {})
    rows = []
    for v in variants:
        r = results.get(v.numerics, {})
        if "error" in r:
            rows.append((v.name, "skipped" if r["error"].startswith("skipped") else "failed", r["error"], "", "", "not measured"))
            continue
        eer = f"{r['eer']:.2f}" if "eer" in r else "n/a"
        delta = f"{r['eer'] - reference['eer']:+.2f}" if "eer" in r and "eer" in reference and v.numerics != "resemblyzer" else ""
        cosine = f"{r['cos_median']:.5f} / {r['cos_min']:.5f}" if "cos_median" in r else "n/a"
        shared = "" if r.get("by") == v.name else f" (as {r.get('by')})"
        rows.append((v.name + shared, eer, delta, cosine, f"{r['seconds']:.0f}" if "seconds" in r else "", verdict(v, results, baseline)))
    targets = sum(t.label for t in trials)
    step = 100 / max(1, min(targets, len(trials) - targets))
    head = (f"{len(trials)} trials of `{trial_file}` ({targets} targets, {len(trials) - targets} non-targets, fixed seed; "
            f"one trial changing side moves the EER by up to {step:.2f} points). "
            f"Accepted loss: EER at most +{MAX_EER_LOSS} points (absolute) over {baseline}, and median cosine "
            f"to its embeddings >= {MIN_COSINE}. Variants that differ only in session settings or thread counts "
            "compute the same graph and share one measurement (\"as ...\"); PyTorch fp32 is the exported graph "
            "(export checks cosine >= 0.9999).\n\n")
    return head + table(("variant", "EER %", "vs default", "cosine to default: median / min", "embedding s", "keeps accuracy"), rows)
