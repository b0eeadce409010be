"""Waveform augmentation of the training recipe (ssps.train.augment)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soundfile

pytest.importorskip("torch")

from ssps.errors import ConfigError  # noqa: E402
from ssps.train.augment import (  # noqa: E402
    AugmentConfig,
    Augmenter,
    ImpulseResponseFiles,
    SimulatedRooms,
    add_at_snr,
    coloured_noise,
    random_equaliser,
    reverberate,
    telephone,
)
from ssps.train.data import Utterance  # noqa: E402

RATE = 16000


def speech_like(seed: int, seconds: float = 1.0) -> np.ndarray:
    """Noise bursts with pauses: enough structure to locate in time."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(int(seconds * RATE)) * 0.1
    envelope = (np.sin(2 * np.pi * 3 * np.arange(signal.size) / RATE) > 0).astype(float)
    return (signal * envelope).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


def toy_room(direct_path: int = 40) -> np.ndarray:
    """Some silence, a direct path, then a decaying tail of reflections."""
    rng = np.random.default_rng(0)
    tail = rng.standard_normal(3000) * 0.3 * np.exp(-np.arange(3000) / 600)
    return np.concatenate([np.zeros(direct_path), [1.0], tail]).astype(np.float32)


@pytest.fixture
def rooms_dir(tmp_path):
    return tmp_path / "rooms"


@pytest.fixture
def speech(tmp_path):
    """Training utterances to mix babble from."""
    utterances = []
    for number in range(4):
        path = tmp_path / "speech" / f"u{number}.wav"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, speech_like(100 + number, 1.5), RATE)
        utterances.append(Utterance(str(path), 1.5, f"s{number}", "r"))
    return utterances


def fake_simulation(monkeypatch):
    """Stand-in for pyroomacoustics: 3 toy rooms, and a counter of calls."""
    calls = []

    def simulate(count, sample_rate, seed, rt60_range=(0.2, 0.9)):
        calls.append(count)
        return [toy_room(10 + i) for i in range(count)]

    import ssps.train.rooms

    monkeypatch.setattr(ssps.train.rooms, "simulate_room_impulse_responses", simulate)
    return calls


def test_add_at_snr_achieves_the_requested_snr():
    clean, noise = speech_like(0), np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 3
    for target in (0.0, 7.5, 20.0):
        assert snr_db(clean, add_at_snr(clean, noise, target)) == pytest.approx(target, abs=1e-3)
    assert np.array_equal(add_at_snr(np.zeros(10, np.float32), noise[:10], 5.0), np.zeros(10))


@pytest.mark.parametrize(
    "weights, low, high",
    [((1, 0, 0), 0.0, 15.0), ((0, 1, 0), 5.0, 15.0), ((0, 0, 1), 13.0, 20.0)],
    ids=["noise", "music", "babble"],
)
def test_each_generated_kind_lands_in_its_paper_snr_range(weights, low, high, speech, rooms_dir):
    augmenter = Augmenter(
        AugmentConfig(strategy="noise", additive_weights=weights, simulated_rooms=2, cache_dir=str(rooms_dir)),
        speech=speech,
    )
    clean = speech_like(0)
    measured = [snr_db(clean, augmenter(clean, np.random.default_rng(seed))) for seed in range(12)]
    assert low - 1e-3 <= min(measured) and max(measured) <= high + 1e-3
    assert max(measured) - min(measured) > (high - low) / 4  # drawn across the range, not fixed


def test_musan_folders_are_used_when_given(tmp_path, rooms_dir):
    musan = tmp_path / "musan"
    for kind, seed in (("noise", 1), ("music", 2), ("speech", 3)):
        (musan / kind / "part").mkdir(parents=True)
        soundfile.write(musan / kind / "part" / "a.wav", speech_like(seed, 0.5), RATE)
    augmenter = Augmenter(AugmentConfig(strategy="noise", musan_dir=str(musan), cache_dir=str(rooms_dir), simulated_rooms=1))
    assert augmenter.describe()["noise"] == "1 noise files"
    assert augmenter.describe()["speech"] == "babble of 1 speech files"
    clean = speech_like(0)
    for seed in range(6):
        assert 0.0 - 1e-3 <= snr_db(clean, augmenter(clean, np.random.default_rng(seed))) <= 20.0 + 1e-3


