"""Turn one planned synthetic recording into WAV files (runs in a worker process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, to_corpus_rate, trim_silence, write_wav
from .channel import apply_channel
from .plan import RecordingPlan, UtterancePlan
from .text import sentence_for
from .voices import SynthesisFailed, Synthesizer, Voice

MIN_SECONDS, MAX_SECONDS = 2.0, 8.0
# Longer speech is cut here, leaving room for the reverberation tail within 8 s.
CUT_SECONDS = 7.8
# MBROLA fills diphones it lacks with silence; more than this per second is broken speech.
MAX_MISSING_DIPHONES_PER_SECOND = 6.0
ATTEMPTS = 4


@dataclass
class UtteranceRow:
    path: str  # relative to the wav root: "speaker/recording/utt.wav"
    speaker: str
    recording: str
    duration: float
    text: str = ""
    rate: float = 1.0
    pitch: float = 1.0


@dataclass
class RenderedRecording:
    plan: RecordingPlan
    rows: list[UtteranceRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def render_recording(
    plan: RecordingPlan, impulse_response, wav_root: Path
) -> RenderedRecording:
    result = RenderedRecording(plan)
    with Synthesizer() as synthesizer:
        spoken = [
            _try_to_speak(synthesizer, plan, utterance, result.failures)
            for utterance in plan.utterances
        ]
    for utterance, speech_and_text in zip(plan.utterances, spoken):
        if speech_and_text is None:
            continue
        speech, text = speech_and_text
        noise_rng = np.random.default_rng([utterance.seed, 1])
        audio = apply_channel(speech, plan.channel, impulse_response, noise_rng)
        relative = f"{plan.speaker}/{plan.recording}/{utterance.name}.wav"
        duration = write_wav(wav_root / relative, audio)
        result.rows.append(
            UtteranceRow(
                relative,
                plan.speaker,
                plan.recording_id,
                duration,
                text,
                utterance.rate,
                utterance.pitch,
            )
        )
    return result


def _try_to_speak(
    synthesizer, plan: RecordingPlan, utterance: UtterancePlan, failures: list
):
    try:
        return _speak_fitted(synthesizer, plan.voice, utterance)
    except SynthesisFailed as error:
        failures.append(f"{plan.recording_id}/{utterance.name}: {error}")
        return None


def _speak_fitted(
    synthesizer: Synthesizer, voice: Voice, utterance: UtterancePlan
) -> tuple[np.ndarray, str]:
    """Synthesize a fresh sentence, redrawing the text until the speech lasts 2-8 s."""
    rng = np.random.default_rng(utterance.seed)
    seconds = utterance.target_seconds
    problem = "no attempt"
    for attempt in range(ATTEMPTS):
        text = sentence_for(rng, voice.language, seconds)
        speech = synthesizer.say(voice, text, utterance.rate, utterance.pitch)
        audio = trim_silence(to_corpus_rate(speech.audio, speech.sample_rate))
        duration = len(audio) / SAMPLE_RATE
        if duration == 0:
            problem = "silent output"
        elif speech.missing_diphones / duration > MAX_MISSING_DIPHONES_PER_SECOND:
            problem = f"{speech.missing_diphones} missing diphones in {duration:.1f} s"
        elif duration < MIN_SECONDS:
            problem, seconds = f"too short ({duration:.1f} s)", seconds * 1.6
        elif duration > MAX_SECONDS and attempt < ATTEMPTS - 1:
            problem, seconds = f"too long ({duration:.1f} s)", seconds * 0.7
        else:
            return audio[: int(CUT_SECONDS * SAMPLE_RATE)], text
    raise SynthesisFailed(
        f"{voice.engine}:{voice.name}: {problem} after {ATTEMPTS} attempts"
    )


def probe_voice(voice: Voice) -> str | None:
    """None when the voice speaks a test sentence properly, else why it does not."""
    try:
        with Synthesizer() as synthesizer:
            _speak_fitted(synthesizer, voice, UtterancePlan("probe", 0, 1.0, 1.0, 4.0))
    except SynthesisFailed as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - a crashing engine must not stop the build
        return f"{voice.engine}:{voice.name}: {type(error).__name__}: {error}"
    return None
