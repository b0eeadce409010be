"""SwAV, VICReg, DINO and the supervised baselines (AAM-softmax, SupCon, CHNS) as training
methods: their SSPS wiring, their hooks, a few steps on a toy set, a tiny real training run
from YAML for each (with export), and VICReg's global-batch statistics under DDP (gloo).

The losses themselves are checked against their equations in test_losses_recipe2.py.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssps.train.config import OptimConfig, load_config
from ssps.train.losses import dino_loss, swav_loss, vicreg_loss
from ssps.train.methods import TrainBatch
from ssps.train.methods.dino import DINO, DINOConfig
from ssps.train.methods.supervised import AAMSoftmaxClassifier, AAMSoftmaxConfig, SupCon, SupConConfig
from ssps.train.methods.swav import SwAV, SwAVConfig
from ssps.train.methods.vicreg import VICReg, VICRegConfig
from ssps.train.trainer import build_optimizer, train

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two OpenMP threads wait for each other
    whenever another job holds a core (a tiny run took 80 s instead of 4 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ToyEncoder(nn.Module):
    """A stand-in for SpeakerEncoder: 'waveforms' of 24 numbers -> 16-d representations."""

    embedding_dim = 16

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 16))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x)
        return self.net(x)


def toy_views(count: int, batch: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """Noisy views of 4 'speakers'."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 24, generator=g)[torch.arange(batch) % 4]
    return [centres + 0.3 * torch.randn(batch, 24, generator=g) for _ in range(count)]


def small(method: str):
    torch.manual_seed(0)
    if method == "swav":
        return SwAV(SwAVConfig(num_prototypes=8, queue_size=0, freeze_prototypes_epochs=0, projector_hidden=32, projector_dim=8), ToyEncoder())
    if method == "vicreg":
        return VICReg(VICRegConfig(projector_hidden=32, projector_dim=8), ToyEncoder())
    if method == "aam_softmax":
        return AAMSoftmaxClassifier(AAMSoftmaxConfig(), ToyEncoder(), num_speakers=4)
    if method == "supcon":
        return SupCon(SupConConfig(), ToyEncoder(), num_speakers=4)
    return DINO(DINOConfig(projector_hidden=32, bottleneck_dim=8, head_dim=64, freeze_last_layer_epochs=0), ToyEncoder())


VIEWS = {"swav": 2, "vicreg": 2, "dino": 6, "aam_softmax": 1, "supcon": 1}


