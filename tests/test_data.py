"""Manifest and datasets of the training recipe (ssps.train.data), on tiny generated trees."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch")

from ssps.errors import AudioError  # noqa: E402
from ssps.train.data import (  # noqa: E402
    DataError,
    EvalDataset,
    SSLDataset,
    Utterance,
    build_manifest,
    collate,
    collate_eval,
    read_audio,
    read_manifest,
    write_manifest,
)
from ssps.train.data import manifest as manifest_module  # noqa: E402

RATE = 16000
SPEAKERS = ("alice", "bob", "carol")
RECORDINGS = ("rec1", "rec2")  # the same folder names under every speaker, on purpose
UTTERANCES_PER_RECORDING = 2


def write_utterance(path, level: float, seconds: float, rate: int = RATE) -> None:
    """A constant `level` (identifies the utterance: the mean of any crop) plus a slow sine
    (makes crops at different positions differ)."""
    time = np.arange(int(seconds * rate)) / rate
    signal = level + 0.01 * np.sin(2 * np.pi * 5.3 * time)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal.astype(np.float32), rate, subtype="FLOAT")


def level_of(waveform) -> float:
    return round(float(np.asarray(waveform).mean()), 2)


@pytest.fixture
def tree(tmp_path):
    """root/speaker/recording/uttN.wav; returns (root, {path: level})."""
    root = tmp_path / "corpus"
    levels = {}
    number = 0
    for speaker in SPEAKERS:
        for recording in RECORDINGS:
            for utterance in range(UTTERANCES_PER_RECORDING):
                number += 1
                path = root / speaker / recording / f"utt{utterance}.wav"
                write_utterance(path, level=number / 50, seconds=1.0 + 0.25 * number)
                levels[os.path.abspath(path)] = number / 50
    return root, levels


# --- manifest ------------------------------------------------------------------------


def test_build_manifest_labels_durations_and_round_trip(tree, tmp_path):
    root, levels = tree
    utterances = build_manifest(root)
    assert len(utterances) == len(levels)
    assert [u.path for u in utterances] == sorted(levels)
    first = utterances[0]
    assert (first.speaker, first.recording) == ("alice", "rec1")
    assert first.duration == pytest.approx(1.25)

    csv_path = root / "train.csv"
    write_manifest(utterances, csv_path)
    with open(csv_path) as file:
        rows = list(csv.DictReader(file))
    assert rows[0]["path"] == os.path.join("alice", "rec1", "utt0.wav")  # relative to the CSV
    assert read_manifest(csv_path) == utterances


def test_read_manifest_without_labels_measures_and_caches_durations(tree, tmp_path, monkeypatch):
    root, levels = tree
    paths = sorted(levels)
    csv_path = tmp_path / "list.csv"
    # One absolute path, the others relative to the CSV's folder; no labels, no durations.
    lines = ["path", paths[0]] + [os.path.relpath(p, tmp_path) for p in paths[1:]]
    csv_path.write_text("\n".join(lines) + "\n")

    utterances = read_manifest(csv_path)
    assert [u.path for u in utterances] == paths
    assert all(u.speaker is None and u.recording is None for u in utterances)
    assert utterances[1].duration == pytest.approx(1.5)
    assert (tmp_path / "list.csv.durations.json").exists()

    # Second read: durations come from the cache, no file is measured...
    def no_measuring(path):
        raise AssertionError(f"measured {path} again")

    monkeypatch.setattr(manifest_module, "audio_duration", no_measuring)
    assert read_manifest(csv_path) == utterances
    # ...except a file that changed since.
    monkeypatch.undo()
    write_utterance(root / "alice" / "rec1" / "utt0.wav", level=0.5, seconds=3.0)
    assert read_manifest(csv_path)[0].duration == pytest.approx(3.0)


def test_read_manifest_with_labels(tree, tmp_path):
    root, levels = tree
    csv_path = tmp_path / "labelled.csv"
    with open(csv_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "speaker", "recording"])
        for path in sorted(levels):
            *_, speaker, recording, _ = path.split(os.sep)
            writer.writerow([path, speaker, recording])
    utterances = read_manifest(csv_path)
    assert {u.speaker for u in utterances} == set(SPEAKERS)
    assert utterances[-1].recording == "rec2"


def test_bad_files_are_skipped_up_to_a_threshold(tree):
    root, levels = tree
    (root / "bob" / "rec1" / "broken.wav").write_bytes(b"this is not a wav file")
    with pytest.raises(DataError, match="1 of 13 files"):
        build_manifest(root)  # 7.7 % bad > the default 1 %
    with pytest.warns(UserWarning, match="skipped 1 of 13"):
        utterances = build_manifest(root, max_bad_fraction=0.1)
    assert len(utterances) == len(levels)


def test_missing_file_in_csv_is_skipped(tree, tmp_path):
    root, levels = tree
    csv_path = tmp_path / "with_missing.csv"
    csv_path.write_text("path,duration\n" + "".join(f"{p},1.5\n" for p in sorted(levels)) + "gone.wav,2.0\n")
    with pytest.raises(DataError, match="missing or unreadable"):
        read_manifest(csv_path)
    with pytest.warns(UserWarning, match="file not found"):
        assert len(read_manifest(csv_path, max_bad_fraction=0.5)) == len(levels)


def test_short_utterances_are_dropped_with_a_count(tree):
    root, levels = tree
    write_utterance(root / "carol" / "rec1" / "short.wav", level=0.9, seconds=0.3)
    with pytest.warns(UserWarning, match="dropped 1 utterances shorter than 0.5 s"):
        utterances = build_manifest(root)
    assert len(utterances) == len(levels)


def test_m4a_gets_a_conversion_message(tree, tmp_path):
    root, _ = tree
    # An .m4a next to its converted .wav is the usual VoxCeleb2 layout: fine.
    (root / "alice" / "rec1" / "utt0.m4a").write_bytes(b"\x00")
    build_manifest(root)
    # An .m4a alone would be lost silently: refused, with the way out.
    (root / "alice" / "rec1" / "utt9.m4a").write_bytes(b"\x00")
    with pytest.raises(DataError, match="ffmpeg"):
        build_manifest(root)
    with pytest.raises(AudioError, match="convert"):
        read_audio(root / "alice" / "rec1" / "utt9.m4a")
    csv_path = tmp_path / "m4a.csv"
    csv_path.write_text("path\nsome/utt.m4a\n")
    with pytest.raises(DataError, match="not decodable"):
        read_manifest(csv_path)


def test_manifest_command_line(tree, tmp_path, capsys):
    root, levels = tree
    output = tmp_path / "train.csv"
    assert manifest_module.main([str(root), "-o", str(output)]) == 0
    assert "12 utterances, 3 speakers, 6 recordings" in capsys.readouterr().out
    assert len(read_manifest(output)) == len(levels)
    (tmp_path / "empty").mkdir()
    assert manifest_module.main([str(tmp_path / "empty"), "-o", str(output)]) == 1
    assert "no audio files" in capsys.readouterr().err


def test_read_audio_resamples_and_crops(tmp_path):
    path = tmp_path / "8k.flac"
    soundfile.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32), 8000)
    assert read_audio(path, RATE).shape == (16000,)
    assert read_audio(path, RATE, start=4000, num_samples=3000).shape == (3000,)


# --- SSLDataset ----------------------------------------------------------------------


@pytest.fixture
def utterances(tree):
    return build_manifest(tree[0])


def test_views_and_reference_shapes(utterances):
    plain = SSLDataset(utterances)
    item = plain[0]
    assert set(item) == {"views", "index"}  # no labels, no reference unless asked
    assert [v.shape for v in item["views"]] == [(2 * RATE,), (2 * RATE,)]
    assert all(v.dtype == torch.float32 for v in item["views"])

    dino = SSLDataset(utterances, view_seconds=[4, 4, 2, 2, 2, 2], reference_seconds=4.0)
    item = dino[3]
    assert [v.numel() for v in item["views"]] == [4 * RATE] * 2 + [2 * RATE] * 4
    assert item["reference"].shape == (4 * RATE,)
    assert set(item) == {"views", "index", "reference"}


def test_views_are_augmented_and_the_reference_is_not(utterances, tree):
    _, levels = tree
    shift_up = lambda waveform, rng: waveform + 1.0  # noqa: E731
    dataset = SSLDataset(utterances, augment=shift_up, reference_seconds=4.0)
    item = dataset[5]
    level = levels[utterances[5].path]
    assert [level_of(v) for v in item["views"]] == [round(level + 1, 2)] * 2
    assert level_of(item["reference"]) == round(level, 2)


def test_labels_are_attributes_never_in_the_batch(utterances):
    dataset = SSLDataset(utterances, reference_seconds=4.0)
    batch = collate([dataset[i] for i in range(4)])
    assert set(batch) == {"views", "index", "reference"}
    assert [v.shape for v in batch["views"]] == [(4, 2 * RATE)] * 2
    assert batch["index"].tolist() == [0, 1, 2, 3]
    assert batch["reference"].shape == (4, 4 * RATE)
    # Recording folders are named alike under every speaker, yet are distinct recordings.
    assert len(set(dataset.speaker_ids.tolist())) == 3
    assert len(set(dataset.recording_ids.tolist())) == 6
    unlabelled = SSLDataset([Utterance(u.path, u.duration) for u in utterances])
    assert (unlabelled.speaker_ids == -1).all() and (unlabelled.recording_ids == -1).all()


def test_randomness_depends_only_on_seed_epoch_and_index(utterances):
    def views(dataset, index):
        return torch.cat(dataset[index]["views"])

    dataset = SSLDataset(utterances, seed=3)
    again = SSLDataset(utterances, seed=3)
    assert torch.equal(views(dataset, 4), views(again, 4))
    # The order of access does not matter (workers, shuffling, resuming mid-epoch).
    later_first = [views(again, i) for i in (7, 2)]
    assert torch.equal(views(dataset, 2), later_first[1])
    # A new epoch or a new seed gives new crops; coming back gives the old ones.
    dataset.set_epoch(1)
    assert not torch.equal(views(dataset, 4), views(again, 4))
    dataset.set_epoch(0)
    assert torch.equal(views(dataset, 4), views(again, 4))
    assert not torch.equal(views(SSLDataset(utterances, seed=4), 4), views(again, 4))


def test_supervised_positives_come_from_another_recording(utterances, tree):
    _, levels = tree
    by_level = {round(level, 2): i for i, level in enumerate(levels[u.path] for u in utterances)}
    dataset = SSLDataset(utterances, positive="supervised", num_views=3)
    assert dataset.positive_fallbacks == {"other_utterance_same_recording": 0, "same_utterance": 0}
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            anchor, *positives = (by_level[level_of(v)] for v in dataset[index]["views"])
            assert anchor == index
            assert len(set(positives)) == 1  # all other views: one positive utterance
            positive = positives[0]
            assert dataset.speaker_ids[positive] == dataset.speaker_ids[index]
            assert dataset.recording_ids[positive] != dataset.recording_ids[index]


def test_supervised_fallbacks_are_counted(utterances, tree):
    root, _ = tree
    write_utterance(root / "dave" / "only" / "a.wav", level=0.9, seconds=1.0)
    write_utterance(root / "dave" / "only" / "b.wav", level=0.92, seconds=1.0)
    write_utterance(root / "erin" / "only" / "a.wav", level=0.94, seconds=1.0)
    with pytest.warns(UserWarning, match="no other recording"):
        dataset = SSLDataset(build_manifest(root), positive="supervised")
    assert dataset.positive_fallbacks == {"other_utterance_same_recording": 2, "same_utterance": 1}
    with pytest.raises(DataError, match="speaker label"):
        SSLDataset([Utterance(u.path, u.duration) for u in utterances], positive="supervised")


def test_dataloader_workers_and_distributed_sampler_see_the_same_items(utterances):
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    dataset = SSLDataset(utterances, seed=1, reference_seconds=1.0)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate, persistent_workers=True)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)  # reaches the persistent workers started in epoch 0
        expected = collate([dataset[i] for i in range(len(dataset))])
        batches = list(loader)
        for view in range(2):
            assert torch.equal(torch.cat([b["views"][view] for b in batches]), expected["views"][view])
        assert torch.equal(torch.cat([b["reference"] for b in batches]), expected["reference"])

    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        for batch in DataLoader(dataset, batch_size=3, sampler=sampler, collate_fn=collate):
            for row, index in enumerate(batch["index"].tolist()):
                assert torch.equal(batch["views"][0][row], dataset[index]["views"][0])
                seen.append(index)
    assert sorted(seen) == list(range(len(dataset)))


def test_eval_dataset_gives_full_length_utterances(utterances, tree):
    root, _ = tree
    relative = [os.path.relpath(u.path, root) for u in utterances[:3]]
    dataset = EvalDataset(relative, root=root)
    assert dataset[1]["waveform"].numel() == round(utterances[1].duration * RATE)
    batch = collate_eval([dataset[i] for i in range(3)])
    assert batch["lengths"].tolist() == [round(u.duration * RATE) for u in utterances[:3]]
    assert batch["waveform"].shape == (3, int(batch["lengths"].max()))
    assert batch["waveform"][0, batch["lengths"][0] :].abs().sum() == 0  # zero padding
    assert EvalDataset(utterances[:1], max_seconds=0.5)[0]["waveform"].numel() == RATE // 2
