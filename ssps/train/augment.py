"""Waveform augmentation for self-supervised training (paper section IV-B).

Per view: reverberation with a room impulse response, then one additive source at a
random SNR: noise (0-15 dB), music (5-15 dB) or babble, 3-7 overlapping speech files
(13-20 dB). Strategies:

    "none"          nothing
    "reverb"        reverberation only
    "noise"         additive source only
    "reverb+noise"  both, on every view (the paper, all methods but DINO; the default)
    "random"        one of the four above, uniformly per view (the paper's DINO)

Sources, from real folders when given, generated otherwise:

- `rir_dir`: a folder of impulse responses (wav/flac, any depth), e.g. the "simulated
  RIRs" of RIRS_NOISES. Without it: rooms simulated with pyroomacoustics
  (`ssps.train.rooms`), generated once and cached in `cache_dir`.
- `musan_dir`: a MUSAN-style folder with ``noise/``, ``music/`` and ``speech/``. A missing
  kind is generated: coloured noise (white, pink or brown), synthetic music (notes of
  harmonic tones), babble mixed from the training utterances (pass them as `speech`).

Optional channel effects, off in the paper but recommended by this project's
FINDINGS.md (the testbed's recordings differ by channel): a random equaliser with band
limits, and telephone speech (8 kHz, 300-3400 Hz, 8-bit mu-law).

All randomness comes from the `numpy.random.Generator` passed to `Augmenter.__call__`,
so the dataset's per-item generator makes augmentation reproducible.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.signal
import soxr

from ssps.errors import ConfigError
from ssps.train.data.audio import read_audio, read_random_crop
from ssps.train.data.manifest import Utterance

logger = logging.getLogger(__name__)

STRATEGIES = ("none", "reverb", "noise", "reverb+noise", "random")
# What "random" draws from, in order.
RANDOM_CHOICES = ("none", "reverb", "noise", "reverb+noise")
ADDITIVE_KINDS = ("noise", "music", "speech")
IMPULSE_RESPONSE_SUFFIXES = (".wav", ".flac")
NOISE_COLOUR_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power ~ 1 / f^exponent
# 511 taps at 16 kHz resolve ~30 Hz: enough for a 50 Hz low cut to bite.
EQ_TAPS = 511
TELEPHONE_RATE = 8000


@dataclass
class AugmentConfig:
    strategy: str = "reverb+noise"
    rir_dir: str | None = None
    musan_dir: str | None = None
    # Where simulated rooms are cached; None: $XDG_CACHE_HOME/ssps/rooms (~/.cache/ssps/rooms).
    cache_dir: str | None = None
    sample_rate: int = 16000
    # SNR ranges in dB (paper IV-B). For babble the range applies to the sum of the talkers.
    snr_noise: tuple[float, float] = (0.0, 15.0)
    snr_music: tuple[float, float] = (5.0, 15.0)
    snr_speech: tuple[float, float] = (13.0, 20.0)
    babble_talkers: tuple[int, int] = (3, 7)
    # Relative chances of noise, music, speech (babble) when adding a source.
    additive_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Relative chances of none, reverb, noise, reverb+noise for strategy="random".
    random_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # Simulated rooms, used when rir_dir is None.
    simulated_rooms: int = 200
    rt60_range: tuple[float, float] = (0.2, 0.9)
    room_seed: int = 0
    # Channel effects, applied after the strategy with these probabilities (0 = paper).
    eq_probability: float = 0.0
    eq_gain_db: float = 6.0
    telephone_probability: float = 0.0

    def __post_init__(self):
        # YAML gives lists: store tuples so configs compare and hash as written.
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                setattr(self, field.name, tuple(value))
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"augment strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for name in ("snr_noise", "snr_music", "snr_speech", "babble_talkers", "rt60_range"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"augment {name}: low {low} > high {high}")
        if self.babble_talkers[0] < 1:
            raise ConfigError(f"augment babble_talkers must be >= 1, got {self.babble_talkers}")
        for name in ("eq_probability", "telephone_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment {name} must be in [0, 1], got {getattr(self, name)}")
        for name, size in (("additive_weights", 3), ("random_weights", 4)):
            weights = getattr(self, name)
            if len(weights) != size or min(weights) < 0 or sum(weights) <= 0:
                raise ConfigError(f"augment {name} needs {size} non-negative weights, got {weights}")


class Augmenter:
    """``augmenter(waveform, rng) -> waveform``: float32 in, float32 of the same length out.

    Build it once in the main process (it may simulate and cache rooms), then hand it to
    `SSLDataset(augment=...)`; it pickles into DataLoader workers. `speech` (the training
    utterances) feeds generated babble when there is no MUSAN ``speech/`` folder.
    """

    def __init__(self, config: AugmentConfig | None = None, *, speech: Sequence[Utterance] | None = None):
        self.config = config = config or AugmentConfig()
        # Only what the strategy can use is loaded (simulating rooms takes a while).
        uses_reverb = config.strategy in ("reverb", "reverb+noise", "random")
        uses_noise = config.strategy in ("noise", "reverb+noise", "random")
        self.impulse_responses = _impulse_responses(config) if uses_reverb else None
        self.additive_sources = _additive_sources(config, speech) if uses_noise else {}
        self.snr_ranges = {"noise": config.snr_noise, "music": config.snr_music, "speech": config.snr_speech}
        kinds = [kind for kind in ADDITIVE_KINDS if kind in self.additive_sources]
        weights = np.array([w for kind, w in zip(ADDITIVE_KINDS, config.additive_weights) if kind in kinds])
        if uses_noise and weights.sum() <= 0:
            raise ConfigError(f"augment: every available additive kind {kinds} has weight 0")
        self._additive_kinds, self._additive_probabilities = kinds, weights / max(weights.sum(), 1e-12)
        random_weights = np.asarray(config.random_weights, dtype=float)
        self._random_probabilities = random_weights / random_weights.sum()

    def describe(self) -> dict[str, str]:
        """Where each kind of augmentation comes from, for the training log."""
        return {
            "strategy": self.config.strategy,
            "reverb": self.impulse_responses.description if self.impulse_responses else "off",
            **{kind: source.description for kind, source in self.additive_sources.items()},
            "eq_probability": str(self.config.eq_probability),
            "telephone_probability": str(self.config.telephone_probability),
        }

    def __call__(self, waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        strategy = self.config.strategy
        if strategy == "random":
            strategy = RANDOM_CHOICES[rng.choice(len(RANDOM_CHOICES), p=self._random_probabilities)]
        if strategy in ("reverb", "reverb+noise"):
            waveform = reverberate(waveform, self.impulse_responses.draw(rng))
        if strategy in ("noise", "reverb+noise"):
            kind = self._additive_kinds[rng.choice(len(self._additive_kinds), p=self._additive_probabilities)]
            noise = self.additive_sources[kind].draw(waveform.size, rng)
            waveform = add_at_snr(waveform, noise, rng.uniform(*self.snr_ranges[kind]))
        if rng.random() < self.config.eq_probability:
            waveform = random_equaliser(waveform, rng, self.config.sample_rate, self.config.eq_gain_db)
        if rng.random() < self.config.telephone_probability:
            waveform = telephone(waveform, self.config.sample_rate)
        return waveform.astype(np.float32, copy=False)


# --- the transformations (pure functions) -------------------------------------------


def reverberate(waveform: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """Convolve with a room; same length, same energy, and no delay: the output starts
    at the direct path (the response's strongest peak), so speech stays where it was."""
    direct_path = int(np.argmax(np.abs(impulse_response)))
    wet = scipy.signal.fftconvolve(waveform, impulse_response)[direct_path : direct_path + waveform.size]
    return _same_energy_as(wet, waveform)


def add_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that 10 log10(P_signal / P_noise) = snr_db."""
    signal_power = np.mean(np.square(signal, dtype=np.float64))
    noise_power = np.mean(np.square(noise, dtype=np.float64))
    if signal_power == 0 or noise_power == 0:
        return signal  # silence stays silence; a silent noise adds nothing
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (signal + scale * noise).astype(np.float32)


def coloured_noise(num_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1 / f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.fft.rfftfreq(num_samples)
    frequencies[0] = np.inf  # no DC: brown noise would otherwise drift without bound
    spectrum *= frequencies ** (-exponent / 2)
    return np.fft.irfft(spectrum, n=num_samples).astype(np.float32)


def synthetic_music(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """1-3 voices of notes: harmonic tones with a decaying envelope, like a plucked
    instrument. Tonal and rhythmic, unlike noise, which is what music adds to MUSAN."""
    music = np.zeros(num_samples)
    for _ in range(rng.integers(1, 4)):
        position = 0
        while position < num_samples:
            length = min(int(rng.uniform(0.15, 0.8) * sample_rate), num_samples - position)
            time = np.arange(length) / sample_rate
            fundamental = 440.0 * 2 ** ((rng.integers(40, 84) - 69) / 12)  # MIDI notes E2-B5
            harmonics = np.arange(1, 7)
            harmonics = harmonics[harmonics * fundamental < sample_rate / 2]
            amplitudes = rng.uniform(0.2, 1.0, harmonics.size) / harmonics
            phases = rng.uniform(0, 2 * np.pi, harmonics.size)
            tone = amplitudes @ np.sin(2 * np.pi * fundamental * harmonics[:, None] * time + phases[:, None])
            music[position : position + length] += tone * np.exp(-time * rng.uniform(1.0, 6.0))
            position += length
    return music.astype(np.float32)


def random_equaliser(waveform: np.ndarray, rng: np.random.Generator, sample_rate: int, gain_db: float = 6.0) -> np.ndarray:
    """A random microphone/channel colour: band limits (low cut 50-400 Hz, high cut
    3-7.5 kHz) and a smooth random gain curve of +-`gain_db` dB in between.

    One linear-phase FIR designed by `scipy.signal.firwin2` from those gains; "same"
    convolution with a symmetric odd-length filter adds no delay."""
    nyquist = sample_rate / 2
    low_cut = rng.uniform(50.0, 400.0)
    high_cut = min(rng.uniform(3000.0, 7500.0), 0.95 * nyquist)
    inside = np.geomspace(low_cut, high_cut, 6)
    # Silent below half the low cut and above halfway from the high cut to Nyquist.
    frequencies = np.concatenate([[0.0, low_cut / 2], inside, [(high_cut + nyquist) / 2, nyquist]])
    gains = np.concatenate([[0.0, 0.0], 10 ** (rng.uniform(-gain_db, gain_db, inside.size) / 20), [0.0, 0.0]])
    curve = scipy.signal.firwin2(EQ_TAPS, frequencies, gains, fs=sample_rate)
    coloured = scipy.signal.fftconvolve(waveform, curve, mode="same")
    return _same_energy_as(coloured, waveform)


def telephone(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Narrow-band telephone speech: 8 kHz, 300-3400 Hz, 8-bit mu-law (G.711), back to
    `sample_rate` at the same length and energy."""
    narrow = soxr.resample(waveform.astype(np.float32), sample_rate, TELEPHONE_RATE)
    narrow = scipy.signal.sosfiltfilt(_telephone_band(), narrow)
    narrow = _mu_law_round_trip(narrow)
    wide = soxr.resample(narrow.astype(np.float32), TELEPHONE_RATE, sample_rate)
    wide = np.resize(wide, waveform.size) if wide.size < waveform.size else wide[: waveform.size]
    return _same_energy_as(wide, waveform)


@functools.lru_cache(maxsize=1)
def _telephone_band() -> np.ndarray:
    # Designing the filter costs more than applying it: design it once.
    return scipy.signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=TELEPHONE_RATE, output="sos")


