"""SSPS, Self-Supervised Positive Sampling: a module any SSL method calls to swap its
positive embeddings for pseudo-positives from other recordings (paper section III).

- ``ssps``: the ``SSPS`` module and ``SSPSConfig`` (schedule, sampling, queues).
- ``queues``: memory queues indexed by training-sample index (Q-hat and Q').
- ``kmeans``: spherical k-means with k-means++ seeding, split across DDP ranks.
- ``diagnostics``: coverage, pseudo-positive accuracies, cluster NMI.
"""

from ssps.train.positive_sampling.ssps import SSPS, SSPSConfig

__all__ = ["SSPS", "SSPSConfig"]
