"""Speaker embeddings and verification with ONNX Runtime (no torch).

    >>> import ssps
    >>> model = ssps.load_model("path/to/model_dir")            # doctest: +SKIP
    >>> result = model.verify("a.wav", "b.wav")                 # doctest: +SKIP
    >>> result.same_speaker, round(result.score, 3)             # doctest: +SKIP
    (True, 0.812)

How audio becomes an embedding (the server reuses each step):

1. :func:`ssps.audio.load_audio`: decode, mono, resample, validate; optional VAD trim.
2. :meth:`SpeakerModel.windows`: the whole clip when it is at most ``max_duration`` seconds
   (20 s by default, from config.json), else windows of ``max_duration`` every
   ``window_hop`` seconds (10 s), the last one aligned to the end so the tail is covered.
   Clips shorter than ``min_duration`` (0.5 s) are refused.
3. :meth:`SpeakerModel.embed_windows`: one ONNX Runtime call on equal-length windows. The
   log-mel frontend normalises each utterance inside the graph, so windows are never
   zero-padded to share a batch (padding would change the embedding); windows of one long
   clip all have the same length and run :data:`WINDOWS_PER_RUN` at a time, which bounds memory.
4. :meth:`SpeakerModel.pool`: mean of the window embeddings, L2-normalised.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssps import model_dir as md
from ssps.audio import AudioSource, audio_error, load_audio
from ssps.enrollment import Enrollment, Match, normalize
from ssps.errors import ModelError
from ssps.hub import download_model, is_hf_ref

# Environment variable naming the model that load_model() / ssps.verify() use by default.
MODEL_ENV = "SSPS_MODEL"
# Environment variable choosing the graph ("fp32" or "int8") when load_model is not told;
# unset: the model's own default_precision (config.json).
PRECISION_ENV = "SSPS_PRECISION"
DEFAULT_MODEL_NAME = "ssps-ecapa-default"
# Where the default model lives: inside an installed wheel (pyproject force-includes the
# repository's models/ there), or in models/ of a repository checkout.
BUNDLED_MODEL_FOLDERS = [
    Path(__file__).resolve().parent / "_bundled_models",
    Path(__file__).resolve().parent.parent / "models",
]
# Windows of one long clip embedded per ONNX Runtime call. A 20 s window takes ~100 MB of
# activations on CPU even for a small ECAPA (C=64), more for larger ones: running a few at a
# time keeps a 5-minute file as cheap as a 45-second one (one 300 s pass took ~1.5 GB).
WINDOWS_PER_RUN = 2
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# cuDNN's exhaustive algorithm search re-runs for every new input length; the heuristic
# choice avoids a stall on each new clip length, and a growing arena keeps memory near need.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}
# ONNX Runtime's worker threads busy-wait for work between calls by default. Under
# concurrent requests that spinning steals the cores the other requests need; bench/
# measures it (docs/benchmarks.md, "session settings" and "server"), so it is off.
ALLOW_SPINNING = False


class UntrainedModelWarning(UserWarning):
    """The model has random weights (made for tests): its scores mean nothing."""


@dataclass(frozen=True)
class VerificationResult:
    score: float  # cosine similarity of the two embeddings, in [-1, 1]
    threshold: float  # decision threshold applied to the score
    same_speaker: bool  # score >= threshold
    probability: float | None  # calibrated P(same speaker), None when the model has no calibration

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Identification:
    speaker: str | None  # best enrolled speaker, or None ("unknown") when below the threshold
    score: float  # cosine with the best speaker's voiceprint
    threshold: float
    candidates: list[Match]  # the top_k closest speakers, best first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpeakerModel:
    """A loaded model directory: embeds audio, verifies pairs, identifies enrolled speakers."""

    def __init__(self, directory: Path, config: md.ModelConfig, session: Any, *, source: str, vad: Any = None,
                 precision: str = md.FP32):
        self.directory = directory
        self.config = config
        self.session = session
        self.source = source  # the ref it was loaded from
        self.vad = vad  # an ssps.vad.SileroVAD, or None
        self.precision = precision  # which graph runs: "fp32" (model.onnx) or "int8"
        self.enrollments = Enrollment(self.model_id, self.dim)

    def __repr__(self) -> str:
        return f"SpeakerModel({self.model_id!r}, precision={self.precision!r}, providers={self.providers})"

    # --- what the model is ---------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """Name plus the start of the sha256 of the graph that runs: stable wherever the
        directory lives, and different for fp32 and int8 (their embeddings differ slightly,
        so stored enrolments of one are refused by the other)."""
        return f"{self.config.name}@{self.onnx_sha256[:12]}"

    @property
    def onnx_sha256(self) -> str:
        """sha256 of the ONNX graph that runs (model.onnx, or the int8 graph)."""
        return self.config.onnx_file(self.precision)[1]

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    @property
    def providers(self) -> list[str]:
        """Execution providers ONNX Runtime actually uses, in priority order."""
        return self.session.get_providers()

    # --- audio to embedding, step by step ------------------------------------------------

    def prepare(self, audio: AudioSource) -> np.ndarray:
        """The waveform the model embeds: decoded, mono, at the model rate, VAD-trimmed if enabled."""
        waveform = load_audio(audio, self.sample_rate)
        if self.vad is not None:
            waveform = self.vad.trim(waveform, self.sample_rate)
        return waveform

    def windows(self, waveform: np.ndarray) -> list[np.ndarray]:
        """Equal-length windows covering ``waveform`` (see the module docstring)."""
        rate, config = self.sample_rate, self.config
        duration = len(waveform) / rate
        if duration < config.min_duration:
            raise audio_error(
                "too_short",
                f"the audio lasts {duration:.2f} s; this model needs at least {config.min_duration} s of speech",
            )
        size, hop = int(config.max_duration * rate), int(config.window_hop * rate)
        if len(waveform) <= size:
            return [waveform]
        starts = list(range(0, len(waveform) - size, hop)) + [len(waveform) - size]
        return [waveform[start : start + size] for start in starts]

    def embed_windows(self, batch: np.ndarray) -> np.ndarray:
        """Embeddings [n, dim] of equal-length windows [n, samples], in one ONNX Runtime call."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 2:
            raise audio_error("bad_input", f"embed_windows takes [n, samples], got shape {batch.shape}")
        try:
            (embeddings,) = self.session.run([md.OUTPUT_NAME], {md.INPUT_NAME: batch})
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelError(f"ONNX Runtime failed on a batch of shape {batch.shape}: {err}") from err
        return embeddings

    @staticmethod
    def pool(window_embeddings: np.ndarray) -> np.ndarray:
        """One embedding [dim] from window embeddings [n, dim]: mean, then L2-normalise."""
        return normalize(np.asarray(window_embeddings, dtype=np.float32).mean(axis=0)).astype(np.float32)

    # --- the public API ------------------------------------------------------------------

    def embed(self, audio: AudioSource) -> np.ndarray:
        """L2-normalised speaker embedding [dim] of ``audio``.

            >>> model.embed("a.wav").shape                   # doctest: +SKIP
            (512,)

        ``audio`` is a path, bytes, a binary file object or ``(array, sample_rate)``.
        Audio longer than ``max_duration`` is embedded in windows and averaged.
        """
        windows = self.windows(self.prepare(audio))
        parts = [
            self.embed_windows(np.stack(windows[i : i + WINDOWS_PER_RUN]))
            for i in range(0, len(windows), WINDOWS_PER_RUN)
        ]
        return self.pool(np.concatenate(parts))

    def embed_batch(self, audios: Iterable[AudioSource]) -> np.ndarray:
        """Embeddings [n, dim] of several clips. Each clip is embedded on its own, because
        clips of different lengths cannot share a batch without padding (see module doc)."""
        if isinstance(audios, (str, bytes, os.PathLike, tuple)):
            raise audio_error("bad_input", "embed_batch takes a list of audio sources; use embed() for one")
        embeddings = [self.embed(audio) for audio in audios]
        return np.stack(embeddings) if embeddings else np.zeros((0, self.dim), dtype=np.float32)

    @staticmethod
    def score(e1: np.ndarray, e2: np.ndarray) -> float:
        """Cosine similarity of two embeddings."""
        return float(np.dot(normalize(np.asarray(e1, np.float64)), normalize(np.asarray(e2, np.float64))))

    def threshold(self, threshold: float | str | None = None) -> float:
        """A threshold value: a number as given, a name from config.json ("eer", "far1"), or
        None for the model's calibrated default."""
        if threshold is None:
            threshold = self.config.default_threshold
        if isinstance(threshold, str):
            known = self.config.thresholds
            if threshold not in known:
                available = ", ".join(known) or "none"
                raise ModelError(
                    f"model {self.config.name} has no {threshold!r} threshold (available: {available}): "
                    "pass a number, e.g. threshold=0.5"
                )
            return float(known[threshold].value)
        value = float(threshold)
        if not math.isfinite(value):
            raise ModelError(f"threshold must be a finite number, got {threshold!r}")
        return value

    def probability(self, score: float) -> float | None:
        """Calibrated P(same speaker | score), or None when the model carries no calibration."""
        calibration = self.config.calibration
        if calibration is None:
            return None
        log_odds = calibration.scale * score + calibration.offset
        # The logistic function in the form whose exp cannot overflow (a steep calibration
        # fitted on well-separated scores gives log-odds in the thousands).
        if log_odds >= 0:
            return float(1.0 / (1.0 + math.exp(-log_odds)))
        return float(math.exp(log_odds) / (1.0 + math.exp(log_odds)))

    def decide(self, score: float, threshold: float | str | None = None) -> VerificationResult:
        """Turn a score into a decision (the server uses this too)."""
        value = self.threshold(threshold)
        return VerificationResult(float(score), value, bool(score >= value), self.probability(score))

    def verify(self, a: AudioSource, b: AudioSource, threshold: float | str | None = None) -> VerificationResult:
        """Are ``a`` and ``b`` the same speaker? ``threshold=None`` uses the model's default."""
        value = self.threshold(threshold)  # fail on a bad threshold before embedding anything
        return self.decide(self.score(self.embed(a), self.embed(b)), value)

    def enroll(self, name: str, audios: Sequence[AudioSource]) -> np.ndarray:
        """Add recordings of speaker ``name`` to :attr:`enrollments`; return the voiceprint."""
        if isinstance(audios, (str, bytes, os.PathLike)) or (
            isinstance(audios, tuple) and len(audios) == 2 and isinstance(audios[0], np.ndarray)
        ):
            audios = [audios]  # one recording given bare
        self.enrollments.add(name, self.embed_batch(audios))
        return self.enrollments.voiceprint(name)

    def identify(self, audio: AudioSource, top_k: int = 1, threshold: float | str | None = None) -> Identification:
        """Who among the enrolled speakers is speaking? ``speaker`` is None ("unknown") when
        even the best match scores below the threshold."""
        value = self.threshold(threshold)
        candidates = self.enrollments.rank(self.embed(audio), top_k)
        best = candidates[0]
        return Identification(best.name if best.score >= value else None, best.score, value, candidates)

    def save_enrollments(self, path: str | os.PathLike) -> Path:
        return self.enrollments.save(path)

    def load_enrollments(self, path: str | os.PathLike) -> Enrollment:
        """Replace :attr:`enrollments` with a saved store (made with this same model)."""
        store = Enrollment.load(path)
        store.check_model(self.model_id, self.dim)
        self.enrollments = store
        return store


