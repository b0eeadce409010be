"""The commands ``ssps eval``, ``ssps calibrate`` and ``ssps report`` (see docs/evaluation.md).

    ssps eval --model REF --trials FILE [FILE...] --root AUDIO_ROOT [--cohort MANIFEST] [--plots]
    ssps calibrate --model MODEL_DIR --trials DEV_TRIALS --root AUDIO_ROOT
    ssps report RUN_DIR... [-o table.md] [--figures DIR] [--speakers MANIFEST]

REF is a model directory, hf://org/name, or a training run directory (exported once into
the cache, needs ssps[train]). Exit codes: 0 done, 2 error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ssps.errors import ConfigError, SSPSError
from ssps.evaluation import normalization
from ssps.evaluation.embedding import EmbeddingCache, default_cache_dir, embed_files, is_run_dir, model_cache_key, open_model
from ssps.evaluation.trials import COSINE, ScoredTrials, read_manifest_paths, score_trials, trial_paths, write_scores
from ssps.metrics import read_trials
from ssps.model_dir import PRECISIONS
from ssps.scoring import P_TARGETS, score_summary

EXIT_OK, EXIT_ERROR = 0, 2
ERRORS_SHOWN = 5


# --- ssps eval -------------------------------------------------------------------------


def eval_main(argv: list[str] | None = None) -> int:
    parser = _parser("eval", "Score trial lists: EER, minDCF, actDCF and Cllr, with and without score normalisation.")
    parser.add_argument("--trials", nargs="+", required=True, help="trial files, 'label path1 path2' per line (VoxCeleb format)")
    parser.add_argument("--root", help="folder the trial paths are relative to (default: each trial file's folder)")
    parser.add_argument("--cohort", help="manifest CSV of cohort recordings (speakers absent from the trials) for AS-norm and S-norm")
    parser.add_argument("--top-n", type=int, default=normalization.DEFAULT_TOP_N, help="cohort scores kept by AS-norm (default %(default)s)")
    parser.add_argument("--cohort-max", type=int, help="use at most this many cohort files, drawn at random (default: all)")
    parser.add_argument("-o", "--output", help="folder for scores and results (default: RUN_DIR/eval for a run, else eval/MODEL_NAME)")
    parser.add_argument("--plots", action="store_true", help="also draw a DET curve and score histograms per list (needs matplotlib)")
    parser.add_argument("--skip-errors", action="store_true", help="leave out trials whose audio cannot be used, instead of stopping")
    args = parser.parse_args(argv)
    return _run("eval", _eval, args)


def _eval(args: argparse.Namespace) -> int:
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    model = open_model(args.model, cache_dir, threads=args.threads, vad=args.vad, precision=args.precision)
    print(f"model {model.model_id}" + ("  (untrained: random weights, scores mean nothing)" if model.config.untrained else ""))
    lists = [(Path(path), read_trials(path)) for path in args.trials]
    roots = {path: Path(args.root) if args.root else path.parent for path, _ in lists}
    files = [f for path, trials in lists for f in trial_paths(trials, roots[path])]
    cohort_files = read_manifest_paths(args.cohort, args.cohort_max) if args.cohort else []

    embeddings = _embed(model, files + cohort_files, args, cache_dir)
    cohort = None
    if args.cohort:
        cohort = np.stack([embeddings[f] for f in cohort_files if f in embeddings])
        print(f"cohort: {len(cohort)} embeddings from {args.cohort}; AS-norm keeps the top {min(args.top_n, len(cohort))}")

    output = Path(args.output) if args.output else _default_output(args.model, model)
    output.mkdir(parents=True, exist_ok=True)
    calibration = model.config.calibration
    for trials_path, trials in lists:
        scored = score_trials(trials_path.stem, trials, roots[trials_path], embeddings, cohort, args.top_n)
        summaries = _summaries(scored, calibration)
        _print_summaries(scored, summaries, dropped=len(trials) - len(scored.trials))
        write_scores(scored, output / f"{scored.name}.scores.txt")
        result = {
            "model": model.model_id,
            "trials": str(trials_path),
            "root": str(roots[trials_path]),
            "cohort": args.cohort,
            "cohort_size": None if cohort is None else len(cohort),
            "calibration": None if calibration is None else vars(calibration),
            "systems": summaries,
        }
        (output / f"{scored.name}.json").write_text(json.dumps(result, indent=2) + "\n")
        if args.plots:
            _plot_list(scored, model, output)
    print(f"scores and results in {output}/")
    return EXIT_OK


def _summaries(scored: ScoredTrials, calibration) -> dict[str, dict[str, float]]:
    """Metrics of each system. actDCF and Cllr need LLRs: only the raw cosine scores of a
    calibrated model have them (the calibration was fitted on cosine scores)."""
    from ssps.evaluation.calibration import llrs_from_calibration

    summaries = {}
    for system, scores in scored.systems.items():
        llrs = llrs_from_calibration(scores, calibration) if system == COSINE and calibration else None
        summaries[system] = score_summary(scores, scored.labels, llrs)
    return summaries


def _print_summaries(scored: ScoredTrials, summaries: dict[str, dict[str, float]], dropped: int) -> None:
    first = next(iter(summaries.values()))
    note = f", {dropped} left out (unusable audio)" if dropped else ""
    print(f"\n{scored.name}: {first['targets']} target and {first['nontargets']} non-target trials{note}")
    columns = ["eer"] + [f"min_dcf_{p:g}" for p in P_TARGETS] + [f"act_dcf_{p:g}" for p in P_TARGETS] + ["cllr"]
    titles = ["EER (%)"] + [f"minDCF{p:g}" for p in P_TARGETS] + [f"actDCF{p:g}" for p in P_TARGETS] + ["Cllr"]
    width = max(len(s) for s in summaries) + 2
    print("  " + "system".ljust(width) + "".join(t.rjust(12) for t in titles))
    for system, summary in summaries.items():
        cells = [f"{summary[c]:.4f}" if c in summary else "–" for c in columns]
        cells[0] = f"{summary['eer']:.2f}"
        print("  " + system.ljust(width) + "".join(c.rjust(12) for c in cells))


def _plot_list(scored: ScoredTrials, model, output: Path) -> None:
    from ssps.evaluation import plots

    systems = {name: (scores, scored.labels) for name, scores in scored.systems.items()}
    det = plots.plot_det(systems, output / f"{scored.name}.det.png", title=f"{model.config.name} on {scored.name}")
    thresholds = {name: t.value for name, t in model.config.thresholds.items()}
    histogram = plots.plot_score_histograms(scored.systems[COSINE], scored.labels, output / f"{scored.name}.scores.png",
                                            title=f"cosine scores on {scored.name}", thresholds=thresholds)
    print(f"plots: {det}, {histogram}")


def _default_output(ref: str | None, model) -> Path:
    if ref is not None and is_run_dir(ref):
        return Path(ref) / "eval"  # where `ssps report` looks
    return Path("eval") / model.config.name


# --- ssps calibrate --------------------------------------------------------------------


def calibrate_main(argv: list[str] | None = None) -> int:
    parser = _parser("calibrate", "Fit score calibration and thresholds on a development trial list; write them to config.json.")
    parser.add_argument("--trials", required=True, help="development trial file (speakers unseen in training and in the test lists)")
    parser.add_argument("--root", help="folder the trial paths are relative to (default: the trial file's folder)")
    parser.add_argument("--prior", type=float, default=0.5, help="target prior the probability refers to (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the calibration, write nothing")
    args = parser.parse_args(argv)
    return _run("calibrate", _calibrate, args)


def _calibrate(args: argparse.Namespace) -> int:
    from ssps.evaluation.calibration import calibrate_model_dir, fit_logistic_calibration, thresholds_from_scores
    from ssps.model_dir import Calibration, read_config

    if args.model is None or args.model.startswith("hf://") or is_run_dir(args.model):
        raise ConfigError("--model must be a local model directory (export a run first: ssps export RUN_DIR -o DIR; "
                          "download a Hub model and calibrate the copy)")
    if not 0 < args.prior < 1:
        raise ConfigError(f"--prior must be between 0 and 1, got {args.prior}")
    read_config(args.model)  # fail early when it is no model directory
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    model = open_model(args.model, cache_dir, threads=args.threads, vad=args.vad, precision=args.precision)
    trials_path = Path(args.trials)
    trials = read_trials(trials_path)
    root = Path(args.root) if args.root else trials_path.parent
    embeddings = _embed(model, trial_paths(trials, root), args, cache_dir)
    scored = score_trials(trials_path.stem, trials, root, embeddings)
    scores, labels = scored.systems[COSINE], scored.labels

    measured_on = f"{trials_path.name} ({len(scored.trials)} trials)"
    if args.dry_run:
        scale, offset = fit_logistic_calibration(scores, labels, args.prior)
        calibration = Calibration(scale, offset, measured_on)
        thresholds = thresholds_from_scores(scores, labels, measured_on)
    else:
        config = calibrate_model_dir(args.model, scores, labels, measured_on, args.prior, precision=model.precision)
        calibration, thresholds = config.calibration, config.thresholds
    print(f"calibration: P(same speaker) = sigmoid({calibration.scale:.4f} * score {calibration.offset:+.4f})")
    for name, threshold in thresholds.items():
        print(f"threshold {name}: {threshold.value:.4f} (false accepts {100 * threshold.false_accept_rate:.2f} %, "
              f"false rejects {100 * threshold.false_reject_rate:.2f} %)")
    summary = _summaries(scored, calibration)[COSINE]
    print(f"on the same list: EER {summary['eer']:.2f} %, actDCF0.01 {summary['act_dcf_0.01']:.4f}, Cllr {summary['cllr']:.4f} "
          "(optimistic: measured on the data it was fitted on)")
    print("dry run: nothing written" if args.dry_run
          else f"wrote calibration and thresholds of the {model.precision} graph to {Path(args.model) / 'config.json'}")
    return EXIT_OK


# --- ssps report -----------------------------------------------------------------------


def report_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssps report", description="Comparison table (Markdown) and figures of training runs.")
    parser.add_argument("runs", nargs="+", help="training run directories")
    parser.add_argument("-o", "--output", help="write the Markdown table to this file too")
    parser.add_argument("--figures", help="folder for figures: DET per trial list, EER and NMI across epochs (needs matplotlib)")
    parser.add_argument("--speakers", help="manifest CSV with a speaker column: adds t-SNE and intra-speaker similarity figures")
    parser.add_argument("--max-files", type=int, default=400, help="manifest files embedded per run for those figures (default %(default)s)")
    parser.add_argument("--cache-dir", help="embedding cache (default: $SSPS_CACHE or ~/.cache/ssps)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return _run("report", _report, args)


def _report(args: argparse.Namespace) -> int:
    from ssps.evaluation.report import markdown_table, read_run

    runs = [read_run(path) for path in args.runs]
    table = markdown_table(runs)
    print(table, end="")
    if args.output:
        Path(args.output).write_text(table)
        print(f"wrote {args.output}", file=sys.stderr)
    if args.figures:
        for path in _report_figures(runs, Path(args.figures), args):
            print(f"figure: {path}", file=sys.stderr)
    return EXIT_OK


def _report_figures(runs, folder: Path, args: argparse.Namespace) -> list[Path]:
    from ssps.evaluation import plots
    from ssps.evaluation.report import EVAL_DIR
    from ssps.evaluation.trials import read_manifest_speakers, read_scores

    written = []
    score_files: dict[str, dict[str, Path]] = {}  # trial list -> run -> score file
    for run in runs:
        for path in sorted((run.path / EVAL_DIR).glob("*.scores.txt")):
            score_files.setdefault(path.name.removesuffix(".scores.txt"), {})[run.name] = path
    for list_name, by_run in score_files.items():
        systems = {}
        for run_name, path in by_run.items():
            scored = read_scores(path)
            systems[run_name] = (scored.systems[COSINE], scored.labels)
        written.append(plots.plot_det(systems, folder / f"det_{list_name}.png", title=f"DET on {list_name}"))
    eer_curves = {run.name: run.curve("validation/eer") for run in runs if run.curve("validation/eer")[0]}
    if eer_curves:
        written.append(plots.plot_eer_over_epochs(eer_curves, folder / "eer_epochs.png"))
    nmi_curves = {}
    for run in runs:
        epochs, speaker = run.curve("ssps/nmi_speaker")
        _, recording = run.curve("ssps/nmi_recording")
        if epochs and len(speaker) == len(recording):
            nmi_curves[run.name] = (epochs, speaker, recording)
    if nmi_curves:
        written.append(plots.plot_nmi_over_epochs(nmi_curves, folder / "nmi_epochs.png"))
    if args.speakers:
        speakers = read_manifest_speakers(args.speakers)
        paths = read_manifest_paths(args.speakers, args.max_files)
        paths = [p for p in paths if p in speakers]
        cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        systems = {}
        for run in runs:
            model = open_model(str(run.path), cache_dir, threads=args.threads)
            cache = EmbeddingCache(cache_dir, model_cache_key(model))
            embeddings, _ = embed_files(model, paths, cache, progress=not args.quiet, description=run.name)
            kept = [p for p in paths if p in embeddings]
            systems[run.name] = (np.stack([embeddings[p] for p in kept]), [speakers[p] for p in kept])
        written.append(plots.plot_tsne(systems, folder / "tsne.png"))
        written.append(plots.plot_intra_speaker_similarity(systems, folder / "intra_speaker_similarity.png"))
    return written


# --- shared ----------------------------------------------------------------------------


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"ssps {command}", description=description)
    parser.add_argument("--model", help="model directory, hf://org/name, or training run directory (default: $SSPS_MODEL or the bundled model)")
    parser.add_argument("--cache-dir", help="embedding cache and exported runs (default: $SSPS_CACHE or ~/.cache/ssps)")
    parser.add_argument("--no-cache", action="store_true", help="embed every file again and store nothing")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="audio per ONNX Runtime call (default %(default)s s)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--vad", action="store_true", help="trim non-speech with Silero VAD first")
    parser.add_argument("--precision", choices=PRECISIONS, help="graph to run: fp32 or int8 (default: $SSPS_PRECISION or the model's)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _embed(model, files: list[str], args: argparse.Namespace, cache_dir: Path) -> dict[str, np.ndarray]:
    """Embeddings of ``files``; unusable files stop the command unless --skip-errors."""
    cache = None if args.no_cache else EmbeddingCache(cache_dir, model_cache_key(model))
    embeddings, failures = embed_files(model, files, cache, args.batch_seconds, progress=not args.quiet)
    if failures:
        shown = "\n".join(f"  {path}: {message}" for path, message in list(failures.items())[:ERRORS_SHOWN])
        more = f"\n  ... and {len(failures) - ERRORS_SHOWN} more" if len(failures) > ERRORS_SHOWN else ""
        if not getattr(args, "skip_errors", False):
            raise SSPSError(f"{len(failures)} file(s) cannot be embedded:\n{shown}{more}\n(pass --skip-errors to leave their trials out)")
        print(f"warning: {len(failures)} file(s) left out:\n{shown}{more}", file=sys.stderr)
    return embeddings


def _run(command: str, handler, args: argparse.Namespace) -> int:
    """Errors a user can fix become one line and exit code 2."""
    try:
        return handler(args)
    except SSPSError as err:
        print(f"ssps {command}: error: {err}", file=sys.stderr)
    except ModuleNotFoundError as err:
        print(f"ssps {command}: needs {err.name!r}, which is not installed: pip install 'ssps[train]'", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"ssps {command}: interrupted", file=sys.stderr)
    return EXIT_ERROR
