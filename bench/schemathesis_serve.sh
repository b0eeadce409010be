#!/usr/bin/env bash
# Fuzz the REST service against its own OpenAPI schema with schemathesis, on loopback only.
#
#   bench/schemathesis_serve.sh MODEL_DIR [extra schemathesis options]
#
# Starts `python -m serve` on 127.0.0.1 (a free port, API key on), runs a bounded
# schemathesis session (examples per operation, a time budget) with every check, and stops
# the server. schemathesis is not a project dependency: install it where you like
# (`pip install schemathesis`) and point SCHEMATHESIS at it if it is not on PATH.
# PYTHON is the interpreter that has ssps[serve] (default: .venv/bin/python).
#
# positive_data_acceptance is left out: to OpenAPI an upload is any binary string, but
# random bytes are not audio, and the server must refuse them (415/422), not accept them.
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:?usage: bench/schemathesis_serve.sh MODEL_DIR [schemathesis options]}
shift
python=${PYTHON:-.venv/bin/python}
schemathesis=$(command -v "${SCHEMATHESIS:-schemathesis}")  # absolute: it runs from a temporary directory
api_key=schemathesis-key
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:${port}"
log=$(mktemp)
workdir=$(mktemp -d)  # schemathesis and hypothesis keep caches in the working directory

SSPS_SERVE_API_KEY=$api_key PYTHONWARNINGS=ignore "$python" -m serve --host 127.0.0.1 --port "$port" \
    --model "$model" --threads 2 --log-level warning >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$log" "$workdir"' EXIT

for _ in $(seq 1 600); do  # at most 120 s for the model to load and warm up
    if "$python" -c "import sys, httpx; sys.exit(httpx.get('${base}/ready', timeout=2).status_code != 200)" 2>/dev/null; then
        break
    fi
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "the server exited" >&2; exit 1; }
    sleep 0.2
done

status=0
(cd "$workdir" && "$schemathesis" run "${base}/openapi.json" \
    --header "X-API-Key: ${api_key}" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-examples 30 \
    --max-time 240 \
    --request-timeout 30 \
    --workers 1 \
    --seed 1 \
    --generation-database none \
    --no-color \
    "$@") || status=$?
if grep -q "Traceback" "$log"; then
    echo "the server logged a traceback:" >&2
    cat "$log" >&2
    exit 1
fi
exit $status
