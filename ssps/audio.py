"""Audio input: decode anything a user may hand us into a clean mono waveform.

    >>> import numpy as np
    >>> from ssps.audio import load_audio
    >>> tone = 0.1 * np.sin(np.linspace(0, 2000, 48_000)).astype("float32")
    >>> load_audio((tone, 48_000), sample_rate=16_000).shape
    (16000,)

A source is a path (``str`` or ``os.PathLike``), the file's ``bytes``, a binary file object,
or an ``(array, sample_rate)`` tuple. Files are decoded with soundfile (libsndfile: WAV,
FLAC, OGG/Vorbis/Opus, MP3 with libsndfile >= 1.1), mixed down to mono by averaging the
channels and resampled with soxr. The result is checked (non-empty, finite, not silent) so
that a bad input is an :class:`~ssps.errors.AudioError`, never a silent garbage score.

Every ``AudioError`` raised here carries a ``.code``, a short stable string for machines
(the REST server maps it to a response): see :data:`ERROR_CODES`.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import IO, Any, Union

import numpy as np
import soundfile as sf
import soxr

from ssps.errors import AudioError

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], "tuple[np.ndarray, int]"]

ERROR_CODES = {
    "file_not_found": "the path does not exist or is not a readable file",
    "empty_audio": "the file or array holds no samples",
    "undecodable": "the bytes are not audio that libsndfile can decode",
    "bad_input": "the source is not a path, bytes, file object or (array, sample_rate)",
    "non_finite": "the samples contain NaN or infinity",
    "silent": "every sample is (nearly) zero",
    "too_short": "shorter than the model's minimum duration",
    "no_speech": "voice-activity detection found no speech",
}

# Peak amplitude below which audio counts as silence: about 3 steps of 16-bit audio.
SILENCE_PEAK = 1e-4
# Sample rates at or below this carry telephone-band speech only (<= 4 kHz of content).
NARROW_BAND_RATE = 8_000


class NarrowBandWarning(UserWarning):
    """The input was recorded at <= 8 kHz: scores are less reliable than on wide-band audio."""


def audio_error(code: str, message: str) -> AudioError:
    """An AudioError with a machine-readable ``.code`` (one of :data:`ERROR_CODES`)."""
    return AudioError(message, code)


def load_audio(source: AudioSource, sample_rate: int) -> np.ndarray:
    """Decode ``source`` to a float32 mono waveform at ``sample_rate``, validated.

    Raises :class:`~ssps.errors.AudioError` (with ``.code``) when the audio cannot be used,
    and warns :class:`NarrowBandWarning` when the input rate is 8 kHz or lower.
    """
    audio, rate = _decode(source)
    audio = _to_mono(audio)
    if audio.size == 0:
        raise audio_error("empty_audio", f"{_describe(source)} holds no audio samples: give a recording with speech")
    if not np.isfinite(audio).all():
        raise audio_error("non_finite", f"{_describe(source)} contains NaN or infinite samples: check how it was produced")
    if np.abs(audio).max() < SILENCE_PEAK:
        raise audio_error("silent", f"{_describe(source)} is silent (all samples are ~0): check the recording level")
    if rate <= NARROW_BAND_RATE:
        warnings.warn(
            f"{_describe(source)} is sampled at {rate} Hz (narrow-band, telephone quality): "
            "scores are less reliable than on 16 kHz audio.",
            NarrowBandWarning,
            stacklevel=2,
        )
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _decode(source: AudioSource) -> tuple[np.ndarray, int]:
    """Return (samples [frames, channels] or [frames], sample_rate) without validating them."""
    if isinstance(source, tuple):
        return _from_array(source)
    if isinstance(source, np.ndarray):
        raise audio_error("bad_input", "a bare array has no sample rate: pass (array, sample_rate)")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise audio_error("file_not_found", f"{path} does not exist or is not a file: check the path")
        if os.path.getsize(path) == 0:
            raise audio_error("empty_audio", f"{path} is an empty file (0 bytes)")
        return _read(path, path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise audio_error("empty_audio", "the audio bytes are empty (0 bytes)")
        return _read(io.BytesIO(bytes(source)), "the audio bytes")
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return _read(source, name if isinstance(name, str) else "the audio file object")
    raise audio_error(
        "bad_input", f"cannot read audio from a {type(source).__name__}: give a path, bytes, a file object or (array, sample_rate)"
    )


def _read(file: Any, name: str) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(file, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as err:
        # libsndfile's own message names the object it read (an in-memory buffer's repr and
        # address for bytes); keep only the reason, which is what a user can act on.
        reason = getattr(err, "error_string", None) or str(err)
        raise audio_error(
            "undecodable",
            f"cannot decode {name} as audio ({reason}): use WAV, FLAC, OGG or MP3, or convert it with ffmpeg/sox",
        ) from err
    if audio.shape[0] == 0:
        raise audio_error("empty_audio", f"{name} holds no audio samples (0 frames)")
    return audio, int(rate)


def _from_array(source: tuple) -> tuple[np.ndarray, int]:
    if len(source) != 2:
        raise audio_error("bad_input", "an audio tuple must be (array, sample_rate)")
    array, rate = source
    try:
        rate = int(rate)
        audio = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise audio_error("bad_input", f"an audio tuple must be (array, sample_rate): {err}") from err
    if rate <= 0:
        raise audio_error("bad_input", f"sample rate must be positive, got {rate}")
    if audio.ndim not in (1, 2):
        raise audio_error("bad_input", f"audio must be 1-D [samples] or 2-D [samples, channels], got shape {audio.shape}")
    if np.issubdtype(audio.dtype, np.integer):
        # PCM integers (e.g. int16 from a WAV reader): scale to [-1, 1) like soundfile does.
        audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
    elif not np.issubdtype(audio.dtype, np.floating):
        raise audio_error("bad_input", f"audio samples must be numbers, got dtype {audio.dtype}")
    if audio.ndim == 2 and audio.shape[1] > audio.shape[0]:
        audio = audio.T  # [channels, samples] (torchaudio's layout): a clip has more samples than channels
    return audio.astype(np.float32, copy=False), rate


def _to_mono(audio: np.ndarray) -> np.ndarray:
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, tuple):
        return "the audio array"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "the audio"
