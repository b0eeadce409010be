"""``python -m ssps.train --config CONFIG.yaml [key.sub=value ...]`` (also under torchrun).

    python -m ssps.train --config ssps/train/recipes/cpu_small_simclr_ssps.yaml
    python -m ssps.train --config recipe.yaml train.epochs=3 run_dir=runs/try --max-steps 50
    torchrun --nproc_per_node 2 -m ssps.train --config recipe.yaml

A recipe shipped with the package can be named without its path: ``--config voxceleb2_simclr_ecapa``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

from ssps.errors import SSPSError
from ssps.train import distributed
from ssps.train.config import load_config


def recipe_path(name: str) -> Path:
    """A path as given, or the packaged recipe of that name."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = resources.files("ssps.train") / "recipes" / f"{path.stem}.yaml"
    return Path(str(packaged)) if packaged.is_file() else path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssps.train", description="Train a speaker encoder (SimCLR/MoCo + SSPS).")
    parser.add_argument("--config", required=True, help="YAML recipe (a path, or the name of a packaged recipe)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.epochs=3")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in total (= train.max_steps)")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes (= train.max_minutes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    try:
        config = load_config(recipe_path(args.config), overrides)
        from ssps.train.trainer import train  # after the config is known to be valid

        run_dir = train(config)
        if distributed.is_main():
            print(f"run directory: {run_dir}")
    except SSPSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
