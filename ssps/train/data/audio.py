"""Read (a crop of) an audio file as float32 mono at the training sample rate.

soundfile (libsndfile) decodes wav, flac and ogg; soxr resamples when a file is not at
the training rate. Only the requested crop is read from disk, so long files are cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile
import soxr

from ssps.errors import AudioError

# Formats the manifest accepts. libsndfile also reads a few rarer ones (aiff, au, ...):
# they work with read_audio but are not collected when scanning a tree.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# AAC in an MP4 container (VoxCeleb2 ships .m4a): libsndfile cannot decode it.
UNDECODABLE_SUFFIXES = (".m4a", ".aac", ".mp4")

CONVERT_HINT = (
    "libsndfile (soundfile) cannot decode AAC/.m4a. Convert the files to wav or flac "
    "first, e.g. `ffmpeg -i utt.m4a -ac 1 -ar 16000 utt.wav` (VoxCeleb2 is usually "
    "converted this way), then build the manifest from the converted tree."
)


def is_undecodable(path: str | Path) -> bool:
    return Path(path).suffix.lower() in UNDECODABLE_SUFFIXES


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding). Raises AudioError."""
    info = _info(path)
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return info.frames / info.samplerate


def read_audio(
    path: str | Path,
    sample_rate: int = 16000,
    *,
    start: int = 0,
    num_samples: int | None = None,
) -> np.ndarray:
    """Samples [start, start + num_samples) of `path`, counted at `sample_rate`.

    Returns float32 mono (channels averaged), resampled to `sample_rate` when needed.
    The result is shorter than `num_samples` only when the file ends first;
    `num_samples=None` reads to the end. Raises AudioError when the file cannot be read.
    """
    info = _info(path)
    native_rate = info.samplerate
    # Positions in the file's own rate; one extra native frame so that resampling
    # never comes up a sample short of the requested length.
    native_start = math.floor(start * native_rate / sample_rate)
    native_frames = -1 if num_samples is None else math.ceil(num_samples * native_rate / sample_rate) + 1
    try:
        samples, _ = soundfile.read(
            str(path), start=native_start, frames=native_frames, dtype="float32", always_2d=True
        )
    except (RuntimeError, OSError, ValueError) as error:
        raise AudioError(f"{path}: cannot read audio ({error})") from error
    mono = samples.mean(axis=1, dtype=np.float32)
    if native_rate != sample_rate and mono.size > 0:
        mono = soxr.resample(mono, native_rate, sample_rate).astype(np.float32, copy=False)
    if num_samples is not None:
        mono = mono[:num_samples]
    return np.ascontiguousarray(mono)


def read_random_crop(
    path: str | Path,
    num_samples: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    *,
    duration: float | None = None,
) -> np.ndarray:
    """`num_samples` from a uniformly random start in `path`; a file shorter than that is
    repeated to fill the crop. `duration` (seconds, e.g. from the manifest) saves a
    header read. Raises AudioError when nothing can be read."""
    if duration is None:
        duration = audio_duration(path)
    total = int(duration * sample_rate)
    start = int(rng.integers(0, max(total - num_samples, 0) + 1))
    waveform = read_audio(path, sample_rate, start=start, num_samples=num_samples)
    if waveform.size == 0:
        raise AudioError(f"{path}: no audio at {start / sample_rate:.2f} s (is the recorded duration right?)")
    # np.resize repeats the array cyclically up to the requested size.
    return np.resize(waveform, num_samples) if waveform.size < num_samples else waveform


def _info(path: str | Path) -> soundfile._SoundFileInfo:
    if is_undecodable(path):
        raise AudioError(f"{path}: {CONVERT_HINT}")
    try:
        return soundfile.info(str(path))
    except (RuntimeError, OSError, ValueError) as error:
        # LibsndfileError is a RuntimeError; a missing file surfaces as one too.
        raise AudioError(f"{path}: cannot read audio ({error})") from error
