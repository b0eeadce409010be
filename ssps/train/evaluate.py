"""Speaker-verification evaluation of an encoder on VoxCeleb-format trial lists.

Every file named in the trials is embedded once, at full length (paper IV-E), each trial
is scored by the cosine of its two L2-normalised representations, and EER / minDCF come
from ``ssps.metrics``. Under DDP each rank embeds its share of the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ssps.metrics import read_trials, verification_metrics
from ssps.train import distributed
from ssps.train.data import read_audio


@torch.no_grad()
def embed_files(encoder: torch.nn.Module, paths: list[str], device: torch.device, sample_rate: int) -> dict[str, np.ndarray]:
    """{path: L2-normalised representation} for every path, computed on all ranks."""
    was_training = encoder.training
    encoder.eval()
    local = {}
    try:
        for path in paths[distributed.rank() :: distributed.world_size()]:
            waveform = torch.from_numpy(read_audio(path, sample_rate)).to(device)
            local[path] = F.normalize(encoder(waveform[None]).float(), dim=-1)[0].cpu().numpy()
    finally:
        encoder.train(was_training)
    if not distributed.is_distributed():
        return local
    shares = [None] * distributed.world_size()
    dist.all_gather_object(shares, local)
    return {path: vector for share in shares for path, vector in share.items()}


def evaluate_trials(
    encoder: torch.nn.Module,
    trial_file: str | Path,
    audio_root: str | Path,
    device: torch.device,
    sample_rate: int = 16000,
) -> dict[str, float]:
    """EER (%), minDCF (P_target 0.01) and their thresholds on one trial list."""
    trials = read_trials(trial_file)
    root = Path(audio_root)
    files = sorted({str(root / name) for trial in trials for name in (trial.enrollment, trial.test)})
    embeddings = embed_files(encoder, files, device, sample_rate)
    scores = np.array(
        [float(embeddings[str(root / t.enrollment)] @ embeddings[str(root / t.test)]) for t in trials]
    )
    labels = np.array([t.label for t in trials])
    return verification_metrics(scores, labels)
