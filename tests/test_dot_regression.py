"""Tests for ceco_lite.dot_regression: Yang et al.'s dot-regression loss for a fixed ETF."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ceco_lite import simplex_etf
from ceco_lite.dot_regression import DotRegressionLoss, dot_regression_class_lengths

K, D = 5, 8


def gen(seed):
    return torch.Generator().manual_seed(seed)


def loop_loss(h, y, W, *, lengths=None, r_const=None, normalize=False, reg=0.0, ignore_index=255,
              reduction="mean"):
    """Independent float64 reference: an explicit loop over samples (numpy)."""
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(y)
    W = np.asarray(W, dtype=np.float64)
    total, n = 0.0, 0
    for i in range(len(y)):
        if y[i] == ignore_index:
            continue
        v = h[i] / max(np.linalg.norm(h[i]), 1e-8) if normalize else h[i]
        w = W[:, y[i]] * (1.0 if lengths is None else lengths[y[i]])
        r = max(np.linalg.norm(v), 1e-8) if r_const is None else r_const
        total += (float(w @ v) - np.linalg.norm(w) * r) ** 2 / (2.0 * r) + reg * np.linalg.norm(v)
        n += 1
    return total if reduction == "sum" else total / n


def released_reg_dot_loss(feat, label, cur_M):
    """The authors' released ``dot_loss(..., criterion='reg_dot_loss')`` transcribed (unit ETF)."""
    target = cur_M[:, label].T
    h_length = torch.clamp(torch.sqrt(torch.sum(feat.detach() ** 2, dim=1)), 1e-8)
    dot = torch.bmm(feat.unsqueeze(1), target.unsqueeze(2)).view(-1)
    m_length = torch.sqrt(torch.sum(target**2, dim=1))
    return 0.5 * torch.mean(((dot - m_length * h_length) ** 2) / h_length)


def released_produce_ew(label, num_classes):
    """The released ``produce_Ew`` (batch class lengths) transcribed, on CPU."""
    uni, count = torch.unique(label, return_counts=True)
    gamma = label.numel() / uni.numel()
    ew = torch.ones(num_classes, dtype=torch.float64)
    for k, c in zip(uni.tolist(), count.tolist()):
        ew[k] = math.sqrt(gamma / c)
    return ew


def data(seed, n=40, ignore=True):
    g = gen(seed)
    h = torch.randn(n, D, generator=g, dtype=torch.float64) * 2.0
    y = torch.randint(0, K, (n,), generator=g)
    if ignore:
        y[::7] = 255
    return h, y


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_loop_reference(reduction):
    h, y = data(0)
    loss_fn = DotRegressionLoss(K, D, scale=1.5, generator=gen(1), reduction=reduction)
    got = loss_fn(h, y)
    assert got.dtype == torch.float64
    want = loop_loss(h, y, loss_fn.etf, reduction=reduction)
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_equals_the_released_code_for_unit_etf_and_normalised_features():
    h, y = data(2, ignore=False)
    etf = simplex_etf(K, D, generator=gen(3), dtype=torch.float64)  # unit columns
    loss_fn = DotRegressionLoss(K, D, etf=etf, normalize_features=True)
    hn = h / h.norm(dim=1, keepdim=True)
    assert float(loss_fn(h, y)) == pytest.approx(float(released_reg_dot_loss(hn, y, etf)), rel=1e-12)
    # without normalisation too (the released loss takes whatever features it is given)
    plain = DotRegressionLoss(K, D, etf=etf)
    assert float(plain(h, y)) == pytest.approx(float(released_reg_dot_loss(h, y, etf)), rel=1e-12)


