#!/usr/bin/env bash
# The main job: verify whether two recordings come from the same speaker.
#   bash scripts/main_job.sh [A.wav B.wav]     (default: the example recordings)
# The model is $SSPS_MODEL, else the default model bundled in models/. While no trained
# default model is bundled yet (see models/README.md), a random-init model is exported to
# .cache/untrained-model so the pipeline still runs end to end; its scores mean nothing and
# ssps says so with an UntrainedModelWarning.
set -euo pipefail
threshold=()
cd "$(dirname "$0")/.."
a="${1:-examples/jackson_1.wav}"
b="${2:-examples/jackson_2.wav}"
c="examples/george_1.wav"
ssps=.venv/bin/ssps

if [ -z "${SSPS_MODEL:-}" ] && [ ! -f models/ssps-ecapa-default/config.json ]; then
    echo "No trained default model is bundled yet: exporting a random-init ECAPA-TDNN (pipeline demo only)."
    if [ ! -f .cache/untrained-model/config.json ]; then
        mkdir -p .cache
        printf 'model:\n  encoder: {name: ecapa_tdnn, channels: 512}\n' > .cache/untrained.yaml
        "$ssps" export --untrained --config .cache/untrained.yaml -o .cache/untrained-model --overwrite
    fi
    export SSPS_MODEL=.cache/untrained-model
    threshold=(--threshold 0.5)  # an untrained model carries no measured threshold
fi

"$ssps" info
# verify exits 1 for "different speakers": that is an answer, not a failure.
"$ssps" verify "$a" "$b" "${threshold[@]}" || [ $? -eq 1 ]
if [ $# -eq 0 ]; then
    "$ssps" verify "$a" "$c" "${threshold[@]}" || [ $? -eq 1 ]
fi
