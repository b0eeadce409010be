"""SSPS sampling, queues, k-means and diagnostics on synthetic representations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssps.errors import ConfigError
from ssps.train.positive_sampling import SSPS, SSPSConfig
from ssps.train.positive_sampling.kmeans import spherical_kmeans
from ssps.train.positive_sampling.queues import IndexedQueue

N, D, GROUPS = 64, 16, 8


def grouped_points(seed=0, groups=GROUPS, n=N, d=D, spread=0.05):
    """n points in `groups` tight, well-separated directions; group of i = i % groups."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(groups, d, generator=g), dim=-1)
    labels = torch.arange(n) % groups
    return F.normalize(centres[labels] + spread * torch.randn(n, d, generator=g), dim=-1), labels


def filled_ssps(config, points=None, epoch=None):
    """An SSPS whose queues were filled during the epoch before start_epoch, now active.
    Q' holds 100 + i for sample i, so a replaced positive tells which sample it came from."""
    points = grouped_points()[0] if points is None else points
    ssps = SSPS(config, num_samples=len(points), representation_dim=points.shape[1], embedding_dim=points.shape[1])
    ssps.on_epoch_start(config.start_epoch - 1)
    for batch in torch.randperm(len(points), generator=torch.Generator().manual_seed(1)).split(16):
        ssps.update_queues(batch, points[batch], sample_marker(batch, points.shape[1]))
    ssps.on_epoch_start(config.start_epoch if epoch is None else epoch)
    return ssps


def sample_marker(indices, dim):
    return (100.0 + indices.float())[:, None].expand(-1, dim).clone()


def chosen_samples(ssps, indices, points, step=0):
    """pos(i) of each anchor, or -1 where the ordinary positive was kept."""
    ssps.begin_step(step)
    z_pos = torch.full((len(indices), points.shape[1]), -1.0)
    out = ssps.select_positives(indices, z_pos, points[indices])
    return torch.where(out[:, 0] >= 100, out[:, 0] - 100, torch.tensor(-1.0)).long()


def test_nn_picks_among_the_m_nearest_and_never_the_anchor():
    points, _ = grouped_points()
    window = 5
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, sampling="nn", window=window), points)
    indices = torch.arange(N)
    for step in range(5):
        chosen = chosen_samples(ssps, indices, points, step)
        assert (chosen >= 0).all() and (chosen != indices).all()
        similarity = points @ points.T
        similarity.fill_diagonal_(-2)
        top = similarity.topk(window, dim=1).indices
        assert all(int(chosen[i]) in top[i].tolist() for i in range(N))


def test_nn_with_m_1_is_the_nearest_neighbour():
    points, _ = grouped_points()
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, sampling="nn", window=1), points)
    similarity = points @ points.T
    similarity.fill_diagonal_(-2)
    assert torch.equal(chosen_samples(ssps, torch.arange(N), points), similarity.argmax(dim=1))


def test_clustering_m0_samples_another_member_of_the_same_cluster():
    points, groups = grouped_points()
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=0), points)
    assignments = ssps.assignments
    for step in range(5):
        chosen = chosen_samples(ssps, torch.arange(N), points, step)
        assert (chosen != torch.arange(N)).all()
        assert torch.equal(assignments[chosen], assignments)


def test_clustering_m_samples_from_the_m_nearest_other_clusters():
    points, _ = grouped_points()
    window = 2
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=window), points)
    centroids = ssps.centroids
    similarity = centroids @ centroids.T
    similarity.fill_diagonal_(-2)
    nearest = similarity.topk(window, dim=1).indices
    own = ssps.assignments
    for step in range(5):
        chosen_cluster = own[chosen_samples(ssps, torch.arange(N), points, step)]
        assert (chosen_cluster != own).all()
        assert all(int(chosen_cluster[i]) in nearest[own[i]].tolist() for i in range(N))


def test_singleton_cluster_falls_back_to_the_ordinary_positive():
    points, _ = grouped_points()
    points[0] = F.normalize(torch.ones(D), dim=0) * -1  # an outlier: alone in its cluster
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS + 1, window=0), points)
    assert ssps.cluster_size[ssps.assignments[0]] == 1
    assert chosen_samples(ssps, torch.tensor([0]), points)[0] == -1


def test_positive_not_in_q_prime_falls_back_and_lowers_coverage():
    points, _ = grouped_points()
    config = SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=1, positive_queue_size=16)
    ssps = filled_ssps(config, points)  # Q' keeps the last 16 of 64 writes
    in_queue = ssps.positive_queue.present()
    assert len(in_queue) == 16
    chosen = chosen_samples(ssps, torch.arange(N), points)
    assert set(chosen[chosen >= 0].tolist()) <= set(in_queue.tolist())
    coverage = ssps.epoch_diagnostics()["ssps/coverage"]
    assert 0 < coverage < 1 and coverage == pytest.approx(float((chosen >= 0).float().mean()))


def test_ordinary_positives_keep_their_gradient_and_pseudo_positives_have_none():
    points, _ = grouped_points()
    config = SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=1, positive_queue_size=16)
    ssps = filled_ssps(config, points)
    ssps.begin_step(0)
    z_pos = torch.randn(N, D, requires_grad=True)
    out = ssps.select_positives(torch.arange(N), z_pos, points)
    out.sum().backward()
    replaced = out[:, 0].detach() >= 100
    assert replaced.any() and (~replaced).any()
    assert (z_pos.grad[~replaced] == 1).all() and (z_pos.grad[replaced] == 0).all()