def test_reverberation_keeps_length_alignment_and_energy():
    clean = speech_like(0)
    wet = reverberate(clean, toy_room(direct_path=40))
    assert wet.shape == clean.shape and wet.dtype == np.float32
    assert np.sum(wet.astype(np.float64) ** 2) == pytest.approx(np.sum(clean.astype(np.float64) ** 2), rel=1e-4)
    correlation = scipy.signal.correlate(wet, clean, mode="full")
    lag = int(np.argmax(correlation)) - (clean.size - 1)
    assert lag == 0  # without direct-path alignment this would be 40 samples
    assert not np.allclose(wet, clean, atol=1e-3)


def test_simulated_rooms_are_cached_and_reused(rooms_dir, monkeypatch):
    calls = fake_simulation(monkeypatch)
    first = SimulatedRooms(3, RATE, seed=0, rt60_range=(0.2, 0.9), cache_dir=rooms_dir)
    second = SimulatedRooms(3, RATE, seed=0, rt60_range=(0.2, 0.9), cache_dir=rooms_dir)
    assert calls == [3]  # simulated once, loaded the second time
    assert second.cache_file.exists()
    assert all(np.array_equal(a, b) for a, b in zip(first.responses, second.responses))
    SimulatedRooms(3, RATE, seed=1, rt60_range=(0.2, 0.9), cache_dir=rooms_dir)
    assert calls == [3, 3]  # another setting, another cache file


def test_real_room_simulation_feeds_the_augmenter(rooms_dir):
    pytest.importorskip("pyroomacoustics")
    augmenter = Augmenter(AugmentConfig(strategy="reverb", simulated_rooms=2, rt60_range=(0.2, 0.3), cache_dir=str(rooms_dir)))
    clean = speech_like(0)
    wet = augmenter(clean, np.random.default_rng(0))
    assert wet.shape == clean.shape and not np.allclose(wet, clean, atol=1e-3)


def test_impulse_responses_from_a_folder(tmp_path):
    for number in range(2):
        path = tmp_path / "rirs" / "small" / f"room{number}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, toy_room(20 + number) * 0.5, RATE)
    rooms = ImpulseResponseFiles(tmp_path / "rirs", RATE)
    assert len(rooms.paths) == 2
    assert int(np.argmax(np.abs(rooms.draw(np.random.default_rng(0))))) in (20, 21)
    with pytest.raises(ConfigError, match="no wav/flac"):
        ImpulseResponseFiles(tmp_path / "rirs" / "nothing", RATE)


class Spy:
    """Records which stages ran, so each strategy can be checked."""

    def __init__(self):
        self.reverbs = self.noises = 0

    def draw(self, *args):
        if len(args) == 1:  # impulse responses: draw(rng)
            self.reverbs += 1
            return toy_room()
        self.noises += 1  # additive sources: draw(num_samples, rng)
        return np.random.default_rng(0).standard_normal(args[0]).astype(np.float32)


@pytest.mark.parametrize(
    "strategy, reverbs, noises",
    [("none", 0, 0), ("reverb", 20, 0), ("noise", 0, 20), ("reverb+noise", 20, 20)],
)
def test_each_strategy_runs_its_stages(strategy, reverbs, noises, speech, rooms_dir, monkeypatch):
    simulations = fake_simulation(monkeypatch)
    augmenter = Augmenter(AugmentConfig(strategy=strategy, cache_dir=str(rooms_dir), simulated_rooms=3), speech=speech)
    assert bool(simulations) == (reverbs > 0)  # rooms are only simulated when reverb is used
    spy = Spy()
    augmenter.impulse_responses = spy
    augmenter.additive_sources = {kind: spy for kind in augmenter.additive_sources}
    clean = speech_like(0)
    outputs = [augmenter(clean, np.random.default_rng(seed)) for seed in range(20)]
    assert (spy.reverbs, spy.noises) == (reverbs, noises)
    assert all(out.shape == clean.shape and out.dtype == np.float32 for out in outputs)
    assert all(np.array_equal(out, clean) for out in outputs) == (strategy == "none")


