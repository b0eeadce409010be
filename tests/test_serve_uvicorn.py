"""`python -m serve` for real: uvicorn on 127.0.0.1, spoken to over HTTP; and its settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the server needs the [serve] extra")
import httpx  # noqa: E402

from serve import settings as settings_module  # noqa: E402
from serve.__main__ import build_parser, main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_answers_verify_over_http(random_model_dir, speech, tmp_path):
    port = free_loopback_port()
    env = {**os.environ, "SSPS_SERVE_MODEL": str(random_model_dir), "SSPS_SERVE_THREADS": "1",
           "SSPS_SERVE_API_KEY": "k", "PYTHONWARNINGS": "ignore"}
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--log-level", "warning"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in time"
            time.sleep(0.2)
        files = {"a": ("a1.wav", speech["a1"].read_bytes()), "b": ("b.wav", speech["b"].read_bytes())}
        response = httpx.post(f"{base}/verify", files=files, headers={"X-API-Key": "k"}, timeout=30)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"score", "threshold", "same_speaker", "probability", "model_id", "durations"}
        assert httpx.post(f"{base}/verify", files=files, timeout=30).status_code == 401
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    # A clean shutdown: uvicorn finishes its requests, then re-raises SIGTERM on itself.
    assert server.returncode in (0, -signal.SIGTERM), (tmp_path / "server.log").read_text()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_a_model_that_does_not_load_is_one_clear_error(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing"), "--port", str(free_loopback_port())]) == 2
    error = capsys.readouterr().err
    assert "ssps serve: error:" in error and "missing" in error and "Traceback" not in error
    assert main(["--max-batch-size", "0"]) == 2


def test_flags_win_over_environment_over_defaults():
    environ = {"SSPS_SERVE_MAX_BATCH_SIZE": "4", "SSPS_SERVE_PORT": "9000", "SSPS_SERVE_API_KEY": "key",
               "SSPS_SERVE_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider", "SSPS_SERVE_VAD": "yes"}
    args = build_parser().parse_args(["--port", "9100", "--cors-origins", "*"])
    settings = settings_module.from_args(args, environ)
    assert settings.port == 9100 and settings.max_batch_size == 4 and settings.api_key == "key"
    assert settings.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"] and settings.vad is True
    assert settings.cors_origins == ["*"] and settings.max_batch_wait_ms == 5.0
    assert "key" not in repr(settings)
    with pytest.raises(ValueError, match="SSPS_SERVE_MAX_BATCH_SIZE"):
        settings_module.from_env({"SSPS_SERVE_MAX_BATCH_SIZE": "many"})
    with pytest.raises(ValueError, match="max_batch_size"):
        settings_module.from_env({"SSPS_SERVE_MAX_BATCH_SIZE": "0"})


def test_every_setting_has_help_and_an_api_key_flag_does_not_exist():
    fields = {f.name for f in settings_module.fields(settings_module.Settings)}
    assert fields == set(settings_module.SETTINGS_HELP)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--api-key", "visible-in-ps"])


def test_docs_list_every_setting():
    docs = (REPO / "docs" / "serving.md").read_text()
    for name in settings_module.SETTINGS_HELP:
        assert f"`{settings_module.ENV_PREFIX}{name.upper()}`" in docs, name
