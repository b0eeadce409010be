"""Command line: `python -m ssps.train.corpus build ...` and `... diagnose ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import BuildOptions, OutputNotEmpty, build_corpus
from .real import FSDD_RECORDINGS
from .voices import MissingSystemPackages

COMMANDS = ("build", "diagnose")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["build", *argv]  # `ssps data synth --out X` means build
    args = _parser().parse_args(argv)
    if args.command == "diagnose":
        from .diagnose import run_diagnostics

        run_diagnostics(
            args.corpus,
            args.sample_recordings,
            args.seed,
            args.out,
            args.trials_per_label,
            args.workers,
        )
        return 0
    options = BuildOptions(
        out=args.out,
        seed=args.seed,
        speakers=args.speakers,
        recordings_per_speaker=args.recordings_per_speaker,
        utterances_per_recording=args.utterances_per_recording,
        dev_speakers=args.dev_speakers,
        cal_speakers=args.cal_speakers,
        workers=args.workers,
        real_sources=not args.no_real,
        real_limit=args.real_limit,
        fsdd_dir=args.fsdd_dir,
        overwrite=args.overwrite,
    )
    try:
        build_corpus(options)
    except (MissingSystemPackages, OutputNotEmpty) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ssps.train.corpus", description=__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build", help="build the corpus (wav/, manifests, trials)"
    )
    build.add_argument("--out", type=Path, default=Path("data/corpus"))
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--speakers",
        type=_positive,
        default=None,
        help="synthetic speakers (real people); default: every usable voice",
    )
    build.add_argument("--recordings-per-speaker", type=_positive, default=20)
    build.add_argument("--utterances-per-recording", type=_positive, default=5)
    build.add_argument(
        "--dev-speakers",
        type=int,
        default=16,
        help="synthetic speakers held out for trials_synth_dev.txt",
    )
    build.add_argument(
        "--cal-speakers",
        type=int,
        default=6,
        help="other synthetic speakers held out for trials_synth_cal.txt",
    )
    build.add_argument("--workers", type=_positive, default=2)
    build.add_argument(
        "--no-real", action="store_true", help="leave out uqm-voice, Asterisk and FSDD"
    )
    build.add_argument(
        "--real-limit",
        type=_positive,
        default=None,
        help="at most this many utterances per real recording (quick builds)",
    )
    build.add_argument("--fsdd-dir", type=Path, default=FSDD_RECORDINGS)
    build.add_argument(
        "--overwrite", action="store_true", help="replace an existing corpus in --out"
    )

    diagnose = commands.add_parser(
        "diagnose", help="resemblyzer EERs and same-recording/speaker cosine means"
    )
    diagnose.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    diagnose.add_argument(
        "--sample-recordings",
        type=_positive,
        default=300,
        help="train recordings to embed for the cosine means",
    )
    diagnose.add_argument(
        "--trials-per-label",
        type=_positive,
        default=None,
        help="sample this many targets (and non-targets) per list; default: all trials",
    )
    diagnose.add_argument("--workers", type=_positive, default=2)
    diagnose.add_argument("--seed", type=int, default=0)
    diagnose.add_argument(
        "--out", type=Path, default=None, help="write the numbers as JSON"
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
