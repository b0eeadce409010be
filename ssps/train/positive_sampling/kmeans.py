"""Spherical (cosine) k-means with k-means++ initialisation, shared across DDP ranks.

Used by SSPS-Clustering at every epoch start (paper section III-E, 10 iterations). Every
rank holds all the points (the SSPS reference queue is replicated); each rank assigns only
its shard of them, centroid sums and counts are all-reduced, and the assignments are
gathered at the end, so the work is split rather than repeated. The k-means++ seeding is
sequential: rank 0 computes it and broadcasts the centroids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssps.train import distributed

# Points are compared with centroids in chunks to bound memory (chunk x K similarities).
CHUNK = 8192


@dataclass
class Clustering:
    assignments: torch.Tensor  # [num_points] cluster of each point
    centroids: torch.Tensor  # [K, D], L2-normalised


def nearest_centroid(points: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cluster index, cosine to it) of each normalised point."""
    best_cluster, best_cosine = [], []
    for chunk in points.split(CHUNK):
        cosine, cluster = (chunk @ centroids.T).max(dim=1)
        best_cluster.append(cluster)
        best_cosine.append(cosine)
    return torch.cat(best_cluster), torch.cat(best_cosine)


def kmeans_plus_plus(points: torch.Tensor, num_clusters: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007) with the cosine distance 1 - cos:
    each new centroid is a point drawn with probability proportional to its distance to
    the nearest centroid chosen so far."""
    first = torch.randint(len(points), (1,), generator=generator, device=points.device)
    chosen = [first]
    distance = (1 - points @ points[first].T).squeeze(1).clamp(min=0)
    for _ in range(1, num_clusters):
        weights = distance if distance.sum() > 0 else torch.ones_like(distance)
        pick = torch.multinomial(weights, 1, generator=generator)
        chosen.append(pick)
        distance = torch.minimum(distance, (1 - points @ points[pick].T).squeeze(1).clamp(min=0))
    return points[torch.cat(chosen)].clone()


def spherical_kmeans(
    points: torch.Tensor,
    num_clusters: int,
    iterations: int = 10,
    init: str = "kmeans++",
    seed: int = 0,
) -> Clustering:
    """Cluster ``points`` [N, D] (the same tensor on every rank) into ``num_clusters``."""
    points = F.normalize(points.float(), dim=-1)
    generator = torch.Generator(device=points.device).manual_seed(seed)
    centroids = torch.empty(num_clusters, points.shape[1], device=points.device)
    if distributed.is_main():
        if init == "kmeans++":
            centroids = kmeans_plus_plus(points, num_clusters, generator)
        else:  # "random": K distinct points
            centroids = points[torch.randperm(len(points), generator=generator, device=points.device)[:num_clusters]].clone()
    distributed.broadcast_(centroids)

    local = distributed.shard(len(points))
    local_points = points[local]
    for _ in range(iterations):
        assignments, _ = nearest_centroid(local_points, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assignments, local_points)
        counts = torch.zeros(num_clusters, device=points.device).index_add_(
            0, assignments, torch.ones(len(assignments), device=points.device)
        )
        sums, counts = distributed.all_reduce_sum(sums), distributed.all_reduce_sum(counts)
        # An empty cluster keeps its centroid; the others move to their members' mean direction.
        updated = F.normalize(sums, dim=-1)
        centroids = torch.where((counts > 0)[:, None], updated, centroids)
    assignments, _ = nearest_centroid(local_points, centroids)
    return Clustering(distributed.gather_shards(assignments, len(points)), centroids)
