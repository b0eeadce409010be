"""Batches for CHNS (clustering-based hard negative sampling; seeds/000, abstract only).

Each global batch holds P speakers x K utterances (P x K = train.batch_size). Given a
cluster for every speaker (k-means on speaker centroids, computed by the method at the
epoch start), a batch is composed as:

1. an anchor speaker, uniformly at random;
2. ``round(hard_fraction x P)`` speakers from the anchor's cluster (the anchor included):
   similar speakers, hence hard negatives for each other; if the cluster is smaller, all
   of it;
3. the remaining speakers uniformly at random among the others (easy negatives);
4. K utterances of each speaker, uniformly (with replacement only when it has fewer).

Without clusters (or ``hard_fraction = 0``) this is the plain P x K batch of supervised
contrastive training. The draws of step s come from a generator seeded by
(seed, epoch, s): every rank composes the same global batch and takes its own contiguous
slice, and a run resumed mid-epoch sees the batches it would have seen.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

from ssps.errors import ConfigError
from ssps.train import distributed


class CHNSBatches(Sampler[list[int]]):
    def __init__(
        self,
        speaker_ids: np.ndarray,
        utterances_per_speaker: int,
        batch_per_rank: int,
        steps: int,
        seed: int,
        epoch: int,
        start: int = 0,
        speaker_clusters: np.ndarray | None = None,
        hard_fraction: float = 0.0,
    ):
        self.batch_per_rank = batch_per_rank
        global_batch = batch_per_rank * distributed.world_size()
        if global_batch % utterances_per_speaker:
            raise ConfigError(f"train.batch_size ({global_batch}) must be a multiple of method.utterances_per_speaker ({utterances_per_speaker})")
        if not 0.0 <= hard_fraction <= 1.0:
            raise ConfigError(f"method.hard_fraction must be in [0, 1], got {hard_fraction}")
        self.speakers_per_batch = global_batch // utterances_per_speaker
        self.num_speakers = int(speaker_ids.max()) + 1
        if self.speakers_per_batch > self.num_speakers:
            raise ConfigError(f"a batch of {self.speakers_per_batch} speakers x {utterances_per_speaker} utterances needs "
                              f"at least {self.speakers_per_batch} speakers; the data has {self.num_speakers}")
        order = np.argsort(speaker_ids, kind="stable")
        self.utterances_of = np.split(order, np.flatnonzero(np.diff(speaker_ids[order])) + 1)
        self.utterances_per_speaker = utterances_per_speaker
        self.speaker_clusters = speaker_clusters
        self.hard_speakers = 0 if speaker_clusters is None else round(hard_fraction * self.speakers_per_batch)
        self.steps, self.seed, self.epoch, self.start = steps, seed, epoch, start

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[int]]:
        offset = distributed.rank() * self.batch_per_rank
        for step in range(self.start, self.steps):
            batch = self.global_batch(step)
            yield batch[offset : offset + self.batch_per_rank]

    def batch_speakers(self, rng: np.random.Generator) -> np.ndarray:
        """The P speakers of one batch: the hard ones (one cluster) first, then the easy ones."""
        anchor = int(rng.integers(self.num_speakers))
        chosen = [anchor]
        if self.hard_speakers > 1:
            same_cluster = np.flatnonzero(self.speaker_clusters == self.speaker_clusters[anchor])
            same_cluster = same_cluster[same_cluster != anchor]
            count = min(self.hard_speakers - 1, len(same_cluster))
            chosen += rng.choice(same_cluster, count, replace=False).tolist()
        others = np.setdiff1d(np.arange(self.num_speakers), chosen)
        chosen += rng.choice(others, self.speakers_per_batch - len(chosen), replace=False).tolist()
        return np.array(chosen)

    def global_batch(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch, step])
        indices = []
        for speaker in self.batch_speakers(rng):
            own = self.utterances_of[speaker]
            indices += rng.choice(own, self.utterances_per_speaker, replace=len(own) < self.utterances_per_speaker).tolist()
        return [int(i) for i in indices]
