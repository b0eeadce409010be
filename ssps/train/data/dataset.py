"""Datasets that feed the trainer raw 16 kHz waveforms (the log-mel frontend is in the model).

`SSLDataset` gives, per utterance, several random crops ("views"), each augmented
independently, plus optionally the un-augmented 4 s reference frame SSPS encodes.
`EvalDataset` gives full-length utterances for evaluation.

Labels never enter a batch: speaker and recording ids are attributes of the dataset
(`speaker_ids`, `recording_ids`), for diagnostics and for the supervised baselines.

Randomness is a pure function of (seed, epoch, index): an item is the same whichever
worker, rank or run produces it, so a resumed run sees exactly the data of an
uninterrupted one. Call `dataset.set_epoch(epoch)` at each epoch start (together with
`DistributedSampler.set_epoch`); it also reaches persistent DataLoader workers.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Hashable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ssps.errors import AudioError, ConfigError
from ssps.train.data import DataError
from ssps.train.data.audio import read_audio, read_random_crop
from ssps.train.data.manifest import Utterance

# augment(waveform, rng) -> waveform of the same length (see ssps.train.augment.Augmenter).
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]

POSITIVE_SAMPLING = ("same_utterance", "supervised")


class SSLDataset(Dataset):
    """Random crops of each utterance for self-supervised training.

    ``dataset[i]`` is ``{"views": [float32 tensor [samples], ...], "index": i}``, plus
    ``"reference"`` (float32 [reference samples], never augmented) when
    `reference_seconds` is set. View lengths are `view_seconds` when given (DINO:
    ``[4, 4, 2, 2, 2, 2]``), else `num_views` crops of `frame_seconds`. Crops start
    anywhere in the utterance and may overlap (paper IV-A); an utterance shorter than a
    crop is repeated to fill it.

    `positive="supervised"` is the paper's upper bound: view 0 comes from the utterance
    itself and the other views from another utterance of the same speaker in a
    DIFFERENT recording. When a speaker has a single recording, the positive is another
    utterance of that speaker; when it has a single utterance, the utterance itself. How
    many utterances fall back is in `positive_fallbacks`.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        *,
        frame_seconds: float = 2.0,
        num_views: int = 2,
        view_seconds: Sequence[float] | None = None,
        reference_seconds: float | None = None,
        augment: Augment | None = None,
        positive: str = "same_utterance",
        sample_rate: int = 16000,
        seed: int = 0,
    ):
        if not utterances:
            raise DataError("SSLDataset needs at least one utterance")
        if positive not in POSITIVE_SAMPLING:
            raise ConfigError(f"positive must be one of {POSITIVE_SAMPLING}, got {positive!r}")
        seconds = list(view_seconds) if view_seconds is not None else [frame_seconds] * num_views
        if not seconds or min(seconds) <= 0:
            raise ConfigError(f"need at least one view of positive length, got {seconds}")
        if reference_seconds is not None and reference_seconds <= 0:
            raise ConfigError(f"reference_seconds must be positive or None, got {reference_seconds}")

        self.utterances = list(utterances)
        self.sample_rate = sample_rate
        self.view_samples = [round(s * sample_rate) for s in seconds]
        self.reference_samples = None if reference_seconds is None else round(reference_seconds * sample_rate)
        self.augment = augment
        self.positive = positive
        self.seed = seed

        # Integer labels, -1 when unknown. A recording is named by (speaker, recording):
        # folder names like "session1" repeat across speakers.
        self.speaker_ids, self.speaker_names = _integer_ids([u.speaker for u in self.utterances])
        self.recording_ids, self.recording_names = _integer_ids(
            [None if u.recording is None else (u.speaker, u.recording) for u in self.utterances]
        )
        if positive == "supervised":
            self.positive_fallbacks = self._count_positive_fallbacks()
            self._speaker_members = _members_by_speaker(self.speaker_ids)
            if any(self.positive_fallbacks.values()):
                warnings.warn(f"supervised positives: no other recording of the same speaker for {self.positive_fallbacks}")

        # Shared memory, so that set_epoch in the main process reaches DataLoader
        # workers that already exist (persistent_workers=True).
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def num_views(self) -> int:
        return len(self.view_samples)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        # One independent stream per purpose, all derived from (seed, epoch, index).
        streams = np.random.SeedSequence([self.seed, self.epoch, index]).spawn(self.num_views + 2)
        positive_rng, reference_rng, *view_rngs = (np.random.default_rng(s) for s in streams)

        anchor = self.utterances[index]
        positive = anchor
        if self.positive == "supervised":
            positive = self.utterances[self._draw_supervised_positive(index, positive_rng)]

        views = []
        for view, (num_samples, rng) in enumerate(zip(self.view_samples, view_rngs)):
            waveform = self._random_crop(anchor if view == 0 else positive, num_samples, rng)
            if self.augment is not None:
                waveform = self._augmented(waveform, rng)
            views.append(torch.from_numpy(waveform))
        item = {"views": views, "index": index}
        if self.reference_samples is not None:
            item["reference"] = torch.from_numpy(self._random_crop(anchor, self.reference_samples, reference_rng))
        return item

    def _random_crop(self, utterance: Utterance, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        return read_random_crop(utterance.path, num_samples, rng, self.sample_rate, duration=utterance.duration)

    def _augmented(self, waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        augmented = np.asarray(self.augment(waveform, rng), dtype=np.float32)
        if augmented.shape != waveform.shape:
            raise ValueError(f"augment changed the shape {waveform.shape} -> {augmented.shape}")
        return augmented

    # --- supervised positives (labels used on purpose: the upper-bound baseline) ----

    def _draw_supervised_positive(self, index: int, rng: np.random.Generator) -> int:
        members = self._speaker_members[self.speaker_ids[index]]
        recording = self.recording_ids[index]
        if recording >= 0:
            member_recordings = self.recording_ids[members]
            other_recordings = members[(member_recordings >= 0) & (member_recordings != recording)]
            if other_recordings.size:
                return int(rng.choice(other_recordings))
        other_utterances = members[members != index]
        if other_utterances.size:
            return int(rng.choice(other_utterances))
        return index

    def _count_positive_fallbacks(self) -> dict[str, int]:
        """How many utterances cannot get a positive from another recording (exact:
        it depends on the labels only). Mirrors `_draw_supervised_positive`."""
        if (self.speaker_ids < 0).any():
            raise DataError("positive='supervised' needs a speaker label on every utterance")
        num_speakers = len(self.speaker_names)
        utterances_per_speaker = np.bincount(self.speaker_ids, minlength=num_speakers)
        known = self.recording_ids >= 0
        speaker_of_recording = np.unique(np.stack([self.speaker_ids[known], self.recording_ids[known]]), axis=1)[0]
        recordings_per_speaker = np.bincount(speaker_of_recording, minlength=num_speakers)
        cross_recording = known & (recordings_per_speaker[self.speaker_ids] >= 2)
        other_utterance = ~cross_recording & (utterances_per_speaker[self.speaker_ids] >= 2)
        return {
            "other_utterance_same_recording": int(other_utterance.sum()),
            "same_utterance": int((~cross_recording & ~other_utterance).sum()),
        }


def collate(items: Sequence[dict]) -> dict:
    """Stack items: ``views`` -> list of [batch, samples] tensors (one per view),
    ``index`` -> int64 [batch], ``reference`` -> [batch, samples] when present."""
    batch = {
        "views": [torch.stack([item["views"][view] for item in items]) for view in range(len(items[0]["views"]))],
        "index": torch.tensor([item["index"] for item in items], dtype=torch.int64),
    }
    if "reference" in items[0]:
        batch["reference"] = torch.stack([item["reference"] for item in items])
    return batch


class EvalDataset(Dataset):
    """Full-length utterances for evaluation: ``{"waveform": float32 [samples], "index", "path"}``.

    `files` are paths (relative ones are taken under `root`, as in trial lists) or
    `Utterance`s. `max_seconds` keeps only the start of very long files (None: all of it).
    """

    def __init__(
        self,
        files: Sequence[str | Path | Utterance],
        *,
        root: str | Path | None = None,
        sample_rate: int = 16000,
        max_seconds: float | None = None,
    ):
        paths = [f.path if isinstance(f, Utterance) else str(f) for f in files]
        self.paths = [str(Path(root) / p) if root is not None else p for p in paths]
        self.sample_rate = sample_rate
        self.max_samples = None if max_seconds is None else round(max_seconds * sample_rate)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        waveform = read_audio(path, self.sample_rate, num_samples=self.max_samples)
        if waveform.size == 0:
            raise AudioError(f"{path}: the file holds no audio samples")
        return {"waveform": torch.from_numpy(waveform), "index": int(index), "path": path}


def collate_eval(items: Sequence[dict]) -> dict:
    """Zero-pad to the longest: ``waveform`` [batch, samples], ``lengths`` int64 [batch]."""
    lengths = torch.tensor([item["waveform"].numel() for item in items], dtype=torch.int64)
    waveform = torch.zeros(len(items), int(lengths.max()))
    for row, item in enumerate(items):
        waveform[row, : item["waveform"].numel()] = item["waveform"]
    return {
        "waveform": waveform,
        "lengths": lengths,
        "index": torch.tensor([item["index"] for item in items], dtype=torch.int64),
        "path": [item["path"] for item in items],
    }


def _integer_ids(labels: Sequence[Hashable | None]) -> tuple[np.ndarray, list]:
    """Labels -> int64 ids in order of first appearance (-1 for None), and the id -> label list."""
    names: dict = {}
    ids = np.array([-1 if label is None else names.setdefault(label, len(names)) for label in labels], dtype=np.int64)
    return ids, list(names)


def _members_by_speaker(speaker_ids: np.ndarray) -> list[np.ndarray]:
    """For each speaker id, the indices of its utterances (sorted)."""
    order = np.argsort(speaker_ids, kind="stable")
    boundaries = np.flatnonzero(np.diff(speaker_ids[order])) + 1
    return np.split(order, boundaries)
