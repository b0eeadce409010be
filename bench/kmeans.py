"""SSPS at scale: k-means time and memory against N (K = N / 40), and the memory of the
SSPS queues per rank at world size 1 and 2; both extrapolated to VoxCeleb2 (N = 1.09M).

Each measurement runs in a fresh process, so its peak resident memory (ru_maxrss) is its
own: k-means reports the peak above the memory held once the points exist. The queue
measurement runs one process (world size 1) and two under torchrun (gloo, world size 2),
each filling the queues with a full epoch of gathered batches and clustering them.

    python -m bench.kmeans --child N K D           # one k-means measurement (JSON on stdout)
    torchrun --nproc_per_node 2 -m bench.kmeans --queue-worker N D OUT_DIR
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import fit_line, fit_power, log, table

VOXCELEB2 = 1_092_009  # training utterances of VoxCeleb2 dev
CLUSTERS_PER_POINT = 1 / 40  # K = N / 40 (the paper: K = 25,000 for N = 1.09M, about N / 44)
REPO = Path(__file__).resolve().parents[1]
# Below this, fixed costs (thread start-up, allocation) swamp the N^2 growth: no extrapolation.
MIN_N_TO_EXTRAPOLATE = 10_000


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _random_points(n: int, dim: int):
    import torch
    import torch.nn.functional as F

    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(0)), dim=-1)


def child(n: int, k: int, dim: int, iterations: int) -> dict:
    """Time k-means++ seeding and the Lloyd iterations of ``spherical_kmeans`` on random
    unit vectors (cost depends on N, K, D and the iterations, not on the data)."""
    import torch

    from ssps.train.positive_sampling import kmeans

    torch.manual_seed(0)
    points = _random_points(n, dim)
    base = _peak_mib()
    seeding = {}
    original = kmeans.kmeans_plus_plus

    def timed_seeding(*args, **kwargs):
        begin = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seeding["seconds"] = time.perf_counter() - begin

    kmeans.kmeans_plus_plus = timed_seeding  # spherical_kmeans looks it up at call time
    begin = time.perf_counter()
    kmeans.spherical_kmeans(points, k, iterations=iterations)
    total = time.perf_counter() - begin
    return {"n": n, "k": k, "dim": dim, "iterations": iterations, "seconds": total, "seeding_seconds": seeding.get("seconds", 0.0),
            "points_mib": points.numel() * 4 / 2**20, "base_mib": base, "extra_mib": _peak_mib() - base}


def queue_worker(n: int, dim: int, out_dir: Path, batch: int = 256) -> None:
    """Build SSPS, fill both queues with one epoch of (gathered) batches, cluster; write
    this rank's buffer bytes and peak memory to OUT_DIR/rank{r}.json."""
    import torch

    from ssps.train import distributed
    from ssps.train.positive_sampling import SSPS, SSPSConfig

    distributed.init_distributed("cpu")
    world, rank = distributed.world_size(), distributed.rank()
    base = _peak_mib()
    config = SSPSConfig(enabled=True, start_epoch=1, num_clusters=max(2, int(n * CLUSTERS_PER_POINT)), window=1)
    ssps = SSPS(config, num_samples=n, representation_dim=dim, embedding_dim=dim)
    points = _random_points(n, dim)
    ssps.on_epoch_start(0)
    per_rank = batch // world
    for indices in torch.arange(n).split(batch):
        if len(indices) < batch:
            break  # the trainer drops the last incomplete global batch too
        mine = indices[rank * per_rank : (rank + 1) * per_rank]
        ssps.update_queues(mine, points[mine], points[mine])
    begin = time.perf_counter()
    ssps.on_epoch_start(1)
    kmeans_seconds = time.perf_counter() - begin
    queues = sum(b.numel() * b.element_size() for q in (ssps.reference_queue, ssps.positive_queue) for b in q.buffers())
    everything = sum(b.numel() * b.element_size() for b in ssps.buffers())
    result = {"world": world, "rank": rank, "n": n, "dim": dim, "queue_bytes": queues, "ssps_bytes": everything,
              "extra_peak_mib": _peak_mib() - base, "kmeans_seconds": kmeans_seconds}
    (out_dir / f"world{world}_rank{rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


def _run_child(arguments: list[str], timeout: float, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if nproc > 1:
        env["OMP_NUM_THREADS"] = "1"  # two ranks on a 2-core machine: one thread each
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "bench.kmeans"]
    else:
        command = [sys.executable, "-m", "bench.kmeans"]
    result = subprocess.run(command + arguments, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:1])} failed: {result.stderr[-800:]}")
    return result


