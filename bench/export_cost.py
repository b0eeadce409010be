"""How long export takes and how large model directories are, per encoder configuration.

    python bench/export_cost.py [--out docs/export_cost.md]

Exports random-init encoders (the size and time do not depend on training) and prints a
Markdown table: export wall time (ONNX export + parity check), model.onnx and
model.safetensors sizes.
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from ssps.train.export import export_model

CONFIGS = {
    "ECAPA-TDNN C=512": {"name": "ecapa_tdnn", "channels": 512},
    "ECAPA-TDNN C=1024 (paper)": {"name": "ecapa_tdnn", "channels": 1024, "mfa_channels": 3072},
    "Fast ResNet-34": {"name": "fast_resnet34"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "",
        "| encoder | export + parity check (s) | model.onnx (MB) | model.safetensors (MB) |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, encoder in CONFIGS.items():
            started = time.perf_counter()
            out = export_model(None, Path(tmp) / label.replace(" ", "_"), train_config={"model": {"encoder": encoder}})
            seconds = time.perf_counter() - started
            onnx_mb = (out / "model.onnx").stat().st_size / 1e6
            weights_mb = (out / "model.safetensors").stat().st_size / 1e6
            rows.append(f"| {label} | {seconds:.1f} | {onnx_mb:.1f} | {weights_mb:.1f} |")
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
