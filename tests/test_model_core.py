"""Model core: frontend, encoders, checkpoints (issue 2)."""

import pytest
import torch

from ssps.errors import ConfigError, ModelError
from ssps.train.checkpoint import load_weights, save_weights
from ssps.train.encoders import build_encoder
from ssps.train.frontend import FrontendConfig, LogMelFrontend, frames_for, instance_norm, mel_filterbank
from ssps.train.model import ModelSpec, SpeakerEncoder


def test_mel_filterbank_matches_torchaudio():
    torchaudio = pytest.importorskip("torchaudio")
    for n_mels in (40, 80):
        ours = mel_filterbank(257, 0.0, 8000.0, n_mels, 16000)
        theirs = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, n_mels, 16000)
        assert torch.allclose(ours, theirs, atol=1e-4)


def test_log_mel_matches_torchaudio_on_speech():
    torchaudio = pytest.importorskip("torchaudio")
    from ssps.train.export import parity_audio

    speech = torch.from_numpy(parity_audio(16000)[None, :48000])
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40, window_fn=torch.hamming_window
    )
    expected = instance_norm(torch.log(reference(speech) + 1e-6), 1e-5)
    ours = LogMelFrontend(FrontendConfig())(speech)
    assert ours.shape == expected.shape == (1, 40, frames_for(48000, 160))
    assert torch.allclose(ours, expected, atol=1e-4)


def test_frontend_is_instance_normalised_and_ignores_autocast():
    frontend = LogMelFrontend(FrontendConfig(n_mels=80))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = frontend(torch.randn(3, 16000))
    assert features.dtype == torch.float32 and features.shape == (3, 80, 101)
    assert features.mean(-1).abs().max() < 1e-4
    assert (features.std(-1, unbiased=False) - 1).abs().max() < 1e-2


# Parameter counts of the published configurations (40 mels, 512-d output):
# the paper's ECAPA-TDNN (C=1024, MFA 3072) "22.5M", Fast ResNet-34 (base 16, SAP) "1.4M".
PARAMETER_COUNTS = [
    ({"name": "ecapa_tdnn", "channels": 1024, "mfa_channels": 3072}, 22_523_008),
    ({"name": "ecapa_tdnn", "channels": 512, "mfa_channels": 1536}, 7_071_936),
    ({"name": "fast_resnet34", "base_width": 16}, 1_437_078),
]


@pytest.mark.parametrize("spec,count", PARAMETER_COUNTS, ids=lambda v: str(v))
def test_parameter_counts_are_the_published_ones(spec, count):
    encoder = build_encoder(spec)
    assert sum(p.numel() for p in encoder.parameters()) == count


@pytest.mark.parametrize("encoder", [{"name": "ecapa_tdnn", "channels": 128}, {"name": "fast_resnet34"}])
@pytest.mark.parametrize("batch,seconds", [(1, 0.5), (3, 2.0), (2, 3.7)])
def test_speaker_encoder_output_shapes(encoder, batch, seconds):
    model = SpeakerEncoder(ModelSpec(encoder=encoder)).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, int(seconds * 16000)))
    assert out.shape == (batch, 512)
    assert torch.isfinite(out).all()


def test_unknown_encoder_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="Did you mean 'ecapa_tdnn'"):
        build_encoder({"name": "ecapa_tdn"})
    with pytest.raises(ConfigError, match="has no option 'chanels'.*'channels'"):
        build_encoder({"name": "ecapa_tdnn", "chanels": 512})


def test_encoder_n_mels_must_follow_the_frontend():
    with pytest.raises(ConfigError, match="n_mels"):
        SpeakerEncoder(ModelSpec(encoder={"name": "fast_resnet34", "n_mels": 80}))


def test_checkpoint_round_trip_and_strict_loading(tmp_path):
    small = ModelSpec(encoder={"name": "ecapa_tdnn", "channels": 64})
    model = SpeakerEncoder(small)
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    restored = load_weights(SpeakerEncoder(small), path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, restored.state_dict()[name])

    other_architecture = SpeakerEncoder(ModelSpec(encoder={"name": "fast_resnet34", "base_width": 4}))
    with pytest.raises(ModelError, match="missing keys.*encoder"):
        load_weights(other_architecture, path)

    wider = SpeakerEncoder(ModelSpec(encoder={"name": "ecapa_tdnn", "channels": 128}))
    with pytest.raises(ModelError, match="shape"):
        load_weights(wider, path)

    state = model.state_dict()
    state["encoder.extra"] = torch.zeros(1)
    save_weights(state, tmp_path / "extra.safetensors")
    with pytest.raises(ModelError, match="unexpected keys \\['encoder.extra'\\]"):
        load_weights(SpeakerEncoder(small), tmp_path / "extra.safetensors")


def test_checkpoint_is_not_a_pickle_and_garbage_is_refused(tmp_path):
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_weights(SpeakerEncoder(ModelSpec(encoder={"name": "ecapa_tdnn", "channels": 64})), garbage)
    with pytest.raises(ModelError, match="does not exist"):
        load_weights(SpeakerEncoder(), tmp_path / "missing.safetensors")
