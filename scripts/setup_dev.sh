#!/usr/bin/env bash
# Create .venv with everything the recipe, the server and the tests need.
# torch 2.14.1 + torchaudio 2.11.0 is the pair that installs and loads together on these
# machines (see docs/training.md); a GPU user may install any matching pair first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet "torch==2.14.1" "torchaudio==2.11.0"
.venv/bin/pip install --quiet -e ".[train,serve,dev]"
