"""The recording channel: what happens to speech between a mouth and a WAV file.

A recording session has ONE channel, shared by all of its utterances: a room (impulse
response) or a close microphone, a noise floor, a microphone colouring (band limits and
two EQ bands), maybe a telephone codec, and a recording level. Different recordings of
a speaker get different channels. Ranges are deliberately realistic rather than extreme
(round 2 of FINDINGS.md): a model should have to separate speaker from channel, not be
unable to find the speaker at all.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import fftconvolve

SAMPLE_RATE = 16000

# Share of recordings made in a reverberant room (the rest: close-talking microphone).
ROOM_PROBABILITY = 0.85
# Telephone-style codecs (sox formats at 8 kHz) and how often each is used.
CODECS = {"none": 0.7, "gsm": 0.15, "mu-law": 0.15}


@dataclass(frozen=True)
class Channel:
    room_index: int | None  # which simulated impulse response; None = close microphone
    highpass_hz: float
    lowpass_hz: float
    eq_bands: tuple[
        tuple[float, float, float], ...
    ]  # (centre Hz, width in octaves, gain dB)
    codec: str  # a key of CODECS
    noise_colour: float  # spectral slope: 0 white, 1 pink, 2 brown
    snr_db: float
    level_dbfs: float  # RMS level of the finished utterance

    def describe(self) -> dict:
        return asdict(self)


def draw_channel(rng: np.random.Generator, room_count: int) -> Channel:
    """A random, realistic channel; `room_count` is the size of the impulse-response pool."""
    in_room = room_count > 0 and rng.random() < ROOM_PROBABILITY
    return Channel(
        room_index=int(rng.integers(room_count)) if in_room else None,
        highpass_hz=float(np.exp(rng.uniform(np.log(50), np.log(250)))),
        lowpass_hz=float(rng.uniform(4000, 7800)),
        eq_bands=tuple(
            (
                float(np.exp(rng.uniform(np.log(200), np.log(5000)))),
                float(rng.uniform(0.5, 2.0)),
                float(rng.uniform(-6.0, 6.0)),
            )
            for _ in range(2)
        ),
        codec=str(rng.choice(list(CODECS), p=list(CODECS.values()))),
        noise_colour=float(rng.uniform(0.0, 2.0)),
        snr_db=float(rng.uniform(15.0, 35.0)),
        level_dbfs=float(rng.uniform(-28.0, -18.0)),
    )


def apply_channel(
    speech: np.ndarray,
    channel: Channel,
    impulse_response: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pass 16 kHz float speech through `channel`; `rng` only draws this utterance's noise."""
    audio = speech.astype(np.float64)
    if impulse_response is not None:
        audio = fftconvolve(audio, impulse_response)[
            : len(audio) + len(impulse_response) // 4
        ]
    audio = audio + _noise_at_snr(rng, audio, channel.noise_colour, channel.snr_db)
    audio = run_sox(audio, _microphone_effects(channel))
    if channel.codec != "none":
        audio = _through_codec(audio, channel.codec)
    return _set_level(audio, channel.level_dbfs)


def _noise_at_snr(
    rng: np.random.Generator, audio: np.ndarray, colour: float, snr_db: float
):
    noise = coloured_noise(rng, len(audio), colour)
    speech_power = np.mean(audio**2)
    return noise * np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))


def coloured_noise(rng: np.random.Generator, length: int, colour: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**colour (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1]  # no infinite gain at DC
    return np.fft.irfft(spectrum / frequencies ** (colour / 2), n=length)


def _microphone_effects(channel: Channel) -> list[str]:
    effects = [
        "highpass",
        f"{channel.highpass_hz:.0f}",
        "lowpass",
        f"{channel.lowpass_hz:.0f}",
    ]
    for centre, octaves, gain in channel.eq_bands:
        effects += ["equalizer", f"{centre:.0f}", f"{octaves:.2f}o", f"{gain:.1f}"]
    return effects


# sox's names for an 8 kHz codec round trip.
_CODEC_FORMATS = {
    "gsm": ["-t", "gsm"],
    "mu-law": ["-t", "raw", "-e", "mu-law", "-b", "8"],
}


def _through_codec(audio: np.ndarray, codec: str) -> np.ndarray:
    """Encode to the 8 kHz codec and decode back to 16 kHz, as a phone line would."""
    codec_format = _CODEC_FORMATS[codec] + ["-r", "8000", "-c", "1"]
    peak = max(np.abs(audio).max(), 1e-9)
    encoded = _sox_bytes(_raw_float(audio / peak * 0.9), _FLOAT_IN, codec_format)
    decoded = _sox_bytes(encoded, codec_format, _FLOAT_OUT)
    return np.frombuffer(decoded, dtype=np.float32).astype(np.float64) * peak / 0.9


_FLOAT_IN = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]
_FLOAT_OUT = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]


def run_sox(audio: np.ndarray, effects: list[str]) -> np.ndarray:
    """Run a sox effects chain on 16 kHz float audio (no dithering, so deterministic)."""
    out = _sox_bytes(_raw_float(audio), _FLOAT_IN, _FLOAT_OUT, effects)
    return np.frombuffer(out, dtype=np.float32).astype(np.float64)


def _raw_float(audio: np.ndarray) -> bytes:
    return np.asarray(audio, dtype=np.float32).tobytes()


def _sox_bytes(data: bytes, input_format, output_format, effects=()) -> bytes:
    # -D: no dither; -R: repeatable; -V1: errors only. "-" = stdin / stdout.
    command = [
        "sox",
        "-D",
        "-R",
        "-V1",
        *input_format,
        "-",
        *output_format,
        "-",
        *effects,
    ]
    result = subprocess.run(command, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"sox failed: {result.stderr.decode(errors='replace')[-300:]}"
        )
    return result.stdout


def _set_level(audio: np.ndarray, level_dbfs: float) -> np.ndarray:
    rms = np.sqrt(np.mean(audio**2)) or 1.0
    audio = audio * (10 ** (level_dbfs / 20) / rms)
    peak = np.abs(audio).max()
    if peak > 0.99:  # never clip: a loud utterance is turned down instead
        audio *= 0.99 / peak
    return audio.astype(np.float32)
