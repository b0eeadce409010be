"""The benchmark suite runs end to end at tiny size and writes every section of its report.

These tests check that the suite works (sections, tables, no failed section), never how
fast anything is: speed is measured by ``python bench/run_all.py``, not by unit tests. They
need no corpus and no trained model: the random-init model of conftest.py, a trial list
cut from the shipped speech files, and int8 calibration on the recipe's speech file.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("torch", reason="the benchmark suite needs torch (the [train] extra)")
pytest.importorskip("onnxruntime.quantization")

from bench import accuracy, common, run_all

SECTIONS = ["## Machine", "## 1. Inference", "### GEMM peak", "### Speed per clip length and batch", "### Achieved GFLOP/s",
            "### ONNX Runtime session settings", "### Accuracy per variant", "## 2. Server", "## 3. Training",
            "### Step time", "### k-means at every epoch start", "### SSPS queue memory per rank", "## 4. Scale",
            "### Server latency against concurrency", "## Section times"]


@pytest.fixture(scope="module")
def tiny_trials(tmp_path_factory) -> Path:
    """Six 2 s clips: four of one speaker (the recipe's parity file, "jackson" of the
    examples), two of another ("george"); a trial list with targets and non-targets."""
    from ssps.audio import load_audio

    folder = tmp_path_factory.mktemp("trials")
    speech = load_audio(REPO / "ssps" / "train" / "assets" / "parity_speech.flac", 16_000)
    clips = {f"a{i}.wav": speech[i * 32_000 : (i + 1) * 32_000] for i in range(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the examples are 8 kHz: a narrow-band warning
        clips["a3.wav"] = load_audio(REPO / "examples" / "jackson_1.wav", 16_000)[:32_000]
        george = load_audio(REPO / "examples" / "george_1.wav", 16_000)
    clips.update({"b0.wav": george[:32_000], "b1.wav": george[32_000:64_000]})
    for name, audio in clips.items():
        sf.write(folder / name, audio, 16_000)
    lines = ["1 a0.wav a1.wav", "1 a1.wav a2.wav", "1 b0.wav b1.wav", "0 a0.wav b0.wav", "0 a2.wav b1.wav", "0 a3.wav b0.wav"]
    (folder / "trials.txt").write_text("\n".join(lines) + "\n")
    return folder / "trials.txt"


@pytest.mark.slow
def test_quick_run_writes_every_section(random_model_dir, tiny_trials, tmp_path):
    out = tmp_path / "benchmarks.md"
    argv = ["--model", str(random_model_dir), "--quick", "--out", str(out), "--trials", str(tiny_trials), "--audio-root", str(tiny_trials.parent),
            "--calibration-manifest", str(tmp_path / "none.csv"), "--no-resemblyzer", "--keep-variants", str(tmp_path / "variants"),
            "--kmeans-n", "500", "1000", "--queue-n", "512", "--concurrency", "1", "2", "--server-requests", "3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_all.main(argv) == 0
    text = out.read_text()
    missing = [s for s in SECTIONS if s not in text]
    assert not missing, f"sections missing from the report: {missing}"
    assert "**Failed**" not in text, text
    for variant in ("PyTorch eager fp32", "PyTorch eager bf16", "ONNX Runtime fp32 (ssps)",
                    "ONNX Runtime int8 static", "ONNX Runtime int8 dynamic"):
        assert variant in text
    assert "--quick" in text and "avx" in text.lower()  # the run says what it was and on what machine
    # The int8 variants are complete model directories that ssps loads (sha256 checked).
    import ssps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        model = ssps.load_model(tmp_path / "variants" / "int8-static")
    assert model.embed(tiny_trials.parent / "a0.wav").shape == (model.dim,)


def test_interleaved_keeps_errors_and_cold_calls():
    calls = []

    def failing():
        raise ValueError("no kernel")

    timings = common.interleaved({"ok": lambda: calls.append(1), "bad": failing}, repeats=3, max_seconds=60)
    assert len(timings["ok"].seconds) == 3 and len(calls) == 4  # a warm-up call, then 3 timed rounds
    assert timings["bad"].error == "ValueError: no kernel" and not timings["bad"].ok
    cold = common.interleaved({"slow": lambda: None}, repeats=5, max_seconds=0)
    assert cold["slow"].cold and len(cold["slow"].seconds) == 1  # only the warm-up fitted


def test_round_ratios_and_spread():
    timings = {"base": common.Timing([2.0, 4.0]), "fast": common.Timing([1.0, 1.0])}
    assert common.round_ratios(timings, "base")["fast"] == [2.0, 4.0]
    assert common.spread([1.0, 2.0, 3.0]) == "2.0 [1.0, 3.0]"
    assert common.spread([0.5]) == "0.5"
    a, b = common.fit_power([10, 100], [1.0, 100.0])
    assert b == pytest.approx(2.0) and a == pytest.approx(0.01)


def test_trial_subset_is_balanced_and_fixed(tiny_trials):
    first = accuracy.trial_subset(tiny_trials, 4, seed=0)
    assert [t.label for t in first] == [1, 1, 0, 0]
    assert first == accuracy.trial_subset(tiny_trials, 4, seed=0)


def test_accuracy_verdict_applies_the_accepted_loss():
    reference = {"eer": 5.0, "by": "ONNX Runtime fp32 (ssps)"}
    assert accuracy.keeps_accuracy({"eer": 5.0 + accuracy.MAX_EER_LOSS, "cos_median": 0.995}, reference)
    assert not accuracy.keeps_accuracy({"eer": 5.6, "cos_median": 0.999}, reference)
    assert not accuracy.keeps_accuracy({"eer": 4.0, "cos_median": 0.98}, reference)


def test_resemblyzer_reference_embeds_a_clip():
    pytest.importorskip("resemblyzer")
    from bench.variants import resemblyzer_variant

    variant = resemblyzer_variant()
    clip = np.random.default_rng(0).standard_normal((1, 16_000)).astype(np.float32) * 0.1
    assert variant.embed(clip).shape == (1, 256)


def test_scale_reads_full_size_results():
    """The scale section on results shaped like a full run's (which tests do not run)."""
    from bench import inference, kmeans, scale

    name = "ONNX Runtime fp32 (ssps)"
    cells = [inference.Cell(s, b, {name: common.Timing([b * (0.01 + 0.02 * s)])}) for s in (1, 3, 10, 30) for b in (1, 32)]
    text = scale.embedding_vs_length(cells, name)
    assert "10.0 ms + 20.0 ms per audio second" in text and "linear within 20 %" in text
    results = [{"n": n, "k": n // 40, "dim": 512, "iterations": 10, "seconds": 1e-8 * n**2, "seeding_seconds": 4e-9 * n**2,
                "points_mib": n * 512 * 4 / 2**20, "base_mib": 300.0, "extra_mib": n * 1e-3} for n in (10_000, 100_000)]
    extrapolated = kmeans.extrapolate_kmeans(results)
    assert extrapolated["iterations"]["exponent"] == pytest.approx(2.0)
    assert "extrapolated" in kmeans.kmeans_markdown(results, extrapolated)
    wall = {("SimCLR", "bf16"): [10.0], ("SimCLR + SSPS", "bf16"): [12.0]}
    text = scale.ssps_cost_vs_n(results, {"wall": wall}, batch=64)
    assert "1,092,009 (fit)" in text and "overtakes it near N =" in text
    server = {"rows": [{"batching": "on", "concurrency": c, "rps": min(c, 4) * 5.0, "p50": 100.0 * max(1, c / 4)} for c in (1, 4, 16)]}
    assert "stops growing at concurrency 16" in scale.latency_vs_concurrency(server)


def test_accuracy_reports_a_skipped_variant_with_its_reason(tiny_trials):
    from bench.variants import FP32_BASELINE, Variant

    def projection(seed: int):
        matrix = np.random.default_rng(seed).standard_normal((16_000, 8)).astype(np.float32)
        return lambda batch: batch[:, :16_000] @ matrix

    chosen = [Variant(FP32_BASELINE, projection(0), "fp32", True), Variant("emulated", projection(1), "bf16", False)]
    trials = accuracy.trial_subset(tiny_trials, 6)
    waveforms = accuracy.load_waveforms(trials, tiny_trials.parent)
    results = accuracy.evaluate(chosen, trials, waveforms, skip={"bf16": "skipped: no native bf16 on this CPU"})
    assert "eer" in results["fp32"] and results["bf16"]["error"].startswith("skipped")
    text = accuracy.markdown(chosen, results, tiny_trials, trials)
    assert "| emulated | skipped | skipped: no native bf16 on this CPU |" in text
