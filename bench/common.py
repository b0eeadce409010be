"""Timing, statistics and Markdown helpers shared by the benchmark modules.

Every comparison is timed in interleaved rounds: round 0 calls each contender once to warm
it up (kernel selection, memory arenas) and is discarded; each later round calls every
contender once, in the same order. A noisy neighbour then slows all contenders of a round
alike, so the per-round ratios are steadier than ratios of separate medians.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def log(message: str) -> None:
    """Progress on stderr, so stdout stays free for the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Timing:
    """Wall-clock seconds of the timed calls of one contender."""

    seconds: list[float] = field(default_factory=list)
    cold: bool = False  # no warm round fitted in the budget: the warm-up call is all there is
    error: str | None = None  # the contender failed; its message

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int, max_seconds: float) -> dict[str, Timing]:
    """Time each contender in interleaved rounds (see module doc): at most ``repeats`` timed
    rounds, and no new round once ``max_seconds`` have passed since the start (the warm-up
    included). A contender that raises is dropped and keeps its error message."""
    timings = {name: Timing() for name in contenders}
    warm_up: dict[str, float] = {}
    started = time.perf_counter()
    for round_ in range(repeats + 1):
        if round_ > 0 and time.perf_counter() - started > max_seconds:
            break
        for name, call in contenders.items():
            timing = timings[name]
            if timing.error is not None:
                continue
            begin = time.perf_counter()
            try:
                call()
            except Exception as err:  # a variant that cannot run is reported, not fatal
                timing.error = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}" if str(err) else type(err).__name__
                continue
            elapsed = time.perf_counter() - begin
            if round_ == 0:
                warm_up[name] = elapsed
            else:
                timing.seconds.append(elapsed)
    for name, timing in timings.items():
        if timing.error is None and not timing.seconds and name in warm_up:
            timing.seconds, timing.cold = [warm_up[name]], True
    return timings


def round_ratios(timings: dict[str, Timing], baseline: str) -> dict[str, list[float]]:
    """Per-round speed-ups ``t(baseline) / t(contender)`` (> 1: the contender is faster)."""
    base = timings.get(baseline)
    if base is None or not base.ok:
        return {}
    ratios = {}
    for name, timing in timings.items():
        if timing.ok:
            pairs = zip(base.seconds, timing.seconds)
            ratios[name] = [b / t for b, t in pairs if t > 0]
    return ratios


def spread(values: Sequence[float], fmt: str = "{:.1f}", scale: float = 1.0) -> str:
    """"median [min, max]" of ``values`` x ``scale``; just the value when there is one."""
    if not values:
        return "n/a"
    scaled = [v * scale for v in values]
    middle = fmt.format(statistics.median(scaled))
    if len(scaled) == 1:
        return middle
    return f"{middle} [{fmt.format(min(scaled))}, {fmt.format(max(scaled))}]"


def rate(value: float) -> str:
    """A GFLOP/s figure: whole numbers, but two significant digits below 10 (emulated bf16
    runs at a fraction of one)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y = a + b x."""
    import numpy as np

    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(intercept), float(slope)


def fit_power(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(a, b) of y = a x^b, fitted on logs; b is the growth exponent."""
    import numpy as np

    b, log_a = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(np.exp(log_a)), float(b)
