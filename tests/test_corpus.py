"""The offline corpus builder (ssps.train.corpus) on a tiny build.

Needs the system packages of scripts/install_corpus_deps.sh; skips only when they are
absent. The tiny builds take a few seconds of CPU.
"""

from __future__ import annotations

import csv
import ctypes.util
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")

from ssps.train.corpus import (
    BuildOptions,
    MissingSystemPackages,
    OutputNotEmpty,
    build_corpus,
    real,
    voices,
)
from ssps.train.corpus import build as build_module
from ssps.train.corpus.__main__ import main
from ssps.train.corpus.plan import plan_recordings
from ssps.train.rooms import simulate_room_impulse_responses


def _missing_system_packages() -> list[str]:
    missing = [p for p in voices.REQUIRED_PROGRAMS if shutil.which(p) is None]
    if ctypes.util.find_library("RHVoice") is None:
        missing.append("libRHVoice")
    missing += [str(p) for p in (real.UQM_ZIP, real.ASTERISK_SOUNDS) if not p.exists()]
    return missing


MISSING = _missing_system_packages()
needs_tts = pytest.mark.skipif(
    bool(MISSING),
    reason=f"corpus system packages absent ({', '.join(MISSING)}); "
    "run scripts/install_corpus_deps.sh",
)

TINY = {
    "seed": 3,
    "speakers": 5,
    "recordings_per_speaker": 2,
    "utterances_per_recording": 2,
    "dev_speakers": 2,
    "cal_speakers": 2,
    "real_limit": 2,
}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus(BuildOptions(out=out, workers=2, **TINY))
    return out


