"""The FastAPI app: routes only. The work happens in :mod:`serve.service`.

    app = create_app()                        # settings from SSPS_SERVE_* variables
    app = create_app(settings, model=model)   # an already-loaded model (tests, embedding apps)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Path, Request, Response, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

import ssps
from serve import settings as settings_module
from serve.errors import ApiError, install_handlers, responses
from serve.metrics import Metrics
from serve.middleware import RequestGuard
from serve.schemas import (Candidate, Durations, EmbedResponse, Embedding, EnrollResponse, HealthResponse,
                           IdentifyResponse, ModelSummary, ReadyResponse, SpeakersResponse, VerifyResponse)
from serve.service import Service
from serve.settings import Settings

log = logging.getLogger("serve")

SPEAKER_NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,127}$"  # also safe in a URL path
THRESHOLD_HELP = "decision threshold on the score, in [-1, 1]; default: the model's default threshold (see GET /model)"
# A threshold form field: an optional number. (Typed `float` with a None default, not
# `float | None`, so the schema says "optional number" rather than "number or null".)
Threshold = Annotated[float, Form(ge=-1.0, le=1.0, allow_inf_nan=False, description=THRESHOLD_HELP)]


def create_app(settings: Settings | None = None, *, model=None) -> FastAPI:
    settings = settings or settings_module.from_env()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Load synchronously (in a thread) so a bad model ref fails the start at once;
        # warm up in the background so /health answers while /ready still says 503.
        loaded = model
        if loaded is None:
            loaded = await asyncio.to_thread(
                ssps.load_model, settings.model, providers=settings.providers, threads=settings.threads, precision=settings.precision,
                vad=settings.vad,
            )
        service = Service(loaded, settings, metrics)
        await service.start()
        app.state.service = service
        log.info("serving model %s on %s", loaded.model_id, ", ".join(loaded.providers))
        warm_up = asyncio.create_task(service.warm_up())
        try:
            yield
        finally:
            warm_up.cancel()
            await service.stop()

    app = FastAPI(
        title="ssps speaker verification",
        version=ssps.__version__,
        description="Speaker verification, embeddings and identification over HTTP. Errors are "
        '`{"error": {"code": ..., "message": ...}}` with a stable `code`.',
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_handlers(app)
    # The last middleware added is the outermost: CORS wraps the guard, so even a 413 from
    # the guard carries CORS headers and a browser can read it.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_upload_bytes, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])

    protected = [Depends(_require_api_key)]
    _add_probe_routes(app)
    _add_inference_routes(app, protected)
    _add_speaker_routes(app, protected)
    return app


# -- API key ----------------------------------------------------------------------------

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def _require_api_key(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = request.app.state.settings.api_key
    if not expected:
        return
    given = api_key or (bearer.credentials if bearer else "")
    # compare_digest: the time taken does not reveal how much of the key was right.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong API key: send it in X-API-Key or Authorization: Bearer",
                       headers={"WWW-Authenticate": "Bearer"})


def _service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(_service)]


# -- probes and model info --------------------------------------------------------------

def _add_probe_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=HealthResponse, tags=["probes"])
    async def health() -> HealthResponse:
        """The process is alive and answering."""
        return HealthResponse()

    @app.get("/ready", response_model=ReadyResponse, responses=responses(503), tags=["probes"])
    async def ready(service: ServiceDep) -> ReadyResponse:
        """The model is loaded and has embedded a warm-up batch."""
        if not service.ready:
            raise ApiError(503, "not_ready", "the model is still warming up", headers={"Retry-After": "1"})
        return ReadyResponse(ready=True, model_id=service.model.model_id)

    @app.get("/model", response_model=ModelSummary, responses=responses(401), tags=["probes"],
             dependencies=[Depends(_require_api_key)])
    async def model_summary(service: ServiceDep) -> ModelSummary:
        """A summary of the model card: what the model is, its limits and thresholds."""
        model, config = service.model, service.model.config
        return ModelSummary(
            model_id=model.model_id, name=config.name, sample_rate=config.sample_rate,
            embedding_dim=config.embedding_dim, min_duration=config.min_duration,
            max_duration=config.max_duration, window_hop=config.window_hop,
            thresholds={name: t.value for name, t in config.thresholds.items()},
            default_threshold=config.default_threshold, calibrated=config.calibration is not None,
            untrained=config.untrained, providers=list(model.providers), precision=model.precision,
        )

    @app.get("/metrics", tags=["probes"], dependencies=[Depends(_require_api_key)],
             response_class=Response, responses={200: {"content": {"text/plain": {}}}, 401: {"model": None}})
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics: request counts and latency, batch sizes, queue depth."""
        metrics: Metrics = request.app.state.metrics
        return Response(metrics.render(), media_type=metrics.content_type)


# -- verification and embeddings --------------------------------------------------------

AUDIO_ERRORS = responses(400, 401, 413, 415, 422, 503)  # 400: a body that is not valid multipart


