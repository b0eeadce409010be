"""Data-parallel helpers that are no-ops in a single process.

``torchrun --nproc_per_node N -m ssps.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
``init_distributed`` reads them and joins the process group (NCCL on GPU, gloo on CPU).
Every other function here works the same with one process, so the trainer, the methods and
SSPS call them unconditionally.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_distributed(device_type: str) -> torch.device:
    """Join the torchrun process group if there is one; return this process's device."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        backend = "nccl" if device_type == "cuda" else "gloo"
        # Long timeout: rank 0 may run k-means++ initialisation while the others wait.
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=60))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(device_type)


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (rank order), without gradient.
    Every rank must pass the same shape."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward gives each rank the gradient of its own slice, summed
    over the ranks (every rank's loss may use every rank's embeddings)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.batch = tensor.shape[0]
        return all_gather(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = rank() * ctx.batch
        return grad[start : start + ctx.batch]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Like ``all_gather`` but differentiable. DDP then averages parameter gradients over
    ranks, so a loss computed identically on every rank over the gathered global batch
    gets exactly the gradient of single-process training on that global batch."""
    if not is_distributed():
        return tensor
    return _GatherWithGradient.apply(tensor)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def broadcast_(tensor: torch.Tensor, source: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``source``'s copy."""
    if is_distributed():
        dist.broadcast(tensor, source)
    return tensor


def shard(count: int) -> slice:
    """This rank's contiguous share of ``range(count)`` (the last ranks may get one less)."""
    per_rank, extra = divmod(count, world_size())
    start = rank() * per_rank + min(rank(), extra)
    return slice(start, start + per_rank + (1 if rank() < extra else 0))


def gather_shards(local: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of ``shard``: every rank's ``local`` rows, concatenated to ``count`` rows."""
    if not is_distributed():
        return local
    # all_gather needs equal shapes: pad every share to the largest one.
    longest = -(-count // world_size())
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local
    gathered = all_gather(padded).view(world_size(), longest, *local.shape[1:])
    per_rank, extra = divmod(count, world_size())
    return torch.cat([gathered[r, : per_rank + (1 if r < extra else 0)] for r in range(world_size())])