def _mu_law_round_trip(waveform: np.ndarray, mu: int = 255) -> np.ndarray:
    # Compress, quantise to 8 bits, expand: the coarse steps are what a telephone line adds.
    peak = np.max(np.abs(waveform))
    if peak == 0:
        return waveform
    x = waveform / peak
    compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    quantised = np.round((compressed + 1) / 2 * mu) / mu * 2 - 1
    return peak * np.sign(quantised) * ((1 + mu) ** np.abs(quantised) - 1) / mu


def _same_energy_as(waveform: np.ndarray, reference: np.ndarray) -> np.ndarray:
    energy = np.sqrt(np.sum(np.square(waveform, dtype=np.float64)))
    if energy == 0:
        return waveform.astype(np.float32)
    target = np.sqrt(np.sum(np.square(reference, dtype=np.float64)))
    return (waveform * (target / energy)).astype(np.float32)


# --- impulse responses ---------------------------------------------------------------


class ImpulseResponseFiles:
    """Impulse responses read from a folder, one file per draw (the folder may be huge)."""

    def __init__(self, folder: str | Path, sample_rate: int):
        self.paths = sorted(
            str(path) for path in Path(folder).rglob("*") if path.suffix.lower() in IMPULSE_RESPONSE_SUFFIXES
        )
        if not self.paths:
            raise ConfigError(f"augment rir_dir {folder}: no wav/flac impulse responses found")
        self.sample_rate = sample_rate
        self.description = f"{len(self.paths)} impulse responses from {folder}"

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return read_audio(self.paths[rng.integers(len(self.paths))], self.sample_rate)