# --- loading ---------------------------------------------------------------------------


def load_model(
    ref: str | os.PathLike | None = None,
    *,
    providers: Sequence[str | tuple[str, dict]] | None = None,
    threads: int | None = None,
    vad: bool = False,
    precision: str | None = None,
) -> SpeakerModel:
    """Load a speaker model.

    ``ref`` is None (the model named by ``$SSPS_MODEL``, else the default model bundled with
    ssps), a local model directory, or ``hf://org/name[@revision]`` (Hugging Face Hub, cached;
    works offline once cached). ``model.onnx`` is always checked against the sha256 in
    config.json. ``providers`` defaults to CUDA when onnxruntime-gpu offers it, else CPU;
    ``threads`` caps ONNX Runtime's intra-op threads. ``vad=True`` trims non-speech first
    (needs the Silero VAD package: see :mod:`ssps.vad`). ``precision`` picks the graph,
    "fp32" (model.onnx) or "int8" (model.int8.onnx, when the directory has one); None:
    ``$SSPS_PRECISION``, else the model's ``default_precision``. Every graph is checked
    against its sha256 in config.json.

        >>> model = load_model("models/my-model")                 # doctest: +SKIP
        >>> model = load_model("hf://org/ssps-ecapa@v1.0")        # doctest: +SKIP
        >>> model.providers                                       # doctest: +SKIP
        ['CPUExecutionProvider']
    """
    import onnxruntime as ort

    source = str(ref) if ref is not None else default_model_ref()
    directory = download_model(source) if is_hf_ref(source) else Path(source).expanduser()
    if not directory.is_dir():
        raise ModelError(f"{source} is not a model directory: give a folder with model.onnx and config.json, or hf://org/name")
    config = md.read_config(directory)
    chosen_providers = _choose_providers(providers)
    precision = precision or os.environ.get(PRECISION_ENV, "").strip() or _default_precision(config, chosen_providers)
    onnx_path = md.check_onnx_integrity(directory, config, precision)
    config = config.for_precision(precision)  # thresholds and calibration of the graph that runs
    if config.untrained:
        warnings.warn(f"model {config.name} is untrained (random weights, for tests): its scores mean nothing", UntrainedModelWarning, stacklevel=2)

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise to users
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ALLOW_SPINNING else "0")
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=chosen_providers)
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ModelError(f"ONNX Runtime cannot load {onnx_path}: {err}") from err
    vad_model = None
    if vad:
        from ssps.vad import SileroVAD

        vad_model = SileroVAD()
    return SpeakerModel(directory, config, session, source=source, vad=vad_model, precision=precision)


