"""Shared fixtures: a small random-init model directory and real speech files.

The model is exported once per test session from a random-init ECAPA-TDNN (C=64) by the
model-core exporter (needs torch). Inference tests only need it as a valid model
directory; its scores mean nothing, so tests check behaviour, not accuracy.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
FALLBACK_SPEECH = REPO / "ssps" / "train" / "assets" / "parity_speech.flac"  # 10.5 s, speaker "jackson"
RATE = 16_000


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="exporting the test model needs torch (the [train] extra)")
    from ssps import model_dir as md
    from ssps.train.export import export_model

    out = tmp_path_factory.mktemp("models") / "random-ecapa"
    return export_model(
        None,
        out,
        train_config={"model": {"encoder": {"name": "ecapa_tdnn", "channels": 64}}},
        thresholds={"eer": md.Threshold(0.5, measured_on="nothing (random-init test model)")},
        calibration=md.Calibration(scale=10.0, offset=-5.0, fitted_on="nothing (random-init test model)"),
    )


@pytest.fixture(scope="session")
def model(random_model_dir):
    import ssps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        return ssps.load_model(random_model_dir, threads=1)


def _speaker_speech(speaker: str, seconds: float) -> np.ndarray:
    """About ``seconds`` of one FSDD speaker's digits at 16 kHz (or the packaged fallback)."""
    clips = sorted(FSDD.glob(f"*_{speaker}_*.wav"))
    if not clips:
        audio, rate = sf.read(FALLBACK_SPEECH, dtype="float32")
        audio = audio if speaker == "jackson" else audio[::-1].copy()  # a stand-in "other voice"
        return soxr.resample(audio, rate, RATE)[: int(seconds * RATE)].astype(np.float32)
    parts, total = [], 0.0
    for clip in clips:
        audio, rate = sf.read(clip, dtype="float32")
        parts.append(soxr.resample(audio, rate, RATE))
        total += len(audio) / rate
        if total >= seconds:
            break
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> dict[str, Path]:
    """Real speech files: two clips of one speaker, one of another, and format variants."""
    folder = tmp_path_factory.mktemp("speech")
    jackson = _speaker_speech("jackson", 8.0)
    george = _speaker_speech("george", 4.0)
    half = len(jackson) // 2
    files = {
        "a1": (jackson[:half], RATE),
        "a2": (jackson[half:], RATE),
        "b": (george, RATE),
        "a_8k": (soxr.resample(jackson[:half], RATE, 8_000), 8_000),
        "a_48k_stereo": (np.stack([soxr.resample(jackson[:half], RATE, 48_000)] * 2, axis=1), 48_000),
    }
    paths = {}
    for name, (audio, rate) in files.items():
        paths[name] = folder / f"{name}.wav"
        sf.write(paths[name], audio, rate)
    return paths


def write_hub_cache(cache: Path, repo_id: str, model_dir: Path, commit: str, refs: tuple[str, ...] = ("main",)) -> Path:
    """Lay out ``model_dir`` as one cached commit of a Hub repo, the way huggingface_hub does
    (``models--org--name/refs/<branch>`` -> commit, ``snapshots/<commit>/<files>``)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("model.onnx", "config.json", "README.md"):
        (snapshot / name).write_bytes((model_dir / name).read_bytes())
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, in offline mode, for this test; returns its path."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
