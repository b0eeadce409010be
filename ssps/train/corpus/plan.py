"""Every random choice of the synthetic corpus, made up front from the seed.

The plan says which people are in which split, and for every recording: the voice, the
channel, and for every utterance its seed, speaking rate and pitch. Rendering a
recording from its plan is then a pure function, so the corpus does not depend on how
many worker processes build it or in which order they finish.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .channel import Channel, draw_channel
from .voices import Person, Voice

# Inside one speaker, rate and pitch vary per utterance, narrowly enough to keep identity.
RATE_RANGE = (0.9, 1.1)
PITCH_RANGE = (0.95, 1.05)
# Target length of one utterance, before it is fitted to 2-8 s.
UTTERANCE_SECONDS = (2.5, 7.0)

TRAIN, SYNTH_DEV, SYNTH_CAL = "train", "synth_dev", "synth_cal"


def rng_for(seed: int, *names: object) -> np.random.Generator:
    """An independent generator for (seed, names): same inputs, same stream, any process."""
    keys = [zlib.crc32(str(name).encode()) for name in names]
    return np.random.default_rng([seed, *keys])


@dataclass(frozen=True)
class UtterancePlan:
    name: str  # file stem: "u03"
    seed: int
    rate: float
    pitch: float
    target_seconds: float


@dataclass(frozen=True)
class RecordingPlan:
    speaker: str
    recording: str  # folder name inside the speaker: "r07"
    split: str
    voice: Voice
    channel: Channel
    utterances: tuple[UtterancePlan, ...]

    @property
    def recording_id(self) -> str:
        return f"{self.speaker}/{self.recording}"


def choose_people(people: list[Person], count: int | None, seed: int) -> list[Person]:
    """`count` people picked at random (all when None), in id order."""
    if count is None or count >= len(people):
        return list(people)
    picked = rng_for(seed, "choose-people").choice(
        len(people), size=count, replace=False
    )
    return [people[i] for i in sorted(picked)]


def assign_splits(
    people: list[Person], dev: int, cal: int, seed: int
) -> dict[str, str]:
    """person id -> split. A person is on exactly one side, whatever engines it spans.

    At least one person always stays in train, so tiny builds shrink the held-out sets.
    """
    dev = max(0, min(dev, len(people) - 1))
    cal = max(0, min(cal, len(people) - 1 - dev))
    order = rng_for(seed, "splits").permutation(len(people))
    splits = {}
    for rank, index in enumerate(order):
        split = SYNTH_DEV if rank < dev else SYNTH_CAL if rank < dev + cal else TRAIN
        splits[people[index].person_id] = split
    return splits


def plan_recordings(
    people: list[Person],
    splits: dict[str, str],
    recordings_per_speaker: int,
    utterances_per_recording: int,
    room_count: int,
    seed: int,
) -> list[RecordingPlan]:
    plans = []
    for person in people:
        for r in range(recordings_per_speaker):
            rng = rng_for(seed, "recording", person.person_id, r)
            plans.append(
                RecordingPlan(
                    speaker=person.person_id,
                    recording=f"r{r:02d}",
                    split=splits[person.person_id],
                    # A recording session uses one of the person's voices (engine/language).
                    voice=person.voices[int(rng.integers(len(person.voices)))],
                    channel=draw_channel(rng, room_count),
                    utterances=tuple(
                        _plan_utterance(rng, f"u{u:02d}")
                        for u in range(utterances_per_recording)
                    ),
                )
            )
    return plans


def _plan_utterance(rng: np.random.Generator, name: str) -> UtterancePlan:
    return UtterancePlan(
        name=name,
        seed=int(rng.integers(2**31)),
        rate=float(rng.uniform(*RATE_RANGE)),
        pitch=float(rng.uniform(*PITCH_RANGE)),
        target_seconds=float(rng.uniform(*UTTERANCE_SECONDS)),
    )
