"""Speaker-verification metrics and trial lists (numpy only, no torch).

- ``read_trials(path)``: a VoxCeleb trial file, one ``label path1 path2`` per line
  (label 1 = same speaker, 0 = different speakers), as published for VoxCeleb1-O/E/H.
- ``equal_error_rate(scores, labels)``: the EER, where the false-reject rate equals the
  false-accept rate.
- ``min_dcf(scores, labels)``: the minimum of the NIST detection cost function,
  ``C_miss * P_miss * P_target + C_fa * P_fa * (1 - P_target)``, normalised by the cost of
  the best trivial system ``min(C_miss * P_target, C_fa * (1 - P_target))``. The paper uses
  P_target = 0.01, C_miss = C_fa = 1 (section IV-E).

Both are computed from one ROC sweep (``error_rates``): every distinct score is a candidate
threshold, and a trial is accepted when its score is >= the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssps.errors import ConfigError


@dataclass(frozen=True)
class Trial:
    label: int  # 1 = same speaker (target), 0 = different speakers (non-target)
    enrollment: str
    test: str


def read_trials(path: str | Path) -> list[Trial]:
    """Read ``label path1 path2`` lines; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"trial file {path} does not exist")
    trials = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise ConfigError(
                f"{path}:{number}: expected 'label path1 path2' with label 0 or 1, got {line!r}"
            )
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise ConfigError(f"trial file {path} holds no trials")
    return trials


@dataclass(frozen=True)
class ErrorRates:
    """False-reject and false-accept rates at each candidate threshold (ascending)."""

    thresholds: np.ndarray
    false_reject: np.ndarray  # P_miss: targets scored below the threshold
    false_accept: np.ndarray  # P_fa: non-targets scored at or above the threshold


def error_rates(scores: np.ndarray, labels: np.ndarray) -> ErrorRates:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    n_target, n_nontarget = int(labels.sum()), int((~labels).sum())
    if n_target == 0 or n_nontarget == 0:
        raise ValueError("error rates need at least one target and one non-target trial")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Threshold t_k = k-th distinct score; everything strictly below it is rejected.
    thresholds, first = np.unique(sorted_scores, return_index=True)
    targets_below = np.concatenate([[0], np.cumsum(sorted_labels)])[first]
    nontargets_below = np.concatenate([[0], np.cumsum(~sorted_labels)])[first]
    # One more threshold above every score: reject everything.
    thresholds = np.append(thresholds, np.inf)
    false_reject = np.append(targets_below, n_target) / n_target
    false_accept = 1.0 - np.append(nontargets_below, n_nontarget) / n_nontarget
    return ErrorRates(thresholds, false_reject, false_accept)


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(EER, threshold). The EER interpolates linearly between the two ROC points around
    the crossing of the false-reject and false-accept curves."""
    rates = error_rates(scores, labels)
    frr, far = rates.false_reject, rates.false_accept
    # frr rises and far falls with the threshold; k = first point where frr >= far.
    k = int(np.argmax(frr >= far))
    if k == 0:
        return float(frr[0] + far[0]) / 2, float(rates.thresholds[0])
    # Intersect the segments (frr[k-1], frr[k]) and (far[k-1], far[k]).
    gap_before = far[k - 1] - frr[k - 1]
    gap_after = frr[k] - far[k]
    weight = gap_before / (gap_before + gap_after) if gap_before + gap_after > 0 else 0.0
    eer = frr[k - 1] + weight * (frr[k] - frr[k - 1])
    threshold = rates.thresholds[k - 1] if weight < 0.5 else rates.thresholds[k]
    return float(eer), float(threshold)


def detection_cost(
    false_reject: np.ndarray | float,
    false_accept: np.ndarray | float,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> np.ndarray | float:
    """``C_miss P_miss P_target + C_fa P_fa (1 - P_target)`` divided by the cost of the best
    system that ignores its input, ``min(C_miss P_target, C_fa (1 - P_target))``."""
    cost = c_miss * np.asarray(false_reject) * p_target + c_fa * np.asarray(false_accept) * (1 - p_target)
    return cost / min(c_miss * p_target, c_fa * (1 - p_target))


def min_dcf(
    scores: np.ndarray,
    labels: np.ndarray,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """(normalised minDCF, threshold where it is reached)."""
    rates = error_rates(scores, labels)
    cost = detection_cost(rates.false_reject, rates.false_accept, p_target, c_miss, c_fa)
    best = int(np.argmin(cost))
    return float(cost[best]), float(rates.thresholds[best])


def verification_metrics(scores: np.ndarray, labels: np.ndarray, p_target: float = 0.01) -> dict[str, float]:
    """The numbers reported for a trial list: EER (%), minDCF and their thresholds."""
    eer, eer_threshold = equal_error_rate(scores, labels)
    dcf, dcf_threshold = min_dcf(scores, labels, p_target=p_target)
    labels = np.asarray(labels)
    return {
        "eer": 100.0 * eer,
        "eer_threshold": eer_threshold,
        "min_dcf": dcf,
        "min_dcf_threshold": dcf_threshold,
        "p_target": p_target,
        "targets": int((labels == 1).sum()),
        "nontargets": int((labels == 0).sum()),
    }
