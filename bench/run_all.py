"""Run every benchmark on this machine in bounded time and write docs/benchmarks.md.

    python bench/run_all.py                      # the default model, full size (see below for the time)
    python bench/run_all.py --model /tmp/m --quick --out /tmp/bench.md   # a smoke run (1-3 minutes)
    python bench/run_all.py --only inference accuracy --lengths 3 --batches 1

Sections: machine, GEMM peak, inference (PyTorch eager fp32/bf16, ONNX Runtime fp32 = the
baseline, as ssps.load_model(precision='fp32') runs it, int8 static QDQ, int8 dynamic,
Resemblyzer) per clip length and batch,
ONNX Runtime session settings, accuracy (EER per variant on a trial subset), server
(/verify under load), training step (SimCLR vs SimCLR + SSPS, fp32 vs bf16), k-means and
SSPS queue memory, and the scaling read off them. Every comparison is measured in this run,
in interleaved rounds; figures are median [min, max] over the rounds. Each cell stops
repeating after ``--max-seconds``; a section that fails is reported and the others go on.

Time: the full run took 77 minutes on a 2-core AVX2 EPYC (2026-11-30), 39 of them for the
accuracy of emulated bf16, which is now skipped on CPUs without native bf16; the 30 s x 32
inference cell takes ~10 minutes whatever ``--max-seconds`` says (one round is that long).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/run_all.py` puts bench/, not the repository, on the path
    sys.path.insert(0, str(REPO))

from bench import (
    accuracy,
    gemm,
    inference,
    kmeans,
    machine,
    scale,
    server,
    training,
    variants,
)
from bench.common import log
from ssps import model_dir as md
from ssps.inference import ALLOW_SPINNING

SECTIONS = ("gemm", "inference", "settings", "accuracy", "server", "training", "kmeans", "queues")
CORPUS = REPO / "data" / "corpus"
# Full-size settings, and the --quick ones (seconds, for CI and tests/test_bench.py).
FULL = dict(lengths=[1.0, 3.0, 10.0, 30.0], batches=[1, 32], repeats=5, max_seconds=90.0, gemm_n=2048, trial_count=600,
            calibration_clips=32, concurrency=[1, 4, 16], server_requests=64, server_max_seconds=60.0,
            train_batch=64, train_seconds=2.0, reference_seconds=4.0, train_repeats=3, train_samples=4096,
            kmeans_n=[10_000, 100_000], queue_n=10_000)
QUICK = dict(lengths=[1.0], batches=[1, 2], repeats=1, max_seconds=5.0, gemm_n=256, trial_count=20,
             calibration_clips=4, concurrency=[1, 2], server_requests=4, server_max_seconds=10.0,
             train_batch=2, train_seconds=0.5, reference_seconds=0.5, train_repeats=0, train_samples=256,
             kmeans_n=[1000, 2000], queue_n=1024)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory or hf:// ref (default: $SSPS_MODEL, else the bundled default model)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (1-3 minutes); its figures are not to be quoted")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md", help="the Markdown report")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], help="skip these sections")
    parser.add_argument("--trials", type=Path, default=CORPUS / "trials_synth_dev.txt", help="trial list for the EER check")
    parser.add_argument("--audio-root", type=Path, help="folder the trial paths are relative to (default: wav/ beside the list)")
    parser.add_argument("--calibration-manifest", type=Path, default=CORPUS / "train.csv",
                        help="training manifest whose clips calibrate int8 (default: the corpus; else the shipped speech file)")
    parser.add_argument("--keep-variants", type=Path, help="write the int8 model directories here and keep them")
    parser.add_argument("--no-resemblyzer", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for the session-settings and server runs")
    sizes = parser.add_argument_group("sizes (defaults: full size, or the --quick ones)")
    sizes.add_argument("--lengths", type=float, nargs="+", help="clip lengths in seconds")
    sizes.add_argument("--batches", type=int, nargs="+", help="batch sizes")
    sizes.add_argument("--repeats", type=int, help="timed rounds per cell (after a warm-up round)")
    sizes.add_argument("--max-seconds", type=float, help="no new round in a cell after this many seconds")
    sizes.add_argument("--max-batch-audio", type=float, default=160.0, help="most seconds of audio per model call")
    sizes.add_argument("--gemm-n", type=int)
    sizes.add_argument("--trial-count", type=int, help="trials in the EER subset")
    sizes.add_argument("--calibration-clips", type=int)
    sizes.add_argument("--concurrency", type=int, nargs="+")
    sizes.add_argument("--server-requests", type=int, help="requests per concurrency level")
    sizes.add_argument("--server-max-seconds", type=float)
    sizes.add_argument("--train-batch", type=int)
    sizes.add_argument("--train-seconds", type=float)
    sizes.add_argument("--reference-seconds", type=float)
    sizes.add_argument("--train-repeats", type=int)
    sizes.add_argument("--train-samples", type=int, help="N of the SSPS queues in the step benchmark")
    sizes.add_argument("--kmeans-n", type=int, nargs="+")
    sizes.add_argument("--queue-n", type=int)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.audio_root is None:
        args.audio_root = args.trials.parent / "wav"
    wanted = set(args.only or SECTIONS) - set(args.skip)
    args.sections = [s for s in SECTIONS if s in wanted]
    return args


def resolve_model(ref: str | None) -> tuple[str, Path]:
    """(ref as given or defaulted, local model directory)."""
    from ssps.hub import download_model, is_hf_ref
    from ssps.inference import default_model_ref

    ref = ref or default_model_ref()
    return ref, (download_model(ref) if is_hf_ref(ref) else Path(ref).expanduser())


class Report:
    """Markdown sections in run order; a failed section records its error instead."""

    def __init__(self):
        self.parts: list[str] = []
        self.timings: list[tuple[str, float]] = []

    def section(self, title: str, level: int = 2):
        report = self

        class _Section:
            def __enter__(self):
                self.started = time.perf_counter()
                log(f"== {title}")
                return self

            def __exit__(self, kind, error, trace):
                elapsed = time.perf_counter() - self.started
                report.timings.append((title, elapsed))
                if error is not None and not isinstance(error, KeyboardInterrupt):
                    log(f"{title} failed: {kind.__name__}: {error}")
                    report.add(f"{'#' * level} {title}\n\n**Failed**: `{kind.__name__}: {str(error)[:300]}`")
                    return True
                return False

        return _Section()

    def add(self, text: str) -> None:
        self.parts.append(text.strip())


def choose_default(cells, chosen: list, results: dict) -> tuple[str | None, float | None]:
    """The torch-free variant (usable by the package's inference path) that keeps accuracy
    with the best geometric-mean speed-up over the fp32 baseline."""
    best, best_speedup = None, None
    for v in chosen:
        if not v.torch_free or accuracy.verdict(v, results) != "yes":
            continue
        speedup = inference.mean_speedup(cells, v.name)
        if speedup is not None and (best_speedup is None or speedup > best_speedup):
            best, best_speedup = v.name, speedup
    return best, best_speedup


def run(args: argparse.Namespace) -> str:
    started = time.perf_counter()
    model_ref, model_dir = resolve_model(args.model)
    warnings.filterwarnings("ignore", message=".*untrained.*")
    report = Report()
    info = machine.describe(REPO)
    work = args.keep_variants or Path(tempfile.mkdtemp(prefix="ssps-bench-"))
    data: dict = {}
    summary: list[str] = []
    try:
        if {"gemm", "inference", "settings", "accuracy"} & set(args.sections):
            report.add("## 1. Inference")
        if "gemm" in args.sections:
            with report.section("GEMM peak", 3):
                data["gemm"] = gemm.run(args.gemm_n, repeats=10 if not args.quick else 2, max_seconds=min(30.0, args.max_seconds * 4))
                report.add("### GEMM peak\n\n" + gemm.markdown(data["gemm"]))
        if {"inference", "settings", "accuracy"} & set(args.sections):
            with report.section("Inference", 2):
                inference_sections(args, model_ref, model_dir, work, report, data, summary)
        gc.collect()
        if "server" in args.sections:
            with report.section("2. Server", 2):
                data["server"] = server.run(model_ref, args.concurrency, args.server_requests, args.server_max_seconds,
                                            threads=args.threads, repeats=args.repeats, bound_seconds=args.max_seconds)
                report.add("## 2. Server\n\n" + server.markdown(data["server"]))
        if {"training", "kmeans", "queues"} & set(args.sections):
            report.add("## 3. Training")
        if "training" in args.sections:
            with report.section("Training step", 3):
                data["training"] = training.run(model_dir, args.train_batch, args.train_seconds, args.reference_seconds,
                                                args.train_samples, args.train_repeats, args.max_seconds * 4)
                report.add("### Step time\n\n" + training.markdown(data["training"]))
        dim = _embedding_dim(model_dir)
        if "kmeans" in args.sections:
            with report.section("k-means", 3):
                data["kmeans"] = kmeans.run_kmeans(args.kmeans_n, dim)
                report.add("### k-means at every epoch start\n\n"
                           + kmeans.kmeans_markdown(data["kmeans"], kmeans.extrapolate_kmeans(data["kmeans"])))
        if "queues" in args.sections:
            with report.section("SSPS queues", 3):
                data["queues"] = kmeans.run_queues(args.queue_n, dim, work / "queues")
                report.add("### SSPS queue memory per rank\n\n" + kmeans.queues_markdown(data["queues"]))
        with report.section("Scale", 2):
            report.add("## 4. Scale\n\n" + scale_markdown(data, args))
    finally:
        if args.keep_variants is None:
            shutil.rmtree(work, ignore_errors=True)
    return render(args, model_ref, info, report, summary, time.perf_counter() - started)


def inference_sections(args, model_ref: str, model_dir: Path, work: Path, report: Report, data: dict, summary: list[str]) -> None:
    from bench import quantize

    manifest = args.calibration_manifest if args.calibration_manifest.is_file() else None  # else: shipped speech
    clips = quantize.calibration_clips(manifest, args.calibration_clips, 3.0, inference.RATE)
    quantised = quantize.make_variants(model_dir, work, clips)
    chosen, errors = variants.build(model_ref, model_dir, quantised, with_resemblyzer=not args.no_resemblyzer)
    if "inference" in args.sections:
        torch_model = _torch_module(model_dir)
        flops = inference.flops_per_clip(torch_model, args.lengths)
        cells = inference.grid(chosen, args.lengths, args.batches, args.repeats, args.max_seconds, args.max_batch_audio)
        data["cells"], data["flops"] = cells, flops
        report.add("### Speed per clip length and batch\n\n" + inference.speed_markdown(cells, chosen, errors, args.max_batch_audio))
        if "gemm" in data:
            report.add("### Achieved GFLOP/s\n\n" + inference.gflops_markdown(cells, chosen, flops, data["gemm"]["rows"]))
    if "settings" in args.sections:
        int8 = quantised.get("int8 static")
        settings = variants.settings_variants(model_dir / md.ONNX_FILE, int8 / md.ONNX_FILE if isinstance(int8, Path) else None, args.threads)
        length = 3.0 if 3.0 in args.lengths else args.lengths[0]
        baseline = f"fp32, optimisation all, {args.threads} threads"
        cells = inference.grid(settings, [length], args.batches, args.repeats, args.max_seconds, args.max_batch_audio, baseline=baseline)
        report.add("### ONNX Runtime session settings\n\n" + inference.settings_markdown(cells, baseline)
                   + "\n\nThe package default (`ssps.load_model`) is optimisation all with ONNX Runtime's own thread count "
                   f"(the physical cores) and spinning {'on' if ALLOW_SPINNING else 'off'} (`ssps.inference.ALLOW_SPINNING`).")
        ranked = sorted((speedup, v.name) for v in settings if (speedup := inference.mean_speedup(cells, v.name)))
        if ranked:
            speedup, name = ranked[-1]
            summary.append(f"Fastest ONNX Runtime session setting at {length:g} s: {name} ({speedup:.2f}x {baseline}, "
                           "geometric mean over the batch sizes).")
        del settings
    if "accuracy" in args.sections:
        if not args.trials.is_file():
            report.add(f"### Accuracy\n\nSkipped: no trial list at `{args.trials}` (pass --trials).")
        else:
            trials = accuracy.trial_subset(args.trials, args.trial_count)
            waveforms = accuracy.load_waveforms(trials, args.audio_root)
            # Emulated bf16 embeds ~40x slower than fp32 (the speed table): its accuracy alone took
            # 39 of a 77-minute run on an AVX2 machine, and it cannot be a candidate there.
            skip = {} if native_bf16() else {"bf16": "skipped: no native bf16 on this CPU (emulated; see the speed table)"}
            results = accuracy.evaluate(chosen, trials, waveforms, skip=skip)
            data["accuracy"] = results
            report.add("### Accuracy per variant\n\n" + accuracy.markdown(chosen, results, _shown(args.trials), trials))
            if data.get("cells"):
                best, speedup = choose_default(data["cells"], chosen, results)
                default_precision = md.read_config(model_dir).default_precision
                summary.insert(0, _decision(best, speedup, data["cells"], chosen, results, default_precision))
    del chosen
    gc.collect()


def _decision(best, speedup, cells, chosen, results, default_precision: str) -> str:
    """One paragraph: the fastest variant overall, and the one the default path could take."""
    speedups = {v.name: inference.mean_speedup(cells, v.name) for v in chosen if v.numerics != "resemblyzer"}
    speedups = {name: value for name, value in speedups.items() if value is not None}
    lines = []
    if speedups:
        fastest = max(speedups, key=speedups.get)
        keeps = accuracy.verdict(next(v for v in chosen if v.name == fastest), results)
        lines.append(f"Fastest variant overall (geometric mean over the cells of the speed-up vs "
                     f"{variants.FP32_BASELINE}): {fastest} ({speedups[fastest]:.2f}x), keeps accuracy: {keeps}.")
    if best is None or best == variants.FP32_BASELINE:
        lines.append(f"No torch-free variant beats {variants.FP32_BASELINE} while keeping accuracy: fp32 should stay the default.")
    else:
        lines.append(f"Fastest torch-free variant that keeps accuracy: **{best}**, {speedup:.2f}x the fp32 baseline "
                     "(geometric mean over the cells): the candidate for the default inference path.")
    best_numerics = next((v.numerics for v in chosen if v.name == best), None)
    wanted = md.INT8 if best_numerics == "int8 static" else md.FP32  # the method `ssps quantize` ships
    lines.append(f"This model's default precision (config.json): **{default_precision}**"
                 + (" — it follows the measurement." if default_precision == wanted else
                    f" — the measurement says {wanted}: run `ssps quantize` (see README, Precision)."))
    return " ".join(lines)


def _torch_module(model_dir: Path):
    from ssps.train.export import load_torch_model

    return load_torch_model(model_dir)


def _embedding_dim(model_dir: Path) -> int:
    return md.read_config(model_dir).embedding_dim


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def native_bf16() -> bool:
    """The trainer's own test (AVX512-BF16 or AMX); without it bf16 is emulated and slow."""
    from ssps.train.trainer import cpu_supports_bf16

    return cpu_supports_bf16()


def scale_markdown(data: dict, args) -> str:
    parts = []
    if data.get("cells"):
        parts.append("### Embedding time against clip length\n\n" + scale.embedding_vs_length(data["cells"], variants.FP32_BASELINE))
    if data.get("server"):
        parts.append("### Server latency against concurrency\n\n" + scale.latency_vs_concurrency(data["server"]))
    if data.get("kmeans"):
        precision = "bf16" if native_bf16() else "fp32"  # what the trainer's precision "auto" trains in here
        parts.append("### SSPS cost against N\n\n" + scale.ssps_cost_vs_n(data["kmeans"], data.get("training"), args.train_batch, precision))
    return "\n\n".join(parts) or "Nothing to read: the sections it reads were skipped."


def render(args, model_ref: str, info: dict, report: Report, summary: list[str], elapsed: float) -> str:
    command = "python bench/run_all.py" + (" --quick" if args.quick else "") + (f" --model {args.model}" if args.model else "")
    durations = ", ".join(f"{title} {seconds:.0f} s" for title, seconds in report.timings)
    head = [
        "# Benchmarks",
        "",
        (f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed / 60:.1f} minutes"
         f"{' (**--quick**: smoke-test sizes, not figures to quote)' if args.quick else ''}. "
         f"Model: `{_shown(Path(model_ref)) if not str(model_ref).startswith('hf://') else model_ref}`. "
         "Everything below was measured in this one run on this machine; ratios compare contenders timed in "
         "interleaved rounds (each round runs every contender once), so a noisy neighbour slows them alike. "
         "Figures are median [min, max] over the rounds. Regenerate with the command above."),
        "",
    ]
    if summary:
        head += ["**Verdict.** " + " ".join(summary), ""]
    head += ["## Machine", "", machine.markdown(info, os.getloadavg() if hasattr(os, "getloadavg") else None), ""]
    tail = ["", "## Section times", "", durations, ""]
    return "\n".join(head) + "\n" + "\n\n".join(report.parts) + "\n" + "\n".join(tail)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