def _add_inference_routes(app: FastAPI, protected: list) -> None:
    @app.post("/verify", response_model=VerifyResponse, responses=AUDIO_ERRORS, dependencies=protected,
              tags=["verification"])
    async def verify(
        service: ServiceDep,
        a: Annotated[UploadFile, File(description="first recording (WAV, FLAC, OGG, MP3)")],
        b: Annotated[UploadFile, File(description="second recording")],
        threshold: Threshold = None,
    ) -> VerifyResponse:
        """Are the two recordings the same speaker?"""
        async with service.admit():
            clips = await service.embed_uploads({"a": a, "b": b})
        score = service.model.score(clips["a"].embedding, clips["b"].embedding)
        result = service.decide(score, threshold)
        return VerifyResponse(
            score=result.score, threshold=result.threshold, same_speaker=result.same_speaker,
            probability=result.probability, model_id=service.model.model_id,
            durations=Durations(a=clips["a"].duration, b=clips["b"].duration),
        )

    @app.post("/embed", response_model=EmbedResponse, responses=AUDIO_ERRORS, dependencies=protected,
              tags=["verification"])
    async def embed(
        service: ServiceDep,
        files: Annotated[list[UploadFile], File(min_length=1, description="one or more recordings (repeat the field)")],
    ) -> EmbedResponse:
        """Speaker embeddings of one or more recordings, in upload order."""
        _check_file_count(service, files)
        async with service.admit():
            clips = await service.embed_uploads({f"files[{i}]": f for i, f in enumerate(files)})
        return EmbedResponse(
            model_id=service.model.model_id, dim=service.model.dim,
            embeddings=[Embedding(filename=c.filename, duration=c.duration, embedding=c.embedding.tolist())
                        for c in clips.values()],
        )


def _check_file_count(service: Service, files: list[UploadFile]) -> None:
    if len(files) > service.settings.max_files:
        raise ApiError(422, "too_many_files", f"{len(files)} files in one request; at most "
                       f"{service.settings.max_files} are accepted", fields=["files"])


# -- enrolment and identification -------------------------------------------------------

def _add_speaker_routes(app: FastAPI, protected: list) -> None:
    @app.post("/enroll", response_model=EnrollResponse, responses=AUDIO_ERRORS, dependencies=protected,
              tags=["identification"])
    async def enroll(
        service: ServiceDep,
        name: Annotated[str, Form(pattern=SPEAKER_NAME, description="speaker name (letters, digits, space _ . @ -)")],
        files: Annotated[list[UploadFile], File(min_length=1, description="one or more recordings of this speaker")],
    ) -> EnrollResponse:
        """Add recordings to a speaker's voiceprint (created on first use)."""
        _check_file_count(service, files)
        async with service.admit():
            clips = await service.embed_uploads({f"files[{i}]": f for i, f in enumerate(files)})
        total = await service.enroll(name, [c.embedding for c in clips.values()])
        return EnrollResponse(name=name, files=len(files), total_files=total, speakers=len(service.speakers),
                              model_id=service.model.model_id)

    @app.post("/identify", response_model=IdentifyResponse, responses={**AUDIO_ERRORS, **responses(409)},
              dependencies=protected,
              tags=["identification"])
    async def identify(
        service: ServiceDep,
        file: Annotated[UploadFile, File(description="recording of an unknown speaker")],
        top_k: Annotated[int, Form(ge=1, le=100, description="how many candidates to return")] = 5,
        threshold: Threshold = None,
    ) -> IdentifyResponse:
        """Which enrolled speaker is this? Candidates by decreasing score."""
        if len(service.speakers) == 0:
            raise ApiError(409, "no_speakers", "no speaker is enrolled yet: POST /enroll first")
        async with service.admit():
            clip = (await service.embed_uploads({"file": file}))["file"]
        candidates = []
        for match in service.speakers.rank(clip.embedding, top_k=top_k):
            decision = service.decide(match.score, threshold)
            candidates.append(Candidate(name=match.name, score=match.score, same_speaker=decision.same_speaker))
        applied = service.decide(candidates[0].score, threshold).threshold
        best = candidates[0] if candidates[0].same_speaker else None
        return IdentifyResponse(model_id=service.model.model_id, threshold=applied, duration=clip.duration,
                                best=best, candidates=candidates)

    @app.get("/speakers", response_model=SpeakersResponse, responses=responses(401), dependencies=protected,
             tags=["identification"])
    async def list_speakers(service: ServiceDep) -> SpeakersResponse:
        """Names of the enrolled speakers."""
        return SpeakersResponse(speakers=sorted(service.speakers.names))

    @app.delete("/speakers/{name}", status_code=204, responses=responses(401, 404), dependencies=protected,
                tags=["identification"])
    async def delete_speaker(service: ServiceDep, name: Annotated[str, Path(pattern=SPEAKER_NAME)]) -> Response:
        """Forget an enrolled speaker."""
        await service.remove_speaker(name)
        return Response(status_code=204)
