"""SwAV, VICReg, DINO, AAM-softmax and supervised-contrastive losses against their equations."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssps.train.losses.aam_softmax import AAMSoftmax
from ssps.train.losses.dino import dino_loss, update_center
from ssps.train.losses.supervised_contrastive import supervised_contrastive
from ssps.train.losses.swav import sinkhorn_knopp, swav_loss
from ssps.train.losses.vicreg import covariance, variance, vicreg_loss


def test_sinkhorn_gives_distributions_with_equal_cluster_mass():
    torch.manual_seed(0)
    scores = torch.rand(64, 8) * 2 - 1  # cosines
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=200)
    assert torch.allclose(codes.sum(dim=1), torch.ones(64), atol=1e-5)
    assert torch.allclose(codes.sum(dim=0), torch.full((8,), 64 / 8), atol=1e-2)


def test_swav_collapse_gives_log_of_prototype_count():
    scores = torch.zeros(16, 10)  # every embedding equally close to every prototype
    assert swav_loss(scores, scores).item() == pytest.approx(math.log(10), abs=1e-5)


def test_swav_agreeing_confident_views_beat_disagreeing_ones():
    labels = torch.arange(8) % 4
    agree = F.one_hot(labels, 4).float()
    disagree = F.one_hot((labels + 1) % 4, 4).float()
    assert swav_loss(agree, agree).item() < swav_loss(agree, disagree).item()


def test_swav_queue_rows_only_shape_the_codes():
    scores = torch.randn(4, 6)
    queue = (torch.randn(32, 6), torch.randn(32, 6))
    loss = swav_loss(scores, scores, codes_from_queue=queue)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_vicreg_terms_by_hand():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    # Var (unbiased): dim0 = 2/3, dim1 = 8/3; std < 1 only for dim 0.
    expected_variance = (max(0.0, 1 - math.sqrt(2 / 3 + 1e-4)) + max(0.0, 1 - math.sqrt(8 / 3 + 1e-4))) / 2
    assert variance(z).item() == pytest.approx(expected_variance, rel=1e-5)
    assert covariance(z).item() == pytest.approx(0.0, abs=1e-7)  # the two dimensions are uncorrelated
    correlated = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0], [-2.0, -2.0]])
    cov = 10 / 3  # both off-diagonal entries
    assert covariance(correlated).item() == pytest.approx(2 * cov**2 / 2, rel=1e-5)


def test_vicreg_collapse_costs_the_full_variance_penalty():
    collapsed = torch.ones(8, 16)
    loss = vicreg_loss(collapsed, collapsed)
    assert loss.item() == pytest.approx(2 * (1 - math.sqrt(1e-4)), rel=1e-5)


def test_vicreg_identical_spread_views_reach_the_minimum():
    torch.manual_seed(0)
    z = torch.randn(4096, 4) * 3  # std 3 > 1, nearly uncorrelated
    assert vicreg_loss(z, z.clone()).item() < 0.05


def test_dino_uniform_outputs_give_log_k_and_pairs_skip_the_same_view():
    k = 32
    views = [torch.zeros(4, k) for _ in range(6)]
    assert dino_loss(views, views[:2], torch.zeros(k)).item() == pytest.approx(math.log(k), abs=1e-5)

    # Student global view 0 contradicts teacher view 0 but is never compared to it: the loss
    # is unchanged when only that (excluded) pair disagrees.
    teacher = [F.one_hot(torch.zeros(4, dtype=torch.long), k).float() * 10 for _ in range(2)]
    student = [t.clone() for t in teacher] + [teacher[0].clone() for _ in range(4)]
    base = dino_loss(student, teacher, torch.zeros(k))
    student[0] = F.one_hot(torch.full((4,), 5), k).float() * 10
    changed = dino_loss(student, teacher, torch.zeros(k))
    # view 0 is still compared with teacher view 1, so the loss rises, by exactly 1 pair in 10
    per_pair_new = -(F.softmax(teacher[1] / 0.04, -1) * F.log_softmax(student[0] / 0.1, -1)).sum(-1).mean()
    per_pair_old = -(F.softmax(teacher[1] / 0.04, -1) * F.log_softmax(teacher[0] / 0.1, -1)).sum(-1).mean()
    assert changed.item() == pytest.approx(base.item() + (per_pair_new - per_pair_old).item() / 10, rel=1e-5)


def test_dino_center_is_a_running_mean():
    center = torch.zeros(3)
    teacher = [torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])]
    assert torch.allclose(update_center(center, teacher, momentum=0.9), torch.tensor([0.05, 0.05, 0.0]))


def test_aam_softmax_without_margin_is_scaled_cosine_cross_entropy():
    torch.manual_seed(0)
    head = AAMSoftmax(8, 5, scale=30.0, margin=0.0)
    x, y = torch.randn(6, 8), torch.randint(0, 5, (6,))
    cosine = F.normalize(x) @ F.normalize(head.weight).T
    assert head(x, y).item() == pytest.approx(F.cross_entropy(30 * cosine, y).item(), rel=1e-5)


def test_aam_softmax_margin_on_the_target_angle():
    head = AAMSoftmax(2, 2, scale=1.0, margin=0.2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    angle = 0.5
    x = torch.tensor([[math.cos(angle), math.sin(angle)]])
    target_logit, other_logit = math.cos(angle + 0.2), math.cos(math.pi / 2 - angle)
    expected = -math.log(math.exp(target_logit) / (math.exp(target_logit) + math.exp(other_logit)))
    assert head(x, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-5)


def test_supervised_contrastive_against_the_sum_written_out():
    torch.manual_seed(0)
    z, labels, tau = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 1, 2]), 0.5
    zn = F.normalize(z)
    terms = []
    for i in range(6):
        positives = [p for p in range(6) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(zn[i] @ zn[a]) / tau) for a in range(6) if a != i)
        terms.append(-sum(math.log(math.exp(float(zn[i] @ zn[p]) / tau) / denominator) for p in positives) / len(positives))
    assert supervised_contrastive(z, labels, tau).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_supervised_contrastive_needs_positives():
    with pytest.raises(ValueError, match="no anchor has a positive"):
        supervised_contrastive(torch.randn(3, 4), torch.tensor([0, 1, 2]))


def test_losses_ignore_autocast_and_compute_in_float32():
    from ssps.train.losses.nt_xent import nt_xent

    torch.manual_seed(0)
    z, z_pos = torch.randn(16, 64), torch.randn(16, 64)
    exact = nt_xent(z, z_pos, temperature=0.03)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = nt_xent(z, z_pos, temperature=0.03)
        supcon = supervised_contrastive(z, torch.arange(16) % 4)
    assert under_autocast.dtype == torch.float32
    assert under_autocast.item() == exact.item()
    assert supcon.item() == supervised_contrastive(z, torch.arange(16) % 4).item()