# ---- a few steps on a toy set ----------------------------------------------------------
@pytest.mark.parametrize("name", ["swav", "vicreg", "dino", "aam_softmax", "supcon"])
def test_a_few_steps_reduce_the_loss_on_a_toy_set(name):
    method = small(name)
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-2)
    views, indices = toy_views(VIEWS[name]), torch.arange(16)
    labels = indices % 4 if method.needs_labels else None  # the toy 'speakers'
    losses = []
    for step in range(40):
        loss = method(TrainBatch(views=views, indices=indices, labels=labels)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.on_step_end(step, 40)
        losses.append(float(loss.detach()))
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < 0.9 * losses[0], losses


# ---- SSPS wiring: the pseudo-positive replaces the positive, Q' gets the fresh one ------
class StubSSPS:
    """Replaces every positive by ``replacement`` and records what it was given."""

    def __init__(self, replacement):
        self.replacement, self.selected, self.written = replacement, None, None

    def select_positives(self, indices, z_pos, reference=None):
        self.selected = z_pos.detach().clone()
        return self.replacement

    def update_queues(self, indices, reference, z_pos):
        self.written = z_pos.detach().clone()


@pytest.mark.parametrize("name", ["swav", "vicreg"])
def test_ssps_replaces_the_positive_embedding(name):
    method = small(name).eval()  # eval: batch norm gives the same outputs when recomputed
    views = toy_views(2)
    replacement = torch.randn(16, method.embedding_dim)
    method.ssps = StubSSPS(replacement)
    loss = method(TrainBatch(views=views, indices=torch.arange(16))).loss
    z, z_pos = (method.projector(method.encoder(v)) for v in views)
    torch.testing.assert_close(method.ssps.selected, z_pos.detach())
    torch.testing.assert_close(method.ssps.written, z_pos.detach())  # Q' stores the fresh positive
    if name == "vicreg":
        expected = vicreg_loss(z, replacement)
    else:
        expected = swav_loss(method.prototype_scores(z), method.prototype_scores(replacement), 0.1)
    torch.testing.assert_close(loss, expected)


def test_dino_ssps_replaces_both_teacher_global_outputs_and_never_feeds_the_reference():
    method = small("dino").eval()
    views = toy_views(6)
    reference = torch.randn(16, 24) * 100  # the 4 s reference frame (here: recognisable values)
    replacement = F.normalize(torch.randn(16, 2 * 8), dim=-1)  # two bottleneck outputs
    method.ssps = StubSSPS(replacement)
    student_encoder = method.encoder
    student_encoder.inputs.clear()
    loss = method(TrainBatch(views=views, indices=torch.arange(16), reference=reference)).loss

    # The student saw exactly the six views: the reference frame is not an extra crop.
    assert len(student_encoder.inputs) == 6
    assert all(torch.equal(seen, view) for seen, view in zip(student_encoder.inputs, views))
    # Q' received the teacher's two bottleneck outputs of this batch (2 x 8 values per sample).
    with torch.no_grad():
        fresh = torch.cat([method.teacher_head.bottleneck(method.teacher_encoder(v)) for v in views[:2]], dim=1)
    torch.testing.assert_close(method.ssps.written, fresh)
    # The loss uses the pseudo-positive's teacher outputs for BOTH global views.
    student = [method.head(method.encoder(v)) for v in views]
    teacher = [method.teacher_head.last(part) for part in replacement.chunk(2, dim=1)]
    expected = dino_loss(student, teacher, torch.zeros(64), 0.1, 0.04)  # centre before this step's update
    torch.testing.assert_close(loss, expected)


def test_dino_head_is_weight_normalised_and_the_teacher_is_exported():
    method = small("dino")
    rows = F.normalize(method.head.last_layer, dim=-1)
    x = F.normalize(torch.randn(3, 8), dim=-1)
    torch.testing.assert_close(method.head.last(x), x @ rows.T)
    method.head.last_layer.data *= 5  # the scale of the raw weight does not matter
    torch.testing.assert_close(method.head.last(x), x @ rows.T)
    assert method.exported_encoder() is method.teacher_encoder
    assert not any(p.requires_grad for p in method.teacher_encoder.parameters())
    assert method.embedding_dim == 16  # Q' holds 2 x 8 bottleneck values, not 2 x 64 head outputs


def test_dino_schedules_ema_and_teacher_temperature():
    method = small("dino")
    assert method.teacher_momentum_at(0, 100) == pytest.approx(0.996)
    assert method.teacher_momentum_at(50, 100) == pytest.approx(0.998)
    assert method.teacher_momentum_at(100, 100) == pytest.approx(1.0)
    method.config.teacher_temperature_start, method.config.teacher_temperature_warmup_epochs = 0.02, 10
    method.on_epoch_start(5)
    assert method.teacher_temperature() == pytest.approx(0.03)
    method.on_epoch_start(10)
    assert method.teacher_temperature() == pytest.approx(0.04)
    # EMA: teacher <- m teacher + (1 - m) student.
    teacher_before = method.teacher_head.last_layer.clone()
    method.head.last_layer.data += 1.0
    method.on_step_end(0, 100)
    torch.testing.assert_close(method.teacher_head.last_layer, 0.996 * teacher_before + 0.004 * method.head.last_layer)


@pytest.mark.parametrize("name, part", [("swav", "prototypes.weight"), ("dino", "head.last_layer")])
def test_frozen_during_the_first_epoch(name, part):
    method = small(name)
    method.config.freeze_prototypes_epochs = method.config.freeze_last_layer_epochs = 1
    parameter = method.get_parameter(part)
    for epoch, frozen in ((0, True), (1, False)):
        method.on_epoch_start(epoch)
        method.zero_grad()
        method(TrainBatch(views=toy_views(VIEWS[name]), indices=torch.arange(16))).loss.backward()
        method.before_optimizer_step(epoch)
        assert (parameter.grad is None) == frozen


def test_swav_queue_fills_after_its_start_epoch_and_shapes_the_codes():
    torch.manual_seed(0)
    method = SwAV(SwAVConfig(num_prototypes=8, queue_size=32, queue_start_epoch=1, projector_hidden=32, projector_dim=8), ToyEncoder())
    other, batch = (TrainBatch(views=toy_views(2, seed=seed), indices=torch.arange(16)) for seed in (1, 2))
    method.on_epoch_start(0)
    method(other)
    assert int(method.queue_filled) == 0  # not before queue_start_epoch
    method.on_epoch_start(1)
    method(other)
    assert int(method.queue_filled) == 16
    with_queue = float(method(batch).loss.detach())
    method.queue_filled.zero_()
    without_queue = float(method(batch).loss.detach())
    assert int(method.queue_filled) == 16 and with_queue != pytest.approx(without_queue, abs=1e-4)


def test_warmup_cosine_learning_rate():
    optim = OptimConfig(optimizer="sgd", lr=0.2, scheduler="warmup_cosine", warmup_epochs=2, min_lr=1e-5, weight_decay=5e-5)
    optimizer, scheduler = build_optimizer(optim, nn.Linear(2, 2), total_steps=100, steps_per_epoch=10)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["weight_decay"] == 5e-5
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.2 / 20) and lrs[19] == pytest.approx(0.2)
    assert lrs[20] == pytest.approx(0.2) and lrs[-1] == pytest.approx(1e-5, abs=1e-4)
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:]))


