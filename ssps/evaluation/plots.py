"""The pictures a speaker model is judged by, as PNG files (needs matplotlib: ssps[train]).

Every function takes plain arrays, writes one PNG of ``FIGSIZE`` inches at ``DPI`` (so
640 x 480 pixels, or twice as wide for side-by-side panels) and returns its path:

- ``plot_det``: DET curves of several systems on one plot (false-reject vs false-accept
  rate on normal-deviate axes, where Gaussian scores give straight lines).
- ``plot_score_histograms``: target and non-target score distributions of one system.
- ``plot_tsne``: t-SNE of the embeddings of a few speakers, one panel per system (paper Fig. 6).
- ``plot_intra_speaker_similarity``: cosine similarity of same-speaker pairs, one
  distribution per system, medians marked (paper Fig. 5).
- ``plot_nmi_over_epochs``: NMI of clusters vs speakers and vs recordings, and their ratio,
  across epochs (paper Fig. 7).
- ``plot_eer_over_epochs``: validation EER across epochs (paper Fig. 8).

matplotlib and scikit-learn are imported inside the functions, so ``ssps eval`` without
``--plots`` never needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ssps.metrics import equal_error_rate, error_rates

FIGSIZE = (6.4, 4.8)
DPI = 100
# DET axes: error rates from 0.1 % to 50 %, as in NIST plots.
DET_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
DET_LIMITS = (0.0005, 0.5)
TSNE_SPEAKERS = 10  # the paper shows 10 speakers
EXACT_TSNE_POINTS = 1500


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)  # no bbox="tight": the pixel size stays FIGSIZE * DPI
    _pyplot().close(figure)
    return path


def _integer_epochs(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")


def _panels(count: int):
    """A figure of ``count`` side-by-side panels, each FIGSIZE."""
    figure, axes = _pyplot().subplots(1, count, figsize=(FIGSIZE[0] * count, FIGSIZE[1]), squeeze=False)
    return figure, list(axes[0])


def plot_det(systems: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "DET curve") -> Path:
    """``systems``: {name: (scores, labels)}. The legend gives each system's EER."""
    from scipy.special import ndtri  # the probit: inverse of the standard normal CDF

    figure, (axis,) = _panels(1)
    low, high = DET_LIMITS
    for name, (scores, labels) in systems.items():
        rates = error_rates(scores, labels)
        far = np.clip(rates.false_accept, low, high)
        frr = np.clip(rates.false_reject, low, high)
        eer, _ = equal_error_rate(scores, labels)
        axis.plot(ndtri(far), ndtri(frr), label=f"{name} (EER {100 * eer:.2f} %)")
    ticks = ndtri(DET_TICKS)
    labels_text = [f"{100 * t:g}" for t in DET_TICKS]
    axis.set_xticks(ticks, labels_text)
    axis.set_yticks(ticks, labels_text)
    axis.set_xlim(ndtri(low), ndtri(high))
    axis.set_ylim(ndtri(low), ndtri(high))
    axis.plot([ndtri(low), ndtri(high)], [ndtri(low), ndtri(high)], color="0.8", linestyle=":", linewidth=1)  # EER line
    axis.set_xlabel("false-accept rate (%)")
    axis.set_ylabel("false-reject rate (%)")
    axis.set_title(title)
    axis.grid(True, color="0.9")
    axis.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def plot_score_histograms(
    scores: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    title: str = "score distributions",
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Target and non-target score densities; ``thresholds`` {name: value} as vertical lines."""
    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    figure, (axis,) = _panels(1)
    bins = np.linspace(scores.min(), scores.max(), 60)
    axis.hist(scores[~labels], bins=bins, density=True, alpha=0.6, label=f"non-target ({(~labels).sum()})", color="tab:red")
    axis.hist(scores[labels], bins=bins, density=True, alpha=0.6, label=f"target ({labels.sum()})", color="tab:blue")
    for name, value in (thresholds or {}).items():
        axis.axvline(value, color="k", linestyle="--", linewidth=1)
        axis.annotate(name, (value, axis.get_ylim()[1] * 0.95), rotation=90, va="top", ha="right", fontsize="small")
    axis.set_xlabel("score")
    axis.set_ylabel("density")
    axis.set_title(title)
    axis.legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def plot_tsne(
    systems: Mapping[str, tuple[np.ndarray, Sequence[str]]],
    path: str | Path,
    max_speakers: int = TSNE_SPEAKERS,
    seed: int = 0,
) -> Path:
    """``systems``: {name: (embeddings [n, d], speaker of each row)}. The same speakers (the
    ``max_speakers`` with most rows in the first system) are shown, in the same colours."""
    from sklearn.manifold import TSNE

    first_speakers = np.asarray(next(iter(systems.values()))[1])
    names, counts = np.unique(first_speakers, return_counts=True)
    shown = sorted(names[np.argsort(-counts, kind="stable")[:max_speakers]])
    colours = {speaker: _pyplot().get_cmap("tab10" if len(shown) <= 10 else "tab20")(i) for i, speaker in enumerate(shown)}
    figure, axes = _panels(len(systems))
    for axis, (name, (embeddings, speakers)) in zip(axes, systems.items()):
        speakers = np.asarray(speakers)
        keep = np.isin(speakers, shown)
        points = np.asarray(embeddings)[keep]
        perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))  # TSNE needs perplexity < n
        # Exact t-SNE for a few speakers' points: Barnes-Hut's OpenMP threads crawl on a busy
        # machine (a minute for 24 points), and its approximation only pays off for thousands.
        method = "exact" if len(points) <= EXACT_TSNE_POINTS else "barnes_hut"
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", method=method, random_state=seed).fit_transform(points)
        for speaker in shown:
            rows = speakers[keep] == speaker
            axis.scatter(xy[rows, 0], xy[rows, 1], s=12, color=colours[speaker], label=speaker)
        axis.set_title(f"{name}: t-SNE of {len(shown)} speakers")
        axis.set_xticks([])
        axis.set_yticks([])
    axes[-1].legend(fontsize="x-small", loc="best", markerscale=1.5)
    figure.tight_layout()
    return _save(figure, path)


def same_speaker_similarities(embeddings: np.ndarray, speakers: Sequence[str]) -> np.ndarray:
    """Cosine similarity of every pair of rows from the same speaker (rows L2-normalised)."""
    embeddings, speakers = np.asarray(embeddings, dtype=np.float64), np.asarray(speakers)
    parts = []
    for speaker in np.unique(speakers):
        rows = embeddings[speakers == speaker]
        upper = np.triu_indices(len(rows), k=1)
        parts.append((rows @ rows.T)[upper])
    return np.concatenate(parts) if parts else np.zeros(0)


def plot_intra_speaker_similarity(
    systems: Mapping[str, tuple[np.ndarray, Sequence[str]]],
    path: str | Path,
    title: str = "intra-speaker cosine similarity",
) -> Path:
    """``systems``: {name: (embeddings, speakers)}: one box per system, as in paper Fig. 5."""
    figure, (axis,) = _panels(1)
    similarities = [same_speaker_similarities(e, s) for e, s in systems.values()]
    axis.violinplot(similarities, showextrema=False)
    axis.boxplot(similarities, widths=0.15, showfliers=False)
    for position, values in enumerate(similarities, start=1):
        axis.annotate(f"median {np.median(values):.4f}", (position, np.median(values)), xytext=(30, 0),
                      textcoords="offset points", va="center", fontsize="small")
    axis.set_xticks(range(1, len(systems) + 1), list(systems))
    axis.set_ylabel("cosine similarity of same-speaker pairs")
    axis.set_title(title)
    axis.grid(True, axis="y", color="0.9")
    figure.tight_layout()
    return _save(figure, path)


def plot_nmi_over_epochs(
    systems: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]],
    path: str | Path,
) -> Path:
    """``systems``: {name: (epochs, NMI vs speaker, NMI vs recording)}. Left: both NMIs;
    right: their ratio, which SSPS raises (paper Fig. 7)."""
    figure, (left, right) = _panels(2)
    for index, (name, (epochs, speaker, recording)) in enumerate(systems.items()):
        colour = f"C{index}"
        speaker, recording = np.asarray(speaker, dtype=float), np.asarray(recording, dtype=float)
        left.plot(epochs, speaker, color=colour, marker=".", label=f"{name}: speaker")
        left.plot(epochs, recording, color=colour, marker=".", linestyle="--", label=f"{name}: recording")
        right.plot(epochs, speaker / recording, color=colour, marker=".", label=name)
    left.set_title("NMI of clusters vs labels")
    left.set_ylabel("NMI")
    right.set_title("speaker / recording NMI ratio")
    right.set_ylabel("ratio")
    for axis in (left, right):
        _integer_epochs(axis)
        axis.grid(True, color="0.9")
        axis.legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def plot_eer_over_epochs(systems: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: str | Path,
                         title: str = "validation EER across epochs") -> Path:
    """``systems``: {name: (epochs, EER in %)}, as in paper Fig. 8."""
    figure, (axis,) = _panels(1)
    for name, (epochs, eer) in systems.items():
        axis.plot(epochs, eer, marker=".", label=name)
    _integer_epochs(axis)
    axis.set_ylabel("EER (%)")
    axis.set_title(title)
    axis.grid(True, color="0.9")
    axis.legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path)