def test_options_match_loop_reference():
    h, y = data(4)
    counts = torch.tensor([500, 200, 80, 30, 10])
    fixed = DotRegressionLoss(K, D, generator=gen(5), feature_length=3.0, reg_lambda=0.1)
    assert float(fixed(h, y)) == pytest.approx(loop_loss(h, y, fixed.etf, r_const=3.0, reg=0.1), rel=1e-12)
    normed = DotRegressionLoss(K, D, generator=gen(5), normalize_features=True, reg_lambda=0.2)
    assert float(normed(h, y)) == pytest.approx(loop_loss(h, y, normed.etf, normalize=True, reg=0.2), rel=1e-12)
    glob = DotRegressionLoss(K, D, generator=gen(5), class_lengths="global", class_counts=counts)
    gamma = counts.sum().item() / K
    lengths = [math.sqrt(gamma / c) for c in counts.tolist()]
    assert float(glob(h, y)) == pytest.approx(loop_loss(h, y, glob.etf, lengths=lengths), rel=1e-6)
    batch = DotRegressionLoss(K, D, generator=gen(5), class_lengths="batch")
    kept = y[y != 255]
    ew = released_produce_ew(kept, K)
    assert float(batch(h, y)) == pytest.approx(loop_loss(h, y, batch.etf, lengths=ew.tolist()), rel=1e-12)


def test_class_lengths_match_the_released_functions():
    labels = torch.tensor([0, 0, 0, 2, 2, 4, 0, 2])
    counts = torch.bincount(labels, minlength=K)
    got = dot_regression_class_lengths(counts, present_only=True)
    torch.testing.assert_close(got, released_produce_ew(labels, K), rtol=1e-12, atol=0)
    full = torch.tensor([300.0, 100.0, 200.0], dtype=torch.float64)
    torch.testing.assert_close(dot_regression_class_lengths(full), torch.sqrt(full.mean() / full))
    with pytest.raises(ValueError, match="zero"):
        dot_regression_class_lengths(counts)
    with pytest.raises(ValueError, match="non-negative"):
        dot_regression_class_lengths(torch.tensor([3, -1]))
    with pytest.raises(ValueError, match="all be zero"):
        dot_regression_class_lengths(torch.zeros(3), present_only=True)


def test_zero_at_the_class_vectors():
    """h = c · w*_y (any c > 0) is a global minimiser with the detached length."""
    loss_fn = DotRegressionLoss(K, D, generator=gen(6), scale=2.0)
    y = torch.arange(K).repeat(3)
    c = torch.tensor([0.5, 1.0, 4.0]).repeat_interleave(K)
    h = loss_fn.etf.T[y] * c[:, None]
    assert float(loss_fn(h, y)) < 1e-12
    assert float(loss_fn(-h, y)) > 1.0  # opposite direction: (−2‖w‖r)²/(2r) = 2‖w‖²r


def test_segmentation_layout_and_resolution_alignment():
    g = gen(7)
    f = torch.randn(2, D, 4, 6, generator=g, dtype=torch.float64)
    lab = torch.randint(0, K, (2, 8, 12), generator=g)
    lab[0, :2] = 255
    loss_fn = DotRegressionLoss(K, D, generator=gen(8))
    got = loss_fn(f, lab)
    lab_small = lab[:, ::2, ::2]  # nearest labels at stride 2
    flat = f.permute(0, 2, 3, 1).reshape(-1, D)
    assert float(got) == pytest.approx(loop_loss(flat, lab_small.reshape(-1), loss_fn.etf), rel=1e-12)
    assert loss_fn.logits(f).shape == (2, K, 4, 6)


# --------------------------------------------------------------------------- gradients
def test_gradient_matches_hand_formula():
    """∂L/∂h_i = (w_iᵀh_i − ‖w_i‖ r_i) w_i / (N r_i) + λ h_i / (N ‖h_i‖), r_i = ‖h_i‖ held fixed."""
    h, y = data(9)
    lam = 0.3
    loss_fn = DotRegressionLoss(K, D, scale=1.7, generator=gen(10), reg_lambda=lam)
    x = h.clone().requires_grad_(True)
    loss_fn(x, y).backward()
    keep = y != 255
    n = int(keep.sum())
    want = torch.zeros_like(h)
    W = loss_fn.etf.double()
    for i in torch.nonzero(keep).flatten().tolist():
        w = W[:, y[i]]
        r = h[i].norm()
        want[i] = (w @ h[i] - w.norm() * r) * w / (n * r) + lam * h[i] / (n * h[i].norm())
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-14)
    # at unit class vectors and no regulariser: −(1 − cos∠(w_y, h)) w_y / N
    unit = DotRegressionLoss(K, D, etf=simplex_etf(K, D, generator=gen(11), dtype=torch.float64))
    x = h.clone().requires_grad_(True)
    unit(x, y).backward()
    Wu = unit.etf.double()
    for i in torch.nonzero(keep).flatten().tolist()[:5]:
        w = Wu[:, y[i]]
        cos = (w @ h[i]) / (w.norm() * h[i].norm())
        torch.testing.assert_close(x.grad[i], -(1 - cos) * w / n, rtol=1e-12, atol=1e-14)
    assert torch.all(x.grad[~keep] == 0)


