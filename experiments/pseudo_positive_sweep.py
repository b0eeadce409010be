"""Would SSPS pick useful positives from this model? Measure it before training with it.

Embeds one un-augmented reference crop of every training utterance with a run's
encoder (as SSPS's queue Q-hat would hold them), then, for several (K, M) settings of
SSPS-Clustering and M of SSPS-NN, computes exactly (no sampling) the expected share of
pseudo-positives that are the same speaker in ANOTHER recording: the only positives that
teach something plain SSL cannot (FINDINGS.md). Also prints the mean cosine of
same-recording, same-speaker-other-recording and other-speaker pairs (paper section III-B).

    .venv/bin/python experiments/pseudo_positive_sweep.py runs/stage_a_simclr
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from ssps.train.data.audio import read_random_crop
from ssps.train.data.manifest import read_manifest
from ssps.train.export import load_torch_model
from ssps.train.positive_sampling.kmeans import spherical_kmeans

REFERENCE_SECONDS = 4.0
SAMPLE_RATE = 16000


def reference_crops(manifest, seed: int) -> torch.Tensor:
    """One random un-augmented crop per utterance, read as the training dataset reads it."""
    rng = np.random.default_rng(seed)
    length = int(REFERENCE_SECONDS * SAMPLE_RATE)
    crops = [read_random_crop(row.path, length, rng, SAMPLE_RATE, duration=row.duration) for row in manifest]
    return torch.from_numpy(np.stack(crops))


@torch.inference_mode()
def embed(model, crops: torch.Tensor, batch: int = 64) -> torch.Tensor:
    out = []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for chunk in crops.split(batch):
            out.append(model(chunk).float())
    return F.normalize(torch.cat(out), dim=-1)


def useful_share(pools: list[np.ndarray], speakers: np.ndarray, recordings: np.ndarray) -> dict[str, float]:
    """Mean over anchors of the share of their pool that is same speaker / same recording /
    same speaker and other recording (a uniform draw from the pool, in expectation)."""
    same_spk, same_rec, useful, covered = [], [], [], 0
    for anchor, pool in enumerate(pools):
        if len(pool) == 0:
            continue
        covered += 1
        spk = speakers[pool] == speakers[anchor]
        rec = recordings[pool] == recordings[anchor]
        same_spk.append(spk.mean())
        same_rec.append(rec.mean())
        useful.append((spk & ~rec).mean())
    return {
        "coverage": covered / len(pools),
        "speaker": float(np.mean(same_spk)),
        "recording": float(np.mean(same_rec)),
        "useful": float(np.mean(useful)),
    }


def clustering_pools(embeddings: torch.Tensor, k: int, window: int, seed: int) -> list[np.ndarray]:
    clustering = spherical_kmeans(embeddings, k, iterations=10, seed=seed)
    assignments = clustering.assignments.numpy()
    members = [np.flatnonzero(assignments == c) for c in range(k)]
    if window == 0:  # eq. 8: another member of the anchor's own cluster
        return [members[assignments[i]][members[assignments[i]] != i] for i in range(len(assignments))]
    similarity = clustering.centroids @ clustering.centroids.T
    similarity.fill_diagonal_(float("-inf"))
    nearest = similarity.topk(window, dim=1).indices.numpy()  # eq. 10
    cluster_pools = [np.concatenate([members[c] for c in nearest[k_]]) for k_ in range(k)]
    return [cluster_pools[assignments[i]] for i in range(len(assignments))]


def nn_pools(embeddings: torch.Tensor, window: int) -> list[np.ndarray]:
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(float("-inf"))
    return list(similarity.topk(window, dim=1).indices.numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--manifest", default="data/corpus/train.csv")
    parser.add_argument("--clusters", default="86,172,400,800,1643")
    parser.add_argument("--windows", default="0,1,2,4")
    parser.add_argument("--nn-windows", default="1,5,20")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    manifest = read_manifest(args.manifest)
    speakers = np.unique([r.speaker for r in manifest], return_inverse=True)[1]
    recordings = np.unique([r.recording for r in manifest], return_inverse=True)[1]
    started = time.perf_counter()
    crops = reference_crops(manifest, args.seed)
    embeddings = embed(load_torch_model(args.run_dir), crops)
    print(f"{len(manifest)} utterances, {speakers.max() + 1} speakers, "
          f"{recordings.max() + 1} recordings; embedded in {time.perf_counter() - started:.0f} s")

    cosine = (embeddings @ embeddings.T).numpy()
    same_spk = speakers[:, None] == speakers[None, :]
    same_rec = recordings[:, None] == recordings[None, :]
    off_diagonal = ~np.eye(len(manifest), dtype=bool)
    print(f"mean cosine: same recording {cosine[same_rec & off_diagonal].mean():.3f}, "
          f"same speaker other recording {cosine[same_spk & ~same_rec].mean():.3f}, "
          f"other speaker {cosine[~same_spk].mean():.3f}")
    print(f"random draw: useful {(same_spk & ~same_rec).sum() / off_diagonal.sum():.3f}")

    print("| sampling | K | M | coverage | same speaker | same recording | same speaker, other recording |")
    print("|---|---|---|---|---|---|---|")
    for k in [int(v) for v in args.clusters.split(",")]:
        for window in [int(v) for v in args.windows.split(",")]:
            share = useful_share(clustering_pools(embeddings, k, window, args.seed), speakers, recordings)
            print(f"| clustering | {k} | {window} | {share['coverage']:.2f} | {share['speaker']:.3f} | "
                  f"{share['recording']:.3f} | {share['useful']:.3f} |", flush=True)
    for window in [int(v) for v in args.nn_windows.split(",")]:
        share = useful_share(nn_pools(embeddings, window), speakers, recordings)
        print(f"| nn | - | {window} | {share['coverage']:.2f} | {share['speaker']:.3f} | "
              f"{share['recording']:.3f} | {share['useful']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
