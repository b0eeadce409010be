"""Small audio helpers shared by the synthetic and the real sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000


def to_corpus_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz (soxr's high-quality resampler)."""
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = audio.astype(np.float32)
    if sample_rate != SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="HQ")
    return audio


def trim_silence(
    audio: np.ndarray, threshold_db: float = -40.0, pad_s: float = 0.05
) -> np.ndarray:
    """Cut leading and trailing silence (10 ms frames quieter than the loudest by 40 dB)."""
    frame = SAMPLE_RATE // 100
    frames = len(audio) // frame
    if frames == 0:
        return audio
    energy = (
        audio[: frames * frame].reshape(frames, frame).astype(np.float64) ** 2
    ).mean(axis=1)
    loud = np.nonzero(energy > energy.max() * 10 ** (threshold_db / 10))[0]
    if loud.size == 0:
        return audio[:0]
    pad = int(pad_s * SAMPLE_RATE)
    return audio[
        max(0, loud[0] * frame - pad) : min(len(audio), (loud[-1] + 1) * frame + pad)
    ]


def join_with_pauses(clips: list[np.ndarray], pause_s: float) -> np.ndarray:
    """Concatenate clips with silence between them (for very short source clips)."""
    pause = np.zeros(int(pause_s * SAMPLE_RATE), dtype=np.float32)
    pieces = []
    for i, clip in enumerate(clips):
        if i:
            pieces.append(pause)
        pieces.append(clip.astype(np.float32))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def write_wav(path: Path, audio: np.ndarray) -> float:
    """Write 16 kHz mono 16-bit PCM; returns the duration in seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if (
        peak > 0.999
    ):  # real sources can be at full scale: keep them from wrapping around
        audio = audio * (0.999 / peak)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return len(audio) / SAMPLE_RATE