def test_centroid_variant_uses_the_sampling_cluster_centroid():
    points, _ = grouped_points()
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, sampling="centroid", num_clusters=GROUPS, window=1), points)
    ssps.begin_step(0)
    out = ssps.select_positives(torch.arange(N), torch.zeros(N, D))
    target = ssps.neighbour_clusters[ssps.assignments, 0]
    assert torch.allclose(out, ssps.centroids[target])


def test_schedule_fill_epoch_then_active():
    config = SSPSConfig(enabled=True, start_epoch=3, num_clusters=4)
    ssps = SSPS(config, num_samples=N, representation_dim=D, embedding_dim=D)
    assert [ssps.wants_reference(e) for e in range(5)] == [False, False, True, True, True]
    assert [ssps.active(e) for e in range(5)] == [False, False, False, True, True]
    ssps.on_epoch_start(0)
    z = torch.randn(4, D)
    assert ssps.select_positives(torch.arange(4), z) is z  # inactive: untouched
    ssps.update_queues(torch.arange(4), torch.randn(4, D), z)  # not the fill epoch: ignored
    assert len(ssps.reference_queue.present()) == 0


def test_k_larger_than_n_is_a_config_error():
    with pytest.raises(ConfigError, match="K=100.*N=64"):
        SSPS(SSPSConfig(enabled=True, num_clusters=100), num_samples=N, representation_dim=D, embedding_dim=D)
    with pytest.raises(ConfigError, match="sampling"):
        SSPS(SSPSConfig(enabled=True, sampling="knn"), num_samples=N, representation_dim=D, embedding_dim=D)


def test_kmeans_finds_well_separated_groups():
    points, groups = grouped_points(n=400, groups=10)
    for init in ("kmeans++", "random"):
        clustering = spherical_kmeans(points, 10, iterations=10, init=init, seed=3)
        if init == "kmeans++":  # k-means++ seeding recovers every group exactly
            from sklearn.metrics import normalized_mutual_info_score

            assert normalized_mutual_info_score(groups.numpy(), clustering.assignments.numpy()) == pytest.approx(1.0)
        assert torch.allclose(clustering.centroids.norm(dim=1), torch.ones(10))


def test_labels_only_change_diagnostics_never_the_sampling():
    points, groups = grouped_points()
    config = SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=1)
    runs = []
    for speaker_ids in (groups.numpy(), np.random.default_rng(0).permutation(groups.numpy())):
        ssps = filled_ssps(config, points, epoch=0)
        ssps.set_labels(speaker_ids, None)
        ssps.on_epoch_start(1)
        runs.append((chosen_samples(ssps, torch.arange(N), points), ssps.epoch_diagnostics()))
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1]["ssps/nmi_speaker"] != runs[1][1]["ssps/nmi_speaker"]


def test_diagnostics_count_speaker_and_recording_matches():
    points, groups = grouped_points()
    speakers = (groups // 2).numpy()  # two groups per speaker
    recordings = groups.numpy()  # one group per recording
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, num_clusters=GROUPS, window=0), points, epoch=0)
    ssps.set_labels(speakers, recordings)
    ssps.on_epoch_start(1)
    chosen_samples(ssps, torch.arange(N), points)
    diagnostics = ssps.epoch_diagnostics()
    # Same cluster = same recording = same speaker here.
    assert diagnostics["ssps/recording_accuracy"] == 1.0 and diagnostics["ssps/speaker_accuracy"] == 1.0
    assert diagnostics["ssps/same_speaker_other_recording"] == 0.0
    assert diagnostics["ssps/nmi_recording"] == pytest.approx(1.0)
    assert diagnostics["ssps/nmi_speaker"] < 1.0


def test_indexed_queue_is_indexed_by_sample_and_fifo_with_capacity():
    queue = IndexedQueue(10, 2, capacity=4)
    queue.write(torch.tensor([3, 7]), torch.tensor([[3.0, 3], [7, 7]]))
    queue.write(torch.tensor([1, 2, 3]), torch.tensor([[1.0, 1], [2, 2], [33, 33]]))
    assert torch.equal(queue.read(torch.tensor([3])), torch.tensor([[33.0, 33]]))
    assert queue.present().tolist() == [1, 2, 3, 7]
    queue.write(torch.tensor([5]), torch.tensor([[5.0, 5]]))  # 7 is now the oldest of 5 writes: out
    assert queue.present().tolist() == [1, 2, 3, 5]
    assert not queue.contains(torch.tensor([-1]))[0]


def test_sampling_is_vectorised_on_a_large_batch():
    points, _ = grouped_points(n=20000, groups=50)
    ssps = filled_ssps(SSPSConfig(enabled=True, start_epoch=1, num_clusters=50, window=1, kmeans_iterations=3), points)
    import time

    start = time.perf_counter()
    chosen = chosen_samples(ssps, torch.arange(4096), points)
    assert (chosen >= 0).all()
    assert time.perf_counter() - start < 2.0  # a per-sample Python loop would take far longer
