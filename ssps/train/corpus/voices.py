"""The synthetic speakers: which TTS voices exist here, who they are, and how to run them.

Every voice below was built from recordings of one real person. A `Person` is the unit
of speaker identity: when the same person is found in several engines (CMU ARCTIC slt in
RHVoice and flite, awb = RHVoice "alan", RHVoice evgeniy-eng = evgeniy-rus ...), all of
those voices belong to one `Person`, hence one speaker label, hence one side of any
train/test split.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

MBROLA_DATABASES = Path("/usr/share/mbrola")
RHVOICE_VOICES = Path("/usr/share/RHVoice/voices")
REQUIRED_PROGRAMS = ("espeak-ng", "mbrola", "RHVoice-test", "flite", "sox")
INSTALL_HINT = "run `sudo bash scripts/install_corpus_deps.sh` (Debian) first"

LICENCES = {
    "mbrola": "MBROLA databases: non-commercial, non-military use (Debian non-free)",
    "rhvoice": "RHVoice voices: per-voice licences, mostly CC BY-NC-ND 4.0 / free for "
               "non-commercial use (Debian non-free); engine LGPL-2.1+",
    "flite": "flite and its CMU voices: BSD-like (CMU ARCTIC data: free use)",
}


class MissingSystemPackages(RuntimeError):
    """A program or voice set the corpus needs is not installed."""


@dataclass(frozen=True)
class Voice:
    engine: str  # "mbrola" (through espeak-ng), "rhvoice" or "flite"
    name: str  # what the engine calls it: "mb-de1-en", "slt", "kal16"
    language: str  # the language its text is written in: "en", "de", "ru", ...


@dataclass
class Person:
    """One real speaker and every installed voice built from them."""

    person_id: str  # also the speaker folder name: "mbrola-de1", "cmu-slt"
    gender: str  # "F", "M" or "?"
    voices: list[Voice] = field(default_factory=list)


def check_system_programs() -> None:
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if missing:
        raise MissingSystemPackages(f"missing programs {', '.join(missing)}: {INSTALL_HINT}")


def discover_people() -> list[Person]:
    """Every person with at least one installed voice, sorted by id (deterministic)."""
    check_system_programs()
    people: dict[str, Person] = {}
    for person_id, gender, voice in [*_mbrola_voices(), *_rhvoice_voices(), *_flite_voices()]:
        person = people.setdefault(person_id, Person(person_id, gender))
        person.voices.append(voice)
    if not people:
        raise MissingSystemPackages(f"no TTS voices found: {INSTALL_HINT}")
    return [people[k] for k in sorted(people)]


# -- Discovery, one function per engine ------------------------------------------------


def _mbrola_voices():
    # `espeak-ng --voices=mb` lines: "Pty Language Age/Gender VoiceName File Other".
    listing = subprocess.run(["espeak-ng", "--voices=mb"], capture_output=True, text=True).stdout
    for line in listing.splitlines()[1:]:
        columns = line.split()
        if len(columns) < 5:
            continue
        language, gender, file = columns[1], columns[2][-1], columns[4]
        match = re.fullmatch(r"mb/mb-([a-z]+\d)(?:-([a-z]+))?", file)
        if match is None:
            continue
        database, text_language = match.group(1), match.group(2)
        if text_language == "grc":  # ancient Greek text: skip, the database has "de6"
            continue
        if not (MBROLA_DATABASES / database / database).exists():
            continue  # espeak-ng knows the voice but the mbrola-* package is absent
        yield f"mbrola-{database}", gender, Voice("mbrola", f"mb-{database}" + (
            f"-{text_language}" if text_language else ""), "en" if text_language else language)


# RHVoice voices that are the same person under another name.
_RHVOICE_PERSON = {
    "aleksandr-hq": "rhvoice-aleksandr",
    "evgeniy-eng": "rhvoice-evgeniy",
    "evgeniy-rus": "rhvoice-evgeniy",
    # CMU ARCTIC speakers, shared with flite:
    "slt": "cmu-slt", "bdl": "cmu-bdl", "clb": "cmu-clb", "alan": "cmu-awb",
}
_RHVOICE_LANGUAGE = {
    "English": "en", "Russian": "ru", "Ukrainian": "uk", "Kyrgyz": "ky", "Tatar": "tt",
    "Macedonian": "mk", "Albanian": "sq", "Polish": "pl", "Esperanto": "eo",
    "Brazilian-Portuguese": "pt-br", "Georgian": "ka", "Czech": "cs", "Slovak": "sk",
}


def _rhvoice_voices():
    if not RHVOICE_VOICES.is_dir():
        return
    for info_file in sorted(RHVOICE_VOICES.glob("*/voice.info")):
        name = info_file.parent.name
        info = dict(
            line.split("=", 1) for line in info_file.read_text().splitlines() if "=" in line
        )
        language = _RHVOICE_LANGUAGE.get(info.get("language", ""), "")
        if not language:
            continue  # a language we have no text for
        gender = {"female": "F", "male": "M"}.get(info.get("gender", ""), "?")
        person_id = _RHVOICE_PERSON.get(name, f"rhvoice-{name.lower()}")
        yield person_id, gender, Voice("rhvoice", name, language)


# flite voice -> (person, gender). awb_time only says the time of day: left out.
_FLITE_PERSON = {
    "kal": ("cmu-kal", "M"), "kal16": ("cmu-kal", "M"), "awb": ("cmu-awb", "M"),
    "rms": ("cmu-rms", "M"), "slt": ("cmu-slt", "F"),
}


def _flite_voices():
    listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
    for name in listing.split(":", 1)[-1].split():
        if name in _FLITE_PERSON:
            person_id, gender = _FLITE_PERSON[name]
            yield person_id, gender, Voice("flite", name, "en")


# -- Synthesis -------------------------------------------------------------------------


@dataclass
class Speech:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    missing_diphones: int  # MBROLA replaces unknown diphones with silence; count them


class SynthesisFailed(RuntimeError):
    pass


def synthesize(voice: Voice, text: str, rate: float, pitch: float) -> Speech:
    """Say `text` with `voice`. `rate` and `pitch` are factors around 1.0 (1.1 = 10 % more)."""
    with tempfile.TemporaryDirectory(prefix="ssps-tts-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        command, stdin = _command_for(voice, text, rate, pitch, wav_path)
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or not wav_path.exists():
            raise SynthesisFailed(f"{voice.engine}:{voice.name}: {result.stderr.strip()[-300:]}")
        audio, sample_rate = sf.read(io.BytesIO(wav_path.read_bytes()), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if audio.size == 0 or not np.any(audio):
        raise SynthesisFailed(f"{voice.engine}:{voice.name}: no audio")
    return Speech(audio, sample_rate, result.stderr.count("unknown, replaced"))


def _command_for(voice: Voice, text: str, rate: float, pitch: float, wav_path: Path):
    if voice.engine == "mbrola":
        # espeak-ng: -s words per minute (default 175), -p base pitch 0-99 (default 50);
        # a 1 % pitch factor moves -p by ~1.5 steps.
        speed = round(175 * rate)
        base_pitch = int(np.clip(round(50 + 150 * (pitch - 1.0)), 0, 99))
        return ["espeak-ng", "-v", voice.name, "-s", str(speed), "-p", str(base_pitch),
                "-w", str(wav_path), text], None
    if voice.engine == "rhvoice":
        return ["RHVoice-test", "-p", voice.name, "-r", str(round(100 * rate)),
                "-t", str(round(100 * pitch)), "-o", str(wav_path)], text
    if voice.engine == "flite":
        # f0_shift has no effect on the rms voice; its rate still varies.
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.3f}",
                "--setf", f"f0_shift={pitch:.3f}", "-t", text, "-o", str(wav_path)], None
    raise ValueError(f"unknown engine {voice.engine}")
