"""Scaling read off the other sections' measurements (nothing is timed here): embedding time
against clip length, server latency against concurrency, SSPS cost against N, and where
each stops following its simple law."""

from __future__ import annotations

import statistics
from itertools import pairwise

from bench.common import fit_line, fit_power, table
from bench.kmeans import CLUSTERS_PER_POINT, MIN_N_TO_EXTRAPOLATE, VOXCELEB2

BEND = 0.2  # a point "bends" when it is more than 20 % off the fitted law


def embedding_vs_length(cells, name: str) -> str:
    lines = []
    for batch in sorted({c.batch for c in cells}):
        points = [(c.seconds, c.timings[name].median / c.batch) for c in cells
                  if c.batch == batch and name in c.timings and c.timings[name].ok]
        if len(points) < 2:
            continue
        lengths, times = zip(*points)
        intercept, slope = fit_line(lengths, times)
        rows = []
        bends = []
        for seconds, t in points:
            predicted = intercept + slope * seconds
            off = t / predicted - 1 if predicted > 0 else float("nan")
            rows.append((f"{seconds:g}", f"{1000 * t:.1f}", f"{1000 * t / seconds:.1f}", f"{100 * off:+.0f} %"))
            if abs(off) > BEND:
                bends.append(f"{seconds:g} s ({100 * off:+.0f} %)")
        verdict = ("linear within 20 % at every length" if not bends else "off the line at " + ", ".join(bends))
        lines.append(f"**{name}, batch {batch}**: time per clip = {1000 * intercept:.1f} ms + {1000 * slope:.1f} ms per "
                     f"audio second (least squares); {verdict}.\n\n"
                     + table(("clip s", "ms per clip", "ms per audio second", "vs the line"), rows))
    return "\n\n".join(lines) if lines else "Not enough clip lengths measured."


def _saturation(rows: list[dict]) -> int | None:
    """The first concurrency whose req/s is within 10 % of the level before (throughput flat)."""
    for before, after in pairwise(rows):
        if after["rps"] < 1.1 * before["rps"]:
            return after["concurrency"]
    return None


def latency_vs_concurrency(server: dict) -> str:
    lines = []
    for label in ("on", "off"):
        rows = sorted((r for r in server["rows"] if r["batching"] == label), key=lambda r: r["concurrency"])
        if not rows:
            continue
        first = rows[0]
        growth = ", ".join(f"c={r['concurrency']}: p50 x{r['p50'] / first['p50']:.1f}, req/s x{r['rps'] / first['rps']:.1f}" for r in rows[1:])
        flat = _saturation(rows)
        where = (f"throughput stops growing at concurrency {flat}: from there on, more clients only queue, and latency "
                 "grows about in proportion" if flat else "throughput still grows at the highest concurrency measured")
        lines.append(f"- micro-batching {label}: relative to c={first['concurrency']}: {growth or 'one level only'}; {where}.")
    return "\n".join(lines)


def ssps_cost_vs_n(kmeans_results: list[dict], training: dict | None, batch: int, precision: str = "bf16") -> str:
    """Per-step SSPS cost (constant in N with clustering sampling) against k-means at every
    epoch start amortised over the epoch's N / batch steps (~N^2 / N = ~N per step), for
    steps in ``precision`` (the one the trainer's "auto" picks on this machine)."""
    sizes = [r["n"] for r in kmeans_results]
    if len(set(sizes)) < 2 or max(sizes) < MIN_N_TO_EXTRAPOLATE:
        return f"Needs k-means at two sizes at least, the largest >= {MIN_N_TO_EXTRAPOLATE:,}."
    a, b = fit_power(sizes, [r["seconds"] for r in kmeans_results])
    step = None
    overhead_s = None
    if training and training["wall"].get(("SimCLR", precision)) and training["wall"].get(("SimCLR + SSPS", precision)):
        step = statistics.median(training["wall"][("SimCLR", precision)])
        overhead_s = statistics.median(training["wall"][("SimCLR + SSPS", precision)]) - step
    rows = []
    for n in sorted(set(sizes) | {VOXCELEB2}):
        seconds = a * n**b
        per_step = seconds / (n / batch)
        share = f"{100 * per_step / step:.1f} %" if step else "n/a"
        rows.append((f"{n:,}" + ("" if n in sizes else " (fit)"), f"{int(n * CLUSTERS_PER_POINT):,}", f"{seconds:.1f}",
                     f"{n // batch:,}", f"{per_step:.3f}", share))
    text = (f"k-means time ~ {a:.2e} x N^{b:.2f} (fit of the measured sizes); amortised over an epoch of N / {batch} steps:\n\n"
            + table(("N", "K", "k-means s per epoch", "steps per epoch", "k-means s per step", f"of a SimCLR {precision} step"), rows))
    if overhead_s is not None and b > 1:
        # a N^b / (N / batch) = overhead  =>  N = (overhead / (a batch))^(1 / (b - 1))
        crossing = (max(overhead_s, 1e-9) / (a * batch)) ** (1 / (b - 1))
        text += (f"\n\nThe per-step SSPS work (reference frame, queue reads and writes) costs {overhead_s:.2f} s per {precision} step "
                 f"whatever N; the amortised k-means grows ~N^{b - 1:.2f} per step and overtakes it near N = {crossing:,.0f}: "
                 "below that the reference forward pass dominates the SSPS cost, above it the clustering does.")
    return text
