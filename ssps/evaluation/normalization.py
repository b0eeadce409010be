"""Score normalisation with a cohort of impostor embeddings: S-norm and AS-norm.

A raw cosine score means different things for different speakers: some voices sit close
to many others. Normalisation measures how each side of a trial scores against a cohort
(embeddings of speakers assumed absent from the trials) and standardises the trial score
against both sides' impostor statistics:

    s_norm = ((s - mean_e) / std_e + (s - mean_t) / std_t) / 2

where ``mean_e, std_e`` are the mean and (population) standard deviation of the
enrolment embedding's cosine scores against the cohort, and likewise for the test side.

- S-norm (symmetric normalisation) uses the whole cohort.
- AS-norm (adaptive S-norm; Matejka et al., 2017) uses only the ``top_n`` cohort scores of
  each side, the impostors most similar to it (N = 300 by default, as is common).

Statistics are computed once per file, not per trial: ``cohort_statistics`` then
``normalize``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TOP_N = 300
# Rows of embeddings scored against the cohort at once: bounds the [rows, cohort] matrix.
ROWS_PER_BLOCK = 1024


@dataclass(frozen=True)
class CohortStatistics:
    mean: np.ndarray  # [n] mean cosine score of each embedding against its cohort scores
    std: np.ndarray  # [n] their standard deviation


def cohort_statistics(embeddings: np.ndarray, cohort: np.ndarray, top_n: int | None = DEFAULT_TOP_N) -> CohortStatistics:
    """Impostor statistics of each row of ``embeddings`` [n, d] against ``cohort`` [m, d]
    (both L2-normalised). ``top_n=None`` (or >= m) uses the whole cohort: S-norm."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    cohort = np.asarray(cohort, dtype=np.float64)
    if cohort.ndim != 2 or len(cohort) < 2:
        raise ValueError(f"the cohort needs at least 2 embeddings, got shape {cohort.shape}")
    keep = len(cohort) if top_n is None else min(int(top_n), len(cohort))
    means, stds = [], []
    for start in range(0, len(embeddings), ROWS_PER_BLOCK):
        scores = embeddings[start : start + ROWS_PER_BLOCK] @ cohort.T
        # np.partition puts the `keep` largest scores of each row in its last `keep` columns.
        top = np.partition(scores, len(cohort) - keep, axis=1)[:, len(cohort) - keep :]
        means.append(top.mean(axis=1))
        stds.append(top.std(axis=1))
    return CohortStatistics(np.concatenate(means), np.concatenate(stds))


def normalize(
    scores: np.ndarray,
    enrollment: CohortStatistics,
    test: CohortStatistics,
) -> np.ndarray:
    """The normalised score of each trial; ``enrollment`` and ``test`` hold the statistics
    of each trial's two sides (one entry per trial, in the same order as ``scores``)."""
    scores = np.asarray(scores, dtype=np.float64)
    tiny = np.finfo(np.float64).tiny  # a constant cohort row has std 0: avoid dividing by it
    return 0.5 * (
        (scores - enrollment.mean) / np.maximum(enrollment.std, tiny)
        + (scores - test.mean) / np.maximum(test.std, tiny)
    )


def select(statistics: CohortStatistics, index: np.ndarray) -> CohortStatistics:
    """The statistics of rows ``index`` (e.g. per-file statistics gathered per trial)."""
    return CohortStatistics(statistics.mean[index], statistics.std[index])
