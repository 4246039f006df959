"""Simplex ETF (CeCo paper Def. 1, Eq. 1-2, Sec. 4.2) and Lemma 1 (ceco_lite/etf.py)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceco_lite.etf import (
    check_simplex_etf,
    etf_gram,
    lemma1_bound,
    max_pairwise_cosine,
    simplex_etf,
    spread_unit_vectors,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _eq2(K: int, alpha: float = 1.0) -> torch.Tensor:
    """Eq. 2 written out entry by entry (independent of etf_gram)."""
    G = torch.empty(K, K, dtype=torch.float64)
    for i in range(K):
        for j in range(K):
            G[i, j] = alpha**2 * (K / (K - 1) * (i == j) - 1 / (K - 1))
    return G


@pytest.mark.parametrize("K,d", [(2, 1), (4, 3), (10, 16), (150, 512), (1000, 1000)])
def test_gram_equals_eq2(K, d):
    W = simplex_etf(K, d, generator=_gen(K), dtype=torch.float64)
    assert W.shape == (d, K) and W.dtype == torch.float64
    G = W.T @ W
    target = torch.full((K, K), -1.0 / (K - 1), dtype=torch.float64)
    target.fill_diagonal_(1.0)
    assert (G - target).abs().max().item() < 1e-10
    # the K vectors sum to zero (Eq. 1: U (I - 11^T/K) 1 = 0)
    assert W.sum(dim=1).abs().max().item() < 1e-10


def test_etf_gram_matches_eq2_entrywise():
    for K, alpha in [(2, 1.0), (5, 1.0), (7, 3.0)]:
        torch.testing.assert_close(etf_gram(K, scale=alpha, dtype=torch.float64), _eq2(K, alpha), rtol=0, atol=1e-14)


def test_scaled_form_sec42():
    K, d, alpha = 6, 9, 2.5
    W = simplex_etf(K, d, scale=alpha, generator=_gen(), dtype=torch.float64)
    torch.testing.assert_close(W.T @ W, _eq2(K, alpha), rtol=0, atol=1e-12)
    torch.testing.assert_close(W.norm(dim=0), torch.full((K,), alpha, dtype=torch.float64))
    res = check_simplex_etf(W, atol=1e-10)
    assert res.is_etf and bool(res) and res.scale == pytest.approx(alpha, abs=1e-12)
    # against a wrong expected scale the deviation is large
    assert not check_simplex_etf(W, scale=1.0)


def test_regular_tetrahedron_in_r3():
    W = simplex_etf(4, 3, generator=_gen(3), dtype=torch.float64)
    assert torch.linalg.matrix_rank(W).item() == 3
    dist = torch.cdist(W.T, W.T)
    off = dist[~torch.eye(4, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, math.sqrt(8 / 3)), rtol=0, atol=1e-12)


def test_dtype_device_and_reproducibility():
    a = simplex_etf(5, 8, generator=_gen(7))
    b = simplex_etf(5, 8, generator=_gen(7))
    c = simplex_etf(5, 8, generator=_gen(8))
    assert a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert check_simplex_etf(a, atol=1e-6)  # float32 round-off only
    assert simplex_etf(3, 3, dtype=torch.float64, device="cpu").dtype == torch.float64


def test_random_rotation_not_axis_aligned():
    # Haar U: different seeds give frames that are not simple permutations of each other
    Ws = [simplex_etf(3, 5, generator=_gen(s), dtype=torch.float64) for s in range(4)]
    for A, B in itertools.combinations(Ws, 2):
        assert (A - B).abs().max() > 1e-3


def test_check_simplex_etf_detects_non_etf():
    V = torch.randn(6, 5, generator=_gen(1), dtype=torch.float64)
    res = check_simplex_etf(V)
    assert not res.is_etf and res.max_deviation > 0.05
    assert res.max_cosine > lemma1_bound(5)
    # equal norms and equal angles but not maximal: the identity (cos 0) is not an ETF
    assert not check_simplex_etf(torch.eye(4, dtype=torch.float64))
    # a scaled-column distortion is reported as norm spread
    W = simplex_etf(4, 4, generator=_gen(), dtype=torch.float64)
    W[:, 0] *= 1.5
    assert check_simplex_etf(W).norm_spread > 0.4


@pytest.mark.parametrize(
    "call,exc,word",
    [
        (lambda: simplex_etf(1, 3), ValueError, "num_classes"),
        (lambda: simplex_etf(5, 3), ValueError, "dim"),
        (lambda: simplex_etf(2.5, 3), TypeError, "num_classes"),
        (lambda: simplex_etf(3, "4"), TypeError, "dim"),
        (lambda: simplex_etf(3, 3, scale=0.0), ValueError, "scale"),
        (lambda: simplex_etf(3, 3, scale=float("nan")), ValueError, "scale"),
        (lambda: simplex_etf(3, 3, generator=0), TypeError, "generator"),
        (lambda: simplex_etf(3, 3, dtype=torch.int64), TypeError, "dtype"),
        (lambda: etf_gram(1), ValueError, "num_classes"),
        (lambda: lemma1_bound(1), ValueError, "num_classes"),
        (lambda: check_simplex_etf(torch.ones(3)), ValueError, "W"),
        (lambda: check_simplex_etf(torch.ones(3, 3, dtype=torch.int64)), TypeError, "W"),
        (lambda: check_simplex_etf(torch.zeros(3, 3)), ValueError, "zero"),
        (lambda: max_pairwise_cosine(torch.tensor([[1.0, float("inf")]])), ValueError, "vectors"),
        (lambda: max_pairwise_cosine(torch.zeros(3, 2)), ValueError, "zero"),
        (lambda: spread_unit_vectors(3, 2, init=torch.ones(3, 3)), ValueError, "init"),
        (lambda: spread_unit_vectors(3, 2, steps=-1), ValueError, "steps"),
    ],
)
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


# ----------------------------------------------------------------------------- Lemma 1
def test_lemma1_bound_values():
    assert lemma1_bound(2) == -1.0
    assert lemma1_bound(4) == pytest.approx(-1 / 3)


def test_max_pairwise_cosine_brute_force():
    V = torch.randn(5, 7, generator=_gen(2), dtype=torch.float64)
    best = -math.inf
    for i, j in itertools.permutations(range(7), 2):
        best = max(best, float(V[:, i] @ V[:, j] / (V[:, i].norm() * V[:, j].norm())))
    assert max_pairwise_cosine(V).item() == pytest.approx(best, abs=1e-14)


def test_etf_attains_lemma1_bound():
    for K, d in [(2, 1), (3, 2), (10, 16), (50, 60)]:
        W = simplex_etf(K, d, generator=_gen(K), dtype=torch.float64)
        assert max_pairwise_cosine(W).item() == pytest.approx(lemma1_bound(K), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(K=st.integers(2, 12), d=st.integers(1, 14), seed=st.integers(0, 2**31 - 1))
def test_random_unit_sets_never_beat_lemma1(K, d, seed):
    V = torch.randn(d, K, generator=_gen(seed), dtype=torch.float64)
    V = V / V.norm(dim=0).clamp_min(1e-300)
    assert max_pairwise_cosine(V).item() >= lemma1_bound(K) - 1e-12


@settings(max_examples=30, deadline=None)
@given(K=st.integers(3, 8), seed=st.integers(0, 2**31 - 1), eps=st.floats(1e-4, 0.3))
def test_perturbed_etf_is_worse_than_bound(K, seed, eps):
    # Lemma 1 equality case is unique: any perturbation (renormalised) raises the max cosine
    W = simplex_etf(K, K, generator=_gen(seed), dtype=torch.float64)
    P = W + eps * torch.randn(K, K, generator=_gen(seed + 1), dtype=torch.float64)
    P = P / P.norm(dim=0)
    assert max_pairwise_cosine(P).item() > lemma1_bound(K)


@pytest.mark.parametrize("K,d", [(2, 1), (2, 4), (3, 2), (4, 3), (10, 9), (10, 16), (30, 40)])
def test_spread_unit_vectors_reaches_etf(K, d):
    V, hist = spread_unit_vectors(K, d, generator=_gen(K + d), return_history=True, snapshot_every=50)
    res = check_simplex_etf(V, atol=1e-8, scale=1.0)
    assert res.is_etf, res
    assert V.norm(dim=0).sub(1).abs().max() < 1e-12
    # history: exact max cosine before/after each step, ending at the Lemma 1 bound
    assert hist.max_cosine.shape == (301,)
    assert hist.max_cosine[-1].item() == pytest.approx(lemma1_bound(K), abs=1e-8)
    assert hist.max_cosine[-1] <= hist.max_cosine[0] + 1e-12
    assert hist.snapshot_steps.tolist() == [0, 50, 100, 150, 200, 250, 300]
    assert hist.vectors.shape == (7, d, K)
    torch.testing.assert_close(hist.vectors[-1], V)


def test_spread_unit_vectors_init_and_no_history():
    init = torch.randn(3, 4, generator=_gen(5), dtype=torch.float64)
    V = spread_unit_vectors(4, 3, init=init, steps=0)
    torch.testing.assert_close(V, init / init.norm(dim=0))  # zero steps: just normalised
    V2 = spread_unit_vectors(4, 3, init=init)
    assert isinstance(V2, torch.Tensor) and check_simplex_etf(V2, atol=1e-8)


def test_spread_unit_vectors_below_k_minus_1_stays_above_bound():
    # d < K - 1: no ETF exists; the optimiser still spreads but cannot reach the bound
    V = spread_unit_vectors(5, 2, generator=_gen(0))
    assert max_pairwise_cosine(V).item() > lemma1_bound(5) + 1e-3


def test_spread_unit_vectors_on_a_line():
    # dim = 1: the "sphere" is {-1, +1}; K = 2 is antipodal (ETF), K = 3 keeps a cosine of 1
    V2 = spread_unit_vectors(2, 1, generator=_gen(9))
    assert V2.shape == (1, 2) and V2[0, 0] == -V2[0, 1] and V2.abs().eq(1).all()
    V3 = spread_unit_vectors(3, 1, generator=_gen(9))
    assert V3.shape == (1, 3) and max_pairwise_cosine(V3).item() == 1.0


def test_bad_device_is_a_clear_error():
    with pytest.raises(ValueError, match="device"):
        simplex_etf(3, 2, device="nope")
    with pytest.raises(TypeError, match="device"):
        etf_gram(3, device=3)
