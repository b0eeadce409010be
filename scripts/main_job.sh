#!/usr/bin/env bash
# The main job: verify whether two recordings come from the same speaker.
#   bash scripts/main_job.sh [A.wav B.wav]     (default: the example recordings)
# The model is $SSPS_MODEL, else the default model bundled in models/ssps-ecapa-default.
set -euo pipefail
cd "$(dirname "$0")/.."
a="${1:-examples/jackson_1.wav}"
b="${2:-examples/jackson_2.wav}"
c="examples/george_1.wav"
ssps=.venv/bin/ssps

"$ssps" info
# verify exits 1 for "different speakers": that is an answer, not a failure.
"$ssps" verify "$a" "$b" || [ $? -eq 1 ]
if [ $# -eq 0 ]; then
    "$ssps" verify "$a" "$c" || [ $? -eq 1 ]
fi
