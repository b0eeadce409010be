#!/usr/bin/env bash
# The three arms of the corpus experiment, one after the other (each resumes if interrupted):
#   bash experiments/run_arms.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for arm in ssps supervised simclr; do
    .venv/bin/python -m ssps.train --config "experiments/arm_${arm}.yaml"
done
