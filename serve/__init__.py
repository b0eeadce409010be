"""The ssps REST service: a thin FastAPI layer over :mod:`ssps`, run by uvicorn.

    ssps serve --host 127.0.0.1 --port 8000      # or: python -m serve ...

Modules, in the order a request meets them: :mod:`serve.settings` (configuration),
:mod:`serve.middleware` (body limit, metrics), :mod:`serve.app` (routes),
:mod:`serve.service` (admission, audio -> embeddings, speaker store),
:mod:`serve.batching` (micro-batching), :mod:`serve.errors` (JSON errors),
:mod:`serve.schemas` (response bodies), :mod:`serve.metrics` (Prometheus).
"""

from serve.app import create_app
from serve.settings import Settings

__all__ = ["Settings", "create_app"]
