"""EER / minDCF against an independent computation (scikit-learn's ROC), and trial files."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from ssps.errors import ConfigError
from ssps.metrics import equal_error_rate, error_rates, min_dcf, read_trials, verification_metrics


def reference_eer_and_min_dcf(scores, labels, p_target=0.01):
    """The textbook computation from sklearn's ROC (the VoxCeleb / NIST scripts do this)."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    fnr = 1 - tpr
    k = np.nanargmin(np.abs(fnr - fpr))
    eer_bracket = sorted([fpr[k], fnr[k]])
    dcf = np.min(fnr * p_target + fpr * (1 - p_target)) / min(p_target, 1 - p_target)
    return eer_bracket, dcf


@pytest.mark.parametrize("seed", range(5))
def test_eer_and_min_dcf_agree_with_sklearn_roc(seed):
    rng = np.random.default_rng(seed)
    targets, nontargets = rng.integers(50, 400), rng.integers(200, 3000)
    scores = np.concatenate([rng.normal(0.6, 0.2, targets), rng.normal(0.1, 0.2, nontargets)])
    labels = np.concatenate([np.ones(targets, int), np.zeros(nontargets, int)])
    if seed == 4:  # ties: scores on a coarse grid
        scores = np.round(scores, 1)
    eer, _ = equal_error_rate(scores, labels)
    dcf, _ = min_dcf(scores, labels)
    (low, high), reference_dcf = reference_eer_and_min_dcf(scores, labels)
    # Our EER interpolates at the crossing: it lies between sklearn's FPR and FNR there.
    assert low - 1e-12 <= eer <= high + 1e-12
    assert dcf == pytest.approx(reference_dcf, abs=1e-12)


def test_perfect_and_inverted_systems():
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert equal_error_rate(np.array([3, 4, 5, 0, 1, 2.0]), labels)[0] == 0.0
    assert min_dcf(np.array([3, 4, 5, 0, 1, 2.0]), labels)[0] == 0.0
    assert equal_error_rate(np.array([0, 1, 2, 3, 4, 5.0]), labels)[0] == 1.0
    # The normalised minDCF never exceeds 1 (the cost of rejecting everything).
    assert min_dcf(np.array([0, 1, 2, 3, 4, 5.0]), labels)[0] == pytest.approx(1.0)


def test_error_rates_are_monotonic_and_span_zero_to_one():
    rng = np.random.default_rng(0)
    rates = error_rates(rng.normal(size=200), rng.integers(0, 2, 200))
    assert rates.false_reject[0] == 0 and rates.false_accept[0] == 1
    assert rates.false_reject[-1] == 1 and rates.false_accept[-1] == 0
    assert np.all(np.diff(rates.false_reject) >= 0) and np.all(np.diff(rates.false_accept) <= 0)


def test_verification_metrics_reports_percent_and_counts():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.85])
    labels = np.array([1, 1, 0, 0, 0])
    metrics = verification_metrics(scores, labels)
    assert metrics["targets"] == 2 and metrics["nontargets"] == 3
    assert 0 <= metrics["eer"] <= 100


def test_needs_both_classes():
    with pytest.raises(ValueError):
        equal_error_rate(np.array([0.1, 0.2]), np.array([1, 1]))


def test_read_voxceleb_trial_file(tmp_path):
    path = tmp_path / "veri_test2.txt"
    path.write_text("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
                    "\n# comment\n0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n")
    trials = read_trials(path)
    assert [t.label for t in trials] == [1, 0]
    assert trials[1].test == "id10300/ize_eiCFEg0/00003.wav"


@pytest.mark.parametrize("line", ["2 a.wav b.wav", "1 a.wav", "yes a.wav b.wav"])
def test_malformed_trial_lines_name_the_line(tmp_path, line):
    path = tmp_path / "trials.txt"
    path.write_text(f"1 a.wav b.wav\n{line}\n")
    with pytest.raises(ConfigError, match="trials.txt:2"):
        read_trials(path)


def test_metrics_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys, ssps.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
