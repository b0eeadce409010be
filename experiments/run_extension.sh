#!/usr/bin/env bash
# One more epoch for the SSPS and SSL arms (steps 608-753), to see whether SSPS only needs
# longer than one epoch after the switch (at step 607 SimCLR led on synth_dev). Both branch
# from their arm's last checkpoint into a new run directory, so the 607-step runs stay as
# reported. Resumable: run again after an interruption.
#   bash experiments/run_extension.sh
set -euo pipefail
cd "$(dirname "$0")/.."
train() { .venv/bin/python -m ssps.train --config "$@"; }
end=753   # 607 + 146, the same number of steps each arm had after the shared epoch

train experiments/arm_ssps.yaml run_dir=runs/arm_ssps_e5 train.init_from=runs/arm_ssps train.epochs=5 train.max_steps=$end
train experiments/arm_simclr.yaml run_dir=runs/arm_simclr_e5 train.init_from=runs/arm_simclr train.epochs=5 train.max_steps=$end