def default_model_ref() -> str:
    """``$SSPS_MODEL`` if set, else the bundled default model directory."""
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    for folder in BUNDLED_MODEL_FOLDERS:
        candidate = folder / DEFAULT_MODEL_NAME
        if (candidate / md.CONFIG_FILE).is_file():
            return str(candidate)
    raise ModelError(
        f"no default model ({DEFAULT_MODEL_NAME}) is bundled with this ssps yet: pass a model, "
        f"e.g. ssps.load_model('path/to/model_dir') or ssps.load_model('hf://org/name'), "
        f"or set {MODEL_ENV} to one (CLI: --model)"
    )


def _default_precision(config: md.ModelConfig, providers: list) -> str:
    """The model's default precision, except on a GPU: the int8 graph's speed-up was
    measured on CPU kernels, and CUDA runs its quantise/dequantise pairs as extra work."""
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    return md.FP32 if names and names[0] == CUDA else config.default_precision


def _choose_providers(requested: Sequence[str | tuple[str, dict]] | None) -> list:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested is None:
        return [(CUDA, CUDA_OPTIONS), CPU] if CUDA in available else [CPU]
    chosen = list(requested)
    unknown = [p for p in chosen if (p[0] if isinstance(p, tuple) else p) not in available]
    if unknown:
        raise ModelError(f"execution provider(s) {unknown} not available here; available: {available}")
    return chosen


_default_models: dict[str, SpeakerModel] = {}


def verify(
    a: AudioSource,
    b: AudioSource,
    *,
    threshold: float | str | None = None,
    model: str | os.PathLike | SpeakerModel | None = None,
) -> VerificationResult:
    """One line: are ``a`` and ``b`` the same speaker, according to the default model?

        >>> ssps.verify("a.wav", "b.wav").same_speaker            # doctest: +SKIP
        True

    ``model`` may name another model (same refs as :func:`load_model`); loaded models are
    kept for the next call.
    """
    if not isinstance(model, SpeakerModel):
        key = str(model) if model is not None else default_model_ref()
        if key not in _default_models:
            _default_models[key] = load_model(key)
        model = _default_models[key]
    return model.verify(a, b, threshold=threshold)
