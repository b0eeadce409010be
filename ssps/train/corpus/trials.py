"""Verification trial lists in the VoxCeleb format: `label path1 path2` per line.

label 1 = same speaker (target), 0 = different speakers (non-target); paths are relative
to the wav root. Every utterance is the first side of a few target and non-target
trials, so all speakers weigh the same. Target pairs come from DIFFERENT recordings
whenever the speaker has more than one, because a same-recording pair can be matched by
its channel alone and says little about the speaker.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .render import UtteranceRow


def make_trials(
    rows: list[UtteranceRow],
    rng: np.random.Generator,
    targets_per_utterance: int = 2,
    nontargets_per_utterance: int = 2,
    cross_recording_only: bool = True,
) -> list[tuple[int, str, str]]:
    """Sampled (label, path1, path2) trials, each unordered pair at most once.

    With `cross_recording_only=False`, speakers who have a single recording get
    same-recording targets (for sources that offer nothing else, like uqm-voice).
    """
    rows = sorted(rows, key=lambda row: row.path)
    by_speaker: dict[str, list[UtteranceRow]] = defaultdict(list)
    for row in rows:
        by_speaker[row.speaker].append(row)
    if len(by_speaker) < 2:
        return []

    trials, seen = [], set()

    def add(label: int, a: UtteranceRow, b: UtteranceRow) -> None:
        pair = (min(a.path, b.path), max(a.path, b.path))
        if pair not in seen:
            seen.add(pair)
            trials.append((label, a.path, b.path))

    for row in rows:
        same_speaker = [r for r in by_speaker[row.speaker] if r.path != row.path]
        other_recording = [r for r in same_speaker if r.recording != row.recording]
        partners = (
            other_recording if other_recording or cross_recording_only else same_speaker
        )
        for partner in _sample(rng, partners, targets_per_utterance):
            add(1, row, partner)
        others = [r for r in rows if r.speaker != row.speaker]
        for partner in _sample(rng, others, nontargets_per_utterance):
            add(0, row, partner)
    return trials


def _sample(rng: np.random.Generator, items: list, count: int) -> list:
    if not items:
        return []
    picked = rng.choice(len(items), size=min(count, len(items)), replace=False)
    return [items[i] for i in picked]


def write_trials(path: Path, trials: list[tuple[int, str, str]]) -> None:
    path.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials))


def read_trials(path: Path) -> list[tuple[int, str, str]]:
    trials = []
    for line in path.read_text().splitlines():
        label, a, b = line.split()
        trials.append((int(label), a, b))
    return trials
