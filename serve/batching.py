"""Micro-batching: windows from concurrent requests share one ONNX Runtime call.

Each request splits its audio into windows (``SpeakerModel.windows``) and awaits
:meth:`MicroBatcher.embed`. One worker task takes the first waiting window, waits up to
``max_wait_s`` for more (never longer than it takes to fill ``max_batch_size``), groups
what it got by window length and runs one ``embed_windows`` call per group in a
dedicated thread, so the event loop never blocks on inference.

Only windows of exactly equal length share a call. The model's frontend normalises each
utterance over time, so zero-padding a short window to a longer one would change its
embedding; with equal lengths, a batched result equals the unbatched one to float
rounding (cosine >= 0.9999, tested). Long audio is cut into ``max_duration`` windows, which
all have the same length, so it batches well; short clips batch when their lengths match.

The queue is bounded: when a request's windows do not fit, :class:`Overloaded` is raised at
once (the app answers 503 + Retry-After), so memory stays bounded under any load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("serve.batching")


class Overloaded(Exception):
    """The queue has no room for this request's windows right now."""


@dataclass
class _Job:
    window: np.ndarray  # float32 [samples]
    result: asyncio.Future  # resolves to float32 [dim]


class MicroBatcher:
    def __init__(
        self,
        embed_windows: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        max_batch_samples: int | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self._embed_windows = embed_windows  # [n, samples] -> [n, dim], one ONNX Runtime call
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_batch_samples = max_batch_samples  # caps one call's activation memory; None = no cap
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._on_batch = on_batch  # called with (batch size, seconds) after every call
        # One inference thread: ONNX Runtime already spreads one call over its own threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssps-inference")
        self._worker: asyncio.Task | None = None

    @property
    def queue_depth(self) -> int:
        """Windows waiting for the model (not counting the batch being embedded)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker; call from inside the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="ssps-micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.result.done():
                job.result.set_exception(Overloaded("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def embed(self, windows: list[np.ndarray]) -> np.ndarray:
        """Embeddings [len(windows), dim] of the windows, in order; raises Overloaded when full."""
        if self._worker is None or self._worker.done():
            raise RuntimeError("MicroBatcher.start() was not called, or its worker died")
        # Check before queueing anything: a request is admitted whole or not at all.
        # (No await between the check and the puts, so no other request can slip in.)
        if self._queue.maxsize - self._queue.qsize() < len(windows):
            raise Overloaded(f"{self._queue.qsize()} windows are already waiting")
        loop = asyncio.get_running_loop()
        jobs = [_Job(np.ascontiguousarray(w, dtype=np.float32), loop.create_future()) for w in windows]
        for job in jobs:
            self._queue.put_nowait(job)
        try:
            return np.stack(await asyncio.gather(*(job.result for job in jobs)))
        except asyncio.CancelledError:
            for job in jobs:  # the client went away: let the worker skip what is still queued
                job.result.cancel()
            raise

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            for group in _equal_length_calls(jobs, self.max_batch_samples):
                await self._embed_group(group)

    async def _collect(self) -> list[_Job]:
        """Wait for one job, then take more until the batch is full or the wait is over."""
        jobs = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(jobs) < self.max_batch_size:
            if not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [job for job in jobs if not job.result.done()]  # drop cancelled ones

    async def _embed_group(self, group: list[_Job]) -> None:
        batch = np.stack([job.window for job in group])
        started = time.perf_counter()
        try:
            embeddings = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._embed_windows, batch
            )
        except Exception as err:  # the model failed: every request in the batch gets the error
            log.exception("embedding a batch of %d windows failed", len(group))
            for job in group:
                if not job.result.done():
                    job.result.set_exception(err)
            return
        if self._on_batch is not None:
            self._on_batch(len(group), time.perf_counter() - started)
        for job, embedding in zip(group, embeddings):
            if not job.result.done():
                job.result.set_result(embedding)


def _equal_length_calls(jobs: list[_Job], max_samples: int | None) -> list[list[_Job]]:
    """Split jobs into ONNX Runtime calls: equal window length within a call, at most
    ``max_samples`` samples per call (but always at least one window), in arrival order."""
    by_length: dict[int, list[_Job]] = {}
    for job in jobs:
        by_length.setdefault(len(job.window), []).append(job)
    calls = []
    for length, group in by_length.items():
        per_call = max(1, max_samples // length) if max_samples else len(group)
        calls.extend(group[i : i + per_call] for i in range(0, len(group), per_call))
    return calls
