"""CHNS batch composition (ssps/train/data/chns_sampler.py): P speakers x K utterances, a
fraction of the speakers from one cluster (hard negatives), the rest at random."""

import numpy as np
import pytest

from ssps.errors import ConfigError
from ssps.train.data.chns_sampler import CHNSBatches

SPEAKERS, UTTERANCES = 40, 5
SPEAKER_IDS = np.repeat(np.arange(SPEAKERS), UTTERANCES)  # utterance -> speaker
CLUSTERS = np.arange(SPEAKERS) % 4  # 4 clusters of 10 speakers


def sampler(batch_per_rank=8, hard_fraction=0.5, clusters=CLUSTERS, start=0, steps=10, epoch=0):
    """Global batch 8 (in 1 or 2 processes) = 4 speakers x 2 utterances."""
    return CHNSBatches(SPEAKER_IDS, 2, batch_per_rank, steps, seed=1, epoch=epoch, start=start,
                       speaker_clusters=clusters, hard_fraction=hard_fraction)


def speakers_of(batch):
    return [int(SPEAKER_IDS[i]) for i in batch]


def test_batches_are_p_speakers_by_k_utterances():
    for batch in sampler():
        speakers = speakers_of(batch)
        assert len(batch) == 8 and len(set(speakers)) == 4
        assert all(speakers[2 * p] == speakers[2 * p + 1] for p in range(4))  # K = 2 consecutive


@pytest.mark.parametrize("hard_fraction, hard", [(0.5, 2), (1.0, 4), (0.25, 1)])
def test_the_hard_speakers_share_the_anchor_cluster(hard_fraction, hard):
    for batch in sampler(hard_fraction=hard_fraction, steps=50):
        speakers = speakers_of(batch)[::2]
        assert len({CLUSTERS[s] for s in speakers[:hard]}) == 1
    # The easy ones are uniform: over many batches they often fall in other clusters.
    other = [CLUSTERS[s] != CLUSTERS[speakers_of(b)[0]] for b in sampler(hard_fraction=0.5, steps=200) for s in speakers_of(b)[4::2]]
    assert 0.5 < np.mean(other) < 0.95  # 30 of the 38 other speakers are in other clusters


def test_small_clusters_give_all_their_speakers_and_random_ones_fill_the_batch():
    clusters = np.arange(SPEAKERS)  # every speaker alone in its cluster
    for batch in sampler(hard_fraction=1.0, clusters=clusters):
        assert len(set(speakers_of(batch))) == 4


def test_without_clusters_batches_are_random():
    counts = np.bincount([s for b in sampler(clusters=None, steps=200) for s in speakers_of(b)[::2]], minlength=SPEAKERS)
    assert counts.min() > 0  # every speaker appears


def test_deterministic_and_resumable():
    assert list(sampler()) == list(sampler())
    assert list(sampler(start=4)) == list(sampler())[4:]
    assert list(sampler(epoch=1)) != list(sampler())


def test_impossible_batches_are_refused():
    with pytest.raises(ConfigError, match="multiple of method.utterances_per_speaker"):
        CHNSBatches(SPEAKER_IDS, 3, 8, 10, 0, 0)
    with pytest.raises(ConfigError, match="needs at least 50 speakers"):
        CHNSBatches(SPEAKER_IDS, 2, 100, 10, 0, 0)
