"""SSPS: Self-Supervised Positive Sampling (paper section III).

A method uses it in three places (see ``ssps/train/methods/simclr.py``)::

    z_pos = self.ssps.select_positives(batch.indices, z_pos)    # before the loss
    ...loss...
    self.ssps.update_queues(batch.indices, batch.reference, z_pos_fresh)  # after it

and the trainer does the rest: ``on_epoch_start`` (k-means at every epoch start),
``encode_references`` (the 4 s un-augmented reference frame, no gradient, eval mode),
``begin_step`` (the step number that seeds the random draws), ``epoch_diagnostics``.

Timeline, with ``start_epoch = S`` (0-based epochs): epochs < S - 1 are plain SSL;
during epoch S - 1 the queues are filled (reference representations into Q-hat, positive
embeddings into Q'); from epoch S on, each anchor's positive is replaced by the embedding
of a pseudo-positive sample taken from Q' (or, when that sample is not in Q', the ordinary
positive is kept: pos(i) = empty set).

Sampling (pos(i), vectorised over the batch):
- ``nn``: uniform over the M nearest reference representations, the anchor excluded
  (eq. 6-7).
- ``clustering``: k-means with K clusters on Q-hat; M = 0: a uniform other member of the
  anchor's cluster (eq. 8); M > 0: a uniform member of one of the M nearest other clusters
  (eq. 9-12).
- ``centroid``: SSPS-Clustering (C), the centroid of that cluster is the positive.

Under DDP both queues are replicated: every rank writes the gathered batch of all ranks,
so each rank samples from all N samples. The uniform draws are made for the global batch
from a generator seeded by (seed, step) and each rank takes its slice, so a run with W
processes draws the same pseudo-positives as one process with the same global batch.
Labels (``set_labels``) only feed the diagnostics, never the sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssps.errors import ConfigError
from ssps.train import distributed
from ssps.train.positive_sampling.diagnostics import SamplingCounts, clustering_purity
from ssps.train.positive_sampling.kmeans import spherical_kmeans
from ssps.train.positive_sampling.queues import IndexedQueue

SAMPLING_METHODS = ("clustering", "nn", "centroid")
NO_POSITIVE = -1  # pos(i) = empty set


@dataclass
class SSPSConfig:
    enabled: bool = False
    start_epoch: int = 100  # first epoch (0-based) with pseudo-positives; queues fill in the one before
    sampling: str = "clustering"  # clustering | nn | centroid
    num_clusters: int = 25000  # K (clustering, centroid)
    window: int = 1  # M: neighbours (nn) or neighbouring clusters (clustering; 0 = same cluster)
    kmeans_iterations: int = 10
    kmeans_init: str = "kmeans++"  # kmeans++ | random
    positive_queue_size: int | None = None  # |Q'|; None = N (all samples)
    reference_seconds: float = 4.0

    def validate(self, num_samples: int | None = None) -> None:
        if self.sampling not in SAMPLING_METHODS:
            raise ConfigError(f"ssps.sampling must be one of {SAMPLING_METHODS}, got {self.sampling!r}")
        if self.kmeans_init not in ("kmeans++", "random"):
            raise ConfigError(f"ssps.kmeans_init must be 'kmeans++' or 'random', got {self.kmeans_init!r}")
        if self.start_epoch < 1:
            raise ConfigError("ssps.start_epoch must be >= 1: the queues are filled during the epoch before")
        if self.window < 0 or (self.sampling == "nn" and self.window < 1):
            raise ConfigError(f"ssps.window (M) must be >= 1 for nn and >= 0 otherwise, got {self.window}")
        if num_samples is None:
            return
        if self.sampling != "nn":
            if self.num_clusters > num_samples:
                raise ConfigError(
                    f"ssps.num_clusters (K={self.num_clusters}) exceeds the number of training "
                    f"samples (N={num_samples}); choose K <= N (the paper uses K=25,000 for N=1.09M)"
                )
            if self.window >= self.num_clusters:
                raise ConfigError(f"ssps.window (M={self.window}) must be < num_clusters (K={self.num_clusters})")
        elif self.window >= num_samples:
            raise ConfigError(f"ssps.window (M={self.window}) must be < the number of samples (N={num_samples})")


class SSPS(nn.Module):
    def __init__(self, config: SSPSConfig, num_samples: int, representation_dim: int, embedding_dim: int, seed: int = 0):
        super().__init__()
        config.validate(num_samples)
        if config.sampling == "centroid" and representation_dim != embedding_dim:
            raise ConfigError(
                "ssps.sampling=centroid uses k-means centroids of representations as positive "
                f"embeddings: needs representation dim ({representation_dim}) == embedding dim ({embedding_dim})"
            )
        self.config = config
        self.num_samples = num_samples
        self.seed = seed
        self.reference_queue = IndexedQueue(num_samples, representation_dim)  # Q-hat, |Q-hat| = N
        self.positive_queue = IndexedQueue(num_samples, embedding_dim, config.positive_queue_size)  # Q'
        clusters = config.num_clusters if config.sampling != "nn" else 1
        # The clustering of the current epoch (saved in checkpoints so a resumed epoch samples alike).
        self.register_buffer("assignments", torch.full((num_samples,), -1, dtype=torch.long))
        self.register_buffer("centroids", torch.zeros(clusters, representation_dim))
        self.register_buffer("neighbour_clusters", torch.zeros(clusters, max(config.window, 1), dtype=torch.long))
        self.register_buffer("members", torch.zeros(num_samples, dtype=torch.long))  # sample indices sorted by cluster
        self.register_buffer("cluster_start", torch.zeros(clusters, dtype=torch.long))  # offset in members
        self.register_buffer("cluster_size", torch.zeros(clusters, dtype=torch.long))
        self.register_buffer("rank_in_cluster", torch.zeros(num_samples, dtype=torch.long))
        self.counts = SamplingCounts()
        self.register_buffer("count_buffer", self.counts.as_tensor())  # checkpointed counters
        self.speaker_ids: torch.Tensor | None = None
        self.recording_ids: torch.Tensor | None = None
        self.epoch = 0
        self.step = 0
        self.cluster_metrics: dict[str, float] = {}

    # ---- schedule -------------------------------------------------------------------
    def active(self, epoch: int | None = None) -> bool:
        """Pseudo-positives replace positives in this epoch."""
        return (self.epoch if epoch is None else epoch) >= self.config.start_epoch

    def wants_reference(self, epoch: int | None = None) -> bool:
        """The queues are written in this epoch (from the one before activation on)."""
        return (self.epoch if epoch is None else epoch) >= self.config.start_epoch - 1

    def set_labels(self, speaker_ids: np.ndarray | None, recording_ids: np.ndarray | None) -> None:
        """Labels for the diagnostics only (-1 = unknown)."""
        as_tensor = lambda ids: None if ids is None else torch.as_tensor(np.asarray(ids), dtype=torch.long)
        self.speaker_ids, self.recording_ids = as_tensor(speaker_ids), as_tensor(recording_ids)

    # ---- trainer hooks --------------------------------------------------------------
    def on_epoch_start(self, epoch: int, resumed_mid_epoch: bool = False) -> None:
        self.epoch = epoch
        if resumed_mid_epoch:  # clustering and counters come from the checkpoint
            self.counts = SamplingCounts.from_tensor(self.count_buffer)
            if self.active() and self.config.sampling != "nn" and (self.assignments >= 0).any():
                self.cluster_metrics = clustering_purity(
                    self.assignments, self.speaker_ids, self.recording_ids, self.config.num_clusters
                )
            return
        self.counts = SamplingCounts()
        self.count_buffer.copy_(self.counts.as_tensor())
        self.cluster_metrics = {}
        if self.active() and self.config.sampling != "nn":
            self._cluster_references()

    def begin_step(self, global_step: int) -> None:
        self.step = global_step

    @torch.no_grad()
    def encode_references(self, encoder: nn.Module, reference_waveforms: torch.Tensor) -> torch.Tensor:
        """Reference representations y-hat: the encoder in eval mode, without gradient."""
        was_training = encoder.training
        encoder.eval()
        try:
            return encoder(reference_waveforms).float()
        finally:
            encoder.train(was_training)

    # ---- the two calls a method makes -----------------------------------------------
    def select_positives(self, indices: torch.Tensor, z_pos: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """``z_pos`` with the rows of anchors that got a pseudo-positive replaced by its
        embedding from Q' (by the centroid for ``centroid``). Identity when not active.
        Rows that keep their ordinary positive keep their gradient; replaced rows have none.
        ``reference`` (this batch's reference representations) is needed by ``nn`` only."""
        if not self.active():
            return z_pos
        found, replacement = self._pseudo_positive_embeddings(indices.to(self.assignments.device), reference)
        found, replacement = found.to(z_pos.device), replacement.to(device=z_pos.device, dtype=z_pos.dtype)
        return torch.where(found[:, None], replacement, z_pos)

    @torch.no_grad()
    def _pseudo_positive_embeddings(self, indices: torch.Tensor, reference: torch.Tensor | None):
        """(found [B] bool, embedding [B, D]): pos(i) for each anchor and its embedding."""
        draws = self._uniform_draws(len(indices), 2)
        if self.config.sampling == "nn":
            if reference is None:
                raise ValueError("SSPS-NN needs the batch's reference representations")
            positives = self._nearest_neighbour_positives(indices, reference, draws[:, 0])
        else:
            positives, target_cluster = self._cluster_positives(indices, draws[:, 0], draws[:, 1])
        if self.config.sampling == "centroid":
            found = target_cluster >= 0
            replacement = self.centroids[target_cluster.clamp(min=0)]
        else:
            found = self.positive_queue.contains(positives)  # fallback when pos(i) is not in Q'
            replacement = self.positive_queue.read(positives.clamp(min=0))
        self._count(indices, positives, found)
        return found, replacement

    @torch.no_grad()
    def update_queues(self, indices: torch.Tensor, reference: torch.Tensor | None, z_pos: torch.Tensor) -> None:
        """Write this step's reference representations into Q-hat and the fresh (not swapped)
        positive embeddings into Q', gathered from every rank (Algorithm 2, lines 4-5)."""
        if not self.wants_reference():
            return
        if reference is None:
            raise ValueError("SSPS needs reference representations from the epoch before start_epoch")
        device = self.assignments.device
        all_indices = distributed.all_gather(indices.to(device))
        self.reference_queue.write(all_indices, distributed.all_gather(F.normalize(reference.float(), dim=-1).to(device)))
        self.positive_queue.write(all_indices, distributed.all_gather(z_pos.detach().float().to(device)))

    # ---- sampling -------------------------------------------------------------------
    def _uniform_draws(self, local_batch: int, columns: int) -> torch.Tensor:
        """U[0, 1) numbers for this rank's slice of the global batch, the same whatever the
        number of processes."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        global_draws = torch.rand(local_batch * distributed.world_size(), columns, generator=generator, dtype=torch.float64)
        start = distributed.rank() * local_batch
        return global_draws[start : start + local_batch].to(self.assignments.device)

    def _nearest_neighbour_positives(self, indices: torch.Tensor, reference: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        """Eq. (6)-(7): pos(i) uniform among the M nearest references, i itself excluded.
        The anchor's side is this step's reference y-hat_i (q-hat_i is the same frame
        encoded by a slightly older model)."""
        window = self.config.window
        queries = F.normalize(reference.float(), dim=-1).to(self.reference_queue.values.device)
        similarity = queries @ self.reference_queue.values.T  # [B, N]
        absent = ~self.reference_queue.contains(torch.arange(self.num_samples, device=indices.device))
        similarity[:, absent] = float("-inf")
        similarity[torch.arange(len(indices)), indices] = float("-inf")  # not the anchor itself
        top_similarity, top_index = similarity.topk(window, dim=1)  # [B, M]
        pick = (draw * window).long().clamp(max=window - 1)
        rows = torch.arange(len(indices), device=indices.device)
        positives = top_index[rows, pick]
        return torch.where(torch.isfinite(top_similarity[rows, pick]), positives, NO_POSITIVE)

    def _cluster_positives(self, indices: torch.Tensor, cluster_draw: torch.Tensor, member_draw: torch.Tensor):
        """Eq. (8)-(12): (pos(i), sampling cluster c-hat_i); -1 where there is none."""
        anchor_cluster = self.assignments[indices]
        clustered = anchor_cluster >= 0
        safe_cluster = anchor_cluster.clamp(min=0)
        window = self.config.window
        if window == 0:  # eq. (8): the anchor's own cluster, any member but the anchor
            target = safe_cluster
            choices = self.cluster_size[target] - 1
            offset = (member_draw * choices).long()
            offset = offset + (offset >= self.rank_in_cluster[indices]).long()  # skip the anchor
        else:  # eq. (9)-(10): one of the M nearest other clusters, any member
            pick = (cluster_draw * window).long().clamp(max=window - 1)
            target = self.neighbour_clusters[safe_cluster, pick]
            choices = self.cluster_size[target]
            offset = (member_draw * choices).long()
        valid = clustered & (choices > 0)
        offset = torch.minimum(offset, (self.cluster_size[target] - 1).clamp(min=0))
        positives = self.members[(self.cluster_start[target] + offset).clamp(max=self.num_samples - 1)]
        positives = torch.where(valid, positives, NO_POSITIVE)
        return positives, torch.where(valid, target, NO_POSITIVE)

    def _cluster_references(self) -> None:
        """Algorithm 1: k-means on Q-hat, then S_k (members) and C_k (nearest clusters)."""
        present = self.reference_queue.present()
        self.assignments.fill_(-1)
        if len(present) < self.config.num_clusters:
            # E.g. SSPS switched on in a run that never filled the queues: this epoch fills them.
            self.cluster_metrics = {"ssps/clustered_samples": float(len(present))}
            return
        clustering = spherical_kmeans(
            self.reference_queue.read(present),
            self.config.num_clusters,
            iterations=self.config.kmeans_iterations,
            init=self.config.kmeans_init,
            seed=self.seed * 1_000_003 + self.epoch,
        )
        self.assignments[present] = clustering.assignments
        self.centroids.copy_(clustering.centroids)
        # S_k: members of every cluster, contiguous in `members` (eq. 12).
        order = torch.argsort(clustering.assignments, stable=True)
        members = present[order]
        sizes = torch.bincount(clustering.assignments, minlength=self.config.num_clusters)
        starts = torch.cumsum(sizes, 0) - sizes
        self.members.zero_()
        self.members[: len(members)] = members
        self.cluster_size.copy_(sizes)
        self.cluster_start.copy_(starts)
        self.rank_in_cluster[members] = torch.arange(len(members), device=members.device) - starts[clustering.assignments[order]]
        if self.config.window > 0:
            self.neighbour_clusters.copy_(self._nearest_other_clusters(self.config.window))
        self.cluster_metrics = clustering_purity(
            self.assignments, self.speaker_ids, self.recording_ids, self.config.num_clusters
        )

    def _nearest_other_clusters(self, window: int) -> torch.Tensor:
        """Eq. (10): C_k, the M clusters whose centroids are the most similar to m_k, k
        excluded. Each rank computes its share of the K rows."""
        local = distributed.shard(self.config.num_clusters)
        nearest = []
        for start in range(local.start, local.stop, 4096):  # bounded memory: 4096 x K at a time
            rows = torch.arange(start, min(start + 4096, local.stop), device=self.centroids.device)
            similarity = self.centroids[rows] @ self.centroids.T
            similarity[torch.arange(len(rows)), rows] = float("-inf")  # k itself is not a neighbour
            nearest.append(similarity.topk(window, dim=1).indices)
        local_nearest = torch.cat(nearest) if nearest else self.neighbour_clusters[:0]
        return distributed.gather_shards(local_nearest, self.config.num_clusters)

    # ---- diagnostics ----------------------------------------------------------------
    def _count(self, indices: torch.Tensor, positives: torch.Tensor, found: torch.Tensor) -> None:
        self.counts.add(indices.cpu(), positives.cpu(), found.cpu(), self.speaker_ids, self.recording_ids,
                        compare_samples=self.config.sampling != "centroid")
        self.count_buffer.copy_(self.counts.as_tensor())

    def epoch_diagnostics(self) -> dict[str, float]:
        """Coverage and, with labels, pseudo-positive accuracies and cluster NMI (all ranks)."""
        if not self.active():
            return {}
        totals = SamplingCounts.from_tensor(distributed.all_reduce_sum(self.counts.as_tensor()))
        return {**totals.rates(), **self.cluster_metrics}
