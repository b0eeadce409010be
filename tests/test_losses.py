"""The losses against per-sample transcriptions of their equations (paper eq. 1-2, NT-Xent-AM)."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssps.train.losses import moco_contrastive, nt_xent


def cos(u, v):
    return float(F.cosine_similarity(u, v, dim=0))


def nt_xent_loop(z, z_pos, tau, margin, symmetric):
    """Eq. (1) with the additive margin, one anchor at a time."""
    if not symmetric:
        total = 0.0
        for i in range(len(z)):
            positive = math.exp((cos(z[i], z_pos[i]) - margin) / tau)
            negatives = sum(math.exp(cos(z[i], z_pos[j]) / tau) for j in range(len(z)) if j != i)
            total += -math.log(positive / (positive + negatives))
        return total / len(z)
    views = torch.cat([z, z_pos])
    batch, total = len(z), 0.0
    for a in range(2 * batch):
        p = (a + batch) % (2 * batch)
        positive = math.exp((cos(views[a], views[p]) - margin) / tau)
        negatives = sum(math.exp(cos(views[a], views[j]) / tau) for j in range(2 * batch) if j not in (a, p))
        total += -math.log(positive / (positive + negatives))
    return total / (2 * batch)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_nt_xent_matches_its_equation(symmetric, margin):
    torch.manual_seed(0)
    z, z_pos = torch.randn(6, 16, dtype=torch.float64), torch.randn(6, 16, dtype=torch.float64)
    tau = 0.5  # a mild temperature keeps the loop's exp() in range
    expected = nt_xent_loop(z, z_pos, tau, margin, symmetric)
    assert float(nt_xent(z, z_pos, tau, margin, symmetric)) == pytest.approx(expected, rel=1e-5)


def test_margin_makes_the_task_harder_and_aligned_pairs_easy():
    torch.manual_seed(0)
    z = torch.randn(8, 32)
    noisy = z + 0.1 * torch.randn_like(z)
    assert nt_xent(z, noisy, 0.1, margin=0.2) > nt_xent(z, noisy, 0.1, margin=0.0)
    assert nt_xent(z, noisy, 0.03) < nt_xent(z, torch.randn_like(z), 0.03)


def test_nt_xent_gradient_flows_to_both_views():
    z, z_pos = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    nt_xent(z, z_pos).backward()
    assert z.grad.abs().sum() > 0 and z_pos.grad.abs().sum() > 0


def moco_loop(q, k, queue, tau, margin):
    """Eq. (2) with the additive margin, one query at a time."""
    total = 0.0
    for i in range(len(q)):
        positive = math.exp((cos(q[i], k[i]) - margin) / tau)
        negatives = sum(math.exp(cos(q[i], queue[j]) / tau) for j in range(len(queue)))
        total += -math.log(positive / (positive + negatives))
    return total / len(q)


@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_moco_matches_its_equation(margin):
    torch.manual_seed(1)
    q, k, queue = (torch.randn(n, 16, dtype=torch.float64) for n in (5, 5, 12))
    expected = moco_loop(q, k, queue, 0.5, margin)
    assert float(moco_contrastive(q, k, queue, 0.5, margin)) == pytest.approx(expected, rel=1e-5)


def test_moco_sends_no_gradient_to_keys_or_queue():
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8, requires_grad=True)
    moco_contrastive(q, k, torch.randn(16, 8)).backward()
    assert q.grad is not None and k.grad is None