def test_gradient_with_normalised_features_matches_hand_formula():
    h, y = data(12, ignore=False)
    loss_fn = DotRegressionLoss(K, D, generator=gen(13), normalize_features=True)
    x = h.clone().requires_grad_(True)
    loss_fn(x, y).backward()
    n = len(y)
    W = loss_fn.etf.double()
    for i in range(n):
        w = W[:, y[i]]
        u = h[i] / h[i].norm()
        g_u = (w @ u - w.norm()) * w / n  # r = ‖u‖ = 1
        jac = (torch.eye(D, dtype=torch.float64) - torch.outer(u, u)) / h[i].norm()
        torch.testing.assert_close(x.grad[i], jac @ g_u, rtol=1e-10, atol=1e-13)


def test_gradcheck_with_a_fixed_feature_length():
    h, y = data(14, n=12)
    loss_fn = DotRegressionLoss(K, D, generator=gen(15), feature_length=2.5, reg_lambda=0.05,
                                class_lengths="batch")
    loss_fn.etf = loss_fn.etf.double()
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, y), (h.clone().requires_grad_(True),))


def test_empty_batch_gives_zero_connected_to_the_graph():
    loss_fn = DotRegressionLoss(K, D, generator=gen(16))
    x = torch.randn(6, D, requires_grad=True)
    loss = loss_fn(x, torch.full((6,), 255))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.all(x.grad == 0)


def test_low_precision_and_autocast_are_computed_in_float32():
    h, y = data(17)
    loss_fn = DotRegressionLoss(K, D, generator=gen(18))
    ref = float(loss_fn(h.float(), y))
    hb = h.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(hb, y)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(loss_fn(hb.float(), y)), rel=1e-6)
    assert float(got) == pytest.approx(ref, rel=2e-2)


# --------------------------------------------------------------------------- errors
def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        DotRegressionLoss(1, D)
    with pytest.raises(ValueError, match="dim"):
        DotRegressionLoss(K, 2)
    with pytest.raises(ValueError, match="feature_length"):
        DotRegressionLoss(K, D, feature_length="live")
    with pytest.raises(ValueError, match="feature_length"):
        DotRegressionLoss(K, D, feature_length=0.0)
    with pytest.raises(ValueError, match="class_lengths"):
        DotRegressionLoss(K, D, class_lengths="per-class")
    with pytest.raises(ValueError, match="class_counts"):
        DotRegressionLoss(K, D, class_lengths="global")
    with pytest.raises(ValueError, match="class_counts"):
        DotRegressionLoss(K, D, class_counts=torch.ones(K))
    with pytest.raises(ValueError, match="class_counts"):
        DotRegressionLoss(K, D, class_lengths="global", class_counts=torch.ones(K + 1))
    with pytest.raises(ValueError, match="etf"):
        DotRegressionLoss(K, D, etf=torch.randn(K, D))
    with pytest.raises(ValueError, match="reduction"):
        DotRegressionLoss(K, D, reduction="none")
    with pytest.raises(ValueError, match="ignore_index"):
        DotRegressionLoss(K, D, ignore_index=2)
    with pytest.raises(ValueError, match="reg_lambda"):
        DotRegressionLoss(K, D, reg_lambda=-1.0)
    loss_fn = DotRegressionLoss(K, D)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(torch.randn(4, D), torch.tensor([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="labels"):
        loss_fn(torch.randn(4, D), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="channels"):
        loss_fn(torch.randn(4, D + 1), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="labels"):
        loss_fn(torch.randn(4, D), torch.zeros(4))
    with pytest.raises(TypeError, match="features"):
        loss_fn(torch.zeros(4, D, dtype=torch.long), torch.zeros(4, dtype=torch.long))
