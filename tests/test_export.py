"""Export to a model directory and its contract (issue 2)."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from ssps import model_dir as md
from ssps.errors import ConfigError, ModelError
from ssps.train.checkpoint import save_weights
from ssps.train.export import cli_main, export_model, load_torch_model, parity_audio
from ssps.train.model import ModelSpec, SpeakerEncoder

SMALL = {"model": {"encoder": {"name": "ecapa_tdnn", "channels": 64}}}


@pytest.fixture(scope="module")
def ecapa512_dir(tmp_path_factory):
    """The acceptance case of the issue: a random-init ECAPA-TDNN C=512."""
    out = tmp_path_factory.mktemp("export") / "ecapa512"
    return export_model(None, out, train_config={"model": {"encoder": {"name": "ecapa_tdnn", "channels": 512}}})


def cosine(a, b):
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_random_init_ecapa512_export_is_a_complete_model_directory(ecapa512_dir):
    files = sorted(p.name for p in ecapa512_dir.iterdir())
    assert files == ["README.md", "config.json", "model.onnx", "model.safetensors", "train_config.yaml"]
    config = md.read_config(ecapa512_dir)
    assert config.format_version == md.FORMAT_VERSION
    assert config.untrained is True
    assert "UNTRAINED" in (ecapa512_dir / "README.md").read_text()
    assert config.sample_rate == 16000 and config.embedding_dim == 512
    assert config.frontend["n_mels"] == 40 and config.frontend["win_length"] == 400
    assert config.encoder == {"name": "ecapa_tdnn", "channels": 512}
    assert config.onnx_sha256 == md.sha256_of(ecapa512_dir / "model.onnx")
    assert config.provenance["parity_min_cosine"] >= 0.9999
    md.check_onnx_integrity(ecapa512_dir, config)
    # train_config.yaml holds the resolved model spec, so the weights can be rebuilt alone.
    saved = yaml.safe_load((ecapa512_dir / "train_config.yaml").read_text())
    assert saved["model"]["frontend"]["n_mels"] == 40


def test_onnx_graph_contract_and_parity_with_pytorch(ecapa512_dir):
    session = ort.InferenceSession(str(ecapa512_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (waveform,) = session.get_inputs()
    (embedding,) = session.get_outputs()
    assert waveform.name == "waveform" and waveform.type == "tensor(float)"
    assert embedding.name == "embedding"
    assert isinstance(waveform.shape[0], str) and isinstance(waveform.shape[1], str)  # dynamic axes

    torch_model = load_torch_model(ecapa512_dir)
    speech = parity_audio(16000)
    for batch in (speech[None, :8000], speech[None, :16000 * 7 + 123], np.stack([speech[:40000], speech[5000:45000]])):
        onnx_out = session.run(None, {"waveform": batch})[0]
        with torch.no_grad():
            torch_out = torch_model(torch.from_numpy(batch)).numpy()
        assert onnx_out.shape == (len(batch), 512)
        assert np.allclose(np.linalg.norm(onnx_out, axis=1), 1.0, atol=1e-5)
        assert cosine(onnx_out, torch_out).min() >= 0.9999


def test_export_from_run_directory_keeps_trained_weights(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.yaml").write_text(yaml.safe_dump({**SMALL, "method": {"name": "simclr"}}))
    torch.manual_seed(3)
    encoder = SpeakerEncoder(ModelSpec.from_dict(SMALL["model"]))
    save_weights(encoder, run / "encoder.safetensors")
    out = export_model(run, tmp_path / "model", name="tiny", thresholds={"eer": md.Threshold(0.4, "dev.txt")})
    config = md.read_config(out)
    assert config.untrained is False and config.name == "tiny"
    assert config.thresholds["eer"].value == 0.4
    assert yaml.safe_load((out / "train_config.yaml").read_text())["method"] == {"name": "simclr"}
    restored = load_torch_model(out).speaker_encoder
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, restored.state_dict()[name])


def test_checkpoint_that_does_not_match_the_config_fails_without_leftovers(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_weights(SpeakerEncoder(ModelSpec(encoder={"name": "fast_resnet34", "base_width": 4})), weights)
    with pytest.raises(ModelError, match="does not match the model built from its config"):
        export_model(weights, tmp_path / "out", train_config=SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_unknown_encoder_in_config_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown encoder 'ecapa'"):
        export_model(None, tmp_path / "out", train_config={"model": {"encoder": {"name": "ecapa"}}})
    with pytest.raises(ConfigError, match="unknown keys \\['encodr'\\]"):
        export_model(None, tmp_path / "out", train_config={"model": {"encodr": {}}})


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelError, match="cannot create"):
        export_model(None, blocker / "model", train_config=SMALL)


def test_existing_output_needs_overwrite_and_failed_export_leaves_old_model_intact(tmp_path, monkeypatch):
    out = export_model(None, tmp_path / "model", train_config=SMALL)
    before = (out / "config.json").read_text()
    with pytest.raises(ModelError, match="already exists"):
        export_model(None, out, train_config=SMALL)

    import ssps.train.export as export_module

    def broken_parity(*args, **kwargs):
        raise ModelError("simulated parity failure")

    monkeypatch.setattr(export_module, "check_parity", broken_parity)
    with pytest.raises(ModelError, match="simulated"):
        export_model(None, out, train_config=SMALL, overwrite=True)
    assert (out / "config.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left


def test_overwrite_replaces_the_model(tmp_path):
    out = export_model(None, tmp_path / "model", train_config=SMALL, seed=0)
    first = md.read_config(out).onnx_sha256
    export_model(None, out, train_config=SMALL, seed=1, overwrite=True)
    assert md.read_config(out).onnx_sha256 != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_export_cli(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    assert cli_main(["--untrained", "--config", str(config), "-o", str(tmp_path / "m")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "config.json").read_text())["untrained"] is True
    assert cli_main([str(tmp_path / "missing_run"), "-o", str(tmp_path / "m2")]) == 2
    assert "does not exist" in capsys.readouterr().err
