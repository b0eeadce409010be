"""Training step time: SimCLR against SimCLR + SSPS, fp32 against bf16 autocast.

One step = forward of both views, NT-Xent, backward, Adam (data loading and augmentation
excluded), for the default model's encoder at random init (the cost does not depend on the
weights). The SSPS step also encodes the 4 s reference frame without gradient, swaps
positives from the queue and writes the queues: everything SSPS adds to a step; k-means
runs once per epoch and is measured in bench/kmeans.py. SSPS is active with clustering
sampling on random queue contents, whose per-step cost does not depend on N.

The four contenders are timed in interleaved rounds; the SSPS overhead is the median of
the per-round ratios. CPU seconds of this process per step are reported too: on a shared
machine the wall time depends on the neighbours, the CPU time much less.
"""

from __future__ import annotations

import statistics
import time

from bench.common import log, spread, table

TARGET_OVERHEAD = 0.35  # the target: SSPS adds at most 35 % to a step


def _encoder_spec(model_dir):
    import yaml

    from ssps import model_dir as md
    from ssps.train.model import ModelSpec

    config = yaml.safe_load((model_dir / md.TRAIN_CONFIG_FILE).read_text())
    return ModelSpec.from_dict(config.get("model", {}))


def _filled_ssps(num_samples: int, dim: int, batch: int):
    """SSPS active from epoch 1, its queues filled with random unit vectors, clustered."""
    import torch
    import torch.nn.functional as F

    from ssps.train.positive_sampling import SSPS, SSPSConfig

    config = SSPSConfig(enabled=True, start_epoch=1, sampling="clustering", num_clusters=max(2, num_samples // 40), window=1)
    ssps = SSPS(config, num_samples=num_samples, representation_dim=dim, embedding_dim=dim)
    ssps.on_epoch_start(0)
    generator = torch.Generator().manual_seed(0)
    for indices in torch.arange(num_samples).split(batch):
        vectors = F.normalize(torch.randn(len(indices), dim, generator=generator), dim=-1)
        ssps.update_queues(indices, vectors, vectors)
    ssps.on_epoch_start(1)  # k-means (not timed here)
    return ssps


def _step_function(method, batch: int, seconds: float, reference_seconds: float, bf16: bool):
    """One training step of ``method`` on fixed random audio, as the trainer runs it."""
    import torch

    from ssps.train.methods import TrainBatch

    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    views = [0.1 * torch.randn(batch, int(seconds * 16000), generator=generator) for _ in range(2)]
    reference_audio = 0.1 * torch.randn(batch, int(reference_seconds * 16000), generator=generator)
    num_samples = method.ssps.num_samples if method.ssps is not None else batch
    state = {"step": 0}

    def step() -> None:
        state["step"] += 1
        indices = torch.randperm(num_samples, generator=generator)[:batch]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            reference = None
            if method.ssps is not None:
                method.ssps.begin_step(state["step"])
                reference = method.ssps.encode_references(method.exported_encoder(), reference_audio)
            loss = method(TrainBatch(views=views, indices=indices, reference=reference)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run(model_dir, batch: int = 64, seconds: float = 2.0, reference_seconds: float = 4.0, num_samples: int = 4096,
        repeats: int = 3, max_seconds: float = 300.0) -> dict:
    import torch

    from ssps.train.methods import build_method
    from ssps.train.methods.simclr import SimCLRConfig
    from ssps.train.model import SpeakerEncoder

    spec = _encoder_spec(model_dir)
    contenders = {}
    for method_name in ("SimCLR", "SimCLR + SSPS"):
        torch.manual_seed(0)
        encoder = SpeakerEncoder(spec)
        ssps = _filled_ssps(max(num_samples, batch), encoder.embedding_dim, batch) if "SSPS" in method_name else None
        method = build_method(SimCLRConfig(), encoder, ssps)
        for precision in ("fp32", "bf16"):
            contenders[(method_name, precision)] = _step_function(method, batch, seconds, reference_seconds, precision == "bf16")
    params = sum(p.numel() for p in SpeakerEncoder(spec).parameters())
    log(f"training: {spec.encoder.get('name')} ({params / 1e6:.1f}M params), batch {batch} x {seconds:g} s, "
        f"up to {repeats} rounds / {max_seconds:g} s")

    wall = {key: [] for key in contenders}
    cpu = {key: [] for key in contenders}
    started = time.perf_counter()
    for round_ in range(repeats + 1):  # round 0 warms up (oneDNN kernel selection)
        if round_ > 0 and time.perf_counter() - started > max_seconds:
            break
        for key, step in contenders.items():
            begin, begin_cpu = time.perf_counter(), time.process_time()
            step()
            if round_ > 0 or repeats == 0:  # repeats=0 (--quick): the warm-up round is all there is
                wall[key].append(time.perf_counter() - begin)
                cpu[key].append(time.process_time() - begin_cpu)
    return {"encoder": spec.encoder, "params": params, "batch": batch, "seconds": seconds,
            "reference_seconds": reference_seconds, "wall": wall, "cpu": cpu}


def _ratios(result: dict, over: tuple, under: tuple) -> list[float]:
    """Per-round t(over) / t(under)."""
    return [a / b for a, b in zip(result["wall"][over], result["wall"][under])]


def overheads(result: dict) -> dict[str, list[float]]:
    """SSPS overhead per precision: per-round t(SSPS) / t(SimCLR) - 1."""
    return {precision: [r - 1 for r in _ratios(result, ("SimCLR + SSPS", precision), ("SimCLR", precision))]
            for precision in ("fp32", "bf16")}


def markdown(result: dict) -> str:
    rows = []
    for (method, precision), values in result["wall"].items():
        rows.append((method, precision, spread(values, "{:.2f}"), spread(result["cpu"][(method, precision)], "{:.2f}")))
    over = overheads(result)
    speedups = {m: _ratios(result, (m, "fp32"), (m, "bf16")) for m in ("SimCLR", "SimCLR + SSPS")}
    summary = []
    for precision, values in over.items():
        if values:
            median = statistics.median(values)
            status = "meets" if median <= TARGET_OVERHEAD else "**misses**"
            summary.append(f"SSPS overhead in {precision}: {spread([100 * v for v in values], '{:.0f}')} % "
                           f"({status} the <= {100 * TARGET_OVERHEAD:.0f} % target)")
    for method, values in speedups.items():
        if values:
            summary.append(f"bf16 speed-up of {method}: {spread(values, '{:.2f}')}x")
    encoder = ", ".join(f"{k}={v}" for k, v in result["encoder"].items())
    return (f"Encoder {encoder} ({result['params'] / 1e6:.1f}M parameters), batch {result['batch']} x 2 views x "
            f"{result['seconds']:g} s, SSPS reference frame {result['reference_seconds']:g} s; seconds per step, "
            "median [min, max] over interleaved rounds:\n\n"
            + table(("method", "precision", "wall s/step", "CPU s/step"), rows)
            + "\n\n" + "\n".join(f"- {line}" for line in summary))
