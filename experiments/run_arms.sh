#!/usr/bin/env bash
# The three arms of the corpus experiment, from stage A (runs/stage_a_simclr, 313 steps):
#   bash experiments/run_arms.sh
# 1. Shared steps 314-461: one epoch of SimCLR (147 steps) that also fills the SSPS queues
#    (filling never changes training: tests/test_trainer.py), plus the first step of the
#    next epoch, which already uses SSPS (the stop was set at 461 while an epoch is 147
#    steps, not 148; kept so that this script reproduces the runs we report). It runs as the
#    start of arm_ssps and is saved as runs/arm_shared (weights, optimiser, filled queues).
# 2. Steps 462-607 (146 steps) three ways, only the positives differ: SSPS-Clustering
#    (arm_ssps continues), SimCLR (arm_simclr) and supervised positives (arm_supervised),
#    both branched from runs/arm_shared with train.max_steps 607.
# Every step is resumable: run the script again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
train() { .venv/bin/python -m ssps.train --config "$@"; }
shared_end=461

if [ ! -f runs/arm_shared/checkpoints/last.pt ]; then
    train experiments/arm_ssps.yaml --max-steps "$shared_end"
    mkdir -p runs/arm_shared/checkpoints
    cp runs/arm_ssps/train_config.yaml runs/arm_ssps/encoder.safetensors runs/arm_ssps/metrics.json runs/arm_shared/
    cp runs/arm_ssps/checkpoints/last.pt runs/arm_shared/checkpoints/last.pt
fi
train experiments/arm_ssps.yaml
train experiments/arm_supervised.yaml
train experiments/arm_simclr.yaml