def run_kmeans(sizes: list[int], dim: int, iterations: int = 10, timeout: float = 1800) -> list[dict]:
    results = []
    for n in sizes:
        k = max(2, int(n * CLUSTERS_PER_POINT))
        log(f"k-means: N={n}, K={k}, D={dim}, {iterations} iterations")
        output = _run_child(["--child", str(n), str(k), str(dim), str(iterations)], timeout)
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    return results


def run_queues(n: int, dim: int, out_dir: Path, timeout: float = 900) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    for world in (1, 2):
        log(f"SSPS queues: N={n}, D={dim}, world size {world}")
        _run_child(["--queue-worker", str(n), str(dim), str(out_dir)], timeout, nproc=world)
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("world*_rank*.json"))]


def extrapolate_kmeans(results: list[dict], n: int = VOXCELEB2) -> dict | None:
    """Power-law fits of seeding and iteration time, linear fit of memory, evaluated at ``n``."""
    if len({r["n"] for r in results}) < 2 or max(r["n"] for r in results) < MIN_N_TO_EXTRAPOLATE:
        return None
    sizes = [r["n"] for r in results]
    fits = {}
    for key, values in (("seeding", [r["seeding_seconds"] for r in results]),
                        ("iterations", [r["seconds"] - r["seeding_seconds"] for r in results])):
        a, b = fit_power(sizes, [max(v, 1e-6) for v in values])
        fits[key] = {"exponent": b, "seconds": a * n**b}
    intercept, slope = fit_line(sizes, [r["extra_mib"] + r["points_mib"] for r in results])
    return {"n": n, "k": int(n * CLUSTERS_PER_POINT), **fits, "memory_mib": intercept + slope * n}


def kmeans_markdown(results: list[dict], extrapolated: dict | None) -> str:
    rows = [(f"{r['n']:,}", f"{r['k']:,}", r["dim"], f"{r['seeding_seconds']:.2f}", f"{r['seconds'] - r['seeding_seconds']:.2f}",
             f"{r['seconds']:.2f}", f"{r['points_mib']:.0f}", f"{r['extra_mib']:.0f}") for r in results]
    if extrapolated:
        e = extrapolated
        rows.append((f"{e['n']:,} (extrapolated)", f"{e['k']:,}", results[-1]["dim"], f"{e['seeding']['seconds']:.0f}",
                     f"{e['iterations']['seconds']:.0f}", f"{e['seeding']['seconds'] + e['iterations']['seconds']:.0f}",
                     f"{e['n'] * results[-1]['dim'] * 4 / 2**20:.0f}", f"{e['memory_mib'] - e['n'] * results[-1]['dim'] * 4 / 2**20:.0f}"))
    text = (f"`spherical_kmeans` (k-means++ seeding on one rank, then {results[0]['iterations']} Lloyd iterations), "
            "one process, all threads, random unit vectors:\n\n"
            + table(("N", "K = N/40", "D", "seeding s", "iterations s", "total s", "points MiB", "extra peak MiB"), rows))
    if extrapolated:
        text += (f"\n\nExtrapolation: time ~ N^b fitted per phase (seeding b = {extrapolated['seeding']['exponent']:.2f}, "
                 f"iterations b = {extrapolated['iterations']['exponent']:.2f}; with K proportional to N both are ~N^2 "
                 "in theory), memory linear in N. The seeding is sequential on rank 0, so more ranks do not shorten it.")
    else:
        text += f"\n\nNo extrapolation to N = {VOXCELEB2:,}: it needs two sizes, the largest >= {MIN_N_TO_EXTRAPOLATE:,}."
    return text


def queues_markdown(results: list[dict], n_target: int = VOXCELEB2) -> str:
    rows = []
    for r in results:
        per_sample = r["queue_bytes"] / r["n"]
        rows.append((r["world"], r["rank"], f"{r['n']:,}", r["dim"], f"{r['queue_bytes'] / 2**20:.1f}",
                     f"{r['ssps_bytes'] / 2**20:.1f}", f"{r['extra_peak_mib']:.0f}", f"{r['kmeans_seconds']:.2f}",
                     f"{per_sample * n_target / 2**30:.2f}"))
    return ("SSPS buffers per rank (Q-hat and Q' hold one vector per training utterance and are replicated on "
            "every rank; the clustering state adds assignments, cluster tables and centroids):\n\n"
            + table(("world size", "rank", "N", "D", "queues MiB", "all SSPS buffers MiB", "peak extra MiB",
                     "k-means s", f"queues at N = {n_target:,}, GiB"), rows))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        n, k, dim = (int(x) for x in argv[1:4])
        iterations = int(argv[4]) if len(argv) > 4 else 10
        print(json.dumps(child(n, k, dim, iterations)))
        return 0
    if argv[:1] == ["--queue-worker"]:
        queue_worker(int(argv[1]), int(argv[2]), Path(argv[3]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
