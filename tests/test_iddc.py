"""Tests for ceco_lite.iddc (IDDC Weibull regulariser, docs/conventions.md, section iddc)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ceco_lite.iddc import uniform_prior_regularizer, weibull_density, weibull_imbalance_regularizer


def hand_weibull_reg(probs, scale=5.0, k=0.3, eps=1e-6):
    """Loop version of the released IDDC formula (x = mean, x/max + eps, mean_c f)."""
    p = np.asarray(probs, dtype=np.float64)
    B, C, H, W = p.shape
    x = []
    for c in range(C):
        total = 0.0
        for b in range(B):
            for i in range(H):
                for j in range(W):
                    total += p[b, c, i, j]
        x.append(total / (B * H * W))
    m = max(x)
    x = [v / m + eps for v in x]
    f = [(k / scale) * (v / scale) ** (k - 1) * math.exp(-((v / scale) ** k)) for v in x]
    return sum(f) / C


def random_probs(seed, shape=(2, 5, 3, 4), skew=None, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64)
    if skew is not None:
        logits = logits + torch.tensor(skew, dtype=torch.float64).view(1, -1, 1, 1)
    return logits.softmax(dim=1).to(dtype)


def test_weibull_density_formula_and_types():
    xs = np.array([0.01, 0.3, 1.0, 2.5])
    want = [(0.3 / 5) * (v / 5) ** (-0.7) * math.exp(-((v / 5) ** 0.3)) for v in xs]
    np.testing.assert_allclose(weibull_density(xs), want, rtol=1e-13)
    assert isinstance(weibull_density(1.0), float)
    t = torch.tensor(xs, dtype=torch.float32, requires_grad=True)
    out = weibull_density(t, scale=2.0, k=1.5)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    out.sum().backward()
    assert torch.isfinite(t.grad).all()
    # k = 1 is the exponential density (1/λ) exp(-x/λ)
    np.testing.assert_allclose(weibull_density(xs, scale=2.0, k=1.0), 0.5 * np.exp(-xs / 2.0), rtol=1e-13)
    assert weibull_density(0.0) == math.inf


@pytest.mark.parametrize("k", [0.3, 0.5, 0.9])
def test_weibull_density_decreasing_for_k_below_one(k):
    x = np.linspace(1e-4, 10.0, 2001)
    f = weibull_density(x, scale=5.0, k=k)
    assert np.all(np.diff(f) < 0)


def test_weibull_density_not_monotone_for_k_above_one():
    f = weibull_density(np.linspace(1e-3, 10.0, 500), scale=2.0, k=2.0)
    assert np.any(np.diff(f) > 0) and np.any(np.diff(f) < 0)


def test_weibull_regularizer_matches_hand_computation():
    probs = random_probs(0, skew=[0.0, 1.0, -2.0, 0.5, -4.0])
    got = weibull_imbalance_regularizer(probs)
    assert got.item() == pytest.approx(hand_weibull_reg(probs), rel=1e-12)
    got2 = weibull_imbalance_regularizer(probs, scale=2.0, k=0.6, eps=1e-3)
    assert got2.item() == pytest.approx(hand_weibull_reg(probs, 2.0, 0.6, 1e-3), rel=1e-12)


def test_weibull_regularizer_punishes_empty_clusters_and_has_gradient():
    balanced = weibull_imbalance_regularizer(random_probs(1, skew=[0.0] * 5))
    moderate = weibull_imbalance_regularizer(random_probs(1, skew=[0.0, 0.0, 0.0, -1.0, -1.0]))
    degenerate = weibull_imbalance_regularizer(random_probs(1, skew=[0.0, 0.0, 0.0, 0.0, -12.0]))
    assert balanced < moderate < degenerate
    assert degenerate > 3 * balanced  # near-empty cluster costs far more
    logits = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    weibull_imbalance_regularizer(logits.softmax(1)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_uniform_prior_zero_at_uniform_sizes():
    # unequal pixels but equal mean cluster sizes: exactly uniform x̄
    p = torch.zeros(2, 4, 2, 2, dtype=torch.float64)
    for c in range(4):
        p[:, c] = 0.25
    assert uniform_prior_regularizer(p).item() == pytest.approx(0.0, abs=1e-15)
    one_hot = torch.nn.functional.one_hot(torch.arange(4).repeat(2, 1).view(2, 2, 2), 4)
    one_hot = one_hot.permute(0, 3, 1, 2).double()
    assert uniform_prior_regularizer(one_hot).item() == pytest.approx(0.0, abs=1e-15)


def test_uniform_prior_is_kl_to_uniform():
    probs = random_probs(2, skew=[0.0, 1.0, -2.0, 0.5, -4.0])
    x = probs.mean(dim=(0, 2, 3)).numpy()
    kl = sum(v * math.log(v / (1 / 5)) for v in x)
    assert uniform_prior_regularizer(probs).item() == pytest.approx(kl, rel=1e-12)
    assert uniform_prior_regularizer(probs).item() > 0


def test_low_precision_probs():
    probs = random_probs(3, dtype=torch.bfloat16)
    out = weibull_imbalance_regularizer(probs)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert out.item() == pytest.approx(hand_weibull_reg(probs.double()), rel=1e-5)


def test_bad_input():
    probs = random_probs(4)
    with pytest.raises(ValueError, match="probs"):
        weibull_imbalance_regularizer(torch.randn(2, 5, 3, 3))  # logits, not probabilities
    with pytest.raises(ValueError, match="probs"):
        uniform_prior_regularizer(torch.rand(2, 5, 3, 3) * 3)
    with pytest.raises(ValueError, match="probs"):
        weibull_imbalance_regularizer(torch.ones(5) / 5)
    with pytest.raises(TypeError, match="probs"):
        weibull_imbalance_regularizer(probs.numpy())
    with pytest.raises(TypeError, match="probs"):
        uniform_prior_regularizer(torch.ones(2, 3, 1, 1, dtype=torch.long))
    nan = probs.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="probs"):
        weibull_imbalance_regularizer(nan)
    with pytest.raises(ValueError, match="scale"):
        weibull_imbalance_regularizer(probs, scale=0.0)
    with pytest.raises(ValueError, match="k"):
        weibull_density(1.0, k=-1.0)
    with pytest.raises(TypeError, match="eps"):
        weibull_imbalance_regularizer(probs, eps="small")
    with pytest.raises(ValueError, match="x"):
        weibull_density(np.array([-1.0, 1.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    probs = random_probs(5, skew=[0.0, 1.0, -2.0, 0.5, -4.0])
    for fn in (weibull_imbalance_regularizer, uniform_prior_regularizer):
        assert fn(probs.cuda()).item() == pytest.approx(fn(probs).item(), rel=1e-10)
