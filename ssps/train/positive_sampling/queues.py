"""Memory queues indexed by training-sample index (paper section III-C.2).

``queue.read(i)`` returns the latest value written for training sample ``i``, not the i-th
position of a FIFO. Without a ``capacity`` every sample ever written is present (|Q| = N).
With one, the queue behaves like a FIFO of that many slots (the paper's smaller |Q'|): a
sample is present while its latest write is among the last ``capacity`` writes.
"""

from __future__ import annotations

import torch
from torch import nn


class IndexedQueue(nn.Module):
    def __init__(self, num_samples: int, dim: int, capacity: int | None = None):
        super().__init__()
        self.capacity = capacity
        self.register_buffer("values", torch.zeros(num_samples, dim))
        # write_order[i] = rank of sample i's latest write among all writes (1-based), 0 = never.
        self.register_buffer("write_order", torch.zeros(num_samples, dtype=torch.long))
        self.register_buffer("writes", torch.zeros((), dtype=torch.long))

    def write(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        """Store ``values[k]`` as the entry of sample ``indices[k]`` (same order on all ranks)."""
        self.values[indices] = values.detach().to(self.values.dtype)
        self.write_order[indices] = self.writes + 1 + torch.arange(len(indices), device=indices.device)
        self.writes += len(indices)

    def contains(self, indices: torch.Tensor) -> torch.Tensor:
        """Bool mask: which ``indices`` (>= 0) have an entry among the last ``capacity`` writes."""
        order = self.write_order[indices.clamp(min=0)]
        present = (indices >= 0) & (order > 0)
        if self.capacity is not None:
            present &= order > self.writes - self.capacity
        return present

    def present(self) -> torch.Tensor:
        """Indices of every sample currently in the queue."""
        everyone = torch.arange(len(self.values), device=self.values.device)
        return everyone[self.contains(everyone)]

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        return self.values[indices]
