"""Each plot function writes a non-empty PNG of the documented pixel size from small inputs."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from ssps.evaluation import plots  # noqa: E402

WIDTH, HEIGHT = (round(plots.FIGSIZE[0] * plots.DPI), round(plots.FIGSIZE[1] * plots.DPI))


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk that starts every PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def check_png(path: Path, panels: int = 1) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert png_size(path) == (panels * WIDTH, HEIGHT)


@pytest.fixture(scope="module")
def speakers_and_embeddings():
    """4 speakers x 6 embeddings around a speaker direction; a tighter second 'system'."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    speakers = np.repeat([f"spk{i}" for i in range(4)], 6)
    def system(spread):
        e = np.repeat(centres, 6, axis=0) + spread * rng.normal(size=(24, 16))
        return e / np.linalg.norm(e, axis=1, keepdims=True), list(speakers)
    return {"SSL": system(1.0), "SSPS": system(0.4)}


def trials(seed, shift):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(shift, 1, 50), rng.normal(0, 1, 200)]), np.repeat([1, 0], [50, 200])


def test_det_with_several_systems(tmp_path):
    path = plots.plot_det({"A": trials(0, 2.0), "B": trials(1, 3.0)}, tmp_path / "det.png")
    check_png(path)


def test_score_histograms(tmp_path):
    scores, labels = trials(2, 2.0)
    check_png(plots.plot_score_histograms(scores, labels, tmp_path / "hist.png", thresholds={"eer": 1.0}))


def test_tsne_one_panel_per_system(tmp_path, speakers_and_embeddings):
    check_png(plots.plot_tsne(speakers_and_embeddings, tmp_path / "tsne.png"), panels=2)


def test_intra_speaker_similarity(tmp_path, speakers_and_embeddings):
    check_png(plots.plot_intra_speaker_similarity(speakers_and_embeddings, tmp_path / "intra.png"))
    similarities = plots.same_speaker_similarities(*speakers_and_embeddings["SSPS"])
    assert len(similarities) == 4 * (6 * 5 // 2)  # every same-speaker pair once


def test_nmi_and_eer_over_epochs(tmp_path):
    epochs = [1, 2, 3, 4]
    nmi = {"SSL": (epochs, [0.80, 0.80, 0.81, 0.81], [0.79, 0.79, 0.80, 0.80]),
           "SSPS": (epochs, [0.80, 0.82, 0.85, 0.87], [0.79, 0.78, 0.79, 0.80])}
    check_png(plots.plot_nmi_over_epochs(nmi, tmp_path / "nmi.png"), panels=2)
    eer = {"SSL": (epochs, [9.0, 8.0, 7.5, 7.0]), "SSPS": (epochs, [9.0, 6.0, 4.0, 3.0])}
    check_png(plots.plot_eer_over_epochs(eer, tmp_path / "eer.png"))
