"""The REST service through FastAPI's test client: endpoints, bad inputs, API key, store.

Uses the session's random-init model (tests/conftest.py): its scores mean nothing, so the
tests compare the server with the library (same numbers), not with the truth.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
from fastapi.testclient import TestClient  # noqa: E402

from serve import Settings, create_app  # noqa: E402

RATE = 16_000


def wav_bytes(audio: np.ndarray, rate: int = RATE, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.fixture
def make_client(model):
    """Open test clients on apps over the shared model; closes them at the end of the test."""
    clients = []

    def make(**settings) -> TestClient:
        client = TestClient(create_app(Settings(**settings), model=model), raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan: batcher started, warm-up scheduled
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def upload(path, name=None):
    return (name or path.name, path.read_bytes(), "audio/wav")


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body


# -- the endpoints ---------------------------------------------------------------------


def test_verify_gives_the_library_decision(client, model, speech):
    response = client.post("/verify", files={"a": upload(speech["a1"]), "b": upload(speech["b"])})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = model.verify(speech["a1"], speech["b"])
    assert body["score"] == pytest.approx(expected.score, abs=1e-4)
    assert body["threshold"] == expected.threshold
    assert body["same_speaker"] == expected.same_speaker
    assert body["probability"] == pytest.approx(expected.probability, abs=1e-4)
    assert body["model_id"] == model.model_id
    assert body["durations"]["a"] == pytest.approx(sf.info(speech["a1"]).duration, abs=1e-3)


def test_verify_threshold(client, speech):
    files = {"a": upload(speech["a1"]), "b": upload(speech["a2"])}
    assert client.post("/verify", files=files, data={"threshold": "0.99999"}).json()["threshold"] == 0.99999
    assert client.post("/verify", files=files).json()["threshold"] == 0.5  # the model's "eer" threshold
    for bad in ("nan", "inf", "2", "eer"):
        body = assert_error(client.post("/verify", files=files, data={"threshold": bad}), 422, "invalid_request")
        assert body["error"]["fields"] == ["threshold"]


def test_embed_several_files_equals_the_library(client, model, speech):
    files = [("files", upload(speech[name])) for name in ("a1", "b", "a_48k_stereo")]
    response = client.post("/embed", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dim"] == model.dim and body["model_id"] == model.model_id
    assert [e["filename"] for e in body["embeddings"]] == ["a1.wav", "b.wav", "a_48k_stereo.wav"]
    for item, name in zip(body["embeddings"], ("a1", "b", "a_48k_stereo")):
        assert len(item["embedding"]) == model.dim
        assert cosine(np.array(item["embedding"]), model.embed(speech[name])) >= 0.9999


def test_enroll_identify_list_forget_and_persist(make_client, speech, tmp_path):
    store = tmp_path / "speakers.npz"
    client = make_client(speaker_store=str(store))
    assert_error(client.post("/identify", files={"file": upload(speech["a2"])}), 409, "no_speakers")

    enrolled = client.post("/enroll", data={"name": "jackson"}, files=[("files", upload(speech["a1"]))])
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["total_files"] == 1 and enrolled.json()["speakers"] == 1
    client.post("/enroll", data={"name": "george"}, files=[("files", upload(speech["b"]))])
    assert client.get("/speakers").json() == {"speakers": ["george", "jackson"]}
    assert store.is_file()

    # A new server on the same store file knows the speakers.
    client = make_client(speaker_store=str(store))
    identified = client.post("/identify", files={"file": upload(speech["a2"])}, data={"top_k": "2"})
    assert identified.status_code == 200, identified.text
    body = identified.json()
    assert sorted(c["name"] for c in body["candidates"]) == ["george", "jackson"]
    assert body["candidates"][0]["score"] >= body["candidates"][1]["score"]
    assert body["best"] == (body["candidates"][0] if body["candidates"][0]["same_speaker"] else None)

    assert client.delete("/speakers/george").status_code == 204
    assert_error(client.delete("/speakers/george"), 404, "unknown_speaker")
    assert client.get("/speakers").json() == {"speakers": ["jackson"]}
    assert_error(client.post("/enroll", data={"name": "../etc"}, files=[("files", upload(speech["a1"]))]),
                 422, "invalid_request")


def test_probes_model_card_and_metrics(client, model, speech):
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/verify", files={"a": upload(speech["a1"]), "b": upload(speech["a2"])})
    assert client.get("/ready").json() == {"ready": True, "model_id": model.model_id}
    card = client.get("/model").json()
    assert card["model_id"] == model.model_id and card["thresholds"] == {"eer": 0.5}
    assert card["untrained"] is True and card["calibrated"] is True
    metrics = client.get("/metrics").text
    for name in ("ssps_requests_total", "ssps_request_duration_seconds_bucket", "ssps_batch_size_bucket",
                 "ssps_queue_depth", "ssps_pending_requests", "ssps_inference_duration_seconds"):
        assert name in metrics
    assert 'ssps_requests_total{endpoint="/verify",status="200"} 1.0' in metrics
    assert client.get("/openapi.json").json()["paths"]["/verify"]["post"]["responses"]["200"]


# -- every bad input -------------------------------------------------------------------


def test_missing_fields_are_422(client, speech):
    body = assert_error(client.post("/verify", files={"a": upload(speech["a1"])}), 422, "invalid_request")
    assert body["error"]["fields"] == ["b"]
    assert_error(client.post("/embed"), 422, "invalid_request")
    assert_error(client.post("/enroll", files=[("files", upload(speech["a1"]))]), 422, "invalid_request")


@pytest.mark.parametrize(
    "content, status, code",
    [
        (b"this is not audio" * 50, 415, "undecodable"),
        (b"", 422, "empty_audio"),
        (wav_bytes(np.zeros(RATE, dtype=np.float32)), 422, "silent"),
        (wav_bytes(np.full(RATE, np.nan, dtype=np.float32), subtype="FLOAT"), 422, "non_finite"),
        (wav_bytes(0.1 * np.random.default_rng(0).standard_normal(RATE // 5).astype(np.float32)), 422, "too_short"),
    ],
    ids=["undecodable", "empty", "silent", "nan", "too-short"],
)
def test_bad_audio(client, speech, content, status, code):
    response = client.post("/verify", files={"a": ("x.wav", content, "audio/wav"), "b": upload(speech["a1"])})
    body = assert_error(response, status, code)
    assert body["error"]["fields"] == ["a"]


def test_too_long_audio_is_413_before_it_is_decoded(make_client, speech):
    client = make_client(max_audio_s=2.0)
    assert_error(client.post("/verify", files={"a": upload(speech["a1"]), "b": upload(speech["a2"])}),
                 413, "audio_too_long")
    # Ten minutes of FLAC silence is a few kB: refused from its header, never decoded.
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(600 * RATE, dtype=np.int16), RATE, format="FLAC")
    assert len(buffer.getvalue()) < 500_000
    response = client.post("/verify", files={"a": ("long.flac", buffer.getvalue()), "b": upload(speech["a1"])})
    assert_error(response, 413, "audio_too_long")


def test_too_large_upload_is_413_with_and_without_content_length(make_client, speech):
    client = make_client(max_upload_mb=0.05)  # 51 kB: the 4 s test files are 128 kB
    assert_error(client.post("/verify", files={"a": upload(speech["a1"]), "b": upload(speech["a2"])}),
                 413, "upload_too_large")

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield b"--x\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.wav\"\r\n\r\n"
        for _ in range(100):
            yield b"\0" * 1024

    response = client.post("/verify", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "upload_too_large")


def test_too_many_files_is_422(make_client, speech):
    client = make_client(max_files=2)
    files = [("files", upload(speech["a1"]))] * 3
    assert_error(client.post("/embed", files=files), 422, "too_many_files")


def test_unknown_route_and_malformed_body(client):
    assert_error(client.get("/nope"), 404, "not_found")
    broken = client.post("/verify", content=b"--x\r\nnot a part--x--\r\n",
                         headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_error(broken, 400, "malformed_request")


def test_api_key(make_client, speech):
    client = make_client(api_key="s3cret")
    files = {"a": upload(speech["a1"]), "b": upload(speech["a2"])}
    assert_error(client.post("/verify", files=files), 401, "unauthorized")
    assert_error(client.post("/verify", files=files, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert client.post("/verify", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # probes stay open for orchestrators


def test_cors_only_when_configured(make_client):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in make_client().options("/verify", headers=preflight).headers
    allowed = make_client(cors_origins=["https://app.example"]).options("/verify", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


def test_audio_and_embeddings_never_reach_the_logs(client, speech, caplog):
    caplog.set_level(logging.DEBUG)
    response = client.post("/embed", files=[("files", upload(speech["a1"]))])
    client.post("/verify", files={"a": ("x.wav", b"RIFF-not-really-audio", "audio/wav"), "b": upload(speech["a1"])})
    first_value = f"{response.json()['embeddings'][0]['embedding'][0]:.6f}"[:8]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RIFF" not in logged and first_value not in logged
