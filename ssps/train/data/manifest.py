"""The manifest: which utterances to train on, with their duration and optional labels.

A manifest is a CSV with the columns ``path,speaker,recording,duration``. Only ``path``
is required; ``path`` is relative to the CSV's folder or absolute. Write one by hand, or
build one from a VoxCeleb-style tree::

    ssps data manifest ROOT -o train.csv    # ROOT/speaker/recording/utt.wav

Policies (the same for a scanned tree and a read CSV):

- Formats: wav, flac and ogg (libsndfile). m4a/aac cannot be decoded: convert first
  (VoxCeleb2 is normally converted to wav); the error says how.
- Missing or unreadable files are skipped with a warning that counts them. When more
  than `max_bad_fraction` (default 1 %) of the files are bad, `DataError` is raised
  instead: that many failures means a wrong path or a broken corpus, not bad luck.
- Utterances shorter than `min_seconds` (default 0.5 s) are dropped, with a warning that
  counts them. Longer utterances that are still shorter than a training crop are padded
  by repetition when cropped (see `SSLDataset`).
- Durations are measured once from the file header (``soundfile.info``). A built
  manifest stores them in its ``duration`` column; for a CSV without them they are
  cached next to it in ``<csv>.durations.json``, keyed by path, modification time and
  size, so the second read costs nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ssps.errors import AudioError
from ssps.train.data import DataError
from ssps.train.data.audio import AUDIO_SUFFIXES, CONVERT_HINT, audio_duration, is_undecodable

MIN_SECONDS = 0.5
MAX_BAD_FRACTION = 0.01
COLUMNS = ("path", "speaker", "recording", "duration")
# Reading headers is I/O bound: a few threads hide the latency of slow disks.
MEASURE_THREADS = 8


@dataclass(frozen=True)
class Utterance:
    path: str  # absolute
    duration: float  # seconds
    speaker: str | None = None
    recording: str | None = None  # a recording name is only unique within its speaker


# --- building from a tree ------------------------------------------------------------


def build_manifest(
    root: str | Path,
    *,
    min_seconds: float = MIN_SECONDS,
    max_bad_fraction: float = MAX_BAD_FRACTION,
) -> list[Utterance]:
    """Every wav/flac/ogg file under `root`, labelled by its folders.

    ``root/speaker/recording/utt.wav`` gives speaker and recording (the two folders
    above the file, so ``root/wav/id10001/1zcIwhmdeo4/00001.wav`` works too);
    ``root/speaker/utt.wav`` gives a speaker only; files directly in `root` are
    unlabelled. Sorted by path, so the same tree always gives the same manifest.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    files = sorted(path for path in root.rglob("*") if path.is_file())
    audio_files = [path for path in files if path.suffix.lower() in AUDIO_SUFFIXES]
    _refuse_unconverted(files, audio_files)
    if not audio_files:
        raise DataError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")

    durations = _measure_durations(str(path) for path in audio_files)
    utterances, bad = [], []
    for path, duration in zip(audio_files, durations):
        if isinstance(duration, str):
            bad.append((str(path), duration))
            continue
        speaker, recording = _labels_from_folders(path.relative_to(root))
        utterances.append(Utterance(os.path.abspath(path), duration, speaker, recording))
    return _screen(utterances, bad, str(root), min_seconds, max_bad_fraction)


def _labels_from_folders(relative_path: Path) -> tuple[str | None, str | None]:
    folders = relative_path.parent.parts
    if len(folders) >= 2:
        return folders[-2], folders[-1]
    if len(folders) == 1:
        return folders[0], None
    return None, None


def _refuse_unconverted(files: Sequence[Path], audio_files: Sequence[Path]) -> None:
    # An .m4a next to its converted .wav is fine (the usual VoxCeleb2 conversion
    # output); an .m4a alone would be silently lost, so it stops the build.
    converted = {path.with_suffix("") for path in audio_files}
    unconverted = [path for path in files if is_undecodable(path) and path.with_suffix("") not in converted]
    if unconverted:
        raise DataError(f"{len(unconverted)} file(s) such as {unconverted[0]} are not decodable. {CONVERT_HINT}")


