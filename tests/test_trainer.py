"""The trainer end to end on a tiny generated corpus: real wav files, real training steps.

Also: config errors, crash + resume identity, labels never reaching the loss.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from ssps.errors import ConfigError
from ssps.train.__main__ import main as train_main
from ssps.train.checkpoint import read_weights
from ssps.train.config import load_config
from ssps.train.model import SpeakerEncoder
from ssps.train.trainer import train

RATE = 16000
REPO = Path(__file__).resolve().parents[1]


def write_corpus(root: Path, speakers=4, recordings=2, utterances=2, seconds=1.5, seed=0) -> Path:
    """Harmonic 'voices' (one pitch per speaker) through one spectral tilt per recording.
    Returns the manifest CSV (path, speaker, recording, duration)."""
    rng = np.random.default_rng(seed)
    rows = ["path,speaker,recording,duration"]
    t = np.arange(int(seconds * RATE)) / RATE
    for s, r in itertools.product(range(speakers), range(recordings)):
        tilt = rng.uniform(0.5, 1.5)
        for u in range(utterances):
            vibrato = 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)
            phase = 2 * np.pi * (90 + 40 * s) * np.cumsum(vibrato) / RATE
            wave = sum(np.sin(k * phase) / k**tilt for k in range(1, 12))
            wave *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 3) * t) ** 2
            wave = 0.1 * wave / np.abs(wave).max() + 0.003 * rng.standard_normal(t.size)
            relative = f"spk{s}/rec{r}/utt{u}.wav"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / relative, wave.astype(np.float32), RATE)
            rows.append(f"{relative},spk{s},rec{r},{seconds}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def write_trials(root: Path, manifest: Path) -> Path:
    """Every pair of the first utterance of each recording: label = same speaker."""
    rows = [line.split(",") for line in manifest.read_text().splitlines()[1:]]
    firsts = [(path, speaker) for path, speaker, _, _ in rows if path.endswith("utt0.wav")]
    lines = [f"{int(a[1] == b[1])} {a[0]} {b[0]}" for a, b in itertools.combinations(firsts, 2)]
    trials = root / "trials.txt"
    trials.write_text("\n".join(lines) + "\n")
    return trials


def tiny_config(tmp_path: Path, manifest: Path, **sections) -> dict:
    """A config that trains in seconds: 16 utterances (2 steps of 8 per epoch), 0.5 s views,
    a 4-wide Fast ResNet-34, SSPS from the 3rd epoch."""
    config = {
        "run_dir": str(tmp_path / "run"),
        "data": {"train_manifest": str(manifest), "frame_seconds": 0.5, "num_workers": 0, "augment": {"strategy": "none"}},
        "model": {"encoder": {"name": "fast_resnet34", "base_width": 4, "embedding_dim": 32}},
        "method": {"name": "simclr", "temperature": 0.1},
        "ssps": {"enabled": True, "start_epoch": 2, "num_clusters": 4, "window": 1, "reference_seconds": 1.0},
        "train": {"epochs": 3, "batch_size": 8, "log_every_steps": 1, "progress_bar": False, "tensorboard": False},
        "checkpoint": {"every_steps": 1, "average_last": 2},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def step_losses(run_dir: Path) -> list[float]:
    rows = [line.split(",") for line in (run_dir / "logs/metrics.csv").read_text().splitlines()[1:]]
    return [float(value) for kind, _, _, name, value in rows if kind == "step" and name == "loss"]


def epoch_metrics(run_dir: Path) -> dict[tuple[int, str], float]:
    rows = [line.split(",") for line in (run_dir / "logs/metrics.csv").read_text().splitlines()[1:]]
    return {(int(epoch), name): float(value) for kind, epoch, _, name, value in rows if kind == "epoch"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    manifest = write_corpus(root)
    return root, manifest, write_trials(root, manifest)


# ---- configuration errors -----------------------------------------------------------
@pytest.mark.parametrize(
    "override, message",
    [
        ("trian.epochs=3", "'trian'.*Did you mean 'train'"),
        ("train.epoch=3", "'train.epoch'.*Did you mean 'train.epochs'"),
        ("ssps.num_cluster=3", "'ssps.num_cluster'.*Did you mean 'ssps.num_clusters'"),
        ("method.temprature=0.1", "'method.temprature'.*Did you mean 'method.temperature'"),
        ("model.encoder.chanels=8", "'model.encoder.chanels'.*Did you mean 'model.encoder.channels'"),
        ("data.augment.stratgy=none", "'data.augment.stratgy'.*Did you mean 'data.augment.strategy'"),
        ("train.epochs=three", "'train.epochs' must be an integer"),
        ("method.name=simclear", "unknown method 'simclear'.*Did you mean 'simclr'"),
    ],
)
def test_bad_config_keys_name_the_key_and_the_closest_valid_one(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "ssps/train/recipes/voxceleb2_simclr_ecapa.yaml", [override])


def test_cli_reports_a_config_error_without_a_traceback(tmp_path, capsys):
    assert train_main(["--config", str(REPO / "ssps/train/recipes/voxceleb2_simclr_ecapa.yaml"), "train.epohcs=1"]) == 2
    assert "Did you mean 'train.epochs'" in capsys.readouterr().err


def test_ssps_k_larger_than_n_is_refused(tmp_path, corpus):
    _, manifest, _ = corpus
    config = tiny_config(tmp_path, manifest, ssps={"num_clusters": 1000})
    with pytest.raises(ConfigError, match="K=1000.*N=16"):
        train(load_config(write_config(tmp_path / "c.yaml", config)))


@pytest.mark.parametrize("recipe", sorted((REPO / "ssps/train/recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_packaged_recipe_loads(recipe):
    config = load_config(recipe)
    assert config.to_dict()["model"]["encoder"]["name"] in ("ecapa_tdnn", "fast_resnet34")


# ---- the tiny end-to-end run ---------------------------------------------------------
def test_end_to_end_simclr_then_ssps_average_evaluate_export(tmp_path, corpus):
    root, manifest, trials = corpus
    config = tiny_config(
        tmp_path, manifest,
        eval={"trials": [{"name": "tiny", "path": str(trials), "audio_root": str(root)}],
              "validation": {"path": str(trials), "audio_root": str(root)}, "validate_every_epochs": 3},
    )
    run_dir = train(load_config(write_config(tmp_path / "c.yaml", config)))

    # SSPS switched on at epoch 3 (1-based) and logged its diagnostics there only.
    epochs = epoch_metrics(run_dir)
    assert (2, "ssps/coverage") not in epochs
    assert epochs[(3, "ssps/coverage")] == 1.0  # every pseudo-positive was in Q'
    for name in ("speaker_accuracy", "recording_accuracy", "nmi_speaker", "nmi_recording"):
        assert 0.0 <= epochs[(3, f"ssps/{name}")] <= 1.0
    assert (3, "validation/eer") in epochs

    # The export contract: the resolved config and the averaged encoder.
    saved = yaml.safe_load((run_dir / "train_config.yaml").read_text())
    assert saved["model"]["encoder"] == {"name": "fast_resnet34", "base_width": 4, "embedding_dim": 32}
    averaged = read_weights(run_dir / "encoder.safetensors")
    epoch_2, epoch_3 = (read_weights(run_dir / f"checkpoints/epoch_000{e}.safetensors") for e in (2, 3))
    key = "encoder.output.weight"
    assert torch.allclose(averaged[key], (epoch_2[key] + epoch_3[key]) / 2)
    assert not (run_dir / "checkpoints/epoch_0001.safetensors").exists()  # pruned: only the last 2 kept
    encoder = SpeakerEncoder(load_config(write_config(tmp_path / "c2.yaml", saved)).model)
    encoder.load_state_dict(averaged)  # strict: keys are SpeakerEncoder.state_dict()'s

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["evaluation"]["tiny"]["eer"] <= 100
    assert metrics["averaged_checkpoints"] == ["epoch_0002.safetensors", "epoch_0003.safetensors"]

    export = pytest.importorskip("ssps.train.export")
    import ssps

    model_dir = export.export_model(run_dir, tmp_path / "model")
    model = ssps.load_model(model_dir)
    a, b = root / "spk0/rec0/utt0.wav", root / "spk0/rec1/utt0.wav"
    result = model.verify(a, b, threshold=0.5)
    assert -1.0 <= result.score <= 1.0
    with torch.no_grad():
        expected = torch.nn.functional.cosine_similarity(
            *(encoder.eval()(torch.from_numpy(sf.read(p, dtype="float32")[0])[None]) for p in (a, b))
        )
    assert result.score == pytest.approx(float(expected), abs=2e-3)


def test_moco_with_ssps_nn_and_max_steps(tmp_path, corpus):
    _, manifest, _ = corpus
    config = tiny_config(
        tmp_path, manifest,
        method={"name": "moco", "temperature": 0.1, "queue_size": 32, "margin": 0.1},
        ssps={"sampling": "nn", "window": 3, "start_epoch": 1},
        train={"epochs": 4, "max_steps": 5, "tensorboard": True},  # stops in the middle of epoch 3
    )
    run_dir = train(load_config(write_config(tmp_path / "c.yaml", config)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["global_step"] == 5
    assert metrics["averaged_checkpoints"][-1] == "current.safetensors"
    assert epoch_metrics(run_dir)[(2, "ssps/coverage")] == 1.0
    assert len(step_losses(run_dir)) == 5 and all(np.isfinite(step_losses(run_dir)))
    assert list((run_dir / "logs/tensorboard").iterdir())


def test_labels_never_reach_the_loss(tmp_path, corpus):
    """The same SSL run with speaker and recording labels scrambled: identical losses."""
    root, manifest, _ = corpus
    header, *rows = manifest.read_text().splitlines()
    fields = [row.split(",") for row in rows]
    rng = np.random.default_rng(0)
    speakers, recordings = rng.permutation([f[1] for f in fields]), rng.permutation([f[2] for f in fields])
    scrambled = root / "scrambled.csv"
    scrambled.write_text("\n".join([header] + [f"{f[0]},{s},{r},{f[3]}" for f, s, r in zip(fields, speakers, recordings)]) + "\n")
    losses, diagnostics = [], []
    for name, csv in (("labels", manifest), ("scrambled", scrambled)):
        config = tiny_config(tmp_path / name, csv, train={"epochs": 2}, ssps={"start_epoch": 1})
        run_dir = train(load_config(write_config(tmp_path / f"{name}.yaml", config)))
        losses.append(step_losses(run_dir))
        diagnostics.append(epoch_metrics(run_dir)[(2, "ssps/nmi_speaker")])
    assert len(losses[0]) == 4 and losses[0] == losses[1]
    assert diagnostics[0] != diagnostics[1]  # the labels did reach the diagnostics


# ---- crash and resume ------------------------------------------------------------------
def test_killed_run_resumes_to_the_same_weights(tmp_path, corpus):
    _, manifest, _ = corpus
    config = tiny_config(tmp_path, manifest, train={"epochs": 4})
    reference = train(load_config(write_config(tmp_path / "reference.yaml", {**config, "run_dir": str(tmp_path / "reference")})))

    crash_config = write_config(tmp_path / "crash.yaml", {**config, "run_dir": str(tmp_path / "crash")})
    command = [sys.executable, "-m", "ssps.train", "--config", str(crash_config)]
    checkpoint = tmp_path / "crash/checkpoints/last.pt"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Kill it mid-run: once the checkpoint of step 3 (in epoch 2) or later exists (8 steps in all).
    deadline, seen = time.monotonic() + 120, None
    while time.monotonic() < deadline and process.poll() is None:
        stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        if stamp != seen:  # a new checkpoint: read its step
            seen = stamp
            try:
                if torch.load(checkpoint, weights_only=True)["global_step"] >= 3:
                    break
            except Exception:  # replaced while we read it: look again
                seen = None
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    killed_at = torch.load(checkpoint, weights_only=True)["global_step"]
    assert killed_at < 8, "the run finished before it could be killed"

    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    resumed = tmp_path / "crash"
    for name in ("encoder.safetensors", "checkpoints/epoch_0004.safetensors"):
        a, b = read_weights(reference / name), read_weights(resumed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resume (killed at step {killed_at})"
    assert step_losses(reference) == step_losses(resumed)
    assert "resumed from" in (resumed / "train.log").read_text()


def test_init_from_continues_the_epoch_count_and_drops_unused_ssps_queues(tmp_path, corpus):
    """init_from continues the source run's epoch count: epochs=1 after a 1-epoch run would
    train nothing, silently, so it is refused with the value to set. A plain-SSL branch of a
    run that filled SSPS queues loads the weights and leaves the queues out."""
    _, manifest, _ = corpus
    base_config = tiny_config(tmp_path / "base", manifest, train={"epochs": 1}, ssps={"start_epoch": 1})
    base = train(load_config(write_config(tmp_path / "base.yaml", base_config)))
    empty = tiny_config(tmp_path / "empty", manifest, train={"epochs": 1, "init_from": str(base)})
    with pytest.raises(ConfigError, match=r"train.epochs=1 leaves nothing to train.*e\.g\. 3"):
        train(load_config(write_config(tmp_path / "empty.yaml", empty)))
    plain = tiny_config(tmp_path / "plain", manifest, train={"epochs": 2, "init_from": str(base)}, ssps={"enabled": False})
    run_dir = train(load_config(write_config(tmp_path / "plain.yaml", plain)))
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert (state["epoch"], state["global_step"]) == (2, 4)  # 2 steps of base + 2 of the branch
    assert not any(key.startswith("ssps.") for key in state["method"])


def test_filling_the_ssps_queues_does_not_change_training(tmp_path, corpus):
    """A baseline may fill the queues in its last epoch (to branch SSPS from it) for free:
    the reference pass has no gradient and runs in eval mode."""
    _, manifest, _ = corpus
    losses = []
    for name, ssps in (("plain", {"enabled": False}), ("filling", {"enabled": True, "start_epoch": 1})):
        config = tiny_config(tmp_path / name, manifest, train={"epochs": 1}, ssps=ssps)
        run_dir = train(load_config(write_config(tmp_path / f"{name}.yaml", config)))
        losses.append(step_losses(run_dir))
        weights = read_weights(run_dir / "encoder.safetensors")
        if name == "plain":
            plain_weights = weights
    assert losses[0] == losses[1]
    assert all(torch.equal(plain_weights[k], weights[k]) for k in weights)
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["method"]
    assert (state["ssps.reference_queue.write_order"] > 0).all()  # every sample is in Q-hat
