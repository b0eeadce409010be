"""Inference speed per clip length and batch size, for every variant, with GFLOP/s.

Clips are real speech (the recipe's 10.5 s parity file, repeated for longer clips, each
clip of a batch starting at a different offset). A batch of B clips is embedded in calls of
at most ``max_batch_audio`` seconds of audio, like the server's ``--max-batch-audio-s``:
one call on 32 x 30 s would hold ~5 GB of activations.

FLOPs are counted once per clip length on the PyTorch model with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, 2 per
multiply-add; the frontend's STFT and the elementwise ops are not counted), so
GFLOP/s = FLOPs per clip x clips / seconds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from bench.common import Timing, interleaved, log, rate, round_ratios, spread, table
from bench.variants import FP32_BASELINE, Variant

RATE = 16_000


def speech(seconds: float, batch: int) -> np.ndarray:
    """[batch, seconds x 16 kHz] of real speech, each row from another offset."""
    from ssps.train.export import parity_audio

    source = parity_audio(RATE)
    size = int(seconds * RATE)
    looped = np.tile(source, math.ceil((size + len(source)) / len(source)) + 1)
    offsets = np.linspace(0, len(source), batch, endpoint=False).astype(int)
    return np.stack([looped[start : start + size] for start in offsets]).astype(np.float32)


def in_calls(embed, batch: np.ndarray, max_batch_audio: float):
    """A zero-argument function embedding ``batch`` in calls of <= ``max_batch_audio`` s."""
    per_call = max(1, int(max_batch_audio * RATE // batch.shape[1]))
    chunks = [batch[i : i + per_call] for i in range(0, len(batch), per_call)]
    return lambda: [embed(chunk) for chunk in chunks]


def flops_per_clip(module, lengths: list[float]) -> dict[float, float]:
    """FLOPs of one forward pass of one clip of each length."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counts = {}
    for seconds in lengths:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, int(seconds * RATE)))
        counts[seconds] = float(counter.get_total_flops())
    return counts


@dataclass
class Cell:
    seconds: float
    batch: int
    timings: dict[str, Timing]
    speedups: dict[str, list[float]] = field(default_factory=dict)  # per-round, vs the baseline


def grid(variants: list[Variant], lengths: list[float], batches: list[int], repeats: int, max_seconds: float,
         max_batch_audio: float, baseline: str = FP32_BASELINE) -> list[Cell]:
    cells = []
    for seconds in lengths:
        for batch in batches:
            clips = speech(seconds, batch)
            log(f"inference: {seconds:g} s x {batch}, {len(variants)} variants, up to {repeats} rounds / {max_seconds:g} s")
            contenders = {v.name: in_calls(v.embed, clips, max_batch_audio) for v in variants}
            timings = interleaved(contenders, repeats, max_seconds)
            cells.append(Cell(seconds, batch, timings, round_ratios(timings, baseline)))
    return cells


def gflops(cell: Cell, name: str, flops: dict[float, float]) -> float | None:
    timing = cell.timings.get(name)
    if timing is None or not timing.ok or cell.seconds not in flops:
        return None
    return flops[cell.seconds] * cell.batch / timing.median / 1e9


def mean_speedup(cells: list[Cell], name: str) -> float | None:
    """Geometric mean over the cells of the median per-round speed-up vs the baseline."""
    values = [statistics.median(cell.speedups[name]) for cell in cells if cell.speedups.get(name)]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def _time_cell(cell: Cell, name: str) -> str:
    timing = cell.timings.get(name)
    if timing is None:
        return "n/a"
    if timing.error:
        return "failed"
    text = spread([s / cell.batch for s in timing.seconds], "{:.0f}" if timing.median / cell.batch > 0.1 else "{:.1f}", 1000)
    return text + (" (cold)" if timing.cold else "")


def speed_markdown(cells: list[Cell], variants: list[Variant], errors: dict[str, str], max_batch_audio: float) -> str:
    """One table per batch size: ms per clip (median [min, max] over rounds) and the speed-up
    over the fp32 baseline (median of per-round ratios)."""
    parts = []
    for batch in sorted({c.batch for c in cells}):
        row_cells = [c for c in cells if c.batch == batch]
        headers = ["variant"] + [f"{c.seconds:g} s: ms per clip" for c in row_cells] + [f"{c.seconds:g} s: speed-up" for c in row_cells]
        rows = []
        for v in variants:
            ratios = [spread(c.speedups[v.name], "{:.2f}") + "x" if c.speedups.get(v.name) else "n/a" for c in row_cells]
            rows.append([v.name] + [_time_cell(c, v.name) for c in row_cells] + ratios)
        rows += [[name, *(["failed"] * len(row_cells)), f"{error}", *([""] * (len(row_cells) - 1))] for name, error in errors.items()]
        rounds = max((len(t.seconds) for c in row_cells for t in c.timings.values()), default=0)
        parts.append(f"**Batch {batch}** (up to {rounds} timed rounds per cell; speed-up = time of "
                     f"{FP32_BASELINE} / time of the variant, per round):\n\n" + table(headers, rows))
    parts.append(f"Each call holds at most {max_batch_audio:g} s of audio (as the server's `--max-batch-audio-s`); "
                 "\"(cold)\": only the warm-up call fitted in the time budget.")
    return "\n\n".join(parts)


def gflops_markdown(cells: list[Cell], variants: list[Variant], flops: dict[float, float], peaks: dict[str, dict]) -> str:
    """Achieved GFLOP/s per variant and cell, and the share of the matching GEMM peak."""
    counted = ", ".join(f"{s:g} s: {f / 1e9:.2f}" for s, f in flops.items())
    headers = ["variant", "GEMM peak it compares with"] + [f"{c.seconds:g} s x {c.batch}" for c in cells]
    rows = []
    for v in variants:
        if v.numerics == "resemblyzer":
            continue  # another network: our FLOP count does not apply
        peak = peaks.get(v.peak, {}).get("peak")
        row = [v.name, f"{v.peak}: {rate(peak)}" if peak else "n/a"]
        for cell in cells:
            value = gflops(cell, v.name, flops)
            row.append("n/a" if value is None else rate(value) + (f" ({100 * value / peak:.0f} %)" if peak else ""))
        rows.append(row)
    return (f"Model FLOPs per clip (GFLOP): {counted}. Achieved GFLOP/s (median round) and, in brackets, "
            "the share of the GEMM peak measured in this run (int8 variants: GOP/s against the int8 GEMM):\n\n"
            + table(headers, rows))


def settings_markdown(cells: list[Cell], baseline: str) -> str:
    parts = []
    for cell in cells:
        rows = []
        for name, timing in cell.timings.items():
            ratio = spread(cell.speedups[name], "{:.2f}") + "x" if cell.speedups.get(name) else "n/a"
            rows.append((name, _time_cell(cell, name), ratio if not timing.error else timing.error))
        parts.append(f"**{cell.seconds:g} s x {cell.batch}** (speed-up vs {baseline}):\n\n"
                     + table(("ONNX Runtime session", "ms per clip", "speed-up"), rows))
    return "\n\n".join(parts)
