"""What the endpoints share: the model, the micro-batcher, the speaker store, the limits.

The path of an upload: admit the request (or 503) -> read its bytes -> decode and resample
in a worker thread -> check its duration -> cut it into the model's windows -> embed the
windows of all files of the request through the micro-batcher -> pool each file's windows
into one embedding. Every failure on the way is an :class:`~serve.errors.ApiError` with a
stable code.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi import UploadFile

from ssps.enrollment import Enrollment, EnrollmentError
from ssps.errors import AudioError, SSPSError

from serve.batching import MicroBatcher, Overloaded
from serve.errors import ApiError
from serve.metrics import Metrics
from serve.settings import Settings

log = logging.getLogger("serve")

# AudioError codes (ssps.audio.ERROR_CODES) that mean "this is not audio we can read".
UNSUPPORTED_MEDIA_CODES = {"undecodable"}


@dataclass
class Clip:
    """One uploaded file, embedded."""

    filename: str | None
    duration: float  # seconds
    embedding: np.ndarray  # [dim], L2-normalised


class Service:
    def __init__(self, model, settings: Settings, metrics: Metrics):
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self.batcher = MicroBatcher(
            model.embed_windows,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_batch_wait_ms / 1000,
            max_queue=settings.max_queue_windows,
            max_batch_samples=int(settings.max_batch_audio_s * model.sample_rate),
            on_batch=metrics.observe_batch,
        )
        metrics.track_queue_depth(lambda: self.batcher.queue_depth)
        self.min_audio_s = settings.min_audio_s if settings.min_audio_s is not None else model.config.min_duration
        self.speakers = _open_speaker_store(settings.speaker_store, model)
        self._speakers_lock = asyncio.Lock()
        self._pending = 0
        self.ready = False  # set once a warm-up batch has gone through the model

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.batcher.start()

    async def warm_up(self) -> None:
        """Run one batch so the first real request does not pay for lazy initialisation
        (memory arenas on CPU; CUDA context and cuDNN algorithm search on a GPU)."""
        samples = int(max(self.min_audio_s, 1.0) * self.model.sample_rate)
        noise = np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1
        try:
            await self.batcher.embed([noise, noise])
        except Exception:
            log.exception("warm-up failed: /ready stays 503")
            return
        self.ready = True
        log.info("model %s warmed up and ready", self.model.model_id)

    async def stop(self) -> None:
        await self.batcher.stop()

    # -- admission -----------------------------------------------------------------------

    @property
    def pending_requests(self) -> int:
        return self._pending

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of max_pending_requests slots for the duration of a request, or 503."""
        if self._pending >= self.settings.max_pending_requests:
            self.metrics.rejected.labels(reason="pending").inc()
            raise self._overloaded(f"{self._pending} requests are already being processed")
        self._pending += 1
        self.metrics.pending.set(self._pending)
        try:
            yield
        finally:
            self._pending -= 1
            self.metrics.pending.set(self._pending)

    def _overloaded(self, why: str) -> ApiError:
        return ApiError(503, "over_capacity", f"the server is at capacity ({why}); retry later",
                        headers={"Retry-After": str(self.settings.retry_after_s)})

    # -- audio -> embeddings -------------------------------------------------------------

    async def embed_uploads(self, uploads: dict[str, UploadFile]) -> dict[str, Clip]:
        """Embed every upload (keyed by form field) with one trip through the batcher."""
        waveforms = await asyncio.gather(*(self._read_waveform(field, up) for field, up in uploads.items()))
        windows_per_file = [self._windows(field, wave) for field, wave in zip(uploads, waveforms)]
        all_windows = [w for windows in windows_per_file for w in windows]
        try:
            embeddings = await self.batcher.embed(all_windows)
        except Overloaded as err:
            self.metrics.rejected.labels(reason="queue").inc()
            raise self._overloaded(str(err)) from None
        clips, start = {}, 0
        for (field, upload), wave, windows in zip(uploads.items(), waveforms, windows_per_file):
            pooled = self.model.pool(embeddings[start : start + len(windows)])
            start += len(windows)
            clips[field] = Clip(upload.filename, len(wave) / self.model.sample_rate, pooled)
        return clips

    async def _read_waveform(self, field: str, upload: UploadFile) -> np.ndarray:
        data = await upload.read()
        if not data:
            raise ApiError(422, "empty_audio", f"{field}: the uploaded file is empty (0 bytes)", fields=[field])
        try:
            # Decoding, resampling (and VAD when enabled) take CPU time: a worker thread
            # keeps the event loop free.
            waveform = await asyncio.to_thread(self._decode, field, data)
        except AudioError as err:
            raise _audio_api_error(field, err) from None
        duration = len(waveform) / self.model.sample_rate
        self._check_not_too_long(field, duration)
        if duration < self.min_audio_s:
            raise ApiError(422, "too_short", f"{field}: {duration:.2f} s of audio is less than the "
                           f"{self.min_audio_s:g} s the model needs", fields=[field])
        return waveform

    def _decode(self, field: str, data: bytes) -> np.ndarray:
        # A small compressed upload can hold hours of audio: read the duration from the
        # header first, so it is refused before it is decoded into memory.
        try:
            header = sf.info(io.BytesIO(data))
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
            header = None  # load_audio below raises the precise error
        if header is not None and header.samplerate > 0 and header.frames > 0:
            self._check_not_too_long(field, header.frames / header.samplerate)
        return self.model.prepare(data)  # ssps.audio.load_audio + the optional VAD trim

    def _check_not_too_long(self, field: str, duration: float) -> None:
        if duration > self.settings.max_audio_s:
            raise ApiError(413, "audio_too_long", f"{field}: {duration:.1f} s of audio is more than the "
                           f"{self.settings.max_audio_s:g} s this server accepts", fields=[field])

    def _windows(self, field: str, waveform: np.ndarray) -> list[np.ndarray]:
        try:
            return self.model.windows(waveform)
        except AudioError as err:
            raise _audio_api_error(field, err) from None

    # -- thresholds ----------------------------------------------------------------------

    def decide(self, score: float, threshold: float | None):
        try:
            return self.model.decide(score, threshold)
        except SSPSError as err:  # e.g. the model has no threshold and none was given
            raise ApiError(422, "threshold_required", str(err), fields=["threshold"]) from None

    # -- speaker store -------------------------------------------------------------------

    async def enroll(self, name: str, embeddings: np.ndarray) -> int:
        async with self._speakers_lock:
            try:
                self.speakers.add(name, embeddings)
            except EnrollmentError as err:
                raise ApiError(422, "invalid_enrollment", str(err), fields=["name"]) from None
            await self._save_speakers()
            return self.speakers.count(name)

    async def remove_speaker(self, name: str) -> None:
        async with self._speakers_lock:
            if name not in self.speakers:
                raise ApiError(404, "unknown_speaker", f"{name!r} is not enrolled")
            self.speakers.remove(name)
            await self._save_speakers()

    async def _save_speakers(self) -> None:
        path = self.settings.speaker_store
        if path is None:
            return
        await asyncio.to_thread(_save_atomically, self.speakers, Path(path))


def _audio_api_error(field: str, err: AudioError) -> ApiError:
    code = getattr(err, "code", "bad_audio")
    status = 415 if code in UNSUPPORTED_MEDIA_CODES else 422
    return ApiError(status, code, f"{field}: {err}", fields=[field])


def _open_speaker_store(path: str | None, model) -> Enrollment:
    """The store saved at ``path`` (checked against the model), or a new empty one."""
    if path is not None and Path(path).is_file():
        store = Enrollment.load(path)
        store.check_model(model.model_id, model.dim)  # raises: never mix models' embeddings
        log.info("loaded %d enrolled speakers from %s", len(store), path)
        return store
    return Enrollment(model.model_id, model.dim)


def _save_atomically(store: Enrollment, path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written store."""
    temporary = path.with_name(f".{path.name}.tmp.npz")
    store.save(temporary)
    os.replace(temporary, path)
