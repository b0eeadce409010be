"""ssps: speaker verification with ONNX Runtime (torch-free)."""

__version__ = "0.1.0"

from ssps.errors import AudioError, ConfigError, ModelError, SSPSError  # noqa: E402

__all__ = ["AudioError", "ConfigError", "ModelError", "SSPSError", "__version__"]
