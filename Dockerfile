# syntax=docker/dockerfile:1
# GPU serving image: `ssps serve` on ONNX Runtime's CUDA execution provider.
#
#   docker build -t ssps-serve .
#   docker run --gpus all -p 8000:8000 ssps-serve
#   docker run --gpus all -p 8000:8000 -e SSPS_SERVE_API_KEY=... \
#       -e SSPS_SERVE_SPEAKER_STORE=/data/speakers.npz -v ssps-data:/data ssps-serve
#
# Configuration: SSPS_SERVE_* environment variables (docs/serving.md). Without a GPU the
# same image still runs: ONNX Runtime falls back to the CPU provider.

# --- stage 1: build the ssps wheel (pure Python; models/ is bundled into it) ----------
FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ssps ./ssps
COPY serve ./serve
COPY models ./models
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- stage 2: CUDA 12 + cuDNN 9 runtime, the pair onnxruntime-gpu 1.19+ is built for ----
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Ubuntu 24.04's Python 3.12 (ssps needs >= 3.10). Versions float with the base image's
# package lists; the base image tag above is what pins them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# onnxruntime (CPU, a dependency of ssps) and onnxruntime-gpu provide the same Python
# module and must never be installed together: install ssps[serve], then swap the CPU
# build for the GPU build of the same version.
COPY --from=wheel /wheels /wheels
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python3 -m venv /opt/venv \
    && wheel="$(ls /wheels/ssps-*.whl)" \
    && /opt/venv/bin/pip install "${wheel}[serve]" \
    && ort_version="$(/opt/venv/bin/pip show onnxruntime | sed -n 's/^Version: //p')" \
    && /opt/venv/bin/pip uninstall -y onnxruntime \
    && /opt/venv/bin/pip install "onnxruntime-gpu==${ort_version}" \
    && /opt/venv/bin/python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers()" \
    && rm -rf /wheels
ENV PATH="/opt/venv/bin:${PATH}"

# Run as an unprivileged user; its home holds the Hugging Face cache (hf:// models).
RUN groupadd --system --gid 10001 ssps \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/ssps ssps \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
WORKDIR /home/ssps
ENV HF_HOME=/home/ssps/.cache/huggingface \
    SSPS_SERVE_HOST=0.0.0.0 \
    SSPS_SERVE_PORT=8000

EXPOSE 8000
# /health answers as soon as the server listens; the model loads before it listens.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SSPS_SERVE_PORT', '8000'), timeout=4)"]

CMD ["ssps", "serve", "--host", "0.0.0.0"]
