"""Micro-batching equals unbatched results; capacity limits answer 503; the loop stays free.

These tests drive the app with concurrent requests through httpx's ASGI transport, inside
one event loop (``asyncio.run``), so requests really overlap.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
import httpx  # noqa: E402

from serve import Settings, create_app  # noqa: E402
from serve.batching import MicroBatcher, Overloaded  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_serve import RATE, assert_error, cosine, upload, wav_bytes  # noqa: E402


async def with_app(app, requests):
    """Run the app's lifespan, then ``await requests(client)`` against it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", timeout=60) as client:
            return await requests(client)


class GatedModel:
    """The real model, but embed_windows waits until the test opens the gate."""

    def __init__(self, model):
        self._model = model
        self.gate = threading.Event()
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def embed_windows(self, batch):
        self.gate.wait(timeout=30)
        self.calls.append(len(batch))
        return self._model.embed_windows(batch)


def batch_sizes_seen(metrics_text: str) -> float:
    """Sum of ssps_batch_size observations (= windows embedded) and count of calls."""
    values = dict(line.rsplit(" ", 1) for line in metrics_text.splitlines() if line.startswith("ssps_batch_size_"))
    return float(values["ssps_batch_size_sum"]), float(values["ssps_batch_size_count"])


def test_concurrent_requests_share_calls_and_equal_unbatched_results(model, speech):
    # Six different 2-s clips (equal length, so they may share a call), sent at once.
    rng = np.random.default_rng(0)
    sources = [speech["a1"], speech["a2"], speech["b"]]
    clips = []
    for i in range(6):
        audio = np.asarray(model.prepare(sources[i % 3]))
        start = int(rng.integers(0, len(audio) - 2 * RATE))
        clips.append(audio[start : start + 2 * RATE])
    app = create_app(Settings(max_batch_size=8, max_batch_wait_ms=300), model=model)

    async def requests(client):
        await client.get("/health")
        responses = await asyncio.gather(*(
            client.post("/embed", files=[("files", (f"{i}.wav", wav_bytes(clip, subtype="FLOAT")))])
            for i, clip in enumerate(clips)
        ))
        return responses, (await client.get("/metrics")).text

    responses, metrics = asyncio.run(with_app(app, requests))
    windows, calls = batch_sizes_seen(metrics)
    assert windows == 6 + 2  # six clips plus the two-window warm-up
    assert calls < 6, "concurrent equal-length windows should have shared ONNX Runtime calls"
    for response, clip in zip(responses, clips):
        assert response.status_code == 200, response.text
        unbatched = model.embed_windows(clip[None])[0]
        assert cosine(np.array(response.json()["embeddings"][0]["embedding"]), unbatched) >= 0.9999


def test_batcher_groups_only_equal_lengths_and_keeps_order(model, speech):
    audio = np.asarray(model.prepare(speech["a1"]))
    windows = [audio[:RATE], audio[RATE : 3 * RATE], audio[2 * RATE : 3 * RATE], audio[: 2 * RATE]]
    seen = []

    def embed_windows(batch):
        seen.append(batch.shape)
        return model.embed_windows(batch)

    async def run():
        batcher = MicroBatcher(embed_windows, max_batch_size=16, max_wait_s=0.05, max_batch_samples=3 * RATE)
        batcher.start()
        try:
            return await batcher.embed(windows)
        finally:
            await batcher.stop()

    embeddings = asyncio.run(run())
    # 1 s windows share a call; the two 2-s windows (4 s > the 3 s cap) take one call each.
    assert sorted(seen) == [(1, 2 * RATE), (1, 2 * RATE), (2, RATE)]
    for window, embedding in zip(windows, embeddings):
        assert cosine(embedding, model.embed_windows(window[None])[0]) >= 0.9999


def test_full_queue_is_503_with_retry_after(model, speech):
    app = create_app(Settings(max_queue_windows=1), model=model)  # /verify needs two windows
    with TestClient(app) as client:
        response = client.post("/verify", files={"a": upload(speech["a1"]), "b": upload(speech["a2"])})
    assert_error(response, 503, "over_capacity")
    assert response.headers["Retry-After"] == "1"


def test_pending_limit_is_503_and_the_loop_stays_free_during_inference(model, speech):
    gated = GatedModel(model)
    app = create_app(Settings(max_pending_requests=1, retry_after_s=7), model=gated)
    files = {"a": upload(speech["a1"]), "b": upload(speech["a2"])}

    async def requests(client):
        first = asyncio.create_task(client.post("/verify", files=files))
        for _ in range(500):  # wait (at most 5 s) until the first one is admitted
            if app.state.service.pending_requests >= 1:
                break
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        health = await client.get("/health")  # inference is stuck: the loop must still answer
        health_seconds = time.perf_counter() - started
        second = await client.post("/verify", files=files)
        ready = await client.get("/ready")  # the warm-up is stuck behind the gate too
        gated.gate.set()
        return await first, second, health, health_seconds, ready

    first, second, health, health_seconds, ready = asyncio.run(with_app(app, requests))
    assert health.status_code == 200 and health_seconds < 1.0
    assert_error(ready, 503, "not_ready")
    assert_error(second, 503, "over_capacity")
    assert second.headers["Retry-After"] == "7"
    assert first.status_code == 200, first.text


def test_batcher_refuses_what_does_not_fit():
    async def run():
        batcher = MicroBatcher(lambda batch: np.zeros((len(batch), 4), np.float32), max_queue=2, max_wait_s=0)
        batcher.start()
        try:
            with pytest.raises(Overloaded):
                await batcher.embed([np.zeros(10, np.float32)] * 3)
            return await batcher.embed([np.zeros(10, np.float32)] * 2)
        finally:
            await batcher.stop()

    assert asyncio.run(run()).shape == (2, 4)
