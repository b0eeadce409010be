"""The synthetic speakers: which TTS voices exist here, who they are, and how to run them.

Every voice below was built from recordings of one real person. A `Person` is the unit
of speaker identity: when the same person is found in several engines (CMU ARCTIC slt in
RHVoice and flite, awb = RHVoice "alan", RHVoice evgeniy-eng = evgeniy-rus ...), all of
those voices belong to one `Person`, hence one speaker label, hence one side of any
train/test split.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import io
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf

MBROLA_DATABASES = Path("/usr/share/mbrola")
RHVOICE_VOICES = Path("/usr/share/RHVoice/voices")
REQUIRED_PROGRAMS = ("espeak-ng", "mbrola", "flite", "sox")
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
    if ctypes.util.find_library("RHVoice") is None:
        missing.append("libRHVoice (librhvoice5)")
    if importlib.util.find_spec("rhvoice_wrapper") is None:
        missing.append("the Python package rhvoice-wrapper")
    if missing:
        raise MissingSystemPackages(
            f"missing programs {', '.join(missing)}: {INSTALL_HINT}"
        )


def discover_people() -> list[Person]:
    """Every person with at least one installed voice, sorted by id (deterministic)."""
    check_system_programs()
    people: dict[str, Person] = {}
    for person_id, gender, voice in [
        *_mbrola_voices(),
        *_rhvoice_voices(),
        *_flite_voices(),
    ]:
        person = people.setdefault(person_id, Person(person_id, gender))
        person.voices.append(voice)
    if not people:
        raise MissingSystemPackages(f"no TTS voices found: {INSTALL_HINT}")
    return [people[k] for k in sorted(people)]


# -- Discovery, one function per engine ------------------------------------------------


def _mbrola_voices():
    # `espeak-ng --voices=mb` lines: "Pty Language Age/Gender VoiceName File Other".
    listing = subprocess.run(
        ["espeak-ng", "--voices=mb"], capture_output=True, text=True, check=False
    ).stdout
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
        yield (
            f"mbrola-{database}",
            gender,
            Voice(
                "mbrola",
                f"mb-{database}" + (f"-{text_language}" if text_language else ""),
                "en" if text_language else language,
            ),
        )


# RHVoice voices that are the same person under another name.
_RHVOICE_PERSON = {
    "aleksandr-hq": "rhvoice-aleksandr",
    "evgeniy-eng": "rhvoice-evgeniy",
    "evgeniy-rus": "rhvoice-evgeniy",
    # CMU ARCTIC speakers, shared with flite:
    "slt": "cmu-slt",
    "bdl": "cmu-bdl",
    "clb": "cmu-clb",
    "alan": "cmu-awb",
}
_RHVOICE_LANGUAGE = {
    "English": "en",
    "Russian": "ru",
    "Ukrainian": "uk",
    "Kyrgyz": "ky",
    "Tatar": "tt",
    "Macedonian": "mk",
    "Albanian": "sq",
    "Polish": "pl",
    "Esperanto": "eo",
    "Brazilian-Portuguese": "pt-br",
    "Georgian": "ka",
    "Czech": "cs",
    "Slovak": "sk",
}


def _rhvoice_voices():
    if not RHVOICE_VOICES.is_dir():
        return
    for info_file in sorted(RHVOICE_VOICES.glob("*/voice.info")):
        name = info_file.parent.name
        info = dict(
            line.split("=", 1)
            for line in info_file.read_text().splitlines()
            if "=" in line
        )
        language = _RHVOICE_LANGUAGE.get(info.get("language", ""), "")
        if not language:
            continue  # a language we have no text for
        gender = {"female": "F", "male": "M"}.get(info.get("gender", ""), "?")
        person_id = _RHVOICE_PERSON.get(name, f"rhvoice-{name.lower()}")
        yield person_id, gender, Voice("rhvoice", name, language)


# flite voice -> (person, gender). awb_time only says the time of day: left out.
_FLITE_PERSON = {
    "kal": ("cmu-kal", "M"),
    "kal16": ("cmu-kal", "M"),
    "awb": ("cmu-awb", "M"),
    "rms": ("cmu-rms", "M"),
    "slt": ("cmu-slt", "F"),
}


def _flite_voices():
    listing = subprocess.run(
        ["flite", "-lv"], capture_output=True, text=True, check=False
    ).stdout
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


class Synthesizer:
    """Speaks with any `Voice`. Use as a context manager: it owns the RHVoice engine.

    RHVoice runs in-process through the ctypes binding of rhvoice-wrapper over Debian's
    libRHVoice, because starting the RHVoice-test program costs ~0.2 s of CPU per call,
    more than the synthesis itself. MBROLA (espeak-ng) and flite are cheap to start and
    run as programs.
    """

    def __init__(self) -> None:
        self._rhvoice = None
        self._rhvoice_names: dict[str, str] = {}
        self._samples: list[np.ndarray] = []
        self._sample_rate = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._rhvoice is not None:
            self._rhvoice.exterminate()
            self._rhvoice = None

    def say(self, voice: Voice, text: str, rate: float, pitch: float) -> Speech:
        """Say `text`. `rate` and `pitch` are factors around 1.0 (1.1 = 10 % more)."""
        if voice.engine == "rhvoice":
            return self._say_rhvoice(voice, text, rate, pitch)
        return _say_with_program(voice, text, rate, pitch)

    def _say_rhvoice(
        self, voice: Voice, text: str, rate: float, pitch: float
    ) -> Speech:
        engine = self._rhvoice_engine()
        name = self._rhvoice_names.get(_plain(voice.name))
        if name is None:
            raise SynthesisFailed(f"rhvoice:{voice.name}: not known to libRHVoice")
        self._samples = []
        params = engine.params.copy_with(
            {"voice_profile": name, "relative_rate": rate, "relative_pitch": pitch}
        )
        engine.generate(text, params)
        if not self._samples:
            raise SynthesisFailed(f"rhvoice:{voice.name}: no audio")
        audio = np.concatenate(self._samples).astype(np.float32) / 32768.0
        return Speech(audio, self._sample_rate, missing_diphones=0)

    def _rhvoice_engine(self):
        if self._rhvoice is None:
            from rhvoice_wrapper.rhvoice_proxy import (
                Engine,  # only RHVoice voices need it
            )

            engine = Engine(ctypes.util.find_library("RHVoice"))
            engine.init(
                self._on_rhvoice_samples,
                self._on_rhvoice_sample_rate,
                data_path=str(RHVOICE_VOICES.parent),
                config_path="/etc/RHVoice",
            )
            # The library spells some voices differently ("Leticia-F123" -> "letícia-f123").
            self._rhvoice_names = {
                _plain(v["name"]): v["name"] for v in engine.voices.values()
            }
            self._rhvoice = engine
        return self._rhvoice

    def _on_rhvoice_samples(self, samples, count, _user_data) -> int:
        self._samples.append(np.ctypeslib.as_array(samples, (count,)).copy())
        return 1  # 1 = go on

    def _on_rhvoice_sample_rate(self, sample_rate, _user_data) -> int:
        self._sample_rate = sample_rate
        return 1


def _plain(name: str) -> str:
    return (
        unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    )


def _say_with_program(voice: Voice, text: str, rate: float, pitch: float) -> Speech:
    with tempfile.TemporaryDirectory(prefix="ssps-tts-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        if voice.engine == "mbrola":
            messages = _run_mbrola(voice, text, rate, pitch, wav_path)
        elif voice.engine == "flite":
            messages = _run(voice, _flite_command(voice, text, rate, pitch, wav_path))
        else:
            raise ValueError(f"unknown engine {voice.engine}")
        if not wav_path.exists():
            raise SynthesisFailed(f"{voice.engine}:{voice.name}: no output")
        data = wav_path.read_bytes()
    return _speech_from_wav(voice, data, messages.count("unknown, replaced"))


def _speech_from_wav(voice: Voice, data: bytes, missing_diphones: int) -> Speech:
    audio, sample_rate = sf.read(io.BytesIO(data), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if audio.size == 0 or not np.any(audio):
        raise SynthesisFailed(f"{voice.engine}:{voice.name}: no audio")
    return Speech(audio, sample_rate, missing_diphones)


def _run_mbrola(
    voice: Voice, text: str, rate: float, pitch: float, wav_path: Path
) -> str:
    """espeak-ng writes MBROLA phonemes, then mbrola renders them: two plain steps.

    (`espeak-ng -v mb-xx -w` drives mbrola through a pipe whose reads depend on timing:
    on a loaded machine it now and then loses the end of the speech, and the same seed
    would no longer give the same files.)
    """
    # espeak-ng: -s words per minute (default 175), -p base pitch 0-99 (default 50);
    # a 1 % pitch factor moves -p by ~1.5 steps.
    speed = round(175 * rate)
    base_pitch = int(np.clip(round(50 + 150 * (pitch - 1.0)), 0, 99))
    pho_path = wav_path.with_suffix(".pho")
    espeak = ["espeak-ng", "-q", "--pho", f"--phonout={pho_path}", "-v", voice.name,
              "-s", str(speed), "-p", str(base_pitch), text]  # fmt: skip
    messages = _run(voice, espeak)
    database = MBROLA_DATABASES / _mbrola_database(voice) / _mbrola_database(voice)
    # -e: a diphone the database lacks becomes silence instead of an error.
    mbrola = ["mbrola", "-e", str(database), str(pho_path), str(wav_path)]
    return messages + _run(voice, mbrola)


def _mbrola_database(voice: Voice) -> str:
    return voice.name.removeprefix("mb-").split("-")[0]  # "mb-de1-en" -> "de1"


def _flite_command(voice: Voice, text: str, rate: float, pitch: float, wav_path: Path):
    # f0_shift has no effect on the rms voice; its rate still varies.
    return ["flite", "-voice", voice.name,
            "--setf", f"duration_stretch={1 / rate:.3f}", "--setf", f"f0_shift={pitch:.3f}",
            "-t", text, "-o", str(wav_path)]  # fmt: skip


def _run(voice: Voice, command: list[str]) -> str:
    """Run an engine program; returns its warnings (stderr), raises if it fails."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise SynthesisFailed(
            f"{voice.engine}:{voice.name}: {result.stderr.strip()[-300:]}"
        )
    return result.stderr
