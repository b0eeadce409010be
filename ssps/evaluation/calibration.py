"""Score calibration and decision thresholds, stored in a model directory's config.json.

Calibration maps a cosine score to a log-likelihood ratio ``llr = scale * score + offset``
fitted by prior-weighted logistic regression on a development trial list (the linear
calibration of the BOSARIS toolkit): targets and non-targets weigh ``prior`` and
``1 - prior`` in total whatever their counts, so the fit does not depend on the list's
target share. With the default prior 0.5, ``sigmoid(llr)`` is P(same speaker) for a trial
with even odds, which is what ``SpeakerModel.probability`` returns. For a deployment where
a fraction ``p`` of trials are targets, add ``log(p / (1 - p))`` to the LLR first.

Thresholds (on the raw cosine score, what ``verify`` compares against):

- ``eer``: where false accepts and false rejects are equally frequent;
- ``far1``: the lowest threshold that falsely accepts at most 1 % of non-targets.

``calibrate_model_dir`` writes both, with the name of the list they were measured on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ssps import model_dir as md
from ssps.metrics import equal_error_rate
from ssps.scoring import rates_at, threshold_at_false_accept

# A tiny L2 penalty on the (standardised) scale keeps the fit finite when the development
# scores separate targets from non-targets perfectly (the unpenalised optimum is then infinite).
SCALE_PENALTY = 1e-6
NEWTON_ITERATIONS = 100
FAR1 = 0.01


def fit_logistic_calibration(scores: np.ndarray, labels: np.ndarray, prior: float = 0.5) -> tuple[float, float]:
    """(scale, offset) minimising the prior-weighted cross-entropy of
    ``sigmoid(scale * score + offset + logit(prior))`` against the labels, by Newton's method.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("calibration needs both target and non-target trials")
    weights = np.where(labels, prior / labels.sum(), (1 - prior) / (~labels).sum())
    # Fit on standardised scores (cosines often span only 0.9-1.0): well conditioned, and the
    # penalty means the same whatever the score range. Mapped back to raw scores at the end.
    center = float(weights @ scores)  # weighted like the fit, so trial counts do not matter
    spread = max(math.sqrt(float(weights @ (scores - center) ** 2)), 1e-12)
    features = np.stack([(scores - center) / spread, np.ones_like(scores)], axis=1)  # [n, 2]
    prior_log_odds = math.log(prior / (1 - prior))
    penalty = np.diag([SCALE_PENALTY, 0.0])

    def objective(theta: np.ndarray) -> float:
        z = features @ theta + prior_log_odds
        # cross-entropy: log(1 + e^z) - y z, overflow-safe
        return float(weights @ (np.logaddexp(0.0, z) - labels * z)) + 0.5 * theta @ penalty @ theta

    theta = np.zeros(2)
    for _ in range(NEWTON_ITERATIONS):
        posterior = 1.0 / (1.0 + np.exp(-(features @ theta + prior_log_odds)))
        gradient = features.T @ (weights * (posterior - labels)) + penalty @ theta
        hessian = (features * (weights * posterior * (1 - posterior))[:, None]).T @ features + penalty
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        # Halve the step until the objective does not increase (Newton can overshoot).
        current, fraction = objective(theta), 1.0
        while objective(theta - fraction * step) > current and fraction > 1e-6:
            fraction /= 2
        theta = theta - fraction * step
        if np.abs(fraction * step).max() < 1e-10:
            break
    scale = theta[0] / spread
    return float(scale), float(theta[1] - scale * center)


def thresholds_from_scores(scores: np.ndarray, labels: np.ndarray, measured_on: str) -> dict[str, md.Threshold]:
    """The ``eer`` and ``far1`` thresholds of a development list, with their error rates."""
    _, eer_threshold = equal_error_rate(scores, labels)
    far1_threshold, _, _ = threshold_at_false_accept(scores, labels, FAR1)
    thresholds = {}
    for name, value in (("eer", eer_threshold), ("far1", far1_threshold)):
        false_accept, false_reject = rates_at(scores, labels, value)
        thresholds[name] = md.Threshold(float(value), measured_on, false_accept, false_reject)
    return thresholds


def calibrate_model_dir(
    model_dir: str | Path,
    scores: np.ndarray,
    labels: np.ndarray,
    measured_on: str,
    prior: float = 0.5,
    precision: str = md.FP32,
) -> md.ModelConfig:
    """Fit the calibration and thresholds on ``scores`` (made by the graph of ``precision``)
    and write them to config.json: at the top level for fp32, in the variant otherwise.
    Returns the config as that graph sees it.

    Only config.json changes; the sha256s cover the ONNX graphs, which stay untouched.
    """
    config = md.read_config(model_dir)
    config.onnx_file(precision)  # the model must have that graph
    scale, offset = fit_logistic_calibration(scores, labels, prior)
    calibration = md.Calibration(scale=scale, offset=offset, fitted_on=measured_on)
    thresholds = thresholds_from_scores(scores, labels, measured_on)
    target = config if precision == md.FP32 else config.variants[precision]
    target.calibration = calibration
    target.thresholds.update(thresholds)
    md.write_config(model_dir, config)
    return config.for_precision(precision)


def llrs_from_calibration(scores: np.ndarray, calibration: md.Calibration) -> np.ndarray:
    """The calibrated log-likelihood ratios of raw cosine ``scores``."""
    return calibration.scale * np.asarray(scores, dtype=np.float64) + calibration.offset