# ---- every method trains from YAML on CPU and exports a model directory -----------------
TINY_METHODS = {
    "swav_ssps": {"method": {"name": "swav", "num_prototypes": 8, "queue_size": 16, "queue_start_epoch": 1,
                             "projector_hidden": 64, "projector_dim": 32}},
    "vicreg_ssps": {"method": {"name": "vicreg", "projector_hidden": 64, "projector_dim": 32}},
    "dino_ssps": {"method": {"name": "dino", "global_seconds": 1.0, "local_seconds": 0.5, "projector_hidden": 64,
                             "bottleneck_dim": 16, "head_dim": 256},
                  "optim": {"optimizer": "sgd", "lr": 0.05, "scheduler": "warmup_cosine", "warmup_epochs": 1,
                            "weight_decay": 5e-5, "grad_clip": 3.0}},
    "vicreg_supervised_positives": {"method": {"name": "vicreg", "projector_hidden": 64, "projector_dim": 32},
                                    "data": {"positive": "supervised"}, "ssps": {"enabled": False}},
    "aam_softmax": {"method": {"name": "aam_softmax"}, "ssps": {"enabled": False}},
    "supcon": {"method": {"name": "supcon", "utterances_per_speaker": 2}, "ssps": {"enabled": False}},
    "chns": {"method": {"name": "chns", "num_clusters": 2, "hard_fraction": 0.5, "centroid_seconds": 0.5},
             "ssps": {"enabled": False}},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from test_trainer import write_corpus, write_trials

    root = tmp_path_factory.mktemp("corpus")
    manifest = write_corpus(root)
    return root, manifest, write_trials(root, manifest)


@pytest.mark.parametrize("case", sorted(TINY_METHODS))
def test_method_trains_from_yaml_and_exports_a_model(tmp_path, corpus, case):
    from test_trainer import epoch_metrics, step_losses, tiny_config, write_config

    import ssps
    from ssps.train.checkpoint import read_weights
    from ssps.train.export import export_model

    root, manifest, trials = corpus
    sections = dict(TINY_METHODS[case])
    method = sections.pop("method")
    sections["ssps"] = {"start_epoch": 1, **sections.get("ssps", {})}
    config = tiny_config(tmp_path, manifest, train={"epochs": 2},
                         eval={"trials": [{"name": "tiny", "path": str(trials), "audio_root": str(root)}]}, **sections)
    config["method"] = method
    run_dir = train(load_config(write_config(tmp_path / "config.yaml", config)))

    losses = step_losses(run_dir)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    if config["ssps"]["enabled"]:
        assert epoch_metrics(run_dir)[(2, "ssps/coverage")] == 1.0  # pseudo-positives were used
    assert 0 <= json.loads((run_dir / "metrics.json").read_text())["evaluation"]["tiny"]["eer"] <= 100
    if method["name"] == "dino":  # the exported encoder is the teacher
        state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["method"]
        teacher = {k.removeprefix("teacher_encoder."): v for k, v in state.items() if k.startswith("teacher_encoder.")}
        epoch_2 = read_weights(run_dir / "checkpoints/epoch_0002.safetensors")
        assert all(torch.equal(epoch_2[k], teacher[k]) for k in epoch_2)
        assert not torch.equal(epoch_2["encoder.output.weight"], state["encoder.encoder.output.weight"])
    model = ssps.load_model(export_model(run_dir, tmp_path / "model"))
    score = model.verify(root / "spk0/rec0/utt0.wav", root / "spk0/rec1/utt0.wav", threshold=0.5).score
    assert -1.0 <= score <= 1.0


@pytest.mark.parametrize("case", ["dino_ssps", "swav_ssps", "chns"])
def test_stopped_mid_epoch_and_resumed_gives_the_same_losses(tmp_path, corpus, case):
    """Teacher, centre, SwAV queue, CHNS clusters and the per-step lr schedule are all in the
    checkpoint: stopping after 3 steps (mid-epoch 2) and resuming reproduces the losses."""
    from test_trainer import step_losses, tiny_config, write_config

    _, manifest, _ = corpus
    sections = dict(TINY_METHODS[case])
    method = sections.pop("method")
    sections["ssps"] = {"start_epoch": 1, **sections.get("ssps", {})}
    losses = {}
    for name, max_steps in (("straight", [None]), ("resumed", [3, None])):
        config = tiny_config(tmp_path / name, manifest, **sections)
        config["method"] = method
        for steps in max_steps:
            config["train"] = {**config["train"], "epochs": 2, "max_steps": steps}
            run_dir = train(load_config(write_config(tmp_path / f"{name}.yaml", config)))
        losses[name] = step_losses(run_dir)
    assert len(losses["straight"]) == 4 and losses["resumed"] == losses["straight"]


def test_supervised_methods_refuse_ssps_and_unlabelled_data(tmp_path, corpus):
    from test_trainer import tiny_config, write_config

    from ssps.errors import ConfigError

    _, manifest, _ = corpus
    config = tiny_config(tmp_path, manifest)
    config["method"] = {"name": "aam_softmax"}
    with pytest.raises(ConfigError, match="supervised: SSPS does not apply"):
        train(load_config(write_config(tmp_path / "c.yaml", config)))
    config["method"] = {"name": "vicreg"}
    config["ssps"]["sampling"] = "centroid"
    with pytest.raises(ConfigError, match="centroid.*use clustering or nn"):
        train(load_config(write_config(tmp_path / "c.yaml", config)))


def test_chns_clusters_speaker_centroids_and_reuses_them_when_resumed_mid_epoch(corpus, monkeypatch):
    from ssps.train.data import SSLDataset, read_manifest
    from ssps.train.methods.supervised import CHNS, CHNSConfig
    from ssps.train.model import ModelSpec, SpeakerEncoder

    _, manifest, _ = corpus
    dataset = SSLDataset(read_manifest(manifest), num_views=1)
    torch.manual_seed(0)
    encoder = SpeakerEncoder(ModelSpec(encoder={"name": "fast_resnet34", "base_width": 4, "embedding_dim": 32}))
    method = CHNS(CHNSConfig(num_clusters=2, centroid_seconds=0.5), encoder, num_speakers=4)
    centroids = method.speaker_centroids(dataset, seed=0, epoch=0)
    assert centroids.shape == (4, 32) and torch.allclose(centroids.norm(dim=1), torch.ones(4))
    batches = list(method.epoch_batches(dataset, 8, seed=0, epoch=0, start=0))
    assert sorted(set(method.clusters.tolist())) == [0, 1] and int(method.clusters_epoch) == 0
    monkeypatch.setattr(method, "speaker_centroids", lambda *a: pytest.fail("recomputed on resume"))
    assert list(method.epoch_batches(dataset, 8, seed=0, epoch=0, start=1)) == batches[1:]


# ---- DDP: VICReg statistics over the global batch (2 gloo processes) --------------------
def vicreg_gradient() -> tuple[float, torch.Tensor]:
    """Loss and gradient of VICReg over a global batch of 16, each rank encoding its slice."""
    from ssps.train import distributed

    torch.manual_seed(0)
    method = VICReg(VICRegConfig(projector_hidden=32, projector_dim=8), ToyEncoder())
    views = toy_views(2, batch=16, seed=3)
    per_rank = 16 // distributed.world_size()
    mine = slice(distributed.rank() * per_rank, (distributed.rank() + 1) * per_rank)
    # Batch norm statistics are per rank under DDP: compare in eval mode (identity BN).
    method.eval()
    loss = method(TrainBatch(views=[v[mine] for v in views], indices=torch.arange(16)[mine])).loss
    loss.backward()
    gradient = distributed.all_reduce_sum(method.encoder.net[0].weight.grad.clone()) / distributed.world_size()
    return float(loss.detach()), gradient


@pytest.mark.slow
def test_under_ddp_vicreg_gathers_statistics_chns_slices_batches_and_dino_chns_train(tmp_path, corpus):
    """One torchrun launch (2 gloo processes): VICReg's loss and gradient, CHNS batches, then
    tiny DINO + SSPS and CHNS trainings."""
    from test_trainer import epoch_metrics, tiny_config, write_config

    _, manifest, _ = corpus
    configs = []
    for case in ("dino_ssps", "chns"):
        sections = dict(TINY_METHODS[case])
        method = sections.pop("method")
        sections["ssps"] = {"start_epoch": 1, **sections.get("ssps", {})}
        config = tiny_config(tmp_path / case, manifest, train={"epochs": 2}, **sections)
        config["method"] = method
        configs.append((config, write_config(tmp_path / f"{case}.yaml", config)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__)), str(tmp_path), *(str(path) for _, path in configs)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    single_loss, single_gradient = vicreg_gradient()
    for rank in (0, 1):
        loss, gradient = torch.load(tmp_path / f"vicreg_rank{rank}.pt", weights_only=True)
        assert loss == pytest.approx(single_loss, rel=1e-5)  # the loss of the global batch on every rank
        torch.testing.assert_close(gradient, single_gradient, atol=1e-6, rtol=1e-4)
    # CHNS batches: each rank takes its slice of the same global batch.
    batches = [torch.load(tmp_path / f"chns_rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    from test_chns import sampler

    single = sampler(batch_per_rank=8)
    assert [a + b for a, b in zip(*batches)] == [single.global_batch(step) for step in range(len(single))]
    for config, _ in configs:
        run_dir = Path(config["run_dir"])
        assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 4
        assert (run_dir / "encoder.safetensors").is_file()
    assert epoch_metrics(Path(configs[0][0]["run_dir"]))[(2, "ssps/coverage")] == 1.0


if __name__ == "__main__":
    from test_chns import sampler

    from ssps.train import distributed
    from ssps.train.config import load_config

    distributed.init_distributed("cpu")
    out = Path(sys.argv[1])
    rank = distributed.rank()
    torch.save(vicreg_gradient(), out / f"vicreg_rank{rank}.pt")
    torch.save(list(sampler(batch_per_rank=4)), out / f"chns_rank{rank}.pt")
    for config_path in sys.argv[2:]:
        train(load_config(config_path))
    distributed.shutdown()
