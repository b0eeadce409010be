"""Evaluation: metrics against independent computations, AS-norm by hand, calibration,
the embedding cache, and the three commands end to end on real speech (FSDD)."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ssps import model_dir as md
from ssps.evaluation import normalization
from ssps.evaluation.calibration import calibrate_model_dir, fit_logistic_calibration, thresholds_from_scores
from ssps.evaluation.trials import read_scores, score_trials, write_scores
from ssps.metrics import Trial, error_rates, min_dcf
from ssps.scoring import actual_dcf, bayes_threshold, cllr, detection_cost, rates_at, threshold_at_false_accept

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"


def gaussian_trials(seed: int, targets: int = 300, nontargets: int = 1200):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.6, 0.15, targets), rng.normal(0.2, 0.15, nontargets)])
    labels = np.concatenate([np.ones(targets, int), np.zeros(nontargets, int)])
    return scores, labels


# --- scoring: independent computations -------------------------------------------------


@pytest.mark.parametrize("p_target", [0.01, 0.05, 0.5])
def test_actual_dcf_counts_decisions_one_by_one(p_target):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    llrs = rng.normal(0, 3, 500) + 2 * labels
    cut = math.log((1 - p_target) / p_target)
    misses = sum(1 for llr, label in zip(llrs, labels) if label == 1 and llr < cut)
    false_alarms = sum(1 for llr, label in zip(llrs, labels) if label == 0 and llr >= cut)
    p_miss, p_fa = misses / sum(labels == 1), false_alarms / sum(labels == 0)
    expected = (p_target * p_miss + (1 - p_target) * p_fa) / min(p_target, 1 - p_target)
    assert actual_dcf(llrs, labels, p_target) == pytest.approx(expected, abs=1e-12)
    assert bayes_threshold(p_target) == pytest.approx(cut)


def test_cllr_matches_its_definition_and_landmarks():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    llrs = rng.normal(0, 2, 200) + labels
    tar = [math.log2(1 + math.exp(-x)) for x, y in zip(llrs, labels) if y == 1]
    non = [math.log2(1 + math.exp(x)) for x, y in zip(llrs, labels) if y == 0]
    assert cllr(llrs, labels) == pytest.approx((np.mean(tar) + np.mean(non)) / 2, rel=1e-12)
    assert cllr(np.zeros(200), labels) == pytest.approx(1.0)  # "don't know" costs exactly 1 bit
    assert cllr(np.where(labels == 1, 50.0, -50.0), labels) < 1e-15  # confident and right
    assert cllr(np.where(labels == 1, -800.0, 800.0), labels) > 100  # confident and wrong: no overflow


def test_min_dcf_is_the_minimum_of_detection_cost_over_thresholds():
    scores, labels = gaussian_trials(3)
    rates = error_rates(scores, labels)
    for p_target in (0.01, 0.05):
        costs = [detection_cost(*rates_at(scores, labels, t)[::-1], p_target) for t in rates.thresholds]
        assert min(costs) == pytest.approx(min_dcf(scores, labels, p_target=p_target)[0], abs=1e-12)


def test_threshold_at_false_accept_is_the_lowest_within_the_cap():
    scores, labels = gaussian_trials(4)
    threshold, far, frr = threshold_at_false_accept(scores, labels, 0.01)
    nontargets = np.sort(scores[labels == 0])
    # Brute force: the lowest candidate (a score) accepting at most 1 % of non-targets.
    candidates = [t for t in np.unique(scores) if np.mean(nontargets >= t) <= 0.01]
    assert threshold == pytest.approx(min(candidates))
    assert (far, frr) == pytest.approx(rates_at(scores, labels, threshold))
    assert far <= 0.01 + 1e-12


# --- AS-norm and S-norm ----------------------------------------------------------------


def test_as_norm_on_a_toy_cohort_by_hand():
    # Unit vectors at known angles, so every cosine is a cosine of an angle difference.
    unit = lambda degrees: np.array([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])
    enrol, test = unit(0), unit(60)
    cohort = np.stack([unit(a) for a in (0, 90, 180, 30)])
    # enrol vs cohort: cos 0, 90, 180, 30 = 1, 0, -1, 0.866 -> top 2: 1, 0.866
    # test  vs cohort: cos 60, 30, 120, 30 = 0.5, 0.866, -0.5, 0.866 -> top 2: 0.866, 0.866
    stats = normalization.cohort_statistics(np.stack([enrol, test]), cohort, top_n=2)
    c30 = math.cos(math.radians(30))
    assert stats.mean == pytest.approx([(1 + c30) / 2, c30])
    assert stats.std == pytest.approx([(1 - c30) / 2, 0.0], abs=1e-12)
    # Test side has std 0 here; use top 3 for a finite hand computation of the full score.
    stats = normalization.cohort_statistics(np.stack([enrol, test]), cohort, top_n=3)
    e_scores, t_scores = np.array([1, 0, c30]), np.array([0.5, c30, c30])
    score = 0.5  # cos 60
    expected = 0.5 * ((score - e_scores.mean()) / e_scores.std() + (score - t_scores.mean()) / t_scores.std())
    select = lambda i: normalization.select(stats, np.array([i]))
    assert normalization.normalize(np.array([score]), select(0), select(1))[0] == pytest.approx(expected)


def test_s_norm_is_as_norm_with_the_whole_cohort():
    rng = np.random.default_rng(5)
    embeddings = rng.normal(size=(7, 16))
    cohort = rng.normal(size=(40, 16))
    whole = normalization.cohort_statistics(embeddings, cohort, top_n=None)
    assert whole.mean == pytest.approx((embeddings @ cohort.T).mean(axis=1))
    assert whole.std == pytest.approx((embeddings @ cohort.T).std(axis=1))
    capped = normalization.cohort_statistics(embeddings, cohort, top_n=1000)
    assert capped.mean == pytest.approx(whole.mean) and capped.std == pytest.approx(whole.std)


def test_score_trials_normalises_and_round_trips_through_a_score_file(tmp_path):
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(4, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    root = Path("/audio")
    embeddings = {str(root / f"{i}.wav"): v for i, v in enumerate(vectors)}
    trials = [Trial(1, "0.wav", "1.wav"), Trial(0, "0.wav", "2.wav"), Trial(0, "3.wav", "1.wav"), Trial(1, "9.wav", "0.wav")]
    cohort = rng.normal(size=(20, 8))
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    scored = score_trials("toy", trials, root, embeddings, cohort, top_n=5)
    assert len(scored.trials) == 3  # the trial naming a file without embedding is left out
    assert scored.systems["cosine"][0] == pytest.approx(vectors[0] @ vectors[1])
    assert set(scored.systems) == {"cosine", "as-norm5", "s-norm"}
    back = read_scores(write_scores(scored, tmp_path / "toy.scores.txt"))
    assert back.name == "toy" and list(back.labels) == [1, 0, 0]
    for name in scored.systems:
        assert back.systems[name] == pytest.approx(scored.systems[name], abs=1e-6)


# --- calibration -----------------------------------------------------------------------


def test_calibration_recovers_the_true_llr_of_gaussian_scores():
    # Equal-variance Gaussians: llr(s) = (mu1 - mu0) / var * (s - (mu0 + mu1) / 2), exactly linear.
    rng = np.random.default_rng(7)
    mu0, mu1, sigma = 0.2, 0.6, 0.15
    scores = np.concatenate([rng.normal(mu1, sigma, 20000), rng.normal(mu0, sigma, 60000)])
    labels = np.concatenate([np.ones(20000, int), np.zeros(60000, int)])
    scale, offset = fit_logistic_calibration(scores, labels)
    true_scale = (mu1 - mu0) / sigma**2
    assert scale == pytest.approx(true_scale, rel=0.03)
    assert offset == pytest.approx(-true_scale * (mu0 + mu1) / 2, rel=0.03)


def test_calibration_agrees_with_sklearn_weighted_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    scores, labels = gaussian_trials(8)
    scale, offset = fit_logistic_calibration(scores, labels, prior=0.5)
    weights = np.where(labels == 1, 0.5 / labels.sum(), 0.5 / (labels == 0).sum())
    reference = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12).fit(scores[:, None], labels, sample_weight=weights * len(labels))
    assert scale == pytest.approx(reference.coef_[0, 0], rel=1e-3)
    assert offset == pytest.approx(reference.intercept_[0], rel=1e-3)


def test_calibration_is_monotone_well_formed_and_ignores_the_target_share():
    scores, labels = gaussian_trials(9)
    scale, offset = fit_logistic_calibration(scores, labels)
    grid = np.linspace(-1, 1, 101)
    probability = 1 / (1 + np.exp(-(scale * grid + offset)))
    assert scale > 0 and np.all(np.diff(probability) > 0)
    assert np.all((probability > 0) & (probability < 1))
    # Prior weighting: repeating every non-target trial changes nothing.
    repeated = np.concatenate([scores, scores[labels == 0]]), np.concatenate([labels, labels[labels == 0]])
    assert fit_logistic_calibration(*repeated) == pytest.approx((scale, offset), rel=1e-6)
    # Separable scores still give a finite, increasing calibration.
    separable = fit_logistic_calibration(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert all(map(math.isfinite, separable)) and separable[0] > 0
    with pytest.raises(ValueError):
        fit_logistic_calibration(scores[labels == 1], labels[labels == 1])


def test_thresholds_sit_at_their_operating_points():
    scores, labels = gaussian_trials(10)
    thresholds = thresholds_from_scores(scores, labels, "toy")
    eer, far1 = thresholds["eer"], thresholds["far1"]
    assert abs(eer.false_accept_rate - eer.false_reject_rate) < 0.01
    assert far1.false_accept_rate <= 0.01 and far1.value > eer.value
    assert eer.measured_on == "toy"


# --- real speech: the embedding cache and the commands ---------------------------------


@pytest.fixture(scope="module")
def fsdd_set(tmp_path_factory):
    """3 FSDD speakers x 3 files of ~1.5 s (three digits each), 16 kHz, a trial list and a
    cohort manifest from 2 files of each of the three other speakers."""
    sf = pytest.importorskip("soundfile")
    soxr = pytest.importorskip("soxr")
    if not FSDD.is_dir():
        pytest.skip("FSDD recordings not available")
    folder = tmp_path_factory.mktemp("fsdd_eval")
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    files = {}
    for s_index, speaker in enumerate(speakers):
        clips = sorted(FSDD.glob(f"*_{speaker}_*.wav"))
        for k in range(3 if s_index < 3 else 2):
            audio = np.concatenate([soxr.resample(sf.read(c, dtype="float32")[0], 8000, 16000) for c in clips[3 * k : 3 * k + 3]])
            name = f"{speaker}/{k}.wav"
            (folder / "wav" / speaker).mkdir(parents=True, exist_ok=True)
            sf.write(folder / "wav" / name, audio, 16000)
            files[name] = speaker
    test_files = [n for n, s in files.items() if s in speakers[:3]]
    lines = [f"{int(files[a] == files[b])} {a} {b}" for a, b in itertools.combinations(test_files, 2)]
    (folder / "trials.txt").write_text("\n".join(lines) + "\n")
    cohort = [n for n, s in files.items() if s in speakers[3:]]
    (folder / "cohort.csv").write_text("path,speaker,recording,duration\n" + "".join(f"wav/{n},{files[n]},r,\n" for n in cohort))
    return folder


@pytest.fixture()
def fresh_model_dir(random_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(random_model_dir, copy)
    return copy


def test_batched_cached_embeddings_equal_model_embed(model, fsdd_set, tmp_path):
    from ssps.evaluation.embedding import EmbeddingCache, embed_files, model_cache_key

    paths = sorted(str(p) for p in (fsdd_set / "wav").rglob("*.wav"))
    cache = EmbeddingCache(tmp_path, model_cache_key(model))
    embeddings, failures = embed_files(model, paths, cache, batch_seconds=5, progress=False)
    assert not failures and set(embeddings) == set(paths)
    for path in paths[:3]:
        assert float(embeddings[path] @ model.embed(path)) >= 0.9999
    # A second run reads everything from disk: the model is never called.
    reloaded = EmbeddingCache(tmp_path, model_cache_key(model))

    class NoModel:
        sample_rate = model.sample_rate

    again, _ = embed_files(NoModel(), paths, reloaded, progress=False)
    assert all(np.array_equal(again[p], embeddings[p]) for p in paths)
    # A rewritten file (new mtime/size) is not served from the cache.
    shutil.copy(paths[1], paths[0])
    assert reloaded.get(paths[0]) is None and reloaded.get(paths[1]) is not None


def test_eval_command_end_to_end(random_model_dir, fsdd_set, tmp_path, capsys):
    from ssps.evaluation.cli import eval_main

    out = tmp_path / "out"
    code = eval_main(["--model", str(random_model_dir), "--trials", str(fsdd_set / "trials.txt"), "--root", str(fsdd_set / "wav"),
                      "--cohort", str(fsdd_set / "cohort.csv"), "--top-n", "3", "-o", str(out),
                      "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "-q"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "as-norm3" in printed and "s-norm" in printed and "Cllr" in printed
    result = json.loads((out / "trials.json").read_text())
    assert set(result["systems"]) == {"cosine", "as-norm3", "s-norm"}
    cosine = result["systems"]["cosine"]
    assert cosine["targets"] == 9 and cosine["nontargets"] == 27
    assert "cllr" in cosine and "act_dcf_0.01" in cosine  # the test model carries a calibration
    assert "cllr" not in result["systems"]["s-norm"]  # normalised scores are not calibrated
    assert len(read_scores(out / "trials.scores.txt").trials) == 36


def test_eval_reports_unusable_audio(random_model_dir, fsdd_set, tmp_path, capsys):
    from ssps.evaluation.cli import eval_main

    trials = tmp_path / "trials.txt"
    trials.write_text((fsdd_set / "trials.txt").read_text() + "0 george/0.wav missing.wav\n")
    argv = ["--model", str(random_model_dir), "--trials", str(trials), "--root", str(fsdd_set / "wav"),
            "-o", str(tmp_path / "out"), "--no-cache", "-q"]
    assert eval_main(argv) == 2
    assert "missing.wav" in capsys.readouterr().err
    assert eval_main(argv + ["--skip-errors"]) == 0
    assert "1 left out" in capsys.readouterr().out


def test_calibrate_command_writes_config_and_verify_returns_probability(fresh_model_dir, fsdd_set, tmp_path, capsys):
    import ssps
    from ssps.evaluation.cli import calibrate_main

    code = calibrate_main(["--model", str(fresh_model_dir), "--trials", str(fsdd_set / "trials.txt"),
                           "--root", str(fsdd_set / "wav"), "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert code == 0, capsys.readouterr()
    config = md.read_config(fresh_model_dir)
    assert config.calibration.fitted_on.startswith("trials.txt") and config.calibration.scale > 0
    assert set(config.thresholds) >= {"eer", "far1"}
    assert config.thresholds["far1"].value >= config.thresholds["eer"].value
    with pytest.warns(ssps.UntrainedModelWarning):
        model = ssps.load_model(fresh_model_dir, threads=1)  # sha256 still matches model.onnx
    result = model.verify(str(fsdd_set / "wav/george/0.wav"), str(fsdd_set / "wav/george/1.wav"))
    expected = 1 / (1 + math.exp(-(config.calibration.scale * result.score + config.calibration.offset)))
    assert result.probability == pytest.approx(expected)
    assert result.threshold == pytest.approx(config.thresholds["eer"].value)


def test_calibrate_refuses_a_run_directory(tmp_path, capsys):
    from ssps.evaluation.cli import calibrate_main

    (tmp_path / "train_config.yaml").write_text("model: {}\n")
    (tmp_path / "encoder.safetensors").write_bytes(b"")
    assert calibrate_main(["--model", str(tmp_path), "--trials", "t.txt"]) == 2
    assert "ssps export" in capsys.readouterr().err


def write_fake_run(folder: Path, ssps: bool, eer: float) -> Path:
    """A run directory as the trainer leaves it (the files report reads), written by hand."""
    (folder / "logs").mkdir(parents=True)
    (folder / "train_config.yaml").write_text(
        "method: {name: simclr}\n"
        f"ssps: {{enabled: {str(ssps).lower()}, sampling: clustering, num_clusters: 25000, window: 1}}\n"
        "data: {positive: same_utterance}\n"
    )
    (folder / "metrics.json").write_text(json.dumps({"evaluation": {"vox1_o": {"eer": eer, "min_dcf": 0.5}}}))
    rows = ["kind,epoch,step,name,value"]
    for epoch in (1, 2, 3):
        rows.append(f"epoch,{epoch},{10 * epoch},validation/eer,{eer + 3 - epoch}")
        if ssps:
            rows += [f"epoch,{epoch},{10 * epoch},ssps/speaker_accuracy,{0.5 + 0.1 * epoch}",
                     f"epoch,{epoch},{10 * epoch},ssps/recording_accuracy,0.1",
                     f"epoch,{epoch},{10 * epoch},ssps/nmi_speaker,0.8", f"epoch,{epoch},{10 * epoch},ssps/nmi_recording,0.75"]
    (folder / "logs/metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_report_table_and_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from ssps.evaluation.cli import report_main

    ssl = write_fake_run(tmp_path / "simclr-ssl", ssps=False, eer=6.30)
    ssps_run = write_fake_run(tmp_path / "simclr-ssps", ssps=True, eer=2.57)
    (ssps_run / "eval").mkdir()
    (ssps_run / "eval/dev.json").write_text(json.dumps({"systems": {"cosine": {"eer": 1.5, "min_dcf_0.01": 0.2}}}))
    scores, labels = gaussian_trials(11, 20, 60)
    lines = ["# label enrollment test cosine"] + [f"{y} a.wav b.wav {s:.4f}" for s, y in zip(scores, labels)]
    (ssps_run / "eval/dev.scores.txt").write_text("\n".join(lines) + "\n")

    code = report_main([str(ssl), str(ssps_run), "-o", str(tmp_path / "table.md"), "--figures", str(tmp_path / "figs")])
    assert code == 0
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| Run | Method | Positive sampling | vox1_o EER (%) | vox1_o minDCF0.01 | dev EER (%)")
    assert table[2] == "| simclr-ssl | simclr | SSL | 6.30 | 0.5000 | – | – | – | – |"
    assert table[3] == "| simclr-ssps | simclr | SSPS-Clustering (K=25000, M=1) | 2.57 | 0.5000 | 1.50 | 0.2000 | 80.0 | 10.0 |"
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {"det_dev.png", "eer_epochs.png", "nmi_epochs.png"}


TORCH_FREE_SCRIPT = """
import sys

class Block:  # any import of these fails, as on a plain `pip install ssps`
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "matplotlib", "sklearn", "scipy"):
            raise ImportError(f"blocked: {name}")

sys.meta_path.insert(0, Block())
from ssps.evaluation.cli import calibrate_main, eval_main

model, trials, root, cohort, out = sys.argv[1:]
common = ["--model", model, "--trials", trials, "--root", root, "--cache-dir", out, "-q"]
assert eval_main(common + ["--cohort", cohort, "--top-n", "3", "-o", out]) == 0
assert calibrate_main(common + ["--dry-run"]) == 0
"""


def test_eval_and_calibrate_need_neither_torch_nor_matplotlib(random_model_dir, fsdd_set, tmp_path):
    import subprocess
    import sys

    argv = [str(random_model_dir), str(fsdd_set / "trials.txt"), str(fsdd_set / "wav"), str(fsdd_set / "cohort.csv"), str(tmp_path)]
    done = subprocess.run([sys.executable, "-c", TORCH_FREE_SCRIPT, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "trials.json").is_file()
