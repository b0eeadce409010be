"""The REST service under load (loopback only), next to the model-bound limit.

Reuses bench/load_serve.py: ``python -m serve`` on 127.0.0.1 with micro-batching on, then
off (``--max-batch-size 1``), ``POST /verify`` with two real-speech clips per request at
each concurrency, every level bounded in requests and seconds.

The model-bound limit is what the bare model (same ONNX Runtime session settings as the
server: the model's default precision, same thread count) can embed: a /verify needs two embeddings, so
requests/s <= embeddings/s / 2. Batch 1 bounds the server without micro-batching; a batch
of ``max_batch_size`` clips bounds it with micro-batching. Client and server share this
machine's cores, so the server figures are a lower bound.
"""

from __future__ import annotations

import asyncio
import warnings

import numpy as np

from bench import load_serve
from bench.common import Timing, interleaved, log, spread, table
from bench.inference import speech


def model_bound(model_ref: str, threads: int, seconds: float, batch_size: int, repeats: int, max_seconds: float) -> dict[int, Timing]:
    """Seconds per call of the bare model on batches of 1 and ``batch_size`` clips."""
    import ssps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        model = ssps.load_model(model_ref, threads=threads)
    batches = {size: speech(seconds, size) for size in sorted({1, batch_size})}
    timings = interleaved({str(size): (lambda b=b: model.embed_windows(b)) for size, b in batches.items()}, repeats, max_seconds)
    return {int(size): timing for size, timing in timings.items()}


def _has_default_threshold(model_ref: str) -> bool:
    import ssps
    from ssps.errors import ModelError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        model = ssps.load_model(model_ref)
    try:
        model.threshold(None)
        return True
    except ModelError:
        return False


def run(model_ref: str, concurrency: list[int], requests: int, max_seconds: float, seconds: float = 3.0,
        threads: int = 2, max_batch_size: int = 16, wait_ms: float = 5.0, repeats: int = 5, bound_seconds: float = 30.0) -> dict:
    """``max_seconds`` bounds each load level, ``bound_seconds`` the bare-model timing."""
    log(f"server: model-bound limit, {seconds:g} s clips, batches 1 and {max_batch_size}")
    bound = model_bound(model_ref, threads, seconds, max_batch_size, repeats, bound_seconds)
    clips = load_serve.speech_clips(seconds, 8)
    form = None if _has_default_threshold(model_ref) else {"threshold": "0.5"}  # uncalibrated: any fixed threshold
    rows = []
    for label, batch_size in (("on", max_batch_size), ("off", 1)):
        with load_serve.Server(model_ref, threads, batch_size, wait_ms) as server:
            for level in concurrency:
                log(f"server: micro-batching {label}, concurrency {level}, up to {requests} requests / {max_seconds:g} s")
                before = load_serve.batch_stats(server.url)
                result = asyncio.run(load_serve.run_level(server.url, clips, level, requests, max_seconds, form))
                after = load_serve.batch_stats(server.url)
                calls = after[1] - before[1]
                result["mean_batch"] = (after[0] - before[0]) / calls if calls else 0.0
                rows.append({"batching": label, "concurrency": level, **result})
    return {"seconds": seconds, "threads": threads, "max_batch_size": max_batch_size, "wait_ms": wait_ms,
            "bound": bound, "rows": rows}


def limit_rps(result: dict, batching: str) -> float | None:
    """Model-bound /verify requests/s: embeddings/s (median call) / 2."""
    size = result["max_batch_size"] if batching == "on" else 1
    timing = result["bound"].get(size)
    if timing is None or not timing.ok:
        return None
    return size / timing.median / 2


def markdown(result: dict) -> str:
    bound_rows = []
    for size, timing in result["bound"].items():
        if timing.ok:
            per_second = [size / s for s in timing.seconds]
            bound_rows.append((size, spread([s / size for s in timing.seconds], "{:.0f}", 1000),
                               spread(per_second, "{:.1f}"), f"{np.median(per_second) / 2:.1f}"))
    rows = []
    for r in result["rows"]:
        limit = limit_rps(result, r["batching"])
        share = f"{100 * r['rps'] / limit:.0f} %" if limit else "n/a"
        rows.append((r["batching"], r["concurrency"], r["requests"], r["errors"], f"{r['rps']:.1f}", share,
                     f"{r['p50']:.0f}", f"{r['p99']:.0f}", f"{r['mean_batch']:.1f}"))
    return (f"Bare model, {result['seconds']:g} s clips, {result['threads']} ONNX Runtime threads "
            "(the model-bound limit):\n\n"
            + table(("clips per call", "ms per clip", "embeddings/s", "limit /verify req/s"), bound_rows)
            + f"\n\n`POST /verify` with two {result['seconds']:g} s clips, server threads {result['threads']}, "
            f"max batch {result['max_batch_size']}, wait {result['wait_ms']:g} ms; \"of limit\" compares with the "
            "bare model at batch 1 (micro-batching off) or at the max batch (on):\n\n"
            + table(("micro-batching", "concurrency", "requests", "errors", "req/s", "of limit", "p50 ms", "p99 ms",
                     "mean windows per ONNX call"), rows))
