"""Bounded load test of the REST service, on loopback only.

    python bench/load_serve.py --model models/ssps-ecapa-default
    python bench/load_serve.py --model /tmp/m --requests 64 --concurrency 1 4 16 --seconds 3

Starts ``python -m serve`` on 127.0.0.1 twice (micro-batching on, then off with
``--max-batch-size 1``), sends ``POST /verify`` with two real-speech clips of the same
length at each concurrency, and prints requests/s and p50/p99 latency as a Markdown table.
Every level stops after ``--requests`` requests or ``--max-seconds``, whichever comes first;
the servers are stopped at the end. Client and server share this machine's cores, so the
figures are a lower bound of what a dedicated server does.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO / "ssps" / "train" / "assets" / "parity_speech.flac"
HOST = "127.0.0.1"  # loopback only, by design: this script never targets another address
START_TIMEOUT_S = 120


def speech_clips(seconds: float, count: int) -> list[bytes]:
    """``count`` WAV files of ``seconds`` of real speech, cut at different offsets."""
    audio, rate = sf.read(SPEECH, dtype="float32")
    size = int(seconds * rate)
    starts = np.linspace(0, len(audio) - size, count).astype(int)
    clips = []
    for start in starts:
        buffer = io.BytesIO()
        sf.write(buffer, audio[start : start + size], rate, format="WAV")
        clips.append(buffer.getvalue())
    return clips


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """``python -m serve`` in a subprocess, stopped on exit."""

    def __init__(self, model: str, threads: int, batch_size: int, wait_ms: float):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("SSPS_SERVE_API_KEY", None)
        command = [sys.executable, "-m", "serve", "--host", HOST, "--port", str(self.port), "--model", model,
                   "--threads", str(threads), "--max-batch-size", str(batch_size),
                   "--max-batch-wait-ms", str(wait_ms), "--max-pending-requests", "256", "--log-level", "warning"]
        self.process = subprocess.Popen(command, cwd=REPO, env=env)

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit("the server did not become ready in time")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def run_level(url: str, clips: list[bytes], concurrency: int, requests: int, max_seconds: float,
                    form: dict | None = None) -> dict:
    """Send up to ``requests`` /verify requests from ``concurrency`` workers; stop at ``max_seconds``.
    ``form``: extra form fields of every request (e.g. a threshold for an uncalibrated model)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued, errors
        while issued < requests and time.monotonic() < deadline:
            i = issued
            issued += 1
            files = {"a": ("a.wav", clips[i % len(clips)]), "b": ("b.wav", clips[(i + 1) % len(clips)])}
            started = time.perf_counter()
            response = await client.post(f"{url}/verify", files=files, data=form)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await worker_warm_up(client, url, clips, form)
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


async def worker_warm_up(client: httpx.AsyncClient, url: str, clips: list[bytes], form: dict | None = None) -> None:
    for i in range(2):
        await client.post(f"{url}/verify", files={"a": ("a.wav", clips[i]), "b": ("b.wav", clips[i + 1])}, data=form)


def batch_stats(url: str) -> tuple[float, float]:
    """(windows embedded, ONNX Runtime calls) so far, from /metrics."""
    values = {}
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(("ssps_batch_size_sum", "ssps_batch_size_count")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values.get("ssps_batch_size_sum", 0.0), values.get("ssps_batch_size_count", 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (or hf:// ref) to serve")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level (bound)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time bound per level")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads of the server")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.requests > 10_000 or args.max_seconds > 600:
        parser.error("keep the load bounded: --requests <= 10000 and --max-seconds <= 600")

    clips = speech_clips(args.seconds, 8)
    rows = []
    for label, batch_size in (("on", args.max_batch_size), ("off", 1)):
        with Server(args.model, args.threads, batch_size, args.max_batch_wait_ms) as server:
            for concurrency in args.concurrency:
                before = batch_stats(server.url)
                result = asyncio.run(run_level(server.url, clips, concurrency, args.requests, args.max_seconds))
                after = batch_stats(server.url)
                calls = after[1] - before[1]
                result["mean_batch"] = (after[0] - before[0]) / calls if calls else 0.0
                rows.append((label, concurrency, result))
                print(f"batching {label}, concurrency {concurrency}: {result}", file=sys.stderr, flush=True)

    print(f"\n/verify, two {args.seconds:g} s clips per request, server threads {args.threads}, "
          f"max batch {args.max_batch_size}, wait {args.max_batch_wait_ms:g} ms\n")
    print("| micro-batching | concurrency | requests | errors | req/s | p50 ms | p99 ms | mean windows per ONNX call |")
    print("|---|---|---|---|---|---|---|---|")
    for label, concurrency, r in rows:
        print(f"| {label} | {concurrency} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | {r['p50']:.0f} | "
              f"{r['p99']:.0f} | {r['mean_batch']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
