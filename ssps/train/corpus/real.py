"""Real human speech that ships in Debian packages or in shared/data.

- uqm-voice: the voice actors of Star Control II. Held out for real-voice trials.
- Asterisk prompts: one professional voice per language. Extra training audio whose
  speaker labels are not to be trusted for supervision (marked `labeled=0`).
- FSDD: 6 speakers saying digits. Held out for a small real trial list.

Each loader is split in two: `*_jobs()` lists the work (cheap, main process) and
`render_*()` decodes, resamples and writes one job's files (worker process).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import (
    SAMPLE_RATE,
    join_with_pauses,
    to_corpus_rate,
    trim_silence,
    write_wav,
)
from .render import UtteranceRow

UQM_ZIP = Path("/usr/share/games/uqm/content/addons/uqm-0.8.0-voice.uqm")
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
# shared/ sits beside the repository checkout.
FSDD_RECORDINGS = Path(__file__).resolve().parents[4] / "shared/data/fsdd/recordings"

LICENCES = {
    "uqm": "uqm-voice (Star Control II voice acting): CC BY-NC-SA 2.5",
    "asterisk": "asterisk-core-sounds-*: CC BY-SA 3.0",
    "fsdd": "Free Spoken Digit Dataset: CC BY-SA 4.0",
}

# uqm folders that hold the same actor (DATA.md); `probe` is a machine voice and
# `zoqfotpik` mixes three characters in one folder, so neither has a usable label.
UQM_SAME_VOICE = {"starbase": "commander", "yehatrebels": "yehat", "safeones": "spathi"}
UQM_UNUSABLE = {"probe", "zoqfotpik"}
UQM_MIN_SECONDS = 2.0

# Asterisk prompts are 0.5-4 s: join consecutive prompts into 3-8 s utterances.
ASTERISK_UTTERANCE_SECONDS = (3.0, 8.0)
# FSDD clips are single digits (~0.4 s): join 5 into one spoken digit string.
FSDD_DIGITS_PER_UTTERANCE = 5


@dataclass(frozen=True)
class RealJob:
    source: str  # "uqm", "asterisk" or "fsdd"
    speaker: str  # speaker folder and label: "uqm-commander"
    recording: str  # recording folder: "starbase"
    members: tuple[str, ...]  # zip members or file paths, in a fixed order
    limit: int | None  # keep at most this many utterances (quick builds)
    seed: int


# -- Listing the work ------------------------------------------------------------------


def uqm_jobs(limit: int | None, seed: int) -> list[RealJob]:
    if not UQM_ZIP.exists():
        return []
    folders: dict[str, list[str]] = {}
    with zipfile.ZipFile(UQM_ZIP) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "3dovoice" and name.endswith(".ogg"):
                folders.setdefault(parts[1], []).append(name)
    return [
        RealJob(
            "uqm",
            f"uqm-{UQM_SAME_VOICE.get(folder, folder)}",
            folder,
            tuple(sorted(members)),
            limit,
            seed,
        )
        for folder, members in sorted(folders.items())
        if folder not in UQM_UNUSABLE
    ]


def asterisk_jobs(limit: int | None, seed: int) -> list[RealJob]:
    if not ASTERISK_SOUNDS.is_dir():
        return []
    jobs = []
    # Folders are named like "en_US_f_Allison": one voice per folder; the same name in
    # two languages is treated as the same person (one label, two recordings).
    for folder in sorted(p for p in ASTERISK_SOUNDS.iterdir() if p.is_dir()):
        files = tuple(sorted(str(p) for p in folder.rglob("*.wav")))
        if files:
            person = folder.name.split("_")[-1].lower()
            jobs.append(
                RealJob(
                    "asterisk", f"asterisk-{person}", folder.name, files, limit, seed
                )
            )
    return jobs


def fsdd_jobs(
    limit: int | None, seed: int, root: Path = FSDD_RECORDINGS
) -> list[RealJob]:
    root = root.resolve()
    if not root.is_dir():
        return []
    by_speaker: dict[str, list[str]] = {}
    for path in sorted(root.glob("*_*_*.wav")):
        by_speaker.setdefault(path.stem.split("_")[1], []).append(str(path))
    return [
        RealJob("fsdd", f"fsdd-{speaker}", "r00", tuple(files), limit, seed)
        for speaker, files in sorted(by_speaker.items())
    ]


# -- Rendering one job -----------------------------------------------------------------


def render_real(job: RealJob, wav_root: Path) -> list[UtteranceRow]:
    utterances = {
        "uqm": _uqm_utterances,
        "asterisk": _asterisk_utterances,
        "fsdd": _fsdd_utterances,
    }[job.source](job)
    rows = []
    for index, audio in enumerate(utterances):
        if job.limit is not None and index >= job.limit:
            break
        relative = f"{job.speaker}/{job.recording}/{index:04d}.wav"
        duration = write_wav(wav_root / relative, audio)
        rows.append(
            UtteranceRow(
                relative, job.speaker, f"{job.speaker}/{job.recording}", duration
            )
        )
    return rows


def _uqm_utterances(job: RealJob):
    """Each clip of the character, at 16 kHz, if at least 2 s long."""
    with zipfile.ZipFile(UQM_ZIP) as archive:
        for member in job.members:
            audio, rate = sf.read(io.BytesIO(archive.read(member)), dtype="float32")
            audio = to_corpus_rate(audio, rate)
            if len(audio) >= UQM_MIN_SECONDS * SAMPLE_RATE:
                yield audio


def _asterisk_utterances(job: RealJob):
    """Consecutive prompts joined with short pauses until each piece lasts 3-8 s."""
    low, high = ASTERISK_UTTERANCE_SECONDS
    pending: list[np.ndarray] = []
    for path in job.members:
        audio, rate = sf.read(path, dtype="float32")
        prompt = trim_silence(to_corpus_rate(audio, rate))
        if len(prompt) == 0:
            continue
        if len(prompt) >= high * SAMPLE_RATE:
            yield prompt[: int(high * SAMPLE_RATE)]
            continue
        if sum(map(len, pending)) + len(prompt) > high * SAMPLE_RATE:
            yield join_with_pauses(pending, 0.3)
            pending = []
        pending.append(prompt)
        if sum(map(len, pending)) >= low * SAMPLE_RATE:
            yield join_with_pauses(pending, 0.3)
            pending = []


def _fsdd_utterances(job: RealJob):
    """Digit strings: the speaker's clips in a seeded order, five to an utterance."""
    order = np.random.default_rng([job.seed, 7]).permutation(len(job.members))
    for start in range(
        0, len(order) - FSDD_DIGITS_PER_UTTERANCE + 1, FSDD_DIGITS_PER_UTTERANCE
    ):
        clips = []
        for i in order[start : start + FSDD_DIGITS_PER_UTTERANCE]:
            audio, rate = sf.read(job.members[i], dtype="float32")
            clips.append(trim_silence(to_corpus_rate(audio, rate)))
        yield join_with_pauses(clips, 0.2)
