"""Response bodies of every endpoint (they are the OpenAPI schema at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Durations(BaseModel):
    a: float = Field(description="seconds of audio in file a")
    b: float = Field(description="seconds of audio in file b")


class VerifyResponse(BaseModel):
    score: float = Field(description="cosine similarity of the two embeddings, in [-1, 1]")
    threshold: float = Field(description="the decision threshold that was applied")
    same_speaker: bool = Field(description="score >= threshold")
    probability: float | None = Field(
        description="calibrated probability of the same speaker; null when the model has no calibration"
    )
    model_id: str
    durations: Durations


class Embedding(BaseModel):
    filename: str | None
    duration: float = Field(description="seconds of audio")
    embedding: list[float] = Field(description="L2-normalised speaker embedding")


class EmbedResponse(BaseModel):
    model_id: str
    dim: int
    embeddings: list[Embedding] = Field(description="one per uploaded file, in upload order")


class EnrollResponse(BaseModel):
    name: str
    files: int = Field(description="files enrolled by this request")
    total_files: int = Field(description="files enrolled for this speaker so far")
    speakers: int = Field(description="speakers in the store")
    model_id: str


class Candidate(BaseModel):
    name: str
    score: float
    same_speaker: bool


class IdentifyResponse(BaseModel):
    model_id: str
    threshold: float
    duration: float
    best: Candidate | None = Field(description="the top candidate if it passes the threshold, else null")
    candidates: list[Candidate] = Field(description="enrolled speakers by decreasing score (at most top_k)")


class SpeakersResponse(BaseModel):
    speakers: list[str]


class HealthResponse(BaseModel):
    status: str = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    model_id: str


class ModelSummary(BaseModel):
    model_id: str
    name: str
    sample_rate: int
    embedding_dim: int
    min_duration: float
    max_duration: float = Field(description="window length: longer audio is embedded in windows and averaged")
    window_hop: float
    thresholds: dict[str, float]
    default_threshold: str
    calibrated: bool
    untrained: bool = Field(description="true for random-init test models: their scores mean nothing")
    providers: list[str]
    precision: str = Field(description="the graph that runs: fp32 (model.onnx) or int8 (model.int8.onnx)")