def _manifest(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _speaker_recording(path: str) -> tuple[str, str]:
    speaker, recording, _ = path.split("/")
    return speaker, f"{speaker}/{recording}"


# -- Layout and formats ----------------------------------------------------------------


FSDD_PRESENT = real.FSDD_RECORDINGS.is_dir()


@needs_tts
def test_layout_manifests_and_audio_format(tiny_corpus):
    names = {p.name for p in tiny_corpus.iterdir()}
    expected = {
        "wav",
        "train.csv",
        "synth_dev.csv",
        "synth_cal.csv",
        "real_uqm.csv",
        "trials_synth_dev.txt",
        "trials_synth_cal.txt",
        "trials_real_uqm.txt",
        "meta.json",
    }
    if FSDD_PRESENT:  # shared/data/fsdd sits beside the checkout on our machines and in CI
        expected |= {"fsdd.csv", "trials_fsdd.txt"}
    assert expected <= names
    for manifest in tiny_corpus.glob("*.csv"):
        with manifest.open() as handle:
            header = next(csv.reader(handle))
        assert header[:4] == ["path", "speaker", "recording", "duration"]
        for row in _manifest(manifest):
            wav = tiny_corpus / row["path"]
            info = sf.info(wav)
            assert (info.samplerate, info.channels, info.subtype) == (
                16000,
                1,
                "PCM_16",
            )
            assert abs(info.duration - float(row["duration"])) < 0.01
            assert row["path"] == f"wav/{row['recording']}/{wav.name}"
            if row["source"] == "tts":
                assert 2.0 <= info.duration <= 8.5  # <= 8 s of speech + reverb tail


@needs_tts
def test_held_out_speakers_never_in_train(tiny_corpus):
    speakers = {
        m.stem: {r["speaker"] for r in _manifest(m)} for m in tiny_corpus.glob("*.csv")
    }
    for held_out in ("synth_dev", "synth_cal", "real_uqm") + (("fsdd",) if FSDD_PRESENT else ()):
        assert speakers[held_out]
        assert not speakers[held_out] & speakers["train"]
    assert not speakers["synth_dev"] & speakers["synth_cal"]
    meta = json.loads((tiny_corpus / "meta.json").read_text())
    assert meta["seed"] == TINY["seed"]
    assert sorted(meta["held_out"]["synth_dev"]) == sorted(speakers["synth_dev"])


@needs_tts
def test_trial_lists_are_voxceleb_format_with_cross_recording_targets(tiny_corpus):
    for trials_file in tiny_corpus.glob("trials_*.txt"):
        lines = trials_file.read_text().splitlines()
        assert lines, trials_file.name
        labels = set()
        for line in lines:
            assert re.fullmatch(r"[01] \S+\.wav \S+\.wav", line), line
            label, a, b = line.split()
            assert (tiny_corpus / "wav" / a).exists() and (
                tiny_corpus / "wav" / b
            ).exists()
            (speaker_a, recording_a), (speaker_b, recording_b) = map(
                _speaker_recording, (a, b)
            )
            assert (label == "1") == (speaker_a == speaker_b)
            if trials_file.stem.startswith("trials_synth") and label == "1":
                assert recording_a != recording_b
            labels.add(label)
        assert labels == {"0", "1"}, trials_file.name


# -- Determinism -----------------------------------------------------------------------


def _fingerprint(corpus: Path) -> dict[str, str]:
    return {
        str(p.relative_to(corpus)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(corpus.rglob("*"))
        if p.is_file() and p.name != "meta.json"
    }


@needs_tts
def test_same_seed_gives_same_files_whatever_the_worker_count(tiny_corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(BuildOptions(out=again, workers=1, **TINY))
    assert _fingerprint(again) == _fingerprint(tiny_corpus)


def test_another_seed_gives_another_plan():
    person = voices.Person("mbrola-xx1", "M", [voices.Voice("mbrola", "mb-xx1", "en")])
    plans = [
        plan_recordings([person], {"mbrola-xx1": "train"}, 3, 2, 10, seed)
        for seed in (0, 0, 1)
    ]
    assert plans[0] == plans[1]
    assert plans[0] != plans[2]


def test_rooms_are_seeded_and_trimmed():
    first = simulate_room_impulse_responses(2, 16000, seed=5, rt60_range=(0.2, 0.4))
    second = simulate_room_impulse_responses(2, 16000, seed=5, rt60_range=(0.2, 0.4))
    assert len(first) == 2
    for a, b in zip(first, second):
        assert a.dtype == np.float32 and np.array_equal(a, b)
        assert np.argmax(np.abs(a)) <= 16 and np.abs(a).max() == pytest.approx(1.0)


# -- Bad input -------------------------------------------------------------------------


@needs_tts
def test_refuses_non_empty_output_unless_overwrite(tiny_corpus, tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    assert main(["build", "--out", str(occupied), "--speakers", "2", "--no-real"]) == 2
    assert "not empty" in capsys.readouterr().err
    # --overwrite only ever deletes a previous corpus, never an unrelated folder.
    with pytest.raises(OutputNotEmpty):
        build_corpus(
            BuildOptions(out=occupied, overwrite=True, speakers=2, real_sources=False)
        )
    assert (occupied / "notes.txt").exists()


def test_missing_system_program_names_the_install_script(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(voices, "REQUIRED_PROGRAMS", ("ssps-no-such-tts-program",))
    assert main(["build", "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err
    assert (
        "ssps-no-such-tts-program" in error
        and "scripts/install_corpus_deps.sh" in error
    )
    with pytest.raises(MissingSystemPackages):
        build_corpus(BuildOptions(out=tmp_path / "c2"))


@needs_tts
def test_failing_voice_is_skipped_and_counted(monkeypatch, tmp_path):
    real_people = voices.discover_people()
    broken = voices.Person("mbrola-zz9", "M", [voices.Voice("mbrola", "mb-zz9", "en")])
    monkeypatch.setattr(
        build_module, "discover_people", lambda: [broken, *real_people[:2]]
    )
    meta = build_corpus(
        BuildOptions(
            out=tmp_path / "c",
            seed=0,
            recordings_per_speaker=2,
            utterances_per_recording=1,
            dev_speakers=1,
            cal_speakers=0,
            real_sources=False,
        )
    )
    assert "mbrola:mb-zz9" in meta["skipped_voices"]
    assert "mbrola-zz9" not in meta["speakers"] and len(meta["speakers"]) == 2


def test_diagnose_scores_trials_with_the_package_metrics():
    from ssps.train.corpus.diagnose import _trial_metrics

    embeddings = {"a": np.array([1.0, 0.0]), "a2": np.array([0.9, 0.1]), "b": np.array([0.0, 1.0]), "c": np.array([0.6, 0.8])}
    trials = [(1, "a", "a2"), (0, "a", "b"), (0, "a2", "c"), (1, "b", "c")]
    # Cosines: 0.994 (target), 0 (non-target), 0.665 (non-target), 0.8 (target): separable.
    result = _trial_metrics(trials, embeddings)
    assert result["eer"] == 0.0 and result["min_dcf_0.01"] == 0.0
    assert (result["targets"], result["nontargets"]) == (2, 2)
