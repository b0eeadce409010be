"""Scores beyond EER and minDCF: operating points, actual DCF and Cllr (numpy only).

``ssps.metrics`` has the ROC sweep, the EER and the minDCF; this module adds what a
calibrated system is judged by and what a deployment needs:

- ``rates_at(scores, labels, threshold)``: false-accept and false-reject rates of one
  threshold (accept when score >= threshold, as in ``ssps.metrics``).
- ``threshold_at_false_accept(scores, labels, rate)``: the lowest threshold whose
  false-accept rate is at most ``rate`` (the "1 % false accepts" operating point).
- ``bayes_threshold(p_target)``: where a log-likelihood ratio (LLR) should be cut to
  minimise the expected cost, ``log(C_fa (1 - P_target) / (C_miss P_target))``.
- ``detection_cost(...)`` (from ssps.metrics): the normalised NIST detection cost of given error rates.
- ``actual_dcf(llrs, labels, p_target)``: that cost when deciding at the Bayes threshold,
  i.e. how good the calibrated scores are as they stand (minDCF is the best any threshold
  could do, so actDCF >= minDCF and the gap is the calibration loss).
- ``cllr(llrs, labels)``: the log-likelihood-ratio cost (Brümmer & du Preez, 2006), in bits:
  0 is perfect, 1 is a system that always says "don't know" (LLR 0).
- ``score_summary(...)``: every number ``ssps eval`` prints for one system on one list.
"""

from __future__ import annotations

import math

import numpy as np

from ssps.metrics import detection_cost, equal_error_rate, error_rates, min_dcf

# The NIST operating points reported by ``ssps eval``: the paper's P_target = 0.01 and the
# looser 0.05 (used by VoxSRC); C_miss = C_fa = 1.
P_TARGETS = (0.01, 0.05)


def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-accept rate, false-reject rate) when accepting scores >= ``threshold``."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    false_accept = float(np.mean(scores[~labels] >= threshold))
    false_reject = float(np.mean(scores[labels] < threshold))
    return false_accept, false_reject


def threshold_at_false_accept(scores: np.ndarray, labels: np.ndarray, rate: float = 0.01) -> tuple[float, float, float]:
    """(threshold, false-accept rate, false-reject rate) of the lowest threshold that
    accepts at most ``rate`` of the non-targets: fewest false rejects under that cap."""
    rates = error_rates(scores, labels)
    # false_accept falls as the threshold rises; the tolerance absorbs rounding in 1 - k / n.
    k = int(np.argmax(rates.false_accept <= rate + 1e-12))
    return float(rates.thresholds[k]), float(rates.false_accept[k]), float(rates.false_reject[k])


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR above which accepting costs less than rejecting, on average."""
    return math.log(c_fa * (1 - p_target) / (c_miss * p_target))


def actual_dcf(llrs: np.ndarray, labels: np.ndarray, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised DCF of the decisions ``llr >= bayes_threshold(p_target)``."""
    false_accept, false_reject = rates_at(llrs, labels, bayes_threshold(p_target, c_miss, c_fa))
    return float(detection_cost(false_reject, false_accept, p_target, c_miss, c_fa))


def cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    """``(mean_tar log2(1 + e^-llr) + mean_non log2(1 + e^llr)) / 2``."""
    llrs, labels = np.asarray(llrs, dtype=np.float64), np.asarray(labels).astype(bool)
    target_cost = np.mean(np.logaddexp(0.0, -llrs[labels]))  # log(1 + e^-x), overflow-safe
    nontarget_cost = np.mean(np.logaddexp(0.0, llrs[~labels]))
    return float((target_cost + nontarget_cost) / (2 * math.log(2)))


def score_summary(scores: np.ndarray, labels: np.ndarray, llrs: np.ndarray | None = None) -> dict[str, float]:
    """EER (%), minDCF at each of ``P_TARGETS``; with calibrated ``llrs``, also actDCF and Cllr."""
    labels = np.asarray(labels)
    eer, eer_threshold = equal_error_rate(scores, labels)
    summary = {
        "targets": int((labels == 1).sum()),
        "nontargets": int((labels == 0).sum()),
        "eer": 100.0 * eer,
        "eer_threshold": eer_threshold,
    }
    for p_target in P_TARGETS:
        summary[f"min_dcf_{p_target:g}"] = min_dcf(scores, labels, p_target=p_target)[0]
    if llrs is not None:
        for p_target in P_TARGETS:
            summary[f"act_dcf_{p_target:g}"] = actual_dcf(llrs, labels, p_target)
        summary["cllr"] = cllr(llrs, labels)
    return summary
