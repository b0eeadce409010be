"""The comparison table of training runs, in Markdown (the layout of the paper's Table III).

    runs = [read_run(path) for path in run_dirs]
    print(markdown_table(runs))

Per run it reads what the trainer wrote (``ssps.train.trainer``):

- ``train_config.yaml``: the method and the positive sampling (SSL same-utterance,
  supervised, or SSPS with its K and M);
- ``metrics.json``: EER and minDCF (P_target 0.01) per trial list evaluated at the end;
- ``eval/<list>.json``: results of ``ssps eval --model RUN_DIR`` on more lists (these win
  over metrics.json for the same list: they are the same weights, scored the same way);
- ``logs/metrics.csv``: per-epoch values. The table shows the last epoch's pseudo-positive
  speaker and recording accuracies; the figures use the per-epoch NMI and validation EER.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ssps.errors import ConfigError

EVAL_DIR = "eval"  # RUN_DIR/eval: what `ssps eval --model RUN_DIR` writes


@dataclass
class RunSummary:
    name: str
    path: Path
    method: str
    positive_sampling: str
    results: dict[str, dict[str, float]] = field(default_factory=dict)  # list -> {eer, min_dcf}
    epoch_values: dict[str, dict[int, float]] = field(default_factory=dict)  # name -> {epoch: value}

    def last(self, name: str) -> float | None:
        """The value of ``name`` at the last epoch that logged it."""
        values = self.epoch_values.get(name)
        return values[max(values)] if values else None

    def curve(self, name: str) -> tuple[list[int], list[float]]:
        values = self.epoch_values.get(name, {})
        epochs = sorted(values)
        return epochs, [values[e] for e in epochs]


def read_run(run_dir: str | Path) -> RunSummary:
    run_dir = Path(run_dir)
    config_path = run_dir / "train_config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a training run directory (no train_config.yaml)")
    config = yaml.safe_load(config_path.read_text()) or {}
    summary = RunSummary(
        name=run_dir.resolve().name,
        path=run_dir,
        method=config.get("method", {}).get("name", "?"),
        positive_sampling=positive_sampling_label(config),
    )
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        for name, result in json.loads(metrics_path.read_text()).get("evaluation", {}).items():
            summary.results[name] = {"eer": result["eer"], "min_dcf": result["min_dcf"]}
    for path in sorted((run_dir / EVAL_DIR).glob("*.json")):
        cosine = json.loads(path.read_text())["systems"]["cosine"]
        summary.results[path.stem] = {"eer": cosine["eer"], "min_dcf": cosine["min_dcf_0.01"]}
    log_path = run_dir / "logs" / "metrics.csv"
    if log_path.is_file():
        summary.epoch_values = read_epoch_values(log_path)
    return summary


def positive_sampling_label(config: dict) -> str:
    """"SSL", "Supervised", or "SSPS-Clustering (K=25000, M=1)" and the like."""
    ssps = config.get("ssps", {})
    if ssps.get("enabled"):
        sampling = ssps.get("sampling", "clustering")
        if sampling == "nn":
            return f"SSPS-NN (M={ssps.get('window')})"
        kind = "SSPS-Clustering" + (" (C)" if sampling == "centroid" else "")
        return f"{kind} (K={ssps.get('num_clusters')}, M={ssps.get('window')})"
    if config.get("data", {}).get("positive") == "supervised":
        return "Supervised"
    return "SSL"


def read_epoch_values(log_path: Path) -> dict[str, dict[int, float]]:
    """{name: {epoch: value}} of the ``epoch`` rows of ``logs/metrics.csv``."""
    values: dict[str, dict[int, float]] = defaultdict(dict)
    with log_path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "epoch":
                values[row["name"]][int(row["epoch"])] = float(row["value"])
    return dict(values)


def markdown_table(runs: list[RunSummary]) -> str:
    """Method | positive sampling | EER and minDCF per trial list | pseudo-positive accuracies."""
    lists = list(dict.fromkeys(name for run in runs for name in run.results))
    header = ["Run", "Method", "Positive sampling"]
    for name in lists:
        header += [f"{name} EER (%)", f"{name} minDCF0.01"]
    header += ["Pseudo-pos. speaker acc. (%)", "Pseudo-pos. recording acc. (%)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.name, run.method, run.positive_sampling]
        for name in lists:
            result = run.results.get(name)
            cells += [_number(result and result["eer"], 2), _number(result and result["min_dcf"], 4)]
        for accuracy in ("ssps/speaker_accuracy", "ssps/recording_accuracy"):
            value = run.last(accuracy)
            cells.append(_number(None if value is None else 100 * value, 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
