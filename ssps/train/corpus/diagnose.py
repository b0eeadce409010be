"""Does the corpus meet the SSPS premise? Measured with a pretrained outside encoder.

SSPS (paper section III-B) assumes, on the training set,

    sim(same recording) >= sim(same speaker, other recording) >= sim(other speaker).

This script embeds a sample of the corpus with resemblyzer (a GE2E encoder that ships
its weights and runs offline) and reports:
- the EER of trials_synth_dev.txt, trials_synth_cal.txt, trials_real_uqm.txt and
  trials_fsdd.txt (all trials, or a sample of them);
- on a sample of train recordings, the mean cosine of same-recording,
  same-speaker/other-recording and other-speaker pairs, and how often an utterance's
  nearest neighbour outside its own recording is the same speaker (what a perfect
  pseudo-positive sampler could hope for).

    pip install resemblyzer 'setuptools<81'
    python -m ssps.train.corpus diagnose --corpus data/corpus --out diagnostics.json

All four full lists plus the train sample (~4,500 files) took ~5 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ssps.metrics import min_dcf, verification_metrics

from .trials import read_trials

TRIAL_LISTS = ("synth_dev", "synth_cal", "real_uqm", "fsdd")
TRIALS_PER_LABEL = (
    None  # None: every trial; a number: that many targets and non-targets
)
MAX_SECONDS = 6.0  # embed at most this much of each file (uqm clips run to 30 s)
RECORDINGS_PER_SPEAKER = 3
UTTERANCES_PER_RECORDING = 2


def run_diagnostics(
    corpus: Path,
    sample_recordings: int,
    seed: int,
    out: Path | None,
    trials_per_label: int = TRIALS_PER_LABEL,
    workers: int = 2,
) -> dict:
    corpus = Path(corpus)
    rng = np.random.default_rng(seed)
    trial_samples = {
        name: _sample_trials(corpus / f"trials_{name}.txt", rng, trials_per_label)
        for name in TRIAL_LISTS
        if (corpus / f"trials_{name}.txt").exists()
    }
    train_sample = _sample_train(corpus / "train.csv", sample_recordings, rng)

    paths = sorted(
        {p for trials in trial_samples.values() for _, a, b in trials for p in (a, b)}
        | {row["path"] for row in train_sample}
    )
    started = time.time()
    embeddings = _embed_all(corpus, paths, workers)
    results = {
        "encoder": "resemblyzer VoiceEncoder (GE2E), first "
        f"{MAX_SECONDS:.0f} s of each file after its VAD",
        "embedded_files": len(paths),
        "embedding_seconds": round(time.time() - started, 1),
        "eer_percent": {name: _trial_metrics(trials, embeddings) for name, trials in trial_samples.items()},
        "train_similarity": _similarity_structure(train_sample, embeddings),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if out is not None:
        Path(out).write_text(text + "\n")
    return results


# -- Sampling --------------------------------------------------------------------------


def _sample_trials(path: Path, rng: np.random.Generator, per_label: int | None):
    """Up to `per_label` targets and as many non-targets (all when None), with paths
    made relative to the corpus folder."""
    trials = read_trials(path)
    if per_label is None:
        return [(label, f"wav/{a}", f"wav/{b}") for label, a, b in trials]
    sample = []
    for label in (1, 0):
        of_label = [t for t in trials if t[0] == label]
        picked = rng.choice(
            len(of_label), size=min(per_label, len(of_label)), replace=False
        )
        sample += [
            (label, f"wav/{of_label[i][1]}", f"wav/{of_label[i][2]}") for i in picked
        ]
    return sample


def _sample_train(
    manifest: Path, recordings: int, rng: np.random.Generator
) -> list[dict]:
    """Labelled TTS train rows: a few utterances from a few recordings of many speakers."""
    by_speaker: dict[str, dict[str, list[dict]]] = defaultdict(
        lambda: defaultdict(list)
    )
    with manifest.open() as handle:
        for row in csv.DictReader(handle):
            if row.get("source", "tts") == "tts":
                by_speaker[row["speaker"]][row["recording"]].append(row)
    speakers = sorted(by_speaker)
    count = min(len(speakers), max(2, recordings // RECORDINGS_PER_SPEAKER))
    sample = []
    for s in rng.choice(len(speakers), size=count, replace=False):
        recordings_of = by_speaker[speakers[s]]
        names = sorted(recordings_of)
        for r in rng.choice(
            len(names), size=min(RECORDINGS_PER_SPEAKER, len(names)), replace=False
        ):
            rows = recordings_of[names[r]]
            for u in rng.choice(
                len(rows), size=min(UTTERANCES_PER_RECORDING, len(rows)), replace=False
            ):
                sample.append(rows[u])
    return sample


# -- Embedding -------------------------------------------------------------------------

_encoder = None


def _start_worker() -> None:
    global _encoder
    import torch
    from resemblyzer import VoiceEncoder

    torch.set_num_threads(1)  # one thread per worker process: the CPU is shared
    _encoder = VoiceEncoder("cpu", verbose=False)


def _embed_file(path: str) -> np.ndarray:
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(path)[: int(MAX_SECONDS * 16000)]
    return _encoder.embed_utterance(wav)


def _embed_all(corpus: Path, paths: list[str], workers: int) -> dict[str, np.ndarray]:
    with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker) as pool:
        vectors = pool.map(_embed_file, [str(corpus / p) for p in paths], chunksize=8)
        return dict(zip(paths, vectors))


# -- Scores ----------------------------------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _trial_metrics(trials, embeddings: dict[str, np.ndarray]) -> dict:
    """EER (%) and minDCF (P_target 0.01 and 0.05) of cosine scores, from ssps.metrics."""
    labels = np.array([label for label, _, _ in trials])
    scores = np.array([_cosine(embeddings[a], embeddings[b]) for _, a, b in trials])
    return {
        "eer": round(verification_metrics(scores, labels)["eer"], 2),
        "min_dcf_0.01": round(min_dcf(scores, labels, p_target=0.01)[0], 4),
        "min_dcf_0.05": round(min_dcf(scores, labels, p_target=0.05)[0], 4),
        "targets": int(labels.sum()),
        "nontargets": int((1 - labels).sum()),
    }


def _similarity_structure(rows: list[dict], embeddings: dict[str, np.ndarray]) -> dict:
    vectors = np.stack([embeddings[row["path"]] for row in rows])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors.T
    speaker = np.array([row["speaker"] for row in rows])
    recording = np.array([row["recording"] for row in rows])
    same_speaker = speaker[:, None] == speaker[None, :]
    same_recording = recording[:, None] == recording[None, :]
    off_diagonal = ~np.eye(len(rows), dtype=bool)

    groups = {
        "same_recording": same_recording & off_diagonal,
        "same_speaker_other_recording": same_speaker & ~same_recording,
        "other_speaker": ~same_speaker,
    }
    # Nearest neighbour outside the utterance's own recording: same speaker?
    outside = np.where(same_recording, -np.inf, cosine)
    nearest = outside.argmax(axis=1)
    return {
        "utterances": len(rows),
        "speakers": len(set(speaker)),
        "mean_cosine": {
            name: round(float(cosine[mask].mean()), 4) if mask.any() else None
            for name, mask in groups.items()
        },
        "pairs": {name: int(mask.sum()) for name, mask in groups.items()},
        "nearest_other_recording_is_same_speaker": round(
            float(np.mean(speaker[nearest] == speaker)), 4
        ),
        "chance_of_that": round(
            float(
                np.mean(
                    [
                        (same_speaker[i] & ~same_recording[i]).sum()
                        / (~same_recording[i]).sum()
                        for i in range(len(rows))
                    ]
                )
            ),
            4,
        ),
    }