# --- reading a CSV -------------------------------------------------------------------


def read_manifest(
    csv_path: str | Path,
    *,
    min_seconds: float = MIN_SECONDS,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    check_files: bool = True,
) -> list[Utterance]:
    """The utterances of a manifest CSV (columns ``path[,speaker][,recording][,duration]``).

    Rows whose duration is missing are measured (and cached in ``<csv>.durations.json``).
    With `check_files`, rows that have a duration are still checked to exist (one
    ``stat`` each); turn it off for huge manifests on slow network storage.
    """
    csv_path = Path(csv_path)
    rows = _read_rows(csv_path)
    folder = csv_path.parent
    paths = [os.path.abspath(folder / row["path"]) if row["path"] else "" for row in rows]
    unconverted = [path for path in paths if is_undecodable(path)]
    if unconverted:
        raise DataError(f"{csv_path}: {len(unconverted)} row(s) such as {unconverted[0]} are not decodable. {CONVERT_HINT}")

    durations = _durations_for_rows(csv_path, rows, paths, check_files)
    utterances, bad = [], []
    for row_number, (row, path, duration) in enumerate(zip(rows, paths, durations), start=2):
        if isinstance(duration, str):
            bad.append((path or f"row {row_number}", duration))
            continue
        utterances.append(Utterance(path, duration, row.get("speaker") or None, row.get("recording") or None))
    return _screen(utterances, bad, str(csv_path), min_seconds, max_bad_fraction)


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            if reader.fieldnames is None or "path" not in [name.strip() for name in reader.fieldnames]:
                raise DataError(f"{csv_path}: a manifest needs a header with a 'path' column, got {reader.fieldnames}")
            return [
                {key.strip(): (value or "").strip() for key, value in row.items() if key is not None}
                for row in reader
            ]
    except OSError as error:
        raise DataError(f"{csv_path}: cannot read the manifest ({error})") from error


def _durations_for_rows(
    csv_path: Path, rows: list[dict[str, str]], paths: list[str], check_files: bool
) -> list[float | str]:
    """Per row: the duration in seconds, or a string saying why the row is bad."""
    durations: list[float | str | None] = []
    for row, path in zip(rows, paths):
        if not path:
            durations.append("empty path")
        elif row.get("duration"):
            durations.append(_parse_duration(row["duration"], path, check_files))
        else:
            durations.append(None)  # to measure
    to_measure = [path for path, duration in zip(paths, durations) if duration is None]
    if to_measure:
        measured = iter(_cached_durations(csv_path, to_measure))
        durations = [next(measured) if duration is None else duration for duration in durations]
    return durations


def _parse_duration(text: str, path: str, check_files: bool) -> float | str:
    try:
        duration = float(text)
    except ValueError:
        return f"duration {text!r} is not a number"
    if check_files and not os.path.isfile(path):
        return "file not found"
    return duration


