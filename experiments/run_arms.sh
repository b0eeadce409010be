#!/usr/bin/env bash
# The three arms of the corpus experiment, from stage A (runs/stage_a_simclr):
#   bash experiments/run_arms.sh
# 1. One shared epoch of SimCLR that also fills the SSPS queues (filling never changes
#    training: tests/test_trainer.py), run as the first epoch of arm_ssps and saved as
#    runs/arm_shared (its weights, optimiser and filled queues).
# 2. The last epoch (148 steps) three ways, only the positives differ: SSPS-Clustering
#    (arm_ssps continues), SimCLR (arm_simclr) and supervised positives (arm_supervised),
#    both branched from runs/arm_shared.
# Every step is resumable: run the script again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
train() { .venv/bin/python -m ssps.train --config "$@"; }
shared_end=461  # stage A's 313 steps + one epoch of 148

if [ ! -f runs/arm_shared/checkpoints/last.pt ]; then
    train experiments/arm_ssps.yaml --max-steps "$shared_end"
    mkdir -p runs/arm_shared/checkpoints
    cp runs/arm_ssps/train_config.yaml runs/arm_ssps/encoder.safetensors runs/arm_ssps/metrics.json runs/arm_shared/
    cp runs/arm_ssps/checkpoints/last.pt runs/arm_shared/checkpoints/last.pt
fi
train experiments/arm_ssps.yaml
train experiments/arm_supervised.yaml
train experiments/arm_simclr.yaml
