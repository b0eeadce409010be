"""Two CPU processes (torchrun, gloo): SSPS agrees with one process, training runs under DDP.

One ``torchrun --nproc_per_node 2`` launch runs this file as a worker (``__main__`` below):
1. SSPS on synthetic representations: every rank writes its share of each global batch,
   k-means runs split across the ranks; the ranks must agree on the assignments, and the
   pseudo-positives, the assignments and the coverage must equal those of one process
   given the same global batches;
2. the gradient of NT-Xent over the gathered global batch equals one process's;
3. ``ssps.train.trainer.train`` on the tiny corpus with SSPS switched on.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

HERE = Path(__file__).resolve().parent
N, D, GROUPS, GLOBAL_BATCH, STEPS = 96, 16, 12, 16, 6


def ssps_scenario() -> dict:
    """Fill the queues for one epoch, cluster, sample for a few steps. Works in 1 or W processes."""
    from ssps.train import distributed
    from ssps.train.positive_sampling import SSPS, SSPSConfig

    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(GROUPS, D, generator=g), dim=-1)
    points = F.normalize(centres[torch.arange(N) % GROUPS] + 0.1 * torch.randn(N, D, generator=g), dim=-1)
    config = SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=1, positive_queue_size=64)
    ssps = SSPS(config, num_samples=N, representation_dim=D, embedding_dim=D, seed=3)
    per_rank = GLOBAL_BATCH // distributed.world_size()
    mine = slice(distributed.rank() * per_rank, (distributed.rank() + 1) * per_rank)
    order = torch.randperm(N, generator=g)
    ssps.on_epoch_start(0)  # the fill epoch
    for batch in order.split(GLOBAL_BATCH):
        local = batch[mine]
        ssps.update_queues(local, points[local], 100.0 + local.float()[:, None].expand(-1, D))
    ssps.on_epoch_start(1)  # k-means, split across ranks
    chosen = []
    for step, batch in enumerate(order.split(GLOBAL_BATCH)[:STEPS]):
        local = batch[mine]
        ssps.begin_step(step)
        out = ssps.select_positives(local, torch.full((len(local), D), -1.0), points[local])
        local_chosen = torch.where(out[:, 0] >= 100, out[:, 0] - 100, torch.tensor(-1.0)).long()
        chosen.append(distributed.all_gather(local_chosen))
    return {
        "assignments": ssps.assignments.clone(),
        "neighbours": ssps.neighbour_clusters.clone(),
        "chosen": torch.cat(chosen),
        "coverage": ssps.epoch_diagnostics()["ssps/coverage"],
    }


def gathered_loss_gradient() -> torch.Tensor:
    """Gradient of NT-Xent over the global batch w.r.t. a linear encoder's weight, each rank
    encoding its slice, averaged over ranks as DDP does."""
    from ssps.train import distributed
    from ssps.train.losses import nt_xent

    g = torch.Generator().manual_seed(5)
    encoder = torch.nn.Linear(8, 4, bias=False)
    encoder.weight.data = torch.randn(4, 8, generator=g)
    views = torch.randn(2, GLOBAL_BATCH, 8, generator=g)
    per_rank = GLOBAL_BATCH // distributed.world_size()
    mine = slice(distributed.rank() * per_rank, (distributed.rank() + 1) * per_rank)
    z, z_pos = (distributed.all_gather_with_grad(encoder(view[mine])) for view in views)
    nt_xent(z, z_pos, temperature=0.5).backward()
    return distributed.all_reduce_sum(encoder.weight.grad) / distributed.world_size()


def worker(out_dir: Path, config_path: Path) -> None:
    import torch.distributed as dist

    from ssps.train import distributed
    from ssps.train.config import load_config
    from ssps.train.trainer import train

    distributed.init_distributed("cpu")
    assert distributed.world_size() == 2
    torch.save({**ssps_scenario(), "gradient": gathered_loss_gradient()}, out_dir / f"ssps_rank{dist.get_rank()}.pt")
    train(load_config(config_path))
    distributed.shutdown()


@pytest.mark.slow
def test_two_process_ssps_and_training_agree_with_one_process(tmp_path):
    from test_trainer import tiny_config, write_config, write_corpus, epoch_metrics

    corpus = tmp_path / "corpus"
    manifest = write_corpus(corpus, utterances=2)
    config = tiny_config(tmp_path, manifest, train={"epochs": 2}, ssps={"start_epoch": 1})
    config_path = write_config(tmp_path / "ddp.yaml", config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__)), str(tmp_path), str(config_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"ssps_rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = ssps_scenario()  # this process: no process group, world size 1
    for key in ("assignments", "neighbours", "chosen"):
        assert torch.equal(ranks[0][key], ranks[1][key]), f"ranks disagree on {key}"
        assert torch.equal(ranks[0][key], single[key]), f"2 processes and 1 process differ on {key}"
    # The loss over the gathered global batch gives one process's gradient.
    assert torch.allclose(ranks[0]["gradient"], gathered_loss_gradient(), atol=1e-6)
    assert 0 < single["coverage"] < 1  # Q' holds 64 of 96 samples: some positives fall back
    assert ranks[0]["coverage"] == ranks[1]["coverage"] == single["coverage"]

    run_dir = Path(config["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2 and metrics["global_step"] == 4  # 16 utterances / batch 8
    assert epoch_metrics(run_dir)[(2, "ssps/coverage")] == 1.0
    assert (run_dir / "encoder.safetensors").is_file()


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
