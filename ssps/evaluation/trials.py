"""Score trial lists with cached embeddings: cosine, AS-norm and S-norm, and their metrics.

    scored = score_trials(trials, root, embeddings, cohort)   # ScoredTrials
    scored.systems["cosine"], scored.systems["as-norm"], ...  # one score per trial
    write_scores(scored, path)                                # label enrol test score...

Trial files are VoxCeleb's ``label path1 path2`` (``ssps.metrics.read_trials``); paths are
relative to an audio root. The cohort for normalisation is read from a manifest CSV (its
``path`` column, relative to the CSV's folder or absolute, the format of
``ssps data manifest``).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssps.errors import ConfigError
from ssps.evaluation import normalization
from ssps.metrics import Trial

# System names: the raw cosine score and its two normalisations ("as-norm300" keeps the top 300).
COSINE = "cosine"
S_NORM = "s-norm"


def as_norm_name(top_n: int) -> str:
    return f"as-norm{top_n}"


@dataclass
class ScoredTrials:
    name: str  # the trial list's name (its file stem)
    trials: list[Trial]
    labels: np.ndarray  # [n] 1 target, 0 non-target
    systems: dict[str, np.ndarray] = field(default_factory=dict)  # system name -> [n] scores


def trial_paths(trials: list[Trial], root: Path) -> list[str]:
    """Every audio file the trials name, as paths under ``root``, each once."""
    return list(dict.fromkeys(str(root / name) for trial in trials for name in (trial.enrollment, trial.test)))


def score_trials(
    name: str,
    trials: list[Trial],
    root: Path,
    embeddings: dict[str, np.ndarray],
    cohort: np.ndarray | None = None,
    top_n: int = normalization.DEFAULT_TOP_N,
) -> ScoredTrials:
    """Cosine scores of ``trials`` and, given a ``cohort`` [m, d], AS-norm and S-norm scores.
    Trials with a file missing from ``embeddings`` (unreadable audio) are left out."""
    kept = [t for t in trials if str(root / t.enrollment) in embeddings and str(root / t.test) in embeddings]
    if not kept:
        raise ConfigError(f"{name}: no trial has both files embedded (is --root {root} right?)")
    files = trial_paths(kept, root)
    index = {path: i for i, path in enumerate(files)}
    matrix = np.stack([embeddings[path] for path in files]).astype(np.float64)
    enrol = np.array([index[str(root / t.enrollment)] for t in kept])
    test = np.array([index[str(root / t.test)] for t in kept])
    scored = ScoredTrials(name, kept, np.array([t.label for t in kept]))
    # Embeddings are L2-normalised: the cosine is the dot product.
    scored.systems[COSINE] = np.einsum("ij,ij->i", matrix[enrol], matrix[test])
    if cohort is not None:
        variants = {as_norm_name(top_n): top_n, S_NORM: None}
        for system, n in variants.items():
            stats = normalization.cohort_statistics(matrix, cohort, top_n=n)
            scored.systems[system] = normalization.normalize(
                scored.systems[COSINE], normalization.select(stats, enrol), normalization.select(stats, test)
            )
    return scored


def write_scores(scored: ScoredTrials, path: Path) -> Path:
    """One line per trial: ``label enrollment test`` then one score column per system."""
    names = list(scored.systems)
    lines = ["# label enrollment test " + " ".join(names)]
    for i, trial in enumerate(scored.trials):
        values = " ".join(f"{scored.systems[name][i]:.6f}" for name in names)
        lines.append(f"{trial.label} {trial.enrollment} {trial.test} {values}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_scores(path: Path) -> ScoredTrials:
    """Read a file written by ``write_scores`` (e.g. to plot several systems' DET curves)."""
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[0].startswith("# label enrollment test"):
        raise ConfigError(f"{path} is not a score file written by `ssps eval`")
    names = lines[0].split()[4:]
    rows = [line.split() for line in lines[1:] if line.strip()]
    trials = [Trial(int(row[0]), row[1], row[2]) for row in rows]
    values = np.array([[float(v) for v in row[3:]] for row in rows]).reshape(len(rows), len(names))
    name = Path(path).name.removesuffix(".scores.txt")
    return ScoredTrials(name, trials, np.array([t.label for t in trials]), {n: values[:, i] for i, n in enumerate(names)})


def read_manifest_paths(manifest: str | Path, max_files: int | None = None, seed: int = 0) -> list[str]:
    """The ``path`` column of a manifest CSV, resolved against the CSV's folder; at most
    ``max_files`` of them, drawn at random (seeded) so a large training manifest can serve."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ConfigError(f"cohort manifest {manifest} does not exist")
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        if "path" not in (reader.fieldnames or []):
            raise ConfigError(f"{manifest}: a manifest needs a 'path' column (columns: path,speaker,recording,duration)")
        rows = list(reader)
    paths = [str(manifest.parent / row["path"]) for row in rows]  # an absolute path stays absolute
    if max_files is not None and len(paths) > max_files:
        paths = sorted(random.Random(seed).sample(paths, max_files))
    return paths


def read_manifest_speakers(manifest: str | Path) -> dict[str, str]:
    """{path: speaker} of the labelled rows of a manifest (for plots by speaker)."""
    manifest = Path(manifest)
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {str(manifest.parent / row["path"]): row["speaker"] for row in rows if row.get("speaker")}