class SimulatedRooms:
    """Rooms simulated once by `ssps.train.rooms` and cached as one .npz per setting."""

    def __init__(self, count: int, sample_rate: int, seed: int, rt60_range: tuple[float, float], cache_dir: Path):
        if count < 1:
            raise ConfigError("augment simulated_rooms must be >= 1 when rir_dir is not given")
        low, high = rt60_range
        cache_file = cache_dir / f"rooms-{count}-{sample_rate}hz-seed{seed}-rt60-{low:g}-{high:g}.npz"
        if cache_file.exists():
            with np.load(cache_file) as stored:
                self.responses = [stored[f"room{i}"] for i in range(count)]
        else:
            logger.info("simulating %d rooms once, cached in %s", count, cache_file)
            # Imported here: pyroomacoustics is only needed the first time.
            from ssps.train.rooms import simulate_room_impulse_responses

            self.responses = simulate_room_impulse_responses(count, sample_rate, seed, rt60_range)
            _save_npz_atomically(cache_file, {f"room{i}": r for i, r in enumerate(self.responses)})
        self.cache_file = cache_file
        self.description = f"{count} simulated rooms (RT60 {low:g}-{high:g} s, cached in {cache_file})"

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return self.responses[rng.integers(len(self.responses))]


def _impulse_responses(config: AugmentConfig) -> ImpulseResponseFiles | SimulatedRooms:
    if config.rir_dir is not None:
        return ImpulseResponseFiles(config.rir_dir, config.sample_rate)
    cache_dir = Path(config.cache_dir) if config.cache_dir else _default_cache_dir()
    return SimulatedRooms(config.simulated_rooms, config.sample_rate, config.room_seed, config.rt60_range, cache_dir)


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ssps" / "rooms"


