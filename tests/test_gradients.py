"""Closed-form CeCo gradients, CeCo paper Eq. 6-8, and the ETF-distance erratum (ceco_lite/gradients.py)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from ceco_lite.ceco import CenterCollapseLoss
from ceco_lite.etf import simplex_etf
from ceco_lite.gradients import ceco_gradients, classifier_pairwise_distances, mean_pairwise_cosine


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _data(N=80, d=7, K=6, seed=0, absent=(2,)):
    g = _gen(seed)
    z = torch.randn(N, d, generator=g, dtype=torch.float64)
    present = [k for k in range(K) if k not in absent]
    # imbalanced: class present[0] dominates
    probs = torch.tensor([8.0] + [1.0] * (len(present) - 1))
    y = torch.tensor(present)[torch.multinomial(probs, N, replacement=True, generator=g)]
    y[:5] = 255
    return z, y


def _terms(z, y, W, K):
    """Per-class loss terms -log p_k(z̄_k) built from z and W with autograd (Eq. 3, 4, 7)."""
    terms = {}
    for k in range(K):
        m = y == k
        if bool(m.any()):
            zbar = z[m].mean(0)
            terms[k] = -torch.log_softmax(zbar @ W, dim=0)[k]
    return terms


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("etf", [True, False])
def test_matches_autograd(reduction, etf):
    K, d = 6, 7
    z, y = _data(d=d, K=K)
    W0 = simplex_etf(K, d, scale=2.0, generator=_gen(1), dtype=torch.float64) if etf else torch.randn(
        d, K, generator=_gen(1), dtype=torch.float64)
    zz = z.clone().requires_grad_(True)
    W = W0.clone().requires_grad_(True)
    terms = _terms(zz, y, W, K)
    loss = sum(terms.values())
    if reduction == "mean":
        loss = loss / len(terms)
    gz, gW = torch.autograd.grad(loss, [zz, W])
    res = ceco_gradients(z, y, W0, K, reduction=reduction)
    torch.testing.assert_close(res.loss, loss.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(res.grad_weight, gW, rtol=0, atol=1e-10)  # Eq. 6
    torch.testing.assert_close(res.grad_features, gz, rtol=0, atol=1e-10)  # Eq. 8
    torch.testing.assert_close(res.grad_weight_within + res.grad_weight_between, res.grad_weight, rtol=0, atol=1e-14)
    # the loss module gives the same value with this classifier
    mod = CenterCollapseLoss(K, d, reduction=reduction).double()
    mod.etf.copy_(W0)
    torch.testing.assert_close(mod(z, y), loss.detach(), rtol=0, atol=1e-12)


def test_within_between_split_matches_per_term_autograd():
    # within column k = d(term_k)/dw_k ; between column k = sum_{j != k} d(term_j)/dw_k
    K, d = 5, 6
    z, y = _data(d=d, K=K, absent=(4,))
    W = torch.randn(d, K, generator=_gen(2), dtype=torch.float64, requires_grad=True)
    terms = _terms(z, y, W, K)
    within = torch.zeros(d, K, dtype=torch.float64)
    between = torch.zeros(d, K, dtype=torch.float64)
    for j, t in terms.items():
        (g,) = torch.autograd.grad(t, W)
        within[:, j] += g[:, j]
        for k in range(K):
            if k != j:
                between[:, k] += g[:, k]
    res = ceco_gradients(z, y, W.detach(), K)
    torch.testing.assert_close(res.grad_weight_within, within, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.grad_weight_between, between, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.within_norm, within.norm(dim=0), rtol=0, atol=1e-12)
    torch.testing.assert_close(res.between_norm, between.norm(dim=0), rtol=0, atol=1e-12)
    # absent class 4: no within part, but its classifier is still pushed by the other centres
    assert res.within_norm[4] == 0 and res.between_norm[4] > 0


def test_center_gradient_and_per_pixel_norm():
    K, d = 4, 5
    z, y = _data(d=d, K=K, absent=(1,))
    W = simplex_etf(K, d, generator=_gen(3), dtype=torch.float64)
    res = ceco_gradients(z, y, W, K)
    c = res.centers.clone().requires_grad_(True)
    present = res.counts > 0
    loss = -(torch.log_softmax(c @ W, dim=1).diagonal() * present).sum()
    (gc,) = torch.autograd.grad(loss, c)
    torch.testing.assert_close(res.grad_centers, gc, rtol=0, atol=1e-12)
    # explicit Eq. 8 middle factor: sum_k' p_k'(z̄_k)(w_k' - w_k)
    for k in range(K):
        if present[k]:
            explicit = sum(res.probs[k, j] * (W[:, j] - W[:, k]) for j in range(K))
            torch.testing.assert_close(res.grad_centers[k], explicit, rtol=0, atol=1e-12)
            assert res.pixel_grad_norm[k].item() == pytest.approx(
                explicit.norm().item() / res.counts[k].item(), abs=1e-12)
    assert torch.all(res.grad_centers[1] == 0) and res.pixel_grad_norm[1] == 0
    assert torch.all(res.probs[1] == 0)
    torch.testing.assert_close(res.probs[present].sum(1), torch.ones(int(present.sum()), dtype=torch.float64))


def test_absent_and_ignored_never_nan():
    K, d = 4, 3
    z = torch.randn(6, d, dtype=torch.float64)
    y = torch.full((6,), 255)
    res = ceco_gradients(z, y, torch.randn(d, K, dtype=torch.float64), K)
    for t in (res.loss, res.grad_weight, res.grad_features, res.grad_centers, res.pixel_grad_norm):
        assert torch.isfinite(t).all()
    assert res.loss.item() == 0 and torch.all(res.grad_weight == 0) and torch.all(res.grad_features == 0)


@pytest.mark.parametrize("K", [2, 3, 10, 150])
def test_erratum_etf_distance(K):
    # erratum (docs/conventions.md, section ceco-gradients): for a unit-norm ETF ||w_k' - w_k||^2 = 2K/(K-1), not ||w_k' - w_k||
    W = simplex_etf(K, K + 3, generator=_gen(K), dtype=torch.float64)
    D = classifier_pairwise_distances(W)
    off = D[~torch.eye(K, dtype=torch.bool)]
    torch.testing.assert_close(off**2, torch.full_like(off, 2 * K / (K - 1)), rtol=0, atol=1e-12)
    z = torch.randn(20, K + 3, dtype=torch.float64)
    res = ceco_gradients(z, torch.randint(0, K, (20,)), W, K)
    assert res.paper_distance == pytest.approx(2 * K / (K - 1))
    assert res.etf_distance**2 == pytest.approx(res.paper_distance, abs=1e-12)
    assert abs(off[0].item() - res.paper_distance) > 0.3  # the printed value is not the norm


def test_scaled_etf_distance():
    K, alpha = 5, 3.0
    W = simplex_etf(K, 6, scale=alpha, generator=_gen(), dtype=torch.float64)
    D = classifier_pairwise_distances(W)
    expected = alpha * math.sqrt(2 * K / (K - 1))
    off = D[~torch.eye(K, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, expected), rtol=0, atol=1e-12)


def test_pairwise_distances_brute_force():
    W = torch.randn(4, 6, generator=_gen(4), dtype=torch.float64)
    D = classifier_pairwise_distances(W)
    for i, j in itertools.product(range(6), repeat=2):
        assert D[i, j].item() == pytest.approx((W[:, i] - W[:, j]).norm().item(), abs=1e-13)
    # nearly identical columns (minority collapse): no cancellation error
    V = torch.ones(3, 2, dtype=torch.float64)
    V[0, 1] += 1e-9
    assert classifier_pairwise_distances(V)[0, 1].item() == pytest.approx(1e-9, rel=1e-6)


def test_mean_pairwise_cosine():
    K = 8
    W = simplex_etf(K, 10, generator=_gen(), dtype=torch.float64)
    assert mean_pairwise_cosine(W).item() == pytest.approx(-1 / (K - 1), abs=1e-12)
    assert mean_pairwise_cosine(W, [5, 6, 7]).item() == pytest.approx(-1 / (K - 1), abs=1e-12)
    mask = torch.zeros(K, dtype=torch.bool)
    mask[[0, 3]] = True
    assert mean_pairwise_cosine(W, mask).item() == pytest.approx(-1 / (K - 1), abs=1e-12)
    # collapsed minority classifiers -> mean cosine 1
    C = W.clone()
    C[:, 6] = 2 * C[:, 5]
    C[:, 7] = 0.5 * C[:, 5]
    assert mean_pairwise_cosine(C, [5, 6, 7]).item() == pytest.approx(1.0, abs=1e-12)
    # brute force on a random matrix
    R = torch.randn(4, 5, generator=_gen(1), dtype=torch.float64)
    sub = [0, 2, 4]
    cos = [float(R[:, i] @ R[:, j] / (R[:, i].norm() * R[:, j].norm())) for i, j in itertools.combinations(sub, 2)]
    assert mean_pairwise_cosine(R, sub).item() == pytest.approx(sum(cos) / 3, abs=1e-13)


@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: ceco_gradients(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(3, 4), 1),
         ValueError, "num_classes"),
        (lambda: ceco_gradients(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(3, 4), 3),
         ValueError, "weight"),
        (lambda: ceco_gradients(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 3), 3),
         ValueError, "weight"),
        (lambda: ceco_gradients(torch.randn(5, 3), torch.zeros(5, dtype=torch.long),
                                torch.full((3, 3), float("nan")), 3), ValueError, "weight"),
        (lambda: ceco_gradients(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long),
                                torch.randn(3, 3), 3), ValueError, "features"),
        (lambda: ceco_gradients(torch.randn(5, 3), torch.full((5,), 4), torch.randn(3, 3), 3), ValueError,
         "labels"),
        (lambda: ceco_gradients(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), torch.randn(3, 3), 3),
         ValueError, "labels"),
        (lambda: ceco_gradients(torch.full((5, 3), float("inf")), torch.zeros(5, dtype=torch.long),
                                torch.randn(3, 3), 3), ValueError, "features"),
        (lambda: ceco_gradients(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(3, 3), 3,
                                reduction="none"), ValueError, "reduction"),
        (lambda: classifier_pairwise_distances(torch.randn(3)), ValueError, "weight"),
        (lambda: classifier_pairwise_distances(torch.ones(3, 3, dtype=torch.long)), TypeError, "weight"),
        (lambda: mean_pairwise_cosine(torch.randn(3, 4), [1]), ValueError, "classes"),
        (lambda: mean_pairwise_cosine(torch.randn(3, 4), [1, 4]), ValueError, "classes"),
        (lambda: mean_pairwise_cosine(torch.randn(3, 4), [1, 1]), ValueError, "classes"),
        (lambda: mean_pairwise_cosine(torch.zeros(3, 4), [1, 2]), ValueError, "zero"),
    ],
)
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_classes_that_are_not_indices_are_a_clear_error():
    W = torch.randn(3, 4)
    with pytest.raises(TypeError, match="classes"):
        mean_pairwise_cosine(W, "ab")
    with pytest.raises(TypeError, match="classes"):
        mean_pairwise_cosine(W, [0.5, 1.5])