def test_random_strategy_draws_all_four_conditions(speech, rooms_dir, monkeypatch):
    fake_simulation(monkeypatch)
    augmenter = Augmenter(AugmentConfig(strategy="random", cache_dir=str(rooms_dir), simulated_rooms=3), speech=speech)
    clean = speech_like(0, 0.25)
    conditions = []
    for seed in range(200):
        spy = Spy()
        augmenter.impulse_responses = spy
        augmenter.additive_sources = {kind: spy for kind in augmenter.additive_sources}
        augmenter(clean, np.random.default_rng(seed))
        conditions.append((spy.reverbs, spy.noises))
    counts = {condition: conditions.count(condition) for condition in set(conditions)}
    assert set(counts) == {(0, 0), (1, 0), (0, 1), (1, 1)}
    assert min(counts.values()) > 30  # uniform: 50 expected each


def test_augmentation_is_deterministic_given_the_generator(speech, rooms_dir, monkeypatch):
    fake_simulation(monkeypatch)
    config = AugmentConfig(
        strategy="random", cache_dir=str(rooms_dir), simulated_rooms=3, eq_probability=0.5, telephone_probability=0.5
    )
    augmenter = Augmenter(config, speech=speech)
    clean = speech_like(0)
    for seed in range(8):
        assert np.array_equal(augmenter(clean, np.random.default_rng(seed)), augmenter(clean, np.random.default_rng(seed)))
    outputs = {augmenter(clean, np.random.default_rng(seed)).tobytes() for seed in range(8)}
    assert len(outputs) > 4


def test_coloured_noise_has_the_requested_slope():
    for exponent in (0.0, 1.0, 2.0):
        noise = coloured_noise(8 * RATE, exponent, np.random.default_rng(0))
        frequencies, power = scipy.signal.welch(noise, fs=RATE, nperseg=4096)
        band = (frequencies > 100) & (frequencies < 6000)
        slope = np.polyfit(np.log10(frequencies[band]), np.log10(power[band]), 1)[0]
        assert slope == pytest.approx(-exponent, abs=0.15)


def test_channel_effects_keep_length_and_timing():
    clean = speech_like(0)
    for effect in (lambda x: random_equaliser(x, np.random.default_rng(2), RATE), lambda x: telephone(x, RATE)):
        out = effect(clean)
        assert out.shape == clean.shape
        lag = int(np.argmax(scipy.signal.correlate(out, clean, mode="full"))) - (clean.size - 1)
        assert abs(lag) <= 1
    frequencies, power = scipy.signal.welch(telephone(clean, RATE), fs=RATE, nperseg=1024)
    assert power[frequencies > 4500].max() < 1e-4 * power[(frequencies > 500) & (frequencies < 3000)].mean()
    # The equaliser limits the band: little is left near DC and near Nyquist.
    for seed in range(4):
        out = random_equaliser(clean, np.random.default_rng(seed), RATE)
        frequencies, power = scipy.signal.welch(out, fs=RATE, nperseg=2048)
        speech_band = power[(frequencies > 500) & (frequencies < 2500)].mean()
        assert power[frequencies < 20].max() < 0.01 * speech_band
        assert power[frequencies > 7800].max() < 0.01 * speech_band


def test_config_validation():
    assert AugmentConfig(snr_noise=[0, 5]).snr_noise == (0, 5)  # YAML lists become tuples
    with pytest.raises(ConfigError, match="strategy"):
        AugmentConfig(strategy="everything")
    with pytest.raises(ConfigError, match="snr_music"):
        AugmentConfig(snr_music=(15, 5))
    with pytest.raises(ConfigError, match="telephone_probability"):
        AugmentConfig(telephone_probability=1.5)


def test_dataset_with_augmenter_in_workers(speech, rooms_dir, monkeypatch):
    import torch
    from torch.utils.data import DataLoader

    from ssps.train.data import SSLDataset, collate

    fake_simulation(monkeypatch)
    augmenter = Augmenter(AugmentConfig(strategy="random", cache_dir=str(rooms_dir), simulated_rooms=3), speech=speech)
    dataset = SSLDataset(speech, frame_seconds=0.5, augment=augmenter, seed=5)
    expected = collate([dataset[i] for i in range(len(dataset))])
    (batch,) = DataLoader(dataset, batch_size=len(dataset), num_workers=2, collate_fn=collate)
    assert torch.equal(batch["views"][0], expected["views"][0])