def _save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Several ranks may simulate at once: each writes its own file, the rename is atomic.
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        np.savez(file, **arrays)
    os.replace(temporary, path)


# --- additive sources: each has draw(num_samples, rng) -> float32 [num_samples] -------


class FileCrops:
    """Random crops of random files (MUSAN noise/ or music/)."""

    def __init__(self, paths: Sequence[str], sample_rate: int, description: str):
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.description = description

    def draw(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        path = self.paths[rng.integers(len(self.paths))]
        return read_random_crop(path, num_samples, rng, self.sample_rate)


class Babble:
    """3-7 overlapping talkers, each a random crop of a random speech file."""

    def __init__(self, files: Sequence[tuple[str, float | None]], talkers: tuple[int, int], sample_rate: int, description: str):
        self.files = list(files)  # (path, duration in seconds or None to read it)
        self.talkers = talkers
        self.sample_rate = sample_rate
        self.description = description

    def draw(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        count = int(rng.integers(self.talkers[0], self.talkers[1] + 1))
        chosen = rng.choice(len(self.files), size=count, replace=len(self.files) < count)
        babble = np.zeros(num_samples, dtype=np.float32)
        for index in chosen:
            path, duration = self.files[index]
            talker = read_random_crop(path, num_samples, rng, self.sample_rate, duration=duration)
            # Talkers at equal level, so that no single voice dominates the babble.
            babble += talker / max(np.sqrt(np.mean(np.square(talker))), 1e-8)
        return babble


class ColouredNoise:
    description = "generated white/pink/brown noise"

    def draw(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        exponent = list(NOISE_COLOUR_EXPONENTS.values())[rng.integers(len(NOISE_COLOUR_EXPONENTS))]
        return coloured_noise(num_samples, exponent, rng)


class SyntheticMusic:
    description = "generated music (harmonic notes)"

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate

    def draw(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        return synthetic_music(num_samples, self.sample_rate, rng)


def _additive_sources(config: AugmentConfig, speech: Sequence[Utterance] | None) -> dict:
    """One source per kind: MUSAN files when there are some, generated otherwise."""
    musan_files = _musan_files(config.musan_dir)
    rate = config.sample_rate
    sources = {}
    if musan_files["noise"]:
        sources["noise"] = FileCrops(musan_files["noise"], rate, f"{len(musan_files['noise'])} noise files")
    else:
        sources["noise"] = ColouredNoise()
    if musan_files["music"]:
        sources["music"] = FileCrops(musan_files["music"], rate, f"{len(musan_files['music'])} music files")
    else:
        sources["music"] = SyntheticMusic(rate)
    if musan_files["speech"]:
        files = [(path, None) for path in musan_files["speech"]]
        sources["speech"] = Babble(files, config.babble_talkers, rate, f"babble of {len(files)} speech files")
    elif speech:
        files = [(u.path, u.duration) for u in speech]
        sources["speech"] = Babble(files, config.babble_talkers, rate, f"babble of {len(files)} training utterances")
    else:
        logger.warning("augment: no speech/ folder and no training utterances given: no babble")
    return sources


def _musan_files(musan_dir: str | None) -> dict[str, list[str]]:
    files = {kind: [] for kind in ADDITIVE_KINDS}
    if musan_dir is None:
        return files
    root = Path(musan_dir)
    if not root.is_dir():
        raise ConfigError(f"augment musan_dir {musan_dir}: not a directory")
    for kind in ADDITIVE_KINDS:
        files[kind] = sorted(
            str(path) for path in (root / kind).rglob("*") if path.suffix.lower() in (".wav", ".flac", ".ogg")
        )
        if not files[kind]:
            logger.warning("augment: no files in %s, %s will be generated", root / kind, kind)
    return files