def _cached_durations(csv_path: Path, paths: list[str]) -> list[float | str]:
    cache_path = csv_path.with_name(csv_path.name + ".durations.json")
    cache = _load_cache(cache_path)
    results: list[float | str | None] = []
    keys: list[list | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            results.append("file not found")
            keys.append(None)
            continue
        key = [stat.st_mtime_ns, stat.st_size]
        entry = cache.get(path)
        hit = entry is not None and entry[:2] == key
        results.append(entry[2] if hit else None)
        keys.append(key)

    missing = [path for path, result in zip(paths, results) if result is None]
    if missing:
        measured = iter(_measure_durations(missing))
        results = [next(measured) if result is None else result for result in results]
        for path, key, result in zip(paths, keys, results):
            if key is not None and not isinstance(result, str):
                cache[path] = [*key, result]
        _save_cache(cache_path, cache)
    return results


def _load_cache(cache_path: Path) -> dict[str, list]:
    try:
        with open(cache_path, encoding="utf-8") as file:
            cache = json.load(file)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again


def _save_cache(cache_path: Path, cache: dict[str, list]) -> None:
    try:
        _write_atomically(cache_path, json.dumps(cache))
    except OSError as error:
        warnings.warn(f"could not cache durations in {cache_path} ({error}); they will be measured again")


# --- shared by both ------------------------------------------------------------------


def _measure_durations(paths: Iterable[str]) -> list[float | str]:
    """Per path: the duration in seconds, or a string saying why the file is bad."""

    def measure(path: str) -> float | str:
        try:
            return audio_duration(path)
        except AudioError as error:
            return str(error)

    with ThreadPoolExecutor(MEASURE_THREADS) as pool:
        return list(pool.map(measure, paths))


def _screen(
    utterances: list[Utterance],
    bad: list[tuple[str, str]],
    source: str,
    min_seconds: float,
    max_bad_fraction: float,
) -> list[Utterance]:
    """Apply the bad-file and short-utterance policies of the module docstring."""
    total = len(utterances) + len(bad)
    if bad:
        examples = "; ".join(f"{path}: {reason}" for path, reason in bad[:3])
        if len(bad) > max_bad_fraction * total:
            raise DataError(
                f"{source}: {len(bad)} of {total} files are missing or unreadable "
                f"(more than {max_bad_fraction:.1%}), e.g. {examples}"
            )
        warnings.warn(f"{source}: skipped {len(bad)} of {total} missing or unreadable files, e.g. {examples}")

    kept = [utterance for utterance in utterances if utterance.duration >= min_seconds]
    if len(kept) < len(utterances):
        warnings.warn(f"{source}: dropped {len(utterances) - len(kept)} utterances shorter than {min_seconds} s")
    if not kept:
        raise DataError(f"{source}: no usable utterance left")
    return kept


def write_manifest(utterances: Sequence[Utterance], csv_path: str | Path) -> None:
    """Write `utterances` as a manifest CSV; paths inside the CSV's folder become relative."""
    csv_path = Path(csv_path)
    folder = os.path.abspath(csv_path.parent)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for utterance in utterances:
        path = utterance.path
        if os.path.commonpath([folder, path]) == folder:
            path = os.path.relpath(path, folder)
        writer.writerow([path, utterance.speaker or "", utterance.recording or "", f"{utterance.duration:.6f}"])
    _write_atomically(csv_path, buffer.getvalue())


def _write_atomically(path: Path, text: str) -> None:
    # Several processes (DDP ranks) may write the same file: each writes its own
    # temporary file and renames it, so readers never see half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# --- command line --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``ssps data manifest ROOT -o train.csv``: scan a tree, write its manifest."""
    parser = argparse.ArgumentParser(
        prog="ssps data manifest",
        description="Build a training manifest (path,speaker,recording,duration) from a "
        "speaker/recording/utterance tree of wav/flac/ogg files.",
    )
    parser.add_argument("root", help="corpus folder, laid out as speaker/recording/utt.wav")
    parser.add_argument("-o", "--output", required=True, help="CSV to write, e.g. train.csv")
    parser.add_argument("--min-seconds", type=float, default=MIN_SECONDS, help="drop shorter utterances (default %(default)s)")
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=MAX_BAD_FRACTION,
        help="fail when more than this fraction of files is unreadable (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        utterances = build_manifest(args.root, min_seconds=args.min_seconds, max_bad_fraction=args.max_bad_fraction)
        write_manifest(utterances, args.output)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    speakers = {u.speaker for u in utterances if u.speaker is not None}
    recordings = {(u.speaker, u.recording) for u in utterances if u.recording is not None}
    hours = sum(u.duration for u in utterances) / 3600
    print(
        f"{args.output}: {len(utterances)} utterances, {len(speakers)} speakers, "
        f"{len(recordings)} recordings, {hours:.2f} h"
    )
    return 0
