"""Embed many files once: batched ONNX Runtime calls and an on-disk cache.

- ``open_model(ref)``: a model directory / ``hf://`` ref is loaded as is; a training run
  directory (``train_config.yaml`` + ``encoder.safetensors``) is first exported to a model
  directory under the cache (needs the [train] extra, once per weights file), so runs and
  released models are embedded by the same ONNX code path.
- ``EmbeddingCache``: one ``.npz`` per model (named by the sha256 of its model.onnx, plus
  "-vad" when VAD trimming is on), keyed by absolute file path, modification time and size,
  so an edited file is embedded again.
- ``embed_files(model, paths)``: {path: embedding}. Files are read a chunk at a time and
  their windows (``SpeakerModel.windows``) grouped by length; windows of equal length share
  one ONNX Runtime call. Nothing is padded, so each embedding is exactly ``model.embed``'s.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ssps import model_dir as md
from ssps.errors import ModelError, SSPSError

CACHE_ENV = "SSPS_CACHE"
RUN_CONFIG, RUN_WEIGHTS = "train_config.yaml", "encoder.safetensors"
FILES_PER_CHUNK = 32  # files decoded at a time
# The cache file is rewritten whole, so it is saved every few minutes (an interrupted run
# keeps most of its work) rather than after every chunk.
SAVE_EVERY_SECONDS = 120.0


def default_cache_dir() -> Path:
    """``$SSPS_CACHE`` or ``~/.cache/ssps``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ssps")


def is_run_dir(ref: str | os.PathLike) -> bool:
    path = Path(ref)
    return (path / RUN_CONFIG).is_file() and (path / RUN_WEIGHTS).is_file() and not (path / md.CONFIG_FILE).is_file()


def open_model(ref: str | None, cache_dir: Path, threads: int | None = None, vad: bool = False, precision: str | None = None):
    """Load ``ref`` (model directory, ``hf://`` ref, training run directory, or None for the
    default model) as a ``SpeakerModel``, without the untrained-model warning."""
    from ssps.inference import UntrainedModelWarning, load_model

    if ref is not None and is_run_dir(ref):
        ref = str(export_run_dir(Path(ref), cache_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)  # eval says so itself
        return load_model(ref, threads=threads, vad=vad, precision=precision)


def export_run_dir(run_dir: Path, cache_dir: Path) -> Path:
    """The model directory of a run's averaged encoder, exported once per weights file."""
    try:
        from ssps.train.export import export_model
    except ModuleNotFoundError as err:
        raise ModelError(
            f"{run_dir} is a training run directory: exporting it needs {err.name!r} "
            "(pip install 'ssps[train]'), or export it elsewhere with `ssps export` and pass the model directory"
        ) from err
    out = cache_dir / "exported" / md.sha256_of(run_dir / RUN_WEIGHTS)[:16]
    if not (out / md.CONFIG_FILE).is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"exporting {run_dir} to {out} ...", file=sys.stderr)
        export_model(run_dir, out, name=run_dir.resolve().name, overwrite=out.exists())
    return out


class EmbeddingCache:
    """Embeddings of one model, persisted as ``<cache_dir>/embeddings/<model key>.npz``."""

    def __init__(self, cache_dir: Path, model_key: str):
        self.path = Path(cache_dir) / "embeddings" / f"{model_key}.npz"
        self.entries: dict[str, np.ndarray] = {}
        self.unsaved = 0
        if self.path.is_file():
            try:
                with np.load(self.path) as stored:
                    self.entries = dict(zip(stored["keys"].tolist(), stored["embeddings"]))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:  # a damaged cache is only lost time
                print(f"warning: ignoring unreadable embedding cache {self.path}: {err}", file=sys.stderr)

    @staticmethod
    def key(path: str) -> str:
        stat = os.stat(path)
        return f"{os.path.abspath(path)}|{stat.st_mtime_ns}|{stat.st_size}"

    def get(self, path: str) -> np.ndarray | None:
        try:
            return self.entries.get(self.key(path))
        except OSError:  # a missing file is reported when it is embedded
            return None

    def put(self, path: str, embedding: np.ndarray) -> None:
        self.entries[self.key(path)] = embedding
        self.unsaved += 1

    def save(self) -> None:
        if not self.unsaved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(list(self.entries), dtype=str), embeddings=np.stack(list(self.entries.values())))
        os.replace(tmp, self.path)  # readers never see a half-written cache
        self.unsaved = 0


def model_cache_key(model) -> str:
    return model.onnx_sha256 + ("-vad" if model.vad is not None else "")


def embed_files(
    model,
    paths: Sequence[str],
    cache: EmbeddingCache | None = None,
    batch_seconds: float = 60.0,
    progress: bool = True,
    description: str = "embedding",
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """({path: embedding}, {path: error message}) for each distinct path."""
    from tqdm import tqdm

    embeddings: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    todo = []
    for path in dict.fromkeys(paths):  # distinct, in order
        cached = cache.get(path) if cache is not None else None
        if cached is not None:
            embeddings[path] = cached
        else:
            todo.append(path)
    max_samples = int(batch_seconds * model.sample_rate)
    warned: Counter = Counter()  # per-file audio warnings (e.g. narrow-band), summarised once
    with tqdm(total=len(todo), desc=description, unit="file", disable=not progress or not todo, file=sys.stderr) as bar:
        last_save = time.monotonic()
        for start in range(0, len(todo), FILES_PER_CHUNK):
            chunk = todo[start : start + FILES_PER_CHUNK]
            done, failed = _embed_chunk(model, chunk, max_samples, warned)
            embeddings.update(done)
            failures.update(failed)
            if cache is not None:
                for path, embedding in done.items():
                    cache.put(path, embedding)
                if time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                    cache.save()
                    last_save = time.monotonic()
            bar.update(len(chunk))
    if cache is not None:
        cache.save()
    for message, count in warned.items():
        print(f"warning ({count} file(s)): {message}", file=sys.stderr)
    return embeddings, failures


def _embed_chunk(model, paths: list[str], max_samples: int, warned: Counter) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    windows_of: dict[str, list[np.ndarray]] = {}
    failures: dict[str, str] = {}
    for path in paths:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                windows_of[path] = model.windows(model.prepare(path))
            for warning in caught:
                warned[str(warning.message).replace(path, "FILE")] += 1
        except SSPSError as err:
            failures[path] = str(err)
    # Windows of equal length share an ONNX Runtime call (no padding: see module doc).
    by_length: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for path, windows in windows_of.items():
        for index, window in enumerate(windows):
            by_length[len(window)].append((path, index))
    window_embeddings: dict[tuple[str, int], np.ndarray] = {}
    for length, members in by_length.items():
        per_call = max(1, max_samples // length)
        for start in range(0, len(members), per_call):
            group = members[start : start + per_call]
            batch = np.stack([windows_of[path][index] for path, index in group])
            for member, embedding in zip(group, model.embed_windows(batch)):
                window_embeddings[member] = embedding
    embeddings = {
        path: model.pool(np.stack([window_embeddings[(path, i)] for i in range(len(windows))]))
        for path, windows in windows_of.items()
    }
    return embeddings, failures
